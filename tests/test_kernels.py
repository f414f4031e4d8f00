"""Kernel cache: user-built kernels given as paths, cache entries, listing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from regress.errors import InputError
from regress.model import paths
from regress.vm import kernels


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def _user_build(tmp_path: Path, release: str = "6.9.0-test") -> tuple[Path, Path, Path]:
    bz = tmp_path / "bzImage"
    bz.write_bytes(b"\x00" * 4096)
    mods = tmp_path / "lib" / "modules" / release
    (mods / "kernel" / "drivers").mkdir(parents=True)
    (mods / "kernel" / "drivers" / "x.ko").write_bytes(b"")
    (mods / "modules.dep").write_text("kernel/drivers/x.ko:\n")
    (mods / "build").symlink_to("/nonexistent")  # a link in the user's tree is not copied
    src = tmp_path / "src"
    arch = src / "linux-headers-6.9.0-1-cloud-amd64"
    (arch / "include" / "generated").mkdir(parents=True)
    (arch / "Makefile").write_text("# arch\n")
    common = src / "linux-headers-6.9.0-1-common"
    (common / "include" / "linux").mkdir(parents=True)
    (common / "include" / "linux" / "kconfig.h").write_text("/* */\n")
    return bz, mods, arch


def test_kernel_from_paths_is_cached_with_headers(cache: Path, tmp_path: Path) -> None:
    bz, mods, headers = _user_build(tmp_path)
    k = kernels.from_paths(bz, mods, headers)
    assert k.release == "6.9.0-test" and k.source == "paths"
    assert k.vmlinuz.read_bytes() == bz.read_bytes()
    assert (k.modules_dir / "modules.dep").is_file()
    assert os.readlink(k.modules_dir / "build") == "/usr/src/linux-headers-6.9.0-test"
    assert os.readlink(k.modules_dir / "source") == "/usr/src/linux-headers-6.9.0-1-common"
    assert (k.tree / "usr/src/linux-headers-6.9.0-1-common/include/linux/kconfig.h").is_file()
    assert k.headers_dir() == k.tree / "usr/src/linux-headers-6.9.0-test"
    assert kernels.from_paths(bz, mods, headers) == k  # reused
    assert [c.release for c in kernels.list_cached()] == ["6.9.0-test"]
    assert not list((cache / "kernels").glob(".*"))  # no temporary leftovers


def test_kernel_from_paths_rejects_bad_input(cache: Path, tmp_path: Path) -> None:
    bz, mods, _headers = _user_build(tmp_path)
    with pytest.raises(InputError, match="no such kernel image"):
        kernels.from_paths(tmp_path / "nope", mods, None)
    with pytest.raises(InputError, match="not a modules directory"):
        kernels.from_paths(bz, tmp_path, None)
    with pytest.raises(InputError, match="no Makefile"):
        kernels.from_paths(bz, mods, tmp_path)


def test_incomplete_cache_entry_is_not_listed(cache: Path) -> None:
    entry = cache / "kernels" / "6.1.0-56-cloud-amd64"
    (entry / "tree").mkdir(parents=True)  # no kernel.json: an interrupted fetch
    assert kernels.cached("6.1.0-56-cloud-amd64") is None
    assert kernels.list_cached() == []


def test_own_builds_are_keyed_by_content(cache: Path, tmp_path: Path) -> None:
    """The same bzImage with another modules tree (or headers) is another kernel side;
    nothing is written into the user's directories; the build's .config is kept."""
    bz, mods, headers = _user_build(tmp_path)
    (headers / ".config").write_text("CONFIG_X=y\n")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "cache" not in p.parts)
    a = kernels.from_paths(bz, mods, headers, label="baseline")
    (mods / "kernel" / "drivers" / "x.ko").write_bytes(b"rebuilt")  # same mtime second, size
    b = kernels.from_paths(bz, mods, headers, label="patched")
    assert a.release == b.release and a.vmlinuz.parent != b.vmlinuz.parent
    assert dict(a.build)["key"] != dict(b.build)["key"]
    assert dict(b.build)["modules"] == str(mods.absolute())
    assert (a.vmlinuz.parent / "config").read_text() == "CONFIG_X=y\n"
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "cache" not in p.parts)
    assert after == before
    assert kernels.from_paths(bz, mods, headers) == b  # unchanged content: reused
    key, entry = kernels.paths_entry(bz, mods, headers)
    assert entry == b.vmlinuz.parent and key == entry.name


def test_split_headers_of_any_line_are_merged(cache: Path, tmp_path: Path) -> None:
    """6.12's headers: linux-headers-6.12.117+deb12-cloud-amd64 + ...+deb12-common."""
    bz, mods, _ = _user_build(tmp_path)
    src = tmp_path / "src612"
    arch = src / "linux-headers-6.12.117+deb12-cloud-amd64"
    arch.mkdir(parents=True)
    (arch / "Makefile").write_text(
        "include /usr/src/linux-headers-6.12.117+deb12-common/Makefile\n"
    )
    common = src / "linux-headers-6.12.117+deb12-common"
    (common / "include" / "linux").mkdir(parents=True)
    (common / "include" / "linux" / "kconfig.h").write_text("/* */\n")
    k = kernels.from_paths(bz, mods, arch)
    assert os.readlink(k.modules_dir / "source") == f"/usr/src/{common.name}"
    assert (k.tree / "usr/src" / common.name / "include/linux/kconfig.h").is_file()
