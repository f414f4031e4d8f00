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
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from regress.errors import EnvironmentProblem, InputError, UsageError
from regress.model.paths import cache_root
from regress.vm import debian
from regress.vm.tools import run_tool

DEBIAN_FLAVOUR = debian.FLAVOUR


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
    upstream: str = ""  # kernel.org version (6.1.192) when known
    headers: str = ""  # the release whose headers the guest compiles against, if not its own
    # own builds: where the files came from and the content key of the entry
    build: tuple[tuple[str, str], ...] = ()

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


_run = run_tool  # apt-get download, dpkg-deb, depmod


# --------------------------------------------------------------------------- parsing


def parse_debian_ref(ref: str) -> tuple[str, str]:
    """``debian:<release>`` -> ("release", ...); ``debian:<version>`` -> ("version", ...).

    Syntax only (no apt): a release ends in the flavour (``6.1.0-56-cloud-amd64``,
    ``6.12.117+deb12-cloud-amd64``), anything else must look like a Debian package or
    upstream version (``6.1.192-2``, ``6.12.117-1~deb12u1``, ``6.12.117``).
    """
    if not ref.startswith("debian:"):
        raise UsageError(
            f"kernel {ref!r}: expected debian:<release> (debian:6.1.0-56-cloud-amd64), "
            "debian:<package version> (debian:6.1.192-2), or a bzImage path with --*-kernel"
        )
    body = ref.split(":", 1)[1]
    if not debian.SAFE_REF.match(body) or not body[0].isdigit():
        raise UsageError(f"kernel {ref!r}: not a Debian kernel release or package version")
    if body.endswith(f"-{DEBIAN_FLAVOUR}"):
        return "release", body
    if body.endswith("-amd64") or body.endswith("-arm64"):
        raise UsageError(f"kernel {ref!r}: only the {DEBIAN_FLAVOUR} flavour is supported")
    return "version", body


_CATALOGUE: list[list[debian.DebianKernel]] = []


def available_debian(*, refresh: bool = False) -> list[debian.DebianKernel]:
    """Every cloud kernel apt knows (all lines), oldest package version first; asked once
    per process."""
    if refresh or not _CATALOGUE:
        _CATALOGUE[:] = [debian.query(DEBIAN_FLAVOUR)]
    return _CATALOGUE[0]


_APT_UPDATED: list[bool] = []


def _apt_update_once() -> bool:
    """``apt-get update`` once per process (fresh machines often have no package lists)."""
    if _APT_UPDATED or os.geteuid() != 0:
        return False
    _APT_UPDATED.append(True)
    _run(["apt-get", "update", "-qq"], what="apt-get update")
    _CATALOGUE.clear()
    return True


def _release_key(release: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", release))


def lookup(ref: str) -> debian.DebianKernel:
    """The packaged kernel a ``debian:`` ref names (apt is updated once if it is unknown)."""
    kind, body = parse_debian_ref(ref)
    for _attempt in range(2):
        known = available_debian()
        if kind == "release":
            hits = [k for k in known if k.release == body]
        else:
            hits = (
                [k for k in known if k.version == body]
                or [k for k in known if k.release == f"{body}-{DEBIAN_FLAVOUR}"]
                or [k for k in known if k.upstream == body]
            )
        if len(hits) > 1:
            raise UsageError(
                f"kernel {ref!r}: {len(hits)} packages build upstream {body}: "
                + ", ".join(f"debian:{k.release} ({k.version})" for k in hits),
                hint="name one by release or package version",
            )
        if hits:
            return hits[0]
        if not _apt_update_once():
            break
    what = "package" if kind == "release" else "package with version"
    raise InputError(
        f"kernel {ref!r}: apt has no linux-image-*-{DEBIAN_FLAVOUR} {what} {body}",
        hint="see 'regress kernel list'; run apt-get update if the list is stale",
    )


def resolve_release(ref: str) -> str:
    """The ``uname -r`` a Debian ref names (a cached kernel answers without apt)."""
    kind, body = parse_debian_ref(ref)
    if kind == "release":
        return body
    cached_hits = [k for k in list_cached() if k.version == body]
    if cached_hits:
        return cached_hits[0].release
    return lookup(ref).release


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
            upstream=str(doc.get("upstream") or _upstream_of(str(doc.get("version", "")))),
            headers=str(doc.get("headers", "")),
            build=tuple(sorted((str(a), str(b)) for a, b in (doc.get("build") or {}).items())),
        )
    except KeyError:
        return None


def _upstream_of(version: str) -> str:
    return debian.upstream_version(version) if version else ""


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
    pkg = lookup(f"debian:{release}")
    headers_from = pkg
    if not pkg.has_headers:
        # The tracer reads no kernel structs: the closest packaged headers compile it.
        closest = debian.closest_with_headers(pkg, available_debian())
        if closest is None:
            raise InputError(
                f"kernel {ref!r}: apt has no kernel headers at all (bcc needs a tree)",
                hint="run apt-get update; see 'regress kernel list'",
            )
        headers_from = closest
    image_pkg = f"{debian.IMAGE_PREFIX}{release}"
    packages = [
        f"{image_pkg}={pkg.version}",
        *(f"{p}={headers_from.version}" for p in headers_from.headers),
        *([headers_from.kbuild] if headers_from.kbuild else []),
    ]
    dest = kernels_dir() / release
    meta = {
        "label": f"debian:{release}",
        "release": release,
        "version": pkg.version,
        "upstream": pkg.upstream,
        "source": "debian",
        "headers": headers_from.release,
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
        _link_headers(tree, release, headers_from.headers)
        _run(["depmod", "-a", "-b", str(tree), release], what=f"depmod {release}")
    result = cached(release)
    assert result is not None
    return result


def _link_headers(tree: Path, release: str, headers: tuple[str, ...]) -> None:
    """bcc looks in lib/modules/<r>/build and .../source; Debian splits a headers tree in
    an arch half (``build``) and a common half (``source``), whatever the line names them."""
    mod = tree / "lib" / "modules" / release
    mod.mkdir(parents=True, exist_ok=True)
    src = tree / "usr" / "src"
    dirs = [name for name in headers if (src / name).is_dir()]
    if not dirs:
        raise EnvironmentProblem(f"headers packages {', '.join(headers)} left no usr/src tree")
    arch = dirs[0]
    common = next((d for d in dirs[1:] if (src / d / "include" / "linux").is_dir()), None)
    for name, target in (("build", arch), ("source", common)):
        link = mod / name
        if link.is_symlink() or link.exists():
            link.unlink()
        if target is not None:
            link.symlink_to(f"/usr/src/{target}")


def _hash_file(h: Any, path: Path) -> None:
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)


def _hash_tree(h: Any, tag: str, root: Path, skip: frozenset[str] = frozenset()) -> None:
    """Names, link targets and file contents of a tree, in a stable order."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(root)
        if rel_dir == Path("."):
            dirnames[:] = [d for d in dirnames if d not in skip]
        for name in sorted(filenames + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]):
            if rel_dir == Path(".") and name in skip:
                continue
            p = Path(dirpath) / name
            h.update(f"{tag}:{rel_dir / name}\0".encode())
            if p.is_symlink():
                h.update(b"L" + os.readlink(p).encode() + b"\0")
            elif p.is_file():
                h.update(b"F")
                _hash_file(h, p)


def content_key(bzimage: Path, modules: Path, headers: Path | None) -> str:
    """sha256 over everything that makes the kernel side what it is: the image, the
    modules tree and the headers tree (a rebuilt module is another kernel side)."""
    h = hashlib.sha256()
    _hash_file(h, bzimage)
    _hash_tree(h, "modules", modules, frozenset({"build", "source"}))
    if headers is not None:
        _hash_tree(h, "headers", headers)
    return h.hexdigest()


def check_paths(bzimage: Path, modules: Path, headers: Path | None) -> None:
    if not bzimage.is_file():
        raise InputError(f"{bzimage}: no such kernel image")
    if not (modules / "modules.dep").is_file() and not any(modules.glob("kernel")):
        raise InputError(
            f"{modules}: not a modules directory (expected lib/modules/<release> with kernel/)"
        )
    if headers is not None and not (Path(headers) / "Makefile").is_file():
        raise InputError(f"{headers}: not a kernel headers/build tree (no Makefile)")


def paths_entry(bzimage: Path, modules: Path, headers: Path | None) -> tuple[str, Path]:
    """(content key, cache entry) of an own build: what a run of it really boots."""
    check_paths(bzimage, modules, headers)
    key = f"paths-{modules.name}-{content_key(bzimage, modules, headers)[:16]}"
    return key, kernels_dir() / key


def from_paths(bzimage: Path, modules: Path, headers: Path | None, *, label: str = "") -> Kernel:
    """A user-built kernel: bzImage + an installed modules dir (+ headers dir) -> cache entry.

    ``modules`` is ``lib/modules/<release>`` (its name is the release). The entry is keyed
    by release and the content of all three, so a rebuilt image, module or header is a
    new entry; nothing is written into the user's directories.
    """
    bzimage, modules = Path(bzimage).absolute(), Path(modules).absolute()
    headers = Path(headers).absolute() if headers is not None else None
    key, entry = paths_entry(bzimage, modules, headers)
    with cache_lock(f"kernel-{key}"):
        return _from_paths(bzimage, modules, headers, label, modules.name, entry, key)


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
    meta = {
        "label": label or str(bzimage),
        "release": release,
        "version": "",
        "source": "paths",
        "build": {
            "kernel": str(bzimage),
            "modules": str(modules),
            "headers": str(headers or ""),
            "key": key.rsplit("-", 1)[-1],
        },
    }
    with _staged_entry(entry, meta) as tmp:
        shutil.copy2(bzimage, tmp / "vmlinuz")
        mod_dest = tmp / "tree" / "lib" / "modules" / release
        shutil.copytree(
            modules, mod_dest, symlinks=True, ignore=shutil.ignore_patterns("build", "source")
        )
        if headers is not None:
            hdest = tmp / "tree" / "usr" / "src" / f"linux-headers-{release}"
            shutil.copytree(headers, hdest, symlinks=True)
            (mod_dest / "build").symlink_to(f"/usr/src/linux-headers-{release}")
            # Debian splits headers into an arch half and a -common half; bcc needs both.
            common = _debian_common_sibling(headers)
            if common is not None:
                shutil.copytree(common, hdest.with_name(common.name), symlinks=True)
                (mod_dest / "source").symlink_to(f"/usr/src/{common.name}")
            if (headers / ".config").is_file():  # the build's config, for the report
                shutil.copy2(headers / ".config", tmp / "config")
        _run(["depmod", "-a", "-b", str(tmp / "tree"), release], what=f"depmod {release}")
    result = _load_entry(entry)
    assert result is not None
    return result


def _debian_common_sibling(headers: Path) -> Path | None:
    """Debian's ``linux-headers-<x>-<flavour>`` has a ``linux-headers-<x>-common`` sibling,
    whatever ``<x>`` looks like (6.1.0-57, 6.12.117+deb12): found by the Makefile's
    include of it, else by name."""
    if (headers / "include" / "linux" / "kconfig.h").is_file():
        return None
    makefile = headers / "Makefile"
    try:
        text = makefile.read_text(errors="replace")
    except OSError:
        text = ""
    m = re.search(r"(linux-headers-[A-Za-z0-9.+~_-]+-common[A-Za-z0-9-]*)", text)
    names = [m.group(1)] if m else []
    parts = headers.name.rsplit("-", 2)  # linux-headers-<x>-cloud-amd64 -> <x>
    if len(parts) == 3:
        names.append(f"{parts[0]}-common")
    for name in names:
        common = headers.parent / name
        if common.is_dir():
            return common
    return None


def describe(kernel: Kernel) -> dict[str, str]:
    d = asdict(kernel)
    return {k: str(v) for k, v in d.items()}
