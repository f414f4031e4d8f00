"""Which kernel functions run under a syscall, for this workload: found, not hand-picked.

Narrowing needs candidate functions under the syscalls that diverged. In a guest the
kernel is regress's alone, so ftrace's ``function_graph`` tracer can record every
function called under the syscalls' entry points (``set_graph_function`` =
``__x64_sys_<name>``), for the workload's processes only (``set_ftrace_pid`` on the
stopped iteration wrapper, ``options/function-fork`` for its children), during one
untraced-by-BPF iteration. The trace is parsed for function names per syscall; void
functions (kernel BTF) are left out -- their returns carry nothing to compare -- and
the list is capped at ``max_functions`` (first called first, round-robin over the
syscalls), with a note naming how many were dropped.

Stdlib-only: runs in the guest (``regress.guest.agent``'s ``discover`` job).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regress.guest.btf import kernel_void_functions
from regress.guest.environment import ensure_tracefs
from regress.guest.probes import normalise_function
from regress.model.names import is_syscall_name
from regress.model.workload import WorkloadSpec

MAX_FUNCTIONS = 200
HOT_CALLS = 1000  # calls in the one discovery iteration above which a function is plumbing
BUFFER_KB = 16384  # per CPU
ENTRY_PREFIX = "__x64_sys_"
_CALL_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*)\(\)")
_CPU_RE = re.compile(r"^\s*(\d+)\)")
# Subtrees that run under any syscall (scheduling, faults, interrupts, wakeups).
SKIP_SUBTREES = frozenset(
    {
        "schedule",
        "__schedule",
        "preempt_schedule",
        "preempt_schedule_common",
        "preempt_schedule_notrace",
        "__cond_resched",
        "handle_mm_fault",
        "exc_page_fault",
        "irq_enter_rcu",
        "irq_exit_rcu",
        "__sysvec_apic_timer_interrupt",
        "sysvec_apic_timer_interrupt",
        "wake_up_process",
        "try_to_wake_up",
        "wake_up_q",
    }
)
# Never candidates: tracing/locking plumbing every path goes through.
_SKIP_PREFIXES = ("__x64_sys_", "__do_sys_", "__se_sys_", "_raw_spin", "rcu_", "__rcu_")


@dataclass
class Discovery:
    """Functions seen under each syscall (capped), and what discovery had to say."""

    functions: dict[str, list[str]] = field(default_factory=dict)  # syscall -> names
    seen: int = 0  # distinct non-void functions before the cap
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"functions": self.functions, "seen": self.seen, "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Discovery:
        return cls(
            {str(k): [str(x) for x in v] for k, v in dict(doc.get("functions", {})).items()},
            int(doc.get("seen", 0)),
            [str(n) for n in doc.get("notes", [])],
        )

    def all_functions(self) -> list[str]:
        out: dict[str, None] = {}
        for names in self.functions.values():
            out.update(dict.fromkeys(names))
        return list(out)


def parse_graph(text: str, syscalls: set[str]) -> dict[str, dict[str, int]]:
    """function_graph output -> syscall -> function -> calls (first called first).

    Subtrees of scheduling, page faults and interrupts (``SKIP_SUBTREES``) are left
    out: they run under every syscall and say nothing about this one.
    """
    current: dict[str, str] = {}  # CPU -> syscall whose graph the lines belong to
    skipping: dict[str, int] = {}  # CPU -> indent of the subtree being skipped
    out: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        if line.startswith("#") or "|" not in line:
            continue
        m = _CPU_RE.match(line)
        cpu = m.group(1) if m else ""
        body = line.split("|", 1)[1]
        indent = len(body) - len(body.lstrip(" "))
        stripped = body.strip()
        if cpu in skipping:
            if indent > skipping[cpu]:
                continue
            del skipping[cpu]
            if stripped.startswith("}"):
                continue
        calls = _CALL_RE.findall(stripped)
        if not calls:
            continue
        name = calls[0]
        if name.startswith(ENTRY_PREFIX):
            sysname = name[len(ENTRY_PREFIX) :]
            if sysname in syscalls:
                current[cpu] = sysname
            continue
        sysname = current.get(cpu, "")
        if not sysname:
            continue
        fn = normalise_function(name)
        if fn in SKIP_SUBTREES:
            if stripped.endswith("{"):
                skipping[cpu] = indent
            continue
        calls_of = out.setdefault(sysname, {})
        calls_of[fn] = calls_of.get(fn, 0) + 1
    return out


def cap_functions(
    found: dict[str, dict[str, int]], void: frozenset[str], limit: int
) -> tuple[dict[str, list[str]], int]:
    """Drop void, plumbing and hot functions (over ``HOT_CALLS`` calls in the iteration:
    allocators, lookups -- a probe there costs every process on the machine and says
    little about one syscall), then keep ``limit`` names round-robin over the syscalls,
    each syscall's in first-call order (the syscall's own path comes first: for openat
    the LSM hook path is within its first ~50). Returns (kept per syscall, distinct
    candidates seen)."""
    lists = {
        s: [
            f
            for f, n in calls.items()
            if f not in void and not f.startswith(_SKIP_PREFIXES) and n <= HOT_CALLS
        ]
        for s, calls in sorted(found.items())
    }
    seen = len({f for names in lists.values() for f in names})
    kept: dict[str, list[str]] = {s: [] for s in lists}
    taken: set[str] = set()
    cursors = dict.fromkeys(lists, 0)
    while len(taken) < limit and any(cursors[s] < len(lists[s]) for s in lists):
        for s in lists:
            while cursors[s] < len(lists[s]):
                fn = lists[s][cursors[s]]
                cursors[s] += 1
                if fn not in taken:
                    taken.add(fn)
                    kept[s].append(fn)
                    break
                kept[s].append(fn)  # already taken for another syscall: list it here too
            if len(taken) >= limit:
                break
    return kept, seen


class _GraphTracker:
    """Starts function_graph on the stopped iteration's pid (``_RunContext.iteration``)."""

    def __init__(self, tracefs: Path) -> None:
        self.tracefs = tracefs

    def track(self, pid: int) -> None:
        _write(self.tracefs / "set_ftrace_pid", str(pid))
        _write(self.tracefs / "current_tracer", "function_graph")
        _write(self.tracefs / "tracing_on", "1")


def _write(path: Path, value: str) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.write(value + "\n")


def discover(
    spec: WorkloadSpec, syscalls: list[str], *, max_functions: int = MAX_FUNCTIONS
) -> Discovery:
    """Run one iteration of ``spec`` under function_graph rooted at ``syscalls``."""
    from regress.guest.runner import _RunContext

    for s in syscalls:
        if not is_syscall_name(s):
            raise ValueError(f"not a syscall name: {s!r}")
    tracefs = ensure_tracefs()
    available = set((tracefs / "available_filter_functions").read_text().split())
    roots = [s for s in syscalls if ENTRY_PREFIX + s in available]
    result = Discovery()
    missing = sorted(set(syscalls) - set(roots))
    if missing:
        result.notes.append("no traceable entry point on this kernel for: " + ", ".join(missing))
    if not roots:
        return result
    _write(tracefs / "tracing_on", "0")
    _write(tracefs / "current_tracer", "nop")
    _write(tracefs / "buffer_size_kb", str(BUFFER_KB))
    _write(tracefs / "set_graph_function", "\n".join(ENTRY_PREFIX + s for s in roots))
    for option, value in (("function-fork", "1"), ("funcgraph-irqs", "0")):
        opt = tracefs / "options" / option
        if opt.exists():
            _write(opt, value)
    _write(tracefs / "trace", "")
    ctx = _RunContext(spec, 0)
    try:
        if spec.setup:
            ctx.shell("setup", spec.setup)
        ctx.iteration(_GraphTracker(tracefs), 0)  # type: ignore[arg-type]
        _write(tracefs / "tracing_on", "0")
        text = (tracefs / "trace").read_text(errors="replace")
        if spec.teardown:
            ctx.shell("teardown", spec.teardown)
    finally:
        _write(tracefs / "tracing_on", "0")
        _write(tracefs / "current_tracer", "nop")
        _write(tracefs / "set_ftrace_pid", "")
        _write(tracefs / "set_graph_function", "")
        ctx.cleanup()
    found = parse_graph(text, set(roots))
    void = kernel_void_functions() or frozenset()
    result.functions, result.seen = cap_functions(found, void, max_functions)
    kept = len({f for names in result.functions.values() for f in names})
    if result.seen > kept:
        result.notes.append(
            f"function discovery found {result.seen} non-void functions under "
            f"{', '.join(roots)}; kept the first {kept} (cap {max_functions})"
        )
    return result
