"""Built-in injected faults for the positive control (``regress selftest``).

A fault is a BPF-LSM program (bcc ``LSM_PROBE(file_open, ...)``) that makes a
deterministic fraction of one process's opens of *other* processes'
``/proc/<pid>/<name>`` fail with an errno: every Nth matching open is denied.
With the defaults, ``ps`` in ps-loop (private pid namespace: sh 1, sleeper 2,
ps 3) gets /proc/1/stat and is denied /proc/2/stat in every iteration, so it
misses the live sleeper -- the seed bug's symptom -- which a working differ
must rank at the top as an ``openat`` EACCES row and a liveness row. Its own
``/proc/<self>/stat`` is never denied: ps reads that at start-up and aborts
without it, a different and much louder failure than the one to detect.

The C text is generated here from typed, validated values (never pasted from
user input), so it is golden-tested without root or bcc. Loading goes through
``regress.guest.tracer.load_lsm_program`` (the only module that imports bcc), inside
the guest, by the VM agent, which also records "fault injected: ..." in the
capture's notes so a faulted capture is never taken for a normal one.

It reads kernel structs (``struct file``/``dentry``), unlike the tracer: it runs
in a guest whose bcc uses that kernel's own headers, and a wrong offset would
only make the canary miss, which the selftest reports loudly.

Stdlib only.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from regress.errors import UsageError

# The errnos a fault may return (name -> number, x86_64/asm-generic).
FAULT_ERRNOS: dict[str, int] = {"EACCES": 13, "EPERM": 1, "ENOENT": 2, "EIO": 5}
PROC_SUPER_MAGIC = 0x9FA0
TASK_COMM_LEN = 16
NAME_BUF = 32  # bytes of a dentry name compared (names are validated shorter)
MAX_EVERY = 1000

_COMM_RE = re.compile(r"\A[A-Za-z0-9_.+-]{1,15}\Z")
_NAME_RE = re.compile(r"\A[A-Za-z0-9_.-]{1,31}\Z")

# Counter slots of the program's ``fault_stats`` array.
STAT_MATCHED = 0
STAT_DENIED = 1
STATS_MAP = "fault_stats"


@dataclass(frozen=True)
class FaultSpec:
    """Deny every ``every``-th open of another process's ``/proc/<pid>/<name>`` by ``comm``.

    ``every`` = 1 denies all of them; 2 every other one (the first open passes,
    so a fault never hides everything and the workload still exits 0).
    """

    comm: str = "ps"
    name: str = "stat"
    every: int = 2
    errno: str = "EACCES"

    def __post_init__(self) -> None:
        if not isinstance(self.comm, str) or not _COMM_RE.match(self.comm):
            raise UsageError(
                f"fault comm {self.comm!r}: expected 1-15 characters of [A-Za-z0-9_.+-]"
            )
        if (
            not isinstance(self.name, str)
            or not _NAME_RE.match(self.name)
            or self.name
            in (
                ".",
                "..",
            )
        ):
            raise UsageError(
                f"fault file name {self.name!r}: expected one path component of "
                "[A-Za-z0-9_.-], at most 31 characters"
            )
        if (
            isinstance(self.every, bool)
            or not isinstance(self.every, int)
            or not (1 <= self.every <= MAX_EVERY)
        ):
            raise UsageError(f"fault every: expected an integer from 1 to {MAX_EVERY}")
        if self.errno not in FAULT_ERRNOS:
            raise UsageError(
                f"fault errno {self.errno!r}: expected one of {', '.join(sorted(FAULT_ERRNOS))}"
            )

    @property
    def errno_number(self) -> int:
        return FAULT_ERRNOS[self.errno]

    def describe(self) -> str:
        """One line for capture notes and reports."""
        what = "every" if self.every == 1 else f"every {ordinal(self.every)}"
        return (
            f"BPF-LSM file_open denies {what} open of another process's "
            f"/proc/<pid>/{self.name} by comm {self.comm!r} with -{self.errno}"
        )

    def expected_key(self) -> str:
        """The differ key the fault must produce (``syscall:openat:EACCES``)."""
        return f"syscall:openat:{self.errno}"

    def to_job(self) -> dict[str, Any]:
        """What the VM agent needs: the program text and the note it records."""
        return {"description": self.describe(), "bpf_text": generate(self), "spec": asdict(self)}


def ordinal(n: int) -> str:
    if 10 <= n % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _c_char(ch: str) -> str:
    """A C character literal for a validated character (no quotes or backslashes)."""
    return f"'{ch}'"


def _equals(buf: str, text: str) -> str:
    """C expression: NUL-terminated ``buf`` equals ``text`` (unrolled, verifier-friendly)."""
    parts = [f"{buf}[{i}] == {_c_char(ch)}" for i, ch in enumerate(text)]
    parts.append(f"{buf}[{len(text)}] == 0")
    return " && ".join(parts)


def generate(spec: FaultSpec) -> str:
    """BPF C text of the fault program for ``spec``."""
    return f"""\
// regress fault: {spec.describe()}
#include <linux/fs.h>
#include <linux/dcache.h>
#include <linux/pid.h>
#include <linux/sched.h>

#define REGRESS_PROC_SUPER_MAGIC 0x{PROC_SUPER_MAGIC:x}
#define REGRESS_FAULT_EVERY {spec.every}
#define REGRESS_FAULT_ERRNO {spec.errno_number} /* {spec.errno} */

// [{STAT_MATCHED}] matching opens seen, [{STAT_DENIED}] opens denied
BPF_ARRAY({STATS_MAP}, u64, 2);

// A /proc/<pid> directory name as a number; -1 when it is not one.
static __always_inline long parse_pid(const char *s)
{{
    long v = 0;
    if (s[0] < '0' || s[0] > '9')
        return -1;
#pragma unroll
    for (int i = 0; i < 11; i++) {{
        if (s[i] == 0)
            return v;
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }}
    return -1;
}}

// The caller's process id in its own pid namespace (what its /proc shows).
static __always_inline long own_ns_pid(void)
{{
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    struct task_struct *leader = NULL;
    struct pid *pid = NULL;
    unsigned int level = 0;
    int nr = -1;
    bpf_probe_read_kernel(&leader, sizeof(leader),
                          (void *)task + offsetof(struct task_struct, group_leader));
    if (!leader)
        return -1;
    bpf_probe_read_kernel(&pid, sizeof(pid),
                          (void *)leader + offsetof(struct task_struct, thread_pid));
    if (!pid)
        return -1;
    bpf_probe_read_kernel(&level, sizeof(level), (void *)pid + offsetof(struct pid, level));
    bpf_probe_read_kernel(&nr, sizeof(nr),
                          (void *)pid + offsetof(struct pid, numbers) +
                          (level & 31) * sizeof(struct upid) + offsetof(struct upid, nr));
    return nr;
}}

LSM_PROBE(file_open, struct file *file)
{{
    char comm[{TASK_COMM_LEN}] = {{}};
    char name[{NAME_BUF}] = {{}};
    char parent[{NAME_BUF}] = {{}};
    bpf_get_current_comm(&comm, sizeof(comm));
    if (!({_equals("comm", spec.comm)}))
        return 0;
    struct dentry *d = file->f_path.dentry;
    struct super_block *sb = d->d_sb;
    if (sb->s_magic != REGRESS_PROC_SUPER_MAGIC)
        return 0;
    bpf_probe_read_kernel_str(name, sizeof(name), d->d_name.name);
    if (!({_equals("name", spec.name)}))
        return 0;
    struct dentry *p = d->d_parent;
    bpf_probe_read_kernel_str(parent, sizeof(parent), p->d_name.name);
    long target = parse_pid(parent);
    // Only other processes' files: a process reading its own (ps does at start-up) is
    // left alone, so the fault hides processes instead of making the workload abort.
    if (target < 0 || target == own_ns_pid())
        return 0;
    int slot = {STAT_MATCHED};
    u64 *seen = {STATS_MAP}.lookup(&slot);
    if (!seen)
        return 0;
    u64 n = __sync_fetch_and_add(seen, 1) + 1;
    if (n % REGRESS_FAULT_EVERY != 0)
        return 0;
    slot = {STAT_DENIED};
    u64 *denied = {STATS_MAP}.lookup(&slot);
    if (denied)
        __sync_fetch_and_add(denied, 1);
    return -REGRESS_FAULT_ERRNO;
}}
"""


def stats_note(matched: int, denied: int) -> str:
    """The agent's closing remark on a fault, with what it actually did."""
    return f"fault program saw {matched} matching open(s) and denied {denied}"
