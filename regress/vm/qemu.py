"""QEMU backend: argument lists (never shell strings), one boot with a timeout, results.

Disks, in this order (so the guest sees them as vda..vdd):
  vda  root image, ``snapshot=on`` (writes vanish at exit; the cached image never changes)
  vdb  the kernel's modules + headers, read-only
  vdc  the job: a tar with guest-init.sh, job.json, and this regress package, read-only
  vdd  the result disk (see ``regress.guest.agent``), written by the agent
The serial console goes to ``console-<n>.log`` in the run's output directory.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import regress
from regress.errors import EnvironmentProblem, VMError
from regress.guest.agent import RESULT_DISK_BYTES, read_result_disk
from regress.model.events import Event
from regress.vm.kernels import Kernel

QEMU = "qemu-system-x86_64"
# rcupdate.rcu_expedited=1: under TCG a normal RCU grace period costs tens of ms, and
# kprobe removal, namespace teardown (ps-loop's unshare) and umount each wait for one;
# expedited grace periods made a ps-loop boot ~1.7x faster and probe detach ~2.6x faster
# (measured 2026-11-24). Same for both kernels, recorded in the capture's cmdline; a
# later "--append rcupdate.rcu_expedited=0" overrides it.
# no_timer_check: under TCG on a loaded host the IO-APIC timer check can miss its
# ticks and panic ("IO-APIC + timer doesn't work!"; seen 2026-11-24 with two guests
# booting on 2 busy cores); virtualised kernels skip that check.
DEFAULT_APPEND = (
    "console=ttyS0",
    "quiet",
    "panic=-1",
    "rdinit=/init",
    "rcupdate.rcu_expedited=1",
    "no_timer_check",
)

GUEST_INIT = r"""#!/bin/sh
# Stage 2 (PID 1 in the Debian root): mounts, then the agent, then power off.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
mount -t debugfs nodev /sys/kernel/debug 2>/dev/null
mount -t cgroup2 none /sys/fs/cgroup 2>/dev/null
ip link set lo up 2>/dev/null
hostname regress-guest
if [ -f /job/boot-config ]; then
  mkdir -p /boot && cp /job/boot-config "/boot/config-$(uname -r)"
fi
cd /job
PYTHONPATH=/job/src PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
  python3 -m regress.guest.agent /job /dev/vdd
rc=$?
echo "REGRESS-AGENT-EXIT $rc"
sync
echo o > /proc/sysrq-trigger
# PID 1 must outlive the power-off: an external `sleep` can fail to load once the disks
# go away ("sleep: Input/output error"), and PID 1 exiting panics the kernel. Builtins
# only from here.
while :; do :; done
"""

# QEMU stderr lines meaning "this accelerator cannot run this kernel" (retry with TCG).
KVM_FAILURE_RE = re.compile(r"KVM internal error|failed to set MSR|kvm run failed|KVM_", re.I)
PANIC_RE = re.compile(r"Kernel panic - not syncing.*|regress-initramfs: FATAL:.*")


@dataclass
class Accel:
    name: str  # "kvm" or "tcg"
    reason: str


def choose_accel(requested: str = "auto") -> Accel:
    """KVM when it can run stock kernels, else TCG. PVM-only KVM (kvm_pvm) cannot."""
    if requested == "tcg":
        return Accel("tcg", "requested")
    usable = os.access("/dev/kvm", os.R_OK | os.W_OK)
    if requested == "kvm":
        if not usable:
            raise EnvironmentProblem("--accel kvm: /dev/kvm is not usable")
        return Accel("kvm", "requested")
    if not usable:
        return Accel("tcg", "/dev/kvm not usable")
    mods = Path("/sys/module")
    if (mods / "kvm_pvm").exists() and not (
        (mods / "kvm_intel").exists() or (mods / "kvm_amd").exists()
    ):
        return Accel("tcg", "KVM here is PVM-only (kvm_pvm), which cannot boot stock kernels")
    return Accel("kvm", "/dev/kvm usable")


@dataclass
class BootConfig:
    kernel: Kernel
    root_image: Path
    kernel_disk: Path
    initrd: Path
    job_disk: Path
    result_disk: Path
    console_log: Path
    accel: str = "tcg"
    cpus: int = 2
    mem_mb: int = 2048
    append: list[str] = field(default_factory=list)
    timeout_s: float = 600.0


def _drive(path: Path, *extra: str) -> str:
    # QEMU option values escape "," by doubling it.
    return ",".join([f"file={str(path).replace(',', ',,')}", "format=raw", "if=virtio", *extra])


def qemu_argv(cfg: BootConfig) -> list[str]:
    """The exact QEMU command line for one boot."""
    accel = ["-accel", "kvm", "-cpu", "host"] if cfg.accel == "kvm" else ["-accel", "tcg"]
    append = " ".join([*DEFAULT_APPEND, *cfg.append])
    return [
        QEMU,
        *accel,
        "-M",
        "q35",
        "-m",
        f"{cfg.mem_mb}M",
        "-smp",
        str(cfg.cpus),
        "-display",
        "none",
        "-vga",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-nodefaults",
        "-kernel",
        str(cfg.kernel.vmlinuz),
        "-initrd",
        str(cfg.initrd),
        "-append",
        append,
        "-drive",
        _drive(cfg.root_image, "snapshot=on"),
        "-drive",
        _drive(cfg.kernel_disk, "readonly=on"),
        "-drive",
        _drive(cfg.job_disk, "readonly=on"),
        "-drive",
        _drive(cfg.result_disk),
    ]


# --------------------------------------------------------------------------- job disk


# What the guest runs: the guest stage, the data model and the error classes -- all
# stdlib (+ bcc in the guest). An include list, so host-only stages (diff, report,
# gate, cli, vm) and their PyPI dependencies never travel; tests/test_architecture.py
# imports exactly this set with numpy, scipy, typer, jinja2 and rich made unimportable.
GUEST_PACKAGES: tuple[str, ...] = ("guest", "model")
GUEST_MODULES: tuple[str, ...] = ("__init__.py", "errors.py")


def guest_package_files() -> list[tuple[str, Path]]:
    """The regress files the agent needs, as (path in the job tar, source file)."""
    pkg = Path(regress.__file__).resolve().parent
    files = [(f"src/regress/{name}", pkg / name) for name in GUEST_MODULES]
    for sub in GUEST_PACKAGES:
        for p in sorted((pkg / sub).rglob("*")):
            rel = p.relative_to(pkg)
            if not p.is_file() or "__pycache__" in rel.parts or p.suffix in (".pyc", ".tmp"):
                continue
            files.append((f"src/regress/{rel.as_posix()}", p))
    return files


def write_job_disk(
    path: Path, job: dict[str, Any], *, extra: dict[str, bytes] | None = None
) -> None:
    """A tar (read by busybox tar straight from the device): init, job.json, regress/.

    ``extra`` adds files by name (e.g. ``boot-config``: the kernel's config, which the
    guest init installs as /boot/config-<release> so captures record it).
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:

        def add(name: str, data: bytes, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))

        add("guest-init.sh", GUEST_INIT.encode(), 0o755)
        add("job.json", (json.dumps(job, indent=1, sort_keys=True) + "\n").encode())
        for name, p in guest_package_files():
            add(name, p.read_bytes())
        for name, data in sorted((extra or {}).items()):
            add(name, data)
    data = buf.getvalue()
    data += b"\0" * ((-len(data)) % 65536)
    path.write_bytes(data)


def new_result_disk(path: Path) -> None:
    with open(path, "wb") as fh:
        fh.truncate(RESULT_DISK_BYTES)


# --------------------------------------------------------------------------- boot


@dataclass
class BootResult:
    result: dict[str, Any] | None  # the agent's last result (None: it never wrote one)
    console_log: Path
    wall_s: float
    agent_ready_s: float | None  # host seconds from QEMU start to the agent's first event
    qemu_rc: int | None
    timed_out: bool
    panic: str | None  # the panic line from the console, if any
    qemu_stderr: str


def boot(
    cfg: BootConfig,
    *,
    on_event: Callable[[Event], None] | None = None,
    cancel: threading.Event | None = None,
) -> BootResult:
    """Boot once, wait for power-off or the timeout, and collect the result disk.

    ``cancel`` (set from another thread, e.g. on Ctrl-C) kills the VM and raises
    KeyboardInterrupt here.
    """
    if shutil.which(QEMU) is None:
        raise EnvironmentProblem(f"{QEMU} not found", hint="run scripts/setup.sh (qemu-system-x86)")
    argv = qemu_argv(cfg)
    cfg.console_log.parent.mkdir(parents=True, exist_ok=True)
    stderr_path = cfg.console_log.with_suffix(".qemu-stderr")
    started = time.monotonic()
    ready: float | None = None
    timed_out = False
    with open(cfg.console_log, "wb") as con, open(stderr_path, "wb") as errf:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=con, stderr=errf, start_new_session=True
        )
        try:
            with open(cfg.console_log, "rb") as reader:
                pending = b""
                while True:
                    rc = proc.poll()
                    chunk = reader.read()
                    if chunk:
                        pending += chunk
                        *lines, pending = pending.split(b"\n")
                        for raw in lines:
                            ev = Event.from_line(raw.decode(errors="replace"))
                            if ev is None:
                                continue
                            if ev.kind == "agent_ready" and ready is None:
                                ready = time.monotonic() - started
                            if on_event is not None:
                                on_event(ev)
                    if rc is not None:
                        break
                    if cancel is not None and cancel.is_set():
                        raise KeyboardInterrupt
                    if time.monotonic() - started > cfg.timeout_s:
                        timed_out = True
                        _kill(proc)
                        break
                    time.sleep(0.1)
        except BaseException:
            _kill(proc)
            raise
    wall = time.monotonic() - started
    console = cfg.console_log.read_text(errors="replace")
    m = PANIC_RE.search(console)
    try:
        result = read_result_disk(cfg.result_disk)
    except OSError:
        result = None
    return BootResult(
        result=result,
        console_log=cfg.console_log,
        wall_s=wall,
        agent_ready_s=ready,
        qemu_rc=proc.returncode,
        timed_out=timed_out,
        panic=m.group(0).strip() if m else None,
        qemu_stderr=stderr_path.read_text(errors="replace") if stderr_path.exists() else "",
    )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def failure_of(res: BootResult, *, what: str) -> VMError | None:
    """None when the boot delivered a finished result; else the one-line error to raise."""
    log = res.console_log
    if res.result is not None and res.result.get("state") in ("done", "failed"):
        return None
    if res.timed_out:
        state = (res.result or {}).get("state")
        where = "the agent was running" if state == "running" else "before the agent started"
        return VMError(
            f"{what}: timed out after {res.wall_s:.0f} s ({where}); console log: {log}",
            hint="raise --timeout if the guest is just slow",
        )
    if res.panic:
        return VMError(f"{what}: guest kernel panicked: {res.panic[:160]}; console log: {log}")
    if KVM_FAILURE_RE.search(res.qemu_stderr):
        line = next((x for x in res.qemu_stderr.splitlines() if KVM_FAILURE_RE.search(x)), "")
        return VMError(
            f"{what}: KVM cannot run this kernel ({line.strip()[:120]}); console log: {log}",
            hint="use --accel tcg",
        )
    if res.qemu_rc not in (0, None):
        tail = res.qemu_stderr.strip().splitlines()[-1:] or ["no message"]
        return VMError(f"{what}: qemu exited {res.qemu_rc}: {tail[0][:160]}; console log: {log}")
    return VMError(
        f"{what}: the guest powered off without a result from the agent; console log: {log}"
    )
