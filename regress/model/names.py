"""Names of what the tracer counts: x86_64 syscall numbers and kernel errno values.

Captures store syscall *names* and errno *numbers*; every display of an errno goes
through ``errno_name`` so ``regress show``, ``regress diff`` and the reports name a
row the same way, with the **kernel's** names (``include/uapi/asm-generic/errno*.h``
and ``include/linux/errno.h``), not the host libc's: 95 is EOPNOTSUPP (glibc also
calls it ENOTSUP), 35 is EDEADLK (EDEADLOCK is an alias), 11 is EAGAIN.

The syscall table ships with the package (``data/syscalls_x86_64.txt``,
syscall_64.tbl names up to Linux 6.18): numbers are never reused, so one table
serves every kernel. Unknown numbers become ``syscall_<nr>`` rather than being dropped.

Stdlib only: the guest's tracer and the host's differ share it.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

from regress.errors import RegressError

TABLE_RESOURCE = "syscalls_x86_64.txt"

# x86 rt_sigreturn sets regs->orig_ax = -1 ("disable syscall checks") before it
# returns, so its own sys_exit reports id -1 with the interrupted syscall's
# return value (e.g. EINTR). Seccomp/ptrace-skipped syscalls also exit as -1.
# The id reaches us as u32 (4294967295) or as a signed -1 from bpftrace.
SIGRETURN_NAME = "sigreturn(-1)"
_MINUS_ONE = (-1, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF)

_SYSCALL_NAME = re.compile(r"\A[a-z0-9_]{1,64}\Z")


def is_syscall_name(name: str) -> bool:
    """Whether ``name`` can name one syscall's entry point (``__x64_sys_<name>``): not
    SIGRETURN_NAME, which stands for rt_sigreturn's exit *and* skipped syscalls, and
    nothing a user typed that would not be a function name."""
    return bool(_SYSCALL_NAME.match(name))


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
    text = resources.files("regress.model.data").joinpath(TABLE_RESOURCE).read_text()
    return parse_table(text)


def name_of(nr: int) -> str:
    """Name of syscall ``nr``; ``syscall_<nr>`` when unknown; see SIGRETURN_NAME for -1."""
    if nr in _MINUS_ONE:
        return SIGRETURN_NAME
    return table().get(nr, f"syscall_{nr}")


@functools.cache
def _numbers() -> dict[str, int]:
    return {n: nr for nr, n in table().items()}


def number_of(name: str) -> int | None:
    return _numbers().get(name)


# include/uapi/asm-generic/errno-base.h + errno.h (x86_64 uses the generic values).
KERNEL_UAPI_ERRNOS: dict[int, str] = {
    1: "EPERM",
    2: "ENOENT",
    3: "ESRCH",
    4: "EINTR",
    5: "EIO",
    6: "ENXIO",
    7: "E2BIG",
    8: "ENOEXEC",
    9: "EBADF",
    10: "ECHILD",
    11: "EAGAIN",
    12: "ENOMEM",
    13: "EACCES",
    14: "EFAULT",
    15: "ENOTBLK",
    16: "EBUSY",
    17: "EEXIST",
    18: "EXDEV",
    19: "ENODEV",
    20: "ENOTDIR",
    21: "EISDIR",
    22: "EINVAL",
    23: "ENFILE",
    24: "EMFILE",
    25: "ENOTTY",
    26: "ETXTBSY",
    27: "EFBIG",
    28: "ENOSPC",
    29: "ESPIPE",
    30: "EROFS",
    31: "EMLINK",
    32: "EPIPE",
    33: "EDOM",
    34: "ERANGE",
    35: "EDEADLK",
    36: "ENAMETOOLONG",
    37: "ENOLCK",
    38: "ENOSYS",
    39: "ENOTEMPTY",
    40: "ELOOP",
    42: "ENOMSG",
    43: "EIDRM",
    44: "ECHRNG",
    45: "EL2NSYNC",
    46: "EL3HLT",
    47: "EL3RST",
    48: "ELNRNG",
    49: "EUNATCH",
    50: "ENOCSI",
    51: "EL2HLT",
    52: "EBADE",
    53: "EBADR",
    54: "EXFULL",
    55: "ENOANO",
    56: "EBADRQC",
    57: "EBADSLT",
    59: "EBFONT",
    60: "ENOSTR",
    61: "ENODATA",
    62: "ETIME",
    63: "ENOSR",
    64: "ENONET",
    65: "ENOPKG",
    66: "EREMOTE",
    67: "ENOLINK",
    68: "EADV",
    69: "ESRMNT",
    70: "ECOMM",
    71: "EPROTO",
    72: "EMULTIHOP",
    73: "EDOTDOT",
    74: "EBADMSG",
    75: "EOVERFLOW",
    76: "ENOTUNIQ",
    77: "EBADFD",
    78: "EREMCHG",
    79: "ELIBACC",
    80: "ELIBBAD",
    81: "ELIBSCN",
    82: "ELIBMAX",
    83: "ELIBEXEC",
    84: "EILSEQ",
    85: "ERESTART",
    86: "ESTRPIPE",
    87: "EUSERS",
    88: "ENOTSOCK",
    89: "EDESTADDRREQ",
    90: "EMSGSIZE",
    91: "EPROTOTYPE",
    92: "ENOPROTOOPT",
    93: "EPROTONOSUPPORT",
    94: "ESOCKTNOSUPPORT",
    95: "EOPNOTSUPP",
    96: "EPFNOSUPPORT",
    97: "EAFNOSUPPORT",
    98: "EADDRINUSE",
    99: "EADDRNOTAVAIL",
    100: "ENETDOWN",
    101: "ENETUNREACH",
    102: "ENETRESET",
    103: "ECONNABORTED",
    104: "ECONNRESET",
    105: "ENOBUFS",
    106: "EISCONN",
    107: "ENOTCONN",
    108: "ESHUTDOWN",
    109: "ETOOMANYREFS",
    110: "ETIMEDOUT",
    111: "ECONNREFUSED",
    112: "EHOSTDOWN",
    113: "EHOSTUNREACH",
    114: "EALREADY",
    115: "EINPROGRESS",
    116: "ESTALE",
    117: "EUCLEAN",
    118: "ENOTNAM",
    119: "ENAVAIL",
    120: "EISNAM",
    121: "EREMOTEIO",
    122: "EDQUOT",
    123: "ENOMEDIUM",
    124: "EMEDIUMTYPE",
    125: "ECANCELED",
    126: "ENOKEY",
    127: "EKEYEXPIRED",
    128: "EKEYREVOKED",
    129: "EKEYREJECTED",
    130: "EOWNERDEAD",
    131: "ENOTRECOVERABLE",
    132: "ERFKILL",
    133: "EHWPOISON",
}

# Kernel-internal errnos (include/linux/errno.h) that leak to syscall exit tracepoints
# (e.g. a restartable syscall interrupted by a signal that is then not restarted).
KERNEL_ERRNOS: dict[int, str] = {
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


@functools.cache
def errno_name(err: int | str) -> str:
    """``0`` -> ``ok``, ``2`` -> ``ENOENT``, ``95`` -> ``EOPNOTSUPP``; unknown -> ``E<n>``."""
    n = int(err)
    if n == 0:
        return "ok"
    return KERNEL_UAPI_ERRNOS.get(n) or KERNEL_ERRNOS.get(n) or f"E{n}"


def bucket_range(bucket: int) -> tuple[int, int]:
    """The return values one log2 bucket of the tracer's histogram holds (inclusive).

    Bucket 0 holds 0, bucket b >= 1 holds [2**(b-1), 2**b - 1] (the tracer's
    ``bpf_log2l``-style convention; see ``regress.guest.bpfgen``).
    """
    if bucket <= 0:
        return 0, 0
    return 2 ** (bucket - 1), 2**bucket - 1
