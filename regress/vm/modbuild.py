"""Build an out-of-tree kernel module for a cached kernel, on the host (cached by content).

The positive controls for narrowing (``regress.guest.modfault``) are small modules that
must match the guest kernel exactly (vermagic, symbol versions). They are built here with
the host's gcc-12 and make against the kernel's own headers tree in regress's cache --
the same tree bcc compiles against in the guest -- and shipped on the job disk.

Debian's flavour headers directory holds a one-line Makefile that includes
``/usr/src/linux-headers-<abi>-common/Makefile`` by absolute path; the cached tree lives
elsewhere, so the build runs with a copy of that Makefile whose ``include`` lines point
into the cache. Everything else is plain kbuild: ``make -C <headers> M=<dir> modules``.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from regress.errors import EnvironmentProblem
from regress.model.paths import cache_root
from regress.vm.kernels import Kernel, cache_lock

BUILD_TIMEOUT_S = 300
_INCLUDE_RE = re.compile(r"^(\s*-?include\s+)(/\S+)", re.MULTILINE)


def modules_cache() -> Path:
    return cache_root() / "modules"


def build_module(kernel: Kernel, source: str, name: str) -> bytes:
    """The ``name.ko`` built from ``source`` for ``kernel``; cached by kernel and source."""
    headers = kernel.headers_dir()
    if headers is None or not (headers / "Makefile").is_file():
        raise EnvironmentProblem(
            f"kernel {kernel.release}: no headers tree in the cache to build a module against",
            hint="fault modules need the kernel's headers (Debian kernels with headers, or "
            "--*-headers for an own build)",
        )
    key = hashlib.sha256(
        "\0".join((kernel.release, str(kernel.vmlinuz.stat().st_size), name, source)).encode()
    ).hexdigest()[:16]
    cached = modules_cache() / f"{name}-{kernel.release}-{key}.ko"
    if cached.is_file():
        return cached.read_bytes()
    with cache_lock(f"module-{key}"):
        if cached.is_file():
            return cached.read_bytes()
        data = _build(kernel, headers, source, name)
        modules_cache().mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".ko.tmp")
        tmp.write_bytes(data)
        tmp.replace(cached)
        return data


def _makefile(kernel: Kernel, headers: Path) -> str:
    """The headers' Makefile with absolute includes pointing into the cached tree."""
    text = (headers / "Makefile").read_text()

    def into_tree(m: re.Match[str]) -> str:
        inside = kernel.tree / m.group(2).lstrip("/")
        return m.group(1) + str(inside if inside.exists() else m.group(2))

    return _INCLUDE_RE.sub(into_tree, text)


def _build(kernel: Kernel, headers: Path, source: str, name: str) -> bytes:
    for tool in ("make", "gcc-12"):
        if shutil.which(tool) is None:
            raise EnvironmentProblem(
                f"{tool} not found (needed to build the fault module)",
                hint="run scripts/setup.sh",
            )
    with tempfile.TemporaryDirectory(prefix="regress-mod-") as tmp:
        work = Path(tmp)
        (work / f"{name}.c").write_text(source)
        (work / "Kbuild").write_text(f"obj-m := {name}.o\n")
        (work / "Makefile.headers").write_text(_makefile(kernel, headers))
        argv = [
            "make",
            "-C",
            str(headers),
            "-f",
            str(work / "Makefile.headers"),
            f"M={work}",
            "modules",
        ]
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            raise EnvironmentProblem(
                f"building {name}.ko for {kernel.release} took over {BUILD_TIMEOUT_S} s"
            ) from None
        ko = work / f"{name}.ko"
        if proc.returncode != 0 or not ko.is_file():
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-4:])
            raise EnvironmentProblem(f"building {name}.ko for {kernel.release} failed: {tail}")
        return ko.read_bytes()
