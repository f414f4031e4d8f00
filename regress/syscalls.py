"""x86_64 syscall number -> name, for the kernel being traced.

The tracer counts ``raw_syscalls:sys_exit`` by number; captures store names so
two kernels (and a bpftrace import) can be compared by key. The table ships
with the package (``data/syscalls_x86_64.txt``, syscall_64.tbl names up to
Linux 6.18): numbers are never reused, so one table serves every kernel.
Unknown numbers become ``syscall_<nr>`` rather than being dropped.

Stdlib-only: this module also runs inside the guest VM.
"""

from __future__ import annotations

import functools
import os
from importlib import resources
from pathlib import Path

from regress.errors import RegressError

TABLE_RESOURCE = "syscalls_x86_64.txt"

# syscall_64.tbl name -> tracefs ``events/syscalls/sys_enter_<name>`` name where they differ
# (the tracefs name is the SYSCALL_DEFINE name of the entry point).
TRACEFS_ALIASES: dict[str, str] = {
    "stat": "newstat",
    "lstat": "newlstat",
    "fstat": "newfstat",
    "uname": "newuname",
    "umount2": "umount",
    "sendfile": "sendfile64",
}


def parse_table(text: str) -> dict[int, str]:
    """Parse ``<nr> <name>`` lines (``#`` comments); duplicates are a packaging bug."""
    table: dict[int, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise RegressError(f"syscall table line {lineno}: expected '<nr> <name>'")
        nr = int(parts[0])
        if nr in table:
            raise RegressError(f"syscall table line {lineno}: duplicate number {nr}")
        table[nr] = parts[1]
    return table


@functools.cache
def table() -> dict[int, str]:
    """The shipped x86_64 table."""
    text = resources.files("regress.data").joinpath(TABLE_RESOURCE).read_text()
    return parse_table(text)


# x86 rt_sigreturn sets regs->orig_ax = -1 ("disable syscall checks") before it
# returns, so its own sys_exit reports id -1 with the interrupted syscall's
# return value (e.g. EINTR). Seccomp/ptrace-skipped syscalls also exit as -1.
# The id reaches us as u32 (4294967295) or as a signed -1 from bpftrace.
SIGRETURN_NAME = "sigreturn(-1)"
_MINUS_ONE = (-1, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF)


def name_of(nr: int) -> str:
    """Name of syscall ``nr``; ``syscall_<nr>`` when unknown; see SIGRETURN_NAME for -1."""
    if nr in _MINUS_ONE:
        return SIGRETURN_NAME
    return table().get(nr, f"syscall_{nr}")


def number_of(name: str) -> int | None:
    for nr, n in table().items():
        if n == name:
            return nr
    return None


def tracefs_names(tracefs: Path = Path("/sys/kernel/tracing")) -> set[str] | None:
    """Syscall names with a ``sys_enter_*`` event on the running kernel (None: unreadable)."""
    try:
        entries = os.listdir(tracefs / "events" / "syscalls")
    except OSError:
        return None
    return {e[len("sys_enter_") :] for e in entries if e.startswith("sys_enter_")}


def cross_check(tracefs: Path = Path("/sys/kernel/tracing")) -> list[str]:
    """Names the running kernel knows (tracefs) that our table lacks: a stale table.

    Table entries missing from tracefs are fine (syscalls configured out or
    without SYSCALL_DEFINE metadata); the reverse means the table needs updating.
    """
    present = tracefs_names(tracefs)
    if present is None:
        return []
    known = set(table().values()) | set(TRACEFS_ALIASES.values())
    return sorted(present - known)


# Kernel-internal errnos (include/linux/errno.h) that leak to syscall exit tracepoints
# (e.g. a restartable syscall interrupted by a signal that is then not restarted),
# absent from userspace errno tables. Shared with the differ's key labels.
KERNEL_ERRNOS = {
    512: "ERESTARTSYS",
    513: "ERESTARTNOINTR",
    514: "ERESTARTNOHAND",
    515: "ENOIOCTLCMD",
    516: "ERESTART_RESTARTBLOCK",
    517: "EPROBE_DEFER",
    518: "EOPENSTALE",
    519: "ENOPARAM",
    521: "EBADHANDLE",
    522: "ENOTSYNC",
    523: "EBADCOOKIE",
    524: "ENOTSUPP",
    525: "ETOOSMALL",
    526: "ESERVERFAULT",
    527: "EBADTYPE",
    528: "EJUKEBOX",
    529: "EIOCBQUEUED",
    530: "ERECALLCONFLICT",
}


# Where two names share a number, the one strace and the man pages print.
_PREFERRED = {11: "EAGAIN", 35: "EDEADLK", 95: "EOPNOTSUPP"}


def errno_name(err: int | str) -> str:
    """``0`` -> ``ok``, ``2`` -> ``ENOENT``; unknown numbers stay numeric (``E1234``)."""
    import errno as _errno

    n = int(err)
    if n == 0:
        return "ok"
    return _PREFERRED.get(n) or _errno.errorcode.get(n) or KERNEL_ERRNOS.get(n) or f"E{n}"
