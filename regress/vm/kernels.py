"""Kernels to boot: Debian packages fetched with apt into a cache, or user-given paths.

Cache layout (``$REGRESS_CACHE`` or ``~/.cache/regress``)::

    kernels/<release>/vmlinuz         the bzImage
    kernels/<release>/tree/           lib/modules/<release> (+ depmod), usr/src/linux-headers-*,
                                      usr/lib/linux-kbuild-*: what goes on the guest's kernel disk
    kernels/<release>/kernel.json     where it came from (written last: marks the entry complete)

A fetch extracts into a temporary sibling directory and renames it into place, so an
interrupted download never leaves an entry that looks complete.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from regress.errors import EnvironmentProblem, InputError, UsageError
from regress.model.paths import cache_root

DEBIAN_FLAVOUR = "cloud-amd64"
ABI_RE = re.compile(r"\A(\d+\.\d+\.\d+-\d+)-([a-z0-9-]+)\Z")  # 6.1.0-56-cloud-amd64
VERSION_RE = re.compile(r"\A\d+\.\d+\.\d+(-\d+)?(\+[A-Za-z0-9.~+]+)?(-\d+)?\Z")  # 6.1.192-2
IMAGE_PKG_RE = re.compile(r"\Alinux-image-(\d+\.\d+\.\d+-\d+-cloud-amd64)\Z")


@contextlib.contextmanager
def cache_lock(name: str) -> Iterator[None]:
    """Serialise builders of one cache entry (threads of a parallel run, other processes)."""
    locks = cache_root() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def kernels_dir() -> Path:
    return cache_root() / "kernels"


@dataclass(frozen=True)
class Kernel:
    """A bootable kernel: image, and a tree holding its modules and headers."""

    label: str  # what the user asked for ("debian:6.1.0-56-cloud-amd64" or a path)
    release: str  # uname -r
    vmlinuz: Path
    tree: Path  # root-relative tree: lib/modules/<release>, usr/src/..., for the kernel disk
    version: str = ""  # package version (6.1.192-2) when from Debian
    source: str = "debian"  # "debian" or "paths"

    @property
    def modules_dir(self) -> Path:
        return self.tree / "lib" / "modules" / self.release

    def headers_dir(self) -> Path | None:
        """The headers tree bcc compiles against (``build`` link target), if present."""
        build = self.modules_dir / "build"
        if build.is_symlink():
            target = os.readlink(build)
            if target.startswith("/"):
                resolved = self.tree / target.lstrip("/")
            else:
                resolved = build.parent / target
            return resolved if resolved.exists() else None
        return build if build.is_dir() else None


def _run(argv: list[str], *, cwd: Path | None = None, what: str) -> str:
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise EnvironmentProblem(
            f"{argv[0]} not found (needed to {what})", hint="run scripts/setup.sh"
        ) from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise EnvironmentProblem(f"{what} failed: {' '.join(argv[:3])}…: {' | '.join(tail)}")
    return proc.stdout


# --------------------------------------------------------------------------- parsing


def parse_debian_ref(ref: str) -> tuple[str, str]:
    """``debian:6.1.0-56-cloud-amd64`` -> ("abi", ...); ``debian:6.1.192-2`` -> ("version", ...)."""
    if not ref.startswith("debian:"):
        raise UsageError(
            f"kernel {ref!r}: expected debian:<release> (debian:6.1.0-56-cloud-amd64), "
            "debian:<package version> (debian:6.1.192-2), or a bzImage path with --*-kernel"
        )
    body = ref.split(":", 1)[1]
    m = ABI_RE.match(body)
    if m:
        if m.group(2) != DEBIAN_FLAVOUR:
            raise UsageError(f"kernel {ref!r}: only the {DEBIAN_FLAVOUR} flavour is supported")
        return "abi", body
    if VERSION_RE.match(body):
        return "version", body
    raise UsageError(f"kernel {ref!r}: not a Debian kernel release or package version")


@dataclass(frozen=True)
class Available:
    release: str
    version: str
    has_headers: bool


def available_debian() -> list[Available]:
    """Cloud kernels apt knows about, with whether matching headers exist."""
    out = _run(
        [
            "apt-cache",
            "--names-only",
            "search",
            r"^linux-(image|headers)-[0-9.]+-[0-9]+-cloud-amd64$",
        ],
        what="list Debian kernels",
    )
    images: set[str] = set()
    headers: set[str] = set()
    for line in out.splitlines():
        name = line.split(" ", 1)[0]
        if name.startswith("linux-image-"):
            images.add(name[len("linux-image-") :])
        elif name.startswith("linux-headers-"):
            headers.add(name[len("linux-headers-") :])
    images.discard("")
    result: list[Available] = []
    versions = _package_versions([f"linux-image-{r}" for r in images]) if images else {}
    for rel in images:
        result.append(Available(rel, versions.get(f"linux-image-{rel}", ""), rel in headers))
    result.sort(key=lambda a: _release_key(a.release))
    return result


_APT_UPDATED: list[bool] = []


def _apt_update_once() -> bool:
    """``apt-get update`` once per process (fresh machines often have no package lists)."""
    if _APT_UPDATED or os.geteuid() != 0:
        return False
    _APT_UPDATED.append(True)
    _run(["apt-get", "update", "-qq"], what="apt-get update")
    return True


def _release_key(release: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", release))


def _package_versions(packages: list[str]) -> dict[str, str]:
    """Candidate versions of the packages apt knows (unknown ones are left out)."""
    try:
        out = _run(["apt-cache", "show", "--no-all-versions", *sorted(packages)], what="query apt")
    except EnvironmentProblem:
        if len(packages) <= 1:
            return {}
        found: dict[str, str] = {}
        for p in packages:
            found.update(_package_versions([p]))
        return found
    versions: dict[str, str] = {}
    pkg = ""
    for line in out.splitlines():
        if line.startswith("Package: "):
            pkg = line.split(": ", 1)[1].strip()
        elif line.startswith("Version: ") and pkg:
            versions.setdefault(pkg, line.split(": ", 1)[1].strip())
    return versions


def resolve_release(ref: str) -> str:
    """The ``uname -r`` a Debian ref names (a package version is looked up in apt)."""
    kind, body = parse_debian_ref(ref)
    if kind == "abi":
        return body
    cached = [k for k in list_cached() if k.version == body]
    if cached:
        return cached[0].release
    for _attempt in range(2):
        for a in available_debian():
            if a.version == body:
                return a.release
        if not _apt_update_once():
            break
    raise InputError(
        f"kernel {ref!r}: no linux-image-*-{DEBIAN_FLAVOUR} package with version {body} in apt",
        hint="see 'regress kernel list'; run apt-get update if the list is stale",
    )


# --------------------------------------------------------------------------- cache


def _load_entry(entry: Path) -> Kernel | None:
    meta = entry / "kernel.json"
    try:
        doc = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    try:
        return Kernel(
            label=str(doc["label"]),
            release=str(doc["release"]),
            vmlinuz=entry / "vmlinuz",
            tree=entry / "tree",
            version=str(doc.get("version", "")),
            source=str(doc.get("source", "debian")),
        )
    except KeyError:
        return None


def list_cached() -> list[Kernel]:
    d = kernels_dir()
    if not d.is_dir():
        return []
    found = [k for e in sorted(d.iterdir()) if e.is_dir() and (k := _load_entry(e)) is not None]
    return sorted(found, key=lambda k: _release_key(k.release))


def cached(release: str) -> Kernel | None:
    return _load_entry(kernels_dir() / release)


@contextlib.contextmanager
def _staged_entry(dest: Path, meta: dict[str, Any]) -> Iterator[Path]:
    """Build a cache entry in a temp dir beside ``dest``; swap it in only when complete,
    so an interrupted fetch never leaves a half-unpacked kernel that looks cached."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        yield tmp
        (tmp / "kernel.json").write_text(json.dumps(meta, indent=1) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def fetch_debian(ref: str) -> Kernel:
    """Download and unpack a Debian cloud kernel, its modules and headers (cached)."""
    release = resolve_release(ref)
    hit = cached(release)
    if hit is not None:
        return hit
    with cache_lock(f"kernel-{release}"):
        return _fetch_debian(ref, release)


def _fetch_debian(ref: str, release: str) -> Kernel:
    hit = cached(release)  # another process may have fetched it while we waited
    if hit is not None:
        return hit
    abi = release[: -len(DEBIAN_FLAVOUR) - 1]  # 6.1.0-56
    image_pkg = f"linux-image-{release}"
    versions = _package_versions([image_pkg])
    if not versions.get(image_pkg) and _apt_update_once():
        versions = _package_versions([image_pkg])
    version = versions.get(image_pkg)
    if not version:
        raise InputError(
            f"kernel {ref!r}: apt has no package {image_pkg}",
            hint="see 'regress kernel list'; run apt-get update if the list is stale",
        )
    header_pkgs = [f"linux-headers-{release}", f"linux-headers-{abi}-common"]
    have = _package_versions(header_pkgs)
    if any(have.get(p) != version for p in header_pkgs):
        with_headers = [a.release for a in available_debian() if a.has_headers]
        raise InputError(
            f"kernel {ref!r}: apt has no headers for {release} (bcc needs them in the guest)",
            hint="kernels with headers: " + ", ".join(with_headers),
        )
    kbuild = _kbuild_package(release, version)
    packages = [f"{image_pkg}={version}", *(f"{p}={version}" for p in header_pkgs), kbuild]

    dest = kernels_dir() / release
    meta = {
        "label": f"debian:{release}",
        "release": release,
        "version": version,
        "source": "debian",
        "packages": packages,
    }
    with _staged_entry(dest, meta) as tmp:
        debs = tmp / "debs"
        debs.mkdir()
        _run(["apt-get", "download", "-q", *packages], cwd=debs, what=f"download {release}")
        tree = tmp / "tree"
        tree.mkdir()
        for deb in sorted(debs.glob("*.deb")):
            _run(["dpkg-deb", "-x", str(deb), str(tree)], what=f"unpack {deb.name}")
        shutil.rmtree(debs)
        vmlinuz = tree / "boot" / f"vmlinuz-{release}"
        if not vmlinuz.is_file():
            raise EnvironmentProblem(f"{image_pkg} did not contain boot/vmlinuz-{release}")
        os.replace(vmlinuz, tmp / "vmlinuz")
        config = tree / "boot" / f"config-{release}"
        if config.is_file():
            os.replace(config, tmp / "config")
        shutil.rmtree(tree / "boot", ignore_errors=True)
        _link_headers(tree, release, abi)
        _run(["depmod", "-a", "-b", str(tree), release], what=f"depmod {release}")
    result = cached(release)
    assert result is not None
    return result


def _kbuild_package(release: str, version: str) -> str:
    """``linux-kbuild-6.1``: the headers' scripts/ symlinks point into it.

    The headers depend on ``>= version`` and the archive keeps only the newest kbuild,
    so it is not pinned.
    """
    major_minor = ".".join(release.split(".")[:2])
    return f"linux-kbuild-{major_minor}"


def _link_headers(tree: Path, release: str, abi: str) -> None:
    """bcc looks in lib/modules/<r>/build and .../source; Debian splits headers in two dirs."""
    mod = tree / "lib" / "modules" / release
    mod.mkdir(parents=True, exist_ok=True)
    for name, target in (
        ("build", f"/usr/src/linux-headers-{release}"),
        ("source", f"/usr/src/linux-headers-{abi}-common"),
    ):
        link = mod / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)


def from_paths(bzimage: Path, modules: Path, headers: Path | None, *, label: str = "") -> Kernel:
    """A user-built kernel: bzImage + an installed modules dir (+ headers dir) -> cache entry.

    ``modules`` is ``lib/modules/<release>`` (its name is the release). The entry is keyed
    by release and the files' sizes/mtimes, so a rebuild is picked up.
    """
    bzimage, modules = Path(bzimage), Path(modules)
    if not bzimage.is_file():
        raise InputError(f"{bzimage}: no such kernel image")
    if not (modules / "modules.dep").is_file() and not any(modules.glob("kernel")):
        raise InputError(
            f"{modules}: not a modules directory (expected lib/modules/<release> with kernel/)"
        )
    if headers is not None and not (Path(headers) / "Makefile").is_file():
        raise InputError(f"{headers}: not a kernel headers/build tree (no Makefile)")
    release = modules.name
    st = bzimage.stat()
    key = f"paths-{release}-{st.st_size}-{int(st.st_mtime)}"
    entry = kernels_dir() / key
    with cache_lock(f"kernel-{key}"):
        return _from_paths(bzimage, modules, headers, label, release, entry, key)


def _from_paths(
    bzimage: Path,
    modules: Path,
    headers: Path | None,
    label: str,
    release: str,
    entry: Path,
    key: str,
) -> Kernel:
    hit = _load_entry(entry)
    if hit is not None:
        return hit
    meta = {"label": label or str(bzimage), "release": release, "version": "", "source": "paths"}
    with _staged_entry(entry, meta) as tmp:
        shutil.copy2(bzimage, tmp / "vmlinuz")
        mod_dest = tmp / "tree" / "lib" / "modules" / release
        shutil.copytree(
            modules, mod_dest, symlinks=True, ignore=shutil.ignore_patterns("build", "source")
        )
        if headers is not None:
            headers = Path(headers)
            hdest = tmp / "tree" / "usr" / "src" / f"linux-headers-{release}"
            shutil.copytree(headers, hdest, symlinks=True)
            (mod_dest / "build").symlink_to(f"/usr/src/linux-headers-{release}")
            # Debian splits headers into <abi>-<flavour> and <abi>-common; bcc needs both.
            common = _debian_common_sibling(headers)
            if common is not None:
                shutil.copytree(common, hdest.with_name(common.name), symlinks=True)
                (mod_dest / "source").symlink_to(f"/usr/src/{common.name}")
        _run(["depmod", "-a", "-b", str(tmp / "tree"), release], what=f"depmod {release}")
    result = _load_entry(entry)
    assert result is not None
    return result


def _debian_common_sibling(headers: Path) -> Path | None:
    m = re.fullmatch(r"linux-headers-(\d+\.\d+\.\d+-\d+)-[a-z0-9-]+", headers.name)
    if m is None or (headers / "include" / "linux" / "kconfig.h").is_file():
        return None
    common = headers.parent / f"linux-headers-{m.group(1)}-common"
    return common if common.is_dir() else None


def describe(kernel: Kernel) -> dict[str, str]:
    d = asdict(kernel)
    return {k: str(v) for k, v in d.items()}
