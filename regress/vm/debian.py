"""Debian's kernel packages as apt describes them.

Which kernel images exist, their package and upstream versions, and which headers and
kbuild packages make up a usable headers tree -- all read from the package metadata
(``Built-Using``, ``Depends``), never from a naming pattern per kernel line: bookworm's
own 6.1 line is ``linux-image-6.1.0-57-cloud-amd64`` (version 6.1.192-3) while the 6.12
backport is ``linux-image-6.12.117+deb12-cloud-amd64`` (6.12.117-1~deb12u1), with
headers split as ``…-common`` and ``…+deb12-common`` respectively, and the next line
will name things differently again. Version ordering is dpkg's (python-debian).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from debian.deb822 import Deb822
from debian.debian_support import Version

from regress.vm.tools import run_tool

FLAVOUR = "cloud-amd64"
IMAGE_PREFIX = "linux-image-"
HEADERS_PREFIX = "linux-headers-"
# What a kernel reference may contain: apt package names and versions, nothing else.
SAFE_REF = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9.+~:-]{0,127}\Z")


@dataclass(frozen=True)
class DebianKernel:
    """One packaged kernel image and what apt offers to build against it."""

    release: str  # uname -r: the image package's name without ``linux-image-``
    version: str  # Debian package version (6.1.192-3, 6.12.117-1~deb12u1)
    source: str  # the source package it was built from (``linux``, ``linux-6.12``)
    headers: tuple[str, ...] = ()  # headers packages at exactly this version, if any
    kbuild: str = ""  # the linux-kbuild-* package the headers' scripts point into

    @property
    def upstream(self) -> str:
        """The kernel.org version this package is built from (6.1.192)."""
        return upstream_version(self.version)

    @property
    def line(self) -> str:
        """The stable line (6.1, 6.12): bisection stays within one."""
        return ".".join(self.upstream.split(".")[:2])

    @property
    def has_headers(self) -> bool:
        return bool(self.headers)


def upstream_version(package_version: str) -> str:
    """``6.12.117-1~deb12u1`` -> ``6.12.117``; ``1:6.1.192-3`` -> ``6.1.192``."""
    return Version(package_version).upstream_version or package_version


def version_sort_key(version: str) -> Version:
    return Version(version)


def _built_from(paragraph: Deb822) -> str | None:
    """``Built-Using: linux-6.12 (= 6.12.117-1~deb12u1)`` -> ``linux-6.12``; meta-packages
    (``linux-image-cloud-amd64``) and debug packages carry none."""
    built = paragraph.get("Built-Using", "")
    for item in built.split(","):
        name = item.strip().split(" ", 1)[0]
        if name == "linux" or name.startswith("linux-"):
            return str(name)
    return None


def _depends(paragraph: Deb822) -> list[str]:
    """Package names in ``Depends`` (first alternative of each)."""
    names = []
    for item in paragraph.get("Depends", "").split(","):
        first = item.split("|", 1)[0].strip()
        if first:
            names.append(first.split(" ", 1)[0].split(":", 1)[0])
    return names


def catalogue(show_output: str, flavour: str = FLAVOUR) -> list[DebianKernel]:
    """Kernels from ``apt-cache show`` text of image and headers packages, oldest first.

    An image is a ``linux-image-<release>`` package built from a ``linux*`` source whose
    name ends in the flavour; its headers are ``linux-headers-<release>`` at the same
    version plus the headers packages that one depends on (Debian's ``-common`` half).
    """
    paragraphs = [p for p in Deb822.iter_paragraphs(show_output.splitlines()) if "Package" in p]
    by_name: dict[str, list[Deb822]] = {}
    for p in paragraphs:
        by_name.setdefault(p["Package"], []).append(p)
    found: dict[str, DebianKernel] = {}
    for name, stanzas in by_name.items():
        if not (name.startswith(IMAGE_PREFIX) and name.endswith(f"-{flavour}")):
            continue
        for image in stanzas:
            source = _built_from(image)
            if source is None or any(d.startswith(IMAGE_PREFIX) for d in _depends(image)):
                continue  # a meta-package (linux-image-cloud-amd64) depends on the real one
            release = name[len(IMAGE_PREFIX) :]
            version = image.get("Version", "")
            if not version:
                continue
            known = found.get(release)
            if known is not None and Version(known.version) >= Version(version):
                continue
            headers, kbuild = _headers_for(release, version, by_name)
            found[release] = DebianKernel(release, version, source, headers, kbuild)
    return sorted(found.values(), key=lambda k: (Version(k.version), k.release))


def _headers_for(
    release: str, version: str, by_name: dict[str, list[Deb822]]
) -> tuple[tuple[str, ...], str]:
    arch_name = f"{HEADERS_PREFIX}{release}"
    for arch in by_name.get(arch_name, []):
        if arch.get("Version") != version:
            continue
        deps = _depends(arch)
        parts = [d for d in deps if d.startswith(HEADERS_PREFIX)]
        kbuild = next((d for d in deps if d.startswith("linux-kbuild-")), "")
        missing = [
            p for p in parts if not any(s.get("Version") == version for s in by_name.get(p, []))
        ]
        if missing:
            return (), kbuild
        return (arch_name, *parts), kbuild
    return (), ""


def _apt(argv: list[str]) -> str:
    return run_tool(argv, what="list Debian kernels")


def query(flavour: str = FLAVOUR) -> list[DebianKernel]:
    """Every ``linux-image-*-<flavour>`` kernel apt knows, with its headers packages."""
    pattern = rf"^linux-(image|headers)-.*{re.escape(flavour)}$"
    names = [
        line.split(" ", 1)[0]
        for line in _apt(["apt-cache", "--names-only", "search", pattern]).splitlines()
    ]
    names = [n for n in names if n]
    if not names:
        return []
    text = _apt(["apt-cache", "show", "--all-versions", *sorted(set(names))])
    # The arch headers depend on a ``-common`` half not named after the flavour.
    parts: set[str] = set()
    for p in Deb822.iter_paragraphs(text.splitlines()):
        if p.get("Package", "").startswith(HEADERS_PREFIX):
            parts.update(d for d in _depends(p) if d.startswith(HEADERS_PREFIX))
    parts -= set(names)
    if parts:
        text += "\n" + _apt(["apt-cache", "show", "--all-versions", *sorted(parts)])
    return catalogue(text, flavour)


def closest_with_headers(
    kernel: DebianKernel, kernels: Iterable[DebianKernel]
) -> DebianKernel | None:
    """The kernel whose headers stand in when ``kernel`` has none: same line first, then
    the nearest package version (the tracer reads no kernel structs, so any recent
    headers compile it; closer ones keep the syscall table and helpers the same)."""
    candidates = [k for k in kernels if k.has_headers and k.release != kernel.release]
    if not candidates:
        return None

    def distance(k: DebianKernel) -> tuple[int, int, str]:
        same_line = 0 if k.line == kernel.line else 1
        parts = [int(x) for x in re.findall(r"\d+", k.upstream)[:3]]
        mine = [int(x) for x in re.findall(r"\d+", kernel.upstream)[:3]]
        gap = sum(abs(a - b) * w for a, b, w in zip(parts, mine, (10**6, 10**3, 1), strict=False))
        return same_line, gap, k.release

    return min(candidates, key=distance)
