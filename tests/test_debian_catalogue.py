"""Debian kernel packages read from apt metadata: every line's naming, headers halves,
upstream versions, and the stand-in headers for kernels that have none."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from regress.vm import debian

FIXTURE = Path(__file__).parent / "testdata" / "debian" / "apt-show.txt"


def _catalogue() -> dict[str, debian.DebianKernel]:
    return {k.release: k for k in debian.catalogue(FIXTURE.read_text())}


def test_both_lines_are_read_from_metadata_not_names() -> None:
    kernels = _catalogue()
    # meta-packages, -unsigned and -dbg packages are not kernels
    assert set(kernels) == {
        "6.1.0-47-cloud-amd64",
        "6.1.0-48-cloud-amd64",
        "6.12.100+deb12-cloud-amd64",
        "6.12.117+deb12-cloud-amd64",
    }
    k612 = kernels["6.12.117+deb12-cloud-amd64"]
    assert (k612.version, k612.upstream, k612.line) == ("6.12.117-1~deb12u1", "6.12.117", "6.12")
    # the headers' -common half is found through Depends, whatever the line calls it
    assert k612.headers == (
        "linux-headers-6.12.117+deb12-cloud-amd64",
        "linux-headers-6.12.117+deb12-common",
    )
    assert k612.kbuild == "linux-kbuild-6.12.117+deb12"
    k61 = kernels["6.1.0-47-cloud-amd64"]
    assert k61.headers == ("linux-headers-6.1.0-47-cloud-amd64", "linux-headers-6.1.0-47-common")
    assert (k61.upstream, k61.line, k61.kbuild) == ("6.1.170", "6.1", "linux-kbuild-6.1")
    assert not kernels["6.1.0-48-cloud-amd64"].has_headers


def test_kernels_without_headers_borrow_the_closest_of_their_line() -> None:
    kernels = _catalogue()
    known = list(kernels.values())
    k48 = debian.closest_with_headers(kernels["6.1.0-48-cloud-amd64"], known)
    assert k48 is not None and k48.release == "6.1.0-47-cloud-amd64"
    k100 = debian.closest_with_headers(kernels["6.12.100+deb12-cloud-amd64"], known)
    assert k100 is not None and k100.release == "6.12.117+deb12-cloud-amd64"  # same line
    assert debian.closest_with_headers(kernels["6.1.0-48-cloud-amd64"], []) is None


def test_versions_order_like_dpkg() -> None:
    order = ["6.1.192-2", "6.1.192-10", "6.12.115-2~deb12u1", "6.12.117-1~deb12u1"]
    assert sorted(reversed(order), key=debian.version_sort_key) == order
    assert debian.upstream_version("1:6.1.192-3") == "6.1.192"


@pytest.mark.skipif(shutil.which("apt-cache") is None, reason="needs apt")
def test_this_machines_apt_lists_both_lines() -> None:
    """Real apt metadata (bookworm + bookworm-security): 6.1.0-NN and 6.12.NNN+deb12."""
    from regress.vm import kernels as cache

    kernels = cache.available_debian()  # debian.query(), asked once per process
    lines = {k.line for k in kernels}
    assert {"6.1", "6.12"} <= lines, lines
    for k in kernels:
        assert k.release.endswith("-cloud-amd64") and k.upstream.startswith(k.line + ".")
        if k.has_headers:
            assert len(k.headers) == 2 and k.headers[1].endswith("-common"), k.headers


@pytest.mark.skipif(shutil.which("apt-cache") is None, reason="needs apt")
def test_every_spelling_of_a_612_kernel_resolves(monkeypatch: pytest.MonkeyPatch) -> None:
    from regress.vm import kernels

    monkeypatch.setattr(kernels, "_APT_UPDATED", [True])  # no apt-get update from a test

    latest = [k for k in kernels.available_debian() if k.line == "6.12"][-1]
    for ref in (
        f"debian:{latest.release}",
        f"debian:{latest.version}",
        f"debian:{latest.release.removesuffix('-cloud-amd64')}",  # 6.12.117+deb12
        f"debian:{latest.upstream}",
    ):
        assert kernels.lookup(ref) == latest, ref
    with pytest.raises(Exception, match="apt has no"):
        kernels.lookup("debian:6.12.9999")
