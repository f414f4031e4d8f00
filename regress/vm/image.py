"""Guest disks: a cached Debian root image, a per-kernel disk and a per-kernel initramfs.

* ``images/<recipe hash>/root.ext4``: debootstrap minbase bookworm + python3/bcc/procps…,
  rebuilt only when ``RECIPE`` changes (its hash names the directory). Booted with
  ``snapshot=on`` so no run ever modifies it.
* ``kernels/<release>/kernel.ext4``: the kernel's modules + headers (+ kbuild), mounted
  read-only by the initramfs over /lib/modules, /usr/src and /usr/lib/linux-kbuild-*,
  so adding a kernel never rebuilds the root.
* ``kernels/<release>/initramfs-<hash>.cpio.gz``: busybox + the virtio modules that kernel
  needs to see its disks; its /init mounts everything, unpacks the job and switch_roots.

The regress code itself travels on each job disk (see ``qemu.py``), never in the image.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from regress.errors import EnvironmentProblem
from regress.model.paths import cache_root
from regress.vm.kernels import Kernel, cache_lock
from regress.vm.tools import run_tool

MIRROR_ENV = "REGRESS_DEBIAN_MIRROR"
DEFAULT_MIRROR = "http://deb.debian.org/debian"

# Everything that decides the root image's content. Bump "revision" when the post-steps change.
RECIPE: dict[str, object] = {
    "revision": 1,
    "suite": "bookworm",
    "variant": "minbase",
    "include": [
        "python3",
        "python3-bpfcc",
        "bpfcc-tools",
        "procps",
        "kmod",
        "util-linux",
        "iproute2",
        "gawk",
    ],
    "mountpoints": ["mnt/kernel", "job", "results", "sys/kernel/tracing"],
}

# Modules the initramfs loads so the kernel can see virtio disks (deps resolved from modules.dep).
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk", "ext4")


def recipe_hash() -> str:
    data = json.dumps(RECIPE, sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def images_dir() -> Path:
    return cache_root() / "images"


@dataclass(frozen=True)
class RootImage:
    path: Path
    recipe_hash: str


def _run(argv: list[str], *, what: str, timeout: float | None = None) -> None:
    run_tool(argv, what=what, timeout=timeout)


def cached_root_image() -> RootImage | None:
    d = images_dir() / recipe_hash()
    if (d / "root.ext4").is_file() and (d / "recipe.json").is_file():
        return RootImage(d / "root.ext4", recipe_hash())
    return None


def _tree_usage(path: Path) -> tuple[int, int]:
    """(bytes in 4 KiB blocks, number of inodes) ``path`` needs on ext4."""
    blocks = 0
    inodes = 1
    for dirpath, dirs, files in os.walk(path):
        inodes += len(dirs) + len(files)
        blocks += len(dirs) + 1
        for f in files:
            try:
                size = os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                continue
            blocks += max(1, -(-size // 4096))
    return blocks * 4096, inodes


def _mkfs_from_dir(src: Path, out: Path, *, label: str, spare_mb: int) -> None:
    """An ext4 image populated from ``src`` (no loop mounts, no root-only kernel features).

    Sized from blocks and inodes actually needed: many small files (module and header
    trees) overflow an estimate from byte sizes, and mke2fs 1.47 then reports a
    misleading "directory block checksum" error instead of "no space".
    """
    used, inodes = _tree_usage(src)
    size_mb = int(used * 1.15 / 2**20) + inodes * 256 // 2**20 + spare_mb
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    with open(tmp, "wb") as fh:
        fh.truncate(size_mb * 2**20)
    _run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            label,
            "-O",
            "^has_journal",
            "-E",
            "lazy_itable_init=1",
            "-m",
            "0",
            "-N",
            str(int(inodes * 1.2) + 1024),
            "-d",
            str(src),
            str(tmp),
        ],
        what=f"mkfs.ext4 -d {src}",
    )
    os.replace(tmp, out)


def build_root_image(*, force: bool = False) -> RootImage:
    """debootstrap the guest root (cached by recipe hash); ~1 min and ~600 MB."""
    if not force:
        hit = cached_root_image()
        if hit is not None:
            return hit
    with cache_lock(f"image-{recipe_hash()}"):
        if not force and (hit := cached_root_image()) is not None:
            return hit  # built by another process while we waited
        return _build_root_image()


def _build_root_image() -> RootImage:
    if os.geteuid() != 0:
        raise EnvironmentProblem("building the guest image needs root (debootstrap)")
    h = recipe_hash()
    dest = images_dir() / h
    dest.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build.", dir=dest))
    try:
        root = work / "root"
        mirror = os.environ.get(MIRROR_ENV, DEFAULT_MIRROR)
        include = ",".join(RECIPE["include"])  # type: ignore[arg-type]
        _run(
            [
                "debootstrap",
                f"--variant={RECIPE['variant']}",
                f"--include={include}",
                str(RECIPE["suite"]),
                str(root),
                mirror,
            ],
            what="debootstrap the guest root",
        )
        for mp in RECIPE["mountpoints"]:  # type: ignore[attr-defined]
            (root / str(mp)).mkdir(parents=True, exist_ok=True)
        # Shrink: package caches and docs are never used in the guest.
        for junk in (
            "var/cache/apt/archives",
            "var/lib/apt/lists",
            "usr/share/doc",
            "usr/share/man",
            "usr/share/locale",
        ):
            p = root / junk
            if p.is_dir():
                shutil.rmtree(p)
                p.mkdir()
        (root / "etc" / "hostname").write_text("regress-guest\n")
        _mkfs_from_dir(root, dest / "root.ext4", label="regress-root", spare_mb=384)
        (dest / "recipe.json").write_text(json.dumps(RECIPE, indent=1, sort_keys=True) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    hit = cached_root_image()
    assert hit is not None
    return hit


def kernel_disk(kernel: Kernel) -> Path:
    """The kernel's modules/headers as a read-only ext4 (cached next to the kernel)."""
    out = kernel.vmlinuz.parent / "kernel.ext4"
    stamp = kernel.vmlinuz.parent / "kernel.ext4.ok"
    if out.is_file() and stamp.is_file():
        return out
    with cache_lock(f"kdisk-{kernel.vmlinuz.parent.name}"):
        if not (out.is_file() and stamp.is_file()):
            _mkfs_from_dir(kernel.tree, out, label="regress-kern", spare_mb=16)
            stamp.write_text("ok\n")
    return out


# --------------------------------------------------------------------------- initramfs

INIT_SCRIPT = r"""#!/bin/busybox sh
# regress initramfs: load virtio modules, mount root + kernel disk, unpack the job,
# switch_root into the job's guest-init. Any failure exits PID 1, i.e. panics the
# guest, which the host reports with the console log.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() { echo "regress-initramfs: FATAL: $*"; exit 1; }
for m in $(cat /modules.order); do
  insmod "/modules/$m" || fail "insmod $m"
done
root=/dev/vda
for arg in $(cat /proc/cmdline); do
  case "$arg" in root=*) root="${arg#root=}" ;; esac
done
i=0
while [ ! -b "$root" ] || [ ! -b /dev/vdc ]; do
  i=$((i + 1)); [ $i -gt 100 ] && fail "no block device $root after 10 s"
  sleep 0.1
done
mkdir -p /newroot
mount -t ext4 -o rw "$root" /newroot || fail "cannot mount root $root"
mount -t ext4 -o ro /dev/vdb /newroot/mnt/kernel || fail "cannot mount kernel disk /dev/vdb"
mkdir -p /newroot/lib/modules /newroot/usr/src /newroot/job
mount -o bind /newroot/mnt/kernel/lib/modules /newroot/lib/modules || fail "bind modules"
mount -o bind /newroot/mnt/kernel/usr/src /newroot/usr/src || fail "bind headers"
for d in /newroot/mnt/kernel/usr/lib/*; do
  [ -d "$d" ] || continue
  n="${d##*/}"; mkdir -p "/newroot/usr/lib/$n"
  mount -o bind "$d" "/newroot/usr/lib/$n" || fail "bind $n"
done
tar -x -f /dev/vdc -C /newroot/job || fail "cannot unpack the job disk /dev/vdc"
echo "regress-initramfs: switching root"
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /bin/sh /job/guest-init.sh
"""


def _modules_in_order(modules_dir: Path, names: tuple[str, ...]) -> list[str]:
    """Relative .ko paths for ``names`` and their dependencies, dependencies first."""
    deps: dict[str, list[str]] = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        if ":" not in line:
            continue
        mod, rest = line.split(":", 1)
        deps[mod.strip()] = rest.split()
    by_name = {Path(m).name.split(".ko")[0].replace("-", "_"): m for m in deps}
    builtin = set()
    bfile = modules_dir / "modules.builtin"
    if bfile.is_file():
        builtin = {
            Path(x).name.split(".ko")[0].replace("-", "_") for x in bfile.read_text().split()
        }
    order: list[str] = []

    def add(mod: str) -> None:
        if mod in order:
            return
        for d in reversed(deps.get(mod, [])):
            add(d)
        order.append(mod)

    for name in names:
        key = name.replace("-", "_")
        if key in by_name:
            add(by_name[key])
        elif key not in builtin:
            raise EnvironmentProblem(
                f"kernel modules in {modules_dir}: no module {name} "
                "(and it is not built in): cannot see virtio disks"
            )
    # modules.dep lists deps so that the first must load last; add() reversed them already.
    return order


def _cpio_newc(entries: list[tuple[str, int, bytes | str]]) -> bytes:
    """A newc cpio archive: (name, mode, data or symlink target)."""
    buf = io.BytesIO()
    ino = 1

    def pad(n: int) -> None:
        buf.write(b"\0" * ((4 - n % 4) % 4))

    for name, mode, data in [*entries, ("TRAILER!!!", 0, b"")]:
        raw = data.encode() if isinstance(data, str) else data
        nb = name.encode() + b"\0"
        hdr = "070701" + "".join(
            f"{v:08x}" for v in (ino, mode, 0, 0, 1, 0, len(raw), 0, 0, 0, 0, len(nb), 0)
        )
        buf.write(hdr.encode())
        buf.write(nb)
        pad(110 + len(nb))
        buf.write(raw)
        pad(len(raw))
        ino += 1
    return buf.getvalue()


def initramfs_path(kernel: Kernel) -> tuple[Path, str, list[str]]:
    """Where the kernel's initramfs is cached (named by content hash), busybox, modules."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    if not Path(busybox).is_file():
        raise EnvironmentProblem(
            "busybox not found (needed for the guest initramfs)",
            hint="run scripts/setup.sh (busybox-static)",
        )
    mods = _modules_in_order(kernel.modules_dir, INITRAMFS_MODULES)
    h = hashlib.sha256(
        (INIT_SCRIPT + "\n".join(mods) + str(Path(busybox).stat().st_size)).encode()
    ).hexdigest()[:12]
    return kernel.vmlinuz.parent / f"initramfs-{h}.cpio.gz", busybox, mods


def initramfs(kernel: Kernel) -> Path:
    """The per-kernel busybox initramfs (cached by kernel + init script hash)."""
    out, busybox, mods = initramfs_path(kernel)
    if out.is_file():
        return out
    entries: list[tuple[str, int, bytes | str]] = []
    for d in ("bin", "dev", "proc", "sys", "newroot", "modules"):
        entries.append((d, 0o40755, b""))
    entries.append(("bin/busybox", 0o100755, Path(busybox).read_bytes()))
    entries.append(("bin/sh", 0o120777, "busybox"))
    entries.append(("init", 0o100755, INIT_SCRIPT.encode()))
    names = []
    for rel in mods:
        name = Path(rel).name
        names.append(name)
        entries.append((f"modules/{name}", 0o100644, (kernel.modules_dir / rel).read_bytes()))
    entries.append(("modules.order", 0o100644, ("\n".join(names) + "\n").encode()))
    data = gzip.compress(_cpio_newc(entries), compresslevel=6, mtime=0)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    return out
