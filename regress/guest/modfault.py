"""Kernel-side faults with a known culprit: a module that rewrites one function's returns.

Debian's kernels have no error injection (``bpf_override_return`` is rejected), so a
positive control for *narrowing* -- "which kernel function misbehaves?" -- needs another
way to make a known function misbehave. This module generates a small out-of-tree
module (built on the host against the kernel's own headers, ``regress.vm.modbuild``;
loaded unsigned in the guest, which taints it) holding one kretprobe: for returns of
``function`` in a task whose comm is ``comm``, every ``every``-th matching return is
rewritten --

* ``null``: a non-NULL, non-error return becomes NULL/0 (the seed story: ``find_ge_pid()``
  returning NULL although a higher pid exists, so ``ps`` stops walking /proc early);
* ``E<name>``: a 0 (success) return becomes ``-E<name>`` (an errno the function did not
  return before).

The module's kretprobe is registered before regress's tracer attaches (the agent loads
it first); a later kretprobe's return handler runs after an earlier one's, so the tracer
sees the rewritten value, as it would see a real bug. The C text is generated from
validated values only and golden-tested without root.

Stdlib only (also imported in the guest, where the agent loads the built module).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from regress.errors import UsageError
from regress.guest.faults import FAULT_ERRNOS, ordinal

MODULE_NAME = "regress_fault"
MODULE_FILE = f"{MODULE_NAME}.ko"
MAX_EVERY = 1000
_FUNC_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]{0,127}\Z")
_COMM_RE = re.compile(r"\A[A-Za-z0-9_.+-]{1,15}\Z")
_STATS_RE = re.compile(r"fault module saw (\d+) matching return\(s\) and rewrote (\d+)")


@dataclass(frozen=True)
class ReturnFault:
    """Rewrite every ``every``-th matching return of ``function`` in tasks named ``comm``."""

    function: str
    mode: str  # "null" or an errno name from ``FAULT_ERRNOS``
    comm: str = "ps"
    every: int = 8

    def __post_init__(self) -> None:
        if not isinstance(self.function, str) or not _FUNC_RE.match(self.function):
            raise UsageError(f"fault function {self.function!r}: expected a C identifier")
        if self.mode != "null" and self.mode not in FAULT_ERRNOS:
            raise UsageError(
                f"fault mode {self.mode!r}: expected 'null' or one of "
                + ", ".join(sorted(FAULT_ERRNOS))
            )
        if not isinstance(self.comm, str) or not _COMM_RE.match(self.comm):
            raise UsageError(
                f"fault comm {self.comm!r}: expected 1-15 characters of [A-Za-z0-9_.+-]"
            )
        if isinstance(self.every, bool) or not isinstance(self.every, int):
            raise UsageError(f"fault every: expected an integer from 1 to {MAX_EVERY}")
        if not 1 <= self.every <= MAX_EVERY:
            raise UsageError(f"fault every: expected an integer from 1 to {MAX_EVERY}")

    @property
    def return_class(self) -> str:
        """The return class the fault adds, as the differ displays it (``NULL/0``, ``-EACCES``)."""
        return "NULL/0" if self.mode == "null" else f"-{self.mode}"

    def describe(self) -> str:
        what = "a non-NULL return" if self.mode == "null" else "a 0 return"
        into = "NULL" if self.mode == "null" else f"-{self.mode}"
        return (
            f"kernel module rewrites {what} of {self.function}() into {into}: "
            f"{'every one' if self.every == 1 else 'every ' + ordinal(self.every)} "
            f"such return in comm {self.comm!r}"
        )

    def to_job(self) -> dict[str, Any]:
        """What the host builds (per kernel) and the agent loads."""
        return {
            "kind": "module",
            "description": self.describe(),
            "module_source": generate(self),
            "module_name": MODULE_NAME,
            "spec": asdict(self),
        }


def generate(fault: ReturnFault) -> str:
    """C text of the fault module."""
    if fault.mode == "null":
        match = "rv == 0 || IS_ERR_VALUE(rv)"
        new = "0"
        errno_line = ""
    else:
        match = "rv != 0"
        new = "(unsigned long)(-REGRESS_FAULT_ERRNO)"
        errno_line = f"#define REGRESS_FAULT_ERRNO {FAULT_ERRNOS[fault.mode]} /* {fault.mode} */\n"
    return f"""\
// regress fault: {fault.describe()}
#include <linux/err.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/string.h>

#define REGRESS_FAULT_EVERY {fault.every}
{errno_line}
static unsigned long matched, rewritten;
module_param(matched, ulong, 0444);
MODULE_PARM_DESC(matched, "returns that matched the fault's condition");
module_param(rewritten, ulong, 0444);
MODULE_PARM_DESC(rewritten, "returns the fault rewrote");

static int regress_fault_ret(struct kretprobe_instance *ri, struct pt_regs *regs)
{{
	unsigned long rv = regs_return_value(regs);

	if (strncmp(current->comm, "{fault.comm}", TASK_COMM_LEN) != 0)
		return 0;
	if ({match})
		return 0;
	if (__atomic_add_fetch(&matched, 1, __ATOMIC_RELAXED) % REGRESS_FAULT_EVERY != 0)
		return 0;
	regs_set_return_value(regs, {new});
	__atomic_add_fetch(&rewritten, 1, __ATOMIC_RELAXED);
	return 0;
}}

static struct kretprobe regress_fault_probe = {{
	.handler = regress_fault_ret,
	.kp.symbol_name = "{fault.function}",
	.maxactive = 64,
}};

static int __init regress_fault_init(void)
{{
	return register_kretprobe(&regress_fault_probe);
}}

static void __exit regress_fault_exit(void)
{{
	unregister_kretprobe(&regress_fault_probe);
}}

module_init(regress_fault_init);
module_exit(regress_fault_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("regress positive control: {fault.describe()}");
"""


def stats_note(matched: int, rewritten: int) -> str:
    """The agent's closing remark on a module fault, with what it actually did."""
    return f"fault module saw {matched} matching return(s) and rewrote {rewritten}"


def stats_of(notes: list[str]) -> tuple[int, int] | None:
    """(matched, rewritten) from a capture's notes, when a module fault recorded them."""
    for note in notes:
        m = _STATS_RE.search(note)
        if m:
            return int(m.group(1)), int(m.group(2))
    return None
