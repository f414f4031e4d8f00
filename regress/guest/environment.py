"""Facts about the kernel and machine a capture ran on, and what bcc needs from them.

Two captures are only comparable when the machine shape matches, and a diff is
only explainable when we know exactly which kernel (release, build string,
cmdline, config) produced each side. bcc also needs a kernel headers tree;
custom kernels (this host) often have none, so we fall back to an installed
Debian ``linux-headers-*`` pair merged into one tree (bcc cannot use Debian's
split arch + ``-common`` layout directly).

Stdlib-only: this module also runs inside the guest VM.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import platform
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from regress.errors import EnvironmentProblem
from regress.model.capture import KernelInfo, MachineInfo
from regress.model.paths import cache_root

TRACEFS_ENV = "REGRESS_TRACEFS"
HEADERS_ENV = "REGRESS_KERNEL_HEADERS"
HEADERS_SEARCH_ENV = "REGRESS_HEADERS_SEARCH"  # where Debian header trees live (tests)
DEFAULT_TRACEFS = Path("/sys/kernel/tracing")
SETUP_HINT = "run scripts/setup.sh as root"

_DEBIAN_ARCH_RE = re.compile(r"\Alinux-headers-(\d+\.\d+\.\d+-\d+)-(?:[a-z0-9]+-)?amd64\Z")


# --------------------------------------------------------------------------- kernel


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""


def parse_config(text: str) -> dict[str, str]:
    """``CONFIG_X=v`` lines; ``# CONFIG_X is not set`` is recorded as ``n``."""
    config: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("CONFIG_") and "=" in line:
            key, value = line.split("=", 1)
            config[key] = value
        else:
            m = re.match(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$", line)
            if m:
                config[m.group(1)] = "n"
    return config


def read_kernel_config(release: str) -> tuple[dict[str, str] | None, str | None]:
    """The running kernel's config and where it came from (None when unreadable)."""
    boot = Path("/boot") / f"config-{release}"
    try:
        return parse_config(boot.read_text(errors="replace")), str(boot)
    except OSError:
        pass
    try:
        with gzip.open("/proc/config.gz", "rt", errors="replace") as fh:
            return parse_config(fh.read()), "/proc/config.gz"
    except OSError:
        return None, None


def config_hash(config: dict[str, str]) -> str:
    text = "\n".join(f"{k}={v}" for k, v in sorted(config.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def out_of_tree_modules(proc_modules: str) -> list[str]:
    """Loaded modules flagged out-of-tree (O) or unsigned (E) in /proc/modules."""
    found = []
    for line in proc_modules.splitlines():
        fields = line.split()
        flags = re.search(r"\(([A-Z]+)\)\s*$", line)
        if fields and flags and ("O" in flags.group(1) or "E" in flags.group(1)):
            found.append(fields[0])
    return sorted(found)


def kernel_info(headers: str | None = None) -> KernelInfo:
    """The running kernel: release, /proc/version, cmdline, config (+hash) when readable,
    taint and out-of-tree modules, and the headers tree the tracer is compiled against."""
    release = platform.release()
    config, _source = read_kernel_config(release)
    tainted = _read(Path("/proc/sys/kernel/tainted"))
    return KernelInfo(
        release=release,
        version=_read(Path("/proc/version")),
        cmdline=_read(Path("/proc/cmdline")),
        config_hash=config_hash(config) if config else None,
        config=config,
        headers=headers,
        tainted=int(tainted) if tainted.isdigit() else None,
        out_of_tree_modules=out_of_tree_modules(_read(Path("/proc/modules"))),
    )


def machine_info(backend: str = "host", accel: str | None = None) -> MachineInfo:
    """Shape of this machine; a VM agent passes its own backend/accel."""
    mem_kb = 0
    for line in _read(Path("/proc/meminfo")).splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
            break
    return MachineInfo(
        backend=backend,
        arch=platform.machine(),
        cpus=os.cpu_count() or 1,
        mem_mb=mem_kb // 1024,
        accel=accel,
        hostname=socket.gethostname(),
    )


# --------------------------------------------------------------------------- tracefs


def tracefs_path() -> Path:
    return Path(os.environ.get(TRACEFS_ENV) or DEFAULT_TRACEFS)


def ensure_tracefs(*, mount: bool = True) -> Path:
    """A usable tracefs, mounting it at the default place if needed and allowed."""
    path = tracefs_path()
    if (path / "available_events").is_file():
        return path
    if mount and path == DEFAULT_TRACEFS and os.geteuid() == 0 and path.is_dir():
        subprocess.run(
            ["mount", "-t", "tracefs", "nodev", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        if (path / "available_events").is_file():
            return path
    raise EnvironmentProblem(
        f"tracefs is not mounted at {path} (no available_events)",
        hint=f"mount -t tracefs nodev {DEFAULT_TRACEFS}, or {SETUP_HINT}",
    )


# --------------------------------------------------------------------------- headers


@dataclass(frozen=True)
class HeadersChoice:
    """What bcc will compile against. ``source`` None: bcc's default (/lib/modules/.../build)."""

    source: Path | None
    note: str
    name: str = ""  # the tree's directory name (linux-headers-<release>): whose headers


def _usable_tree(path: Path) -> bool:
    return (path / "include" / "linux" / "kconfig.h").is_file() and (
        path / "include" / "generated" / "autoconf.h"
    ).is_file()


def _common_dir_for(arch_dir: Path) -> Path | None:
    m = _DEBIAN_ARCH_RE.match(arch_dir.name)
    if not m:
        return None
    common = arch_dir.parent / f"linux-headers-{m.group(1)}-common"
    return common if common.is_dir() else None


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", path.name))


def cache_dir() -> Path:
    """Merged Debian header trees (see ``regress.model.paths``)."""
    return cache_root() / "headers"


def _link_tree(src: Path, dst: Path) -> None:
    """Mirror ``src`` under ``dst`` as absolute symlinks to files (later calls override)."""
    for root, dirs, files in os.walk(src, followlinks=False):
        rel = Path(root).relative_to(src)
        target_dir = dst / rel
        target_dir.mkdir(parents=True, exist_ok=True)
        entries = list(files) + [d for d in dirs if (Path(root) / d).is_symlink()]
        for name in entries:
            link = target_dir / name
            real = os.path.realpath(Path(root) / name)
            if link.is_symlink() or link.is_file():
                link.unlink()
            elif link.is_dir():
                shutil.rmtree(link)
            os.symlink(real, link)


def merged_headers(arch_dir: Path, common_dir: Path) -> Path:
    """A symlink farm of Debian's ``-common`` tree overlaid with the arch tree, built once."""
    dest = cache_dir() / arch_dir.name
    stamp = dest / ".regress-merged"
    want = f"{arch_dir.resolve()}\n{common_dir.resolve()}\n"
    if stamp.is_file() and stamp.read_text() == want and _usable_tree(dest):
        return dest
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        _link_tree(common_dir, tmp)
        _link_tree(arch_dir, tmp)
        (tmp / ".regress-merged").write_text(want)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise EnvironmentProblem(
            f"cannot build merged kernel headers under {dest.parent}: {exc.strerror}",
            hint=f"pass --kernel-headers DIR or set {HEADERS_ENV}",
        ) from None
    return dest


def _prepare(path: Path, origin: str) -> HeadersChoice:
    if not path.is_dir():
        raise EnvironmentProblem(
            f"kernel headers {path} ({origin}) is not a directory",
            hint=f"point --kernel-headers/{HEADERS_ENV} at a linux-headers tree",
        )
    if _usable_tree(path):
        return HeadersChoice(path, f"kernel headers: {path} ({origin})", path.resolve().name)
    common = _common_dir_for(path)
    if common is not None:
        merged = merged_headers(path, common)
        if _usable_tree(merged):
            return HeadersChoice(
                merged,
                f"kernel headers: {path} + {common.name} merged at {merged} ({origin})",
                path.name,
            )
    raise EnvironmentProblem(
        f"kernel headers {path} ({origin}) lack include/linux/kconfig.h or "
        "include/generated/autoconf.h",
        hint="give a complete tree or a Debian linux-headers-*-amd64 dir with its -common sibling",
    )


def resolve_kernel_headers(
    explicit: Path | None = None, *, release: str | None = None
) -> HeadersChoice:
    """Pick the headers bcc compiles against: option, env, native build dir, Debian fallback."""
    if explicit is not None:
        return _prepare(Path(explicit), "--kernel-headers")
    env = os.environ.get(HEADERS_ENV)
    if env:
        return _prepare(Path(env), HEADERS_ENV)
    release = release or platform.release()
    build = Path("/lib/modules") / release / "build"
    if build.is_dir():
        name = build.resolve().name
        return HeadersChoice(None, f"kernel headers: {build} -> {name}", name)
    search = Path(os.environ.get(HEADERS_SEARCH_ENV) or "/usr/src")
    candidates = sorted(
        (p for p in search.glob("linux-headers-*-amd64") if p.is_dir()), key=_version_key
    )
    for arch_dir in reversed(candidates):
        if _usable_tree(arch_dir) or _common_dir_for(arch_dir) is not None:
            choice = _prepare(arch_dir, f"auto-detected; {build} does not exist")
            return choice
    raise EnvironmentProblem(
        f"no kernel headers for {release}: {build} does not exist and no "
        f"{search}/linux-headers-*-amd64 tree was found",
        hint=f"{SETUP_HINT} (installs linux-headers-6.1.0-NN-cloud-amd64), or pass "
        f"--kernel-headers DIR / set {HEADERS_ENV}",
    )
