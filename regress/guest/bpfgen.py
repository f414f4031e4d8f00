"""BPF C text for the tracer, generated from typed, validated options.

Every value that reaches the C text is an int, a bool, or a name that matched a
strict regex here, so no user string is ever pasted into the program. The
text reads no kernel structs (only tracepoint arguments and BPF helpers):
the headers bcc compiles against may not match the traced kernel (this host
uses 6.1 headers for a 6.18 kernel), and a struct read would silently
return garbage. So one tracer text is valid on every kernel, and the
fingerprint (hash of text + options) says whether two captures used the same
instrument.

What the program counts, only for the tracked process tree (``tracked[tid]``
equals the current ``generation[0]`` (never 0) for a tracked thread;
``sched_process_fork`` marks children of tracked parents, ``sched_process_exit``
clears them, and user space forgets every tracked thread at once by bumping the
generation). ``tracked`` is an array indexed by the (global) thread id, sized by
the kernel's ``pid_max`` read when the program is generated: an array lookup is
inlined by the verifier, a hash lookup is a hashed function call, and this check
runs on every syscall of every process on the machine. A thread id beyond the
array (``pid_max`` raised later) cannot be tracked and is counted in ``lost``.

* ``raw_syscalls:sys_exit`` per (syscall nr, errno or 0, bucket): with
  ``retvals`` the bucket is the log2 bucket of a successful return value
  (bucket 0: ret == 0 or not an errno; bucket k >= 1: 2^(k-1) <= ret < 2^k),
  else 0. One map op per syscall (the hot path); the (nr, 0) total is the sum of
  its buckets. Successful exits of syscalls below ``DENSE_SYSCALLS`` go to the
  array ``okcounts[nr * buckets + bucket]`` (inlined lookup, no insert path; memory-
  mapped, so reading it after every iteration costs no syscall);
  errors and any other nr go to the hash ``counts``;
* ``tpcounts[i]``: hits of the i-th selected tracepoint (one small function each,
  taking no arguments, so ``tracer.py`` attaches it as a raw tracepoint where the
  kernel has one of that name: cheaper per hit and ~100x cheaper to detach);
* ``fcounts``: kernel function calls keyed by address (``bpf_get_func_ip``),
  one shared kprobe program for all functions, mapped back through kallsyms;
* ``frcounts``: with ``function_returns``, what traced functions return, keyed by
  (address, class): 0 (NULL or 0), ``-errno`` (an ``IS_ERR_VALUE`` -1..-4095 as a long,
  or as an int with the upper half clear -- int-returning functions), 1 (anything
  else). One shared kretprobe program reading only the return register from the
  program's context (``bpf_user_pt_regs_t``, the kprobe ABI: x86_64's uapi
  ``pt_regs`` has rax in slot 10) -- still no kernel structs;
* with ``function_returns`` also **errno origins** (retsnoop's idea): per tracked thread,
  ``thread_state`` holds the syscall it is in (``raw_syscalls:sys_enter``) and the
  first traced function that returned the errno currently propagating (a later return
  of the same errno keeps it -- callers pass the error up; a different errno replaces
  it), with its kernel stack (``stacks``, ``bpf_get_stackid``: the callers at return
  time). At ``sys_exit`` with ``-errno``, ``origins[(nr, errno, function, stack)]``
  counts where that errno was born (function 0: in no traced function). ``fsys``
  counts each traced function's returns per syscall it ran under (the syscall a
  culprit explains). Known limit: a function returning an errno that its caller
  absorbs, followed by an unrelated birth of the same errno in the same syscall, is
  named for both;
* ``lost``: events we could not count (a map was full), so a capture can prove
  it missed nothing.

Stdlib-only, no bcc: also used by ``regress capture --ebpf`` without root.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from regress.errors import UsageError
from regress.model.workload import FUNCTION_PATTERN_RE, TRACEPOINT_PATTERN_RE

GENERATOR_VERSION = 5
TRACEPOINT_RE = re.compile(r"\A([a-z0-9_]{1,64}):([A-Za-z0-9_]{1,128})\Z", re.ASCII)
FUNCTION_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]{0,127}\Z", re.ASCII)

# Indices into the ``lost`` array; the names are what captures record.
LOST_COUNTERS: tuple[str, ...] = (
    "tracked_full",
    "counts_full",
    "functions_full",
    "returns_full",
    "origins_full",
)
# Return classes of ``frcounts`` (besides -errno values -1..-4095).
RET_ZERO, RET_OTHER = 0, 1
MAX_ERRNO = 4095
# Kernel stacks kept for errno origins (distinct call paths per run), frames per stack.
ORIGIN_STACKS = 1024
NO_SYSCALL = 0xFFFFFFFF  # ``fsys``: a traced function returning outside any syscall
# The return value's slot in the kprobe context on x86_64 (uapi asm/ptrace.h: r15 r14
# r13 r12 rbp rbx r11 r10 r9 r8 rax ...); regress's syscall table is x86_64's too.
RC_SLOT = 10

FORK_TP = "sched:sched_process_fork"
EXIT_TP = "sched:sched_process_exit"
SYS_EXIT_TP = "raw_syscalls:sys_exit"

_MAP_MIN, _MAP_MAX = 16, 1 << 20
# Thread ids are < pid_max; the kernel bounds pid_max to 301..PID_MAX_LIMIT (4M on 64-bit).
PID_MAX_DEFAULT, PID_MAX_MIN, PID_MAX_LIMIT = 32768, 301, 1 << 22
PID_MAX_FILE = "/proc/sys/kernel/pid_max"
# Syscall numbers with a dense counter row for successful exits (x86_64: 0..469 in 6.18).
DENSE_SYSCALLS = 512
# Buckets per syscall in ``okcounts`` with retvals: 0 and bpf_log2l(ret) = 1..64.
RETVAL_BUCKETS = 65


def read_pid_max(path: str = PID_MAX_FILE) -> int:
    """This kernel's pid_max (every thread id is below it); the default when unreadable."""
    try:
        with open(path, encoding="ascii") as f:
            value = int(f.read().strip())
    except (OSError, ValueError):
        return PID_MAX_DEFAULT
    return min(max(value, PID_MAX_MIN), PID_MAX_LIMIT)


@dataclass(frozen=True)
class TracerOptions:
    """Everything that shapes the BPF program; validated on construction."""

    syscalls: bool = True
    retvals: bool = True
    tracepoints: tuple[str, ...] = ()  # resolved "category:event" names
    functions: tuple[str, ...] = ()  # resolved, normalised kernel function names
    function_returns: bool = False  # also count what each function returns (kretprobes)
    max_counts: int = 16384
    max_functions: int = 8192
    # Size of the ``tracked`` array: this machine's pid_max (``read_pid_max``). Machine
    # resolution like ``tracepoints``: not part of the instrument's fingerprint.
    pid_max: int = PID_MAX_DEFAULT
    generator_version: int = field(default=GENERATOR_VERSION)
    # What the user asked for (patterns). Never pasted into the text; they define the
    # instrument for the fingerprint, because resolution differs between kernels.
    requested_tracepoints: tuple[str, ...] = ()
    requested_functions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("syscalls", "retvals", "function_returns"):
            if not isinstance(getattr(self, name), bool):
                raise UsageError(f"tracer option {name}: expected true or false")
        if self.retvals and not self.syscalls:
            raise UsageError("tracer option retvals needs syscalls")
        if not isinstance(self.tracepoints, tuple) or not isinstance(self.functions, tuple):
            raise UsageError("tracer options: tracepoints and functions must be tuples")
        for tp in self.tracepoints:
            if not isinstance(tp, str) or not TRACEPOINT_RE.match(tp):
                raise UsageError(f"tracer option tracepoints: invalid name {tp!r}")
        if len(set(self.tracepoints)) != len(self.tracepoints):
            raise UsageError("tracer option tracepoints: duplicate names")
        for fn in self.functions:
            if not isinstance(fn, str) or not FUNCTION_RE.match(fn):
                raise UsageError(f"tracer option functions: invalid name {fn!r}")
        for name in ("max_counts", "max_functions"):
            value = getattr(self, name)
            ok = isinstance(value, int) and not isinstance(value, bool)
            if not ok or not _MAP_MIN <= value <= _MAP_MAX:
                raise UsageError(
                    f"tracer option {name}: expected an integer {_MAP_MIN}..{_MAP_MAX}"
                )
        ok = isinstance(self.pid_max, int) and not isinstance(self.pid_max, bool)
        if not ok or not PID_MAX_MIN <= self.pid_max <= PID_MAX_LIMIT:
            raise UsageError(
                f"tracer option pid_max: expected an integer {PID_MAX_MIN}..{PID_MAX_LIMIT}"
            )
        for name, rx in (
            ("requested_tracepoints", TRACEPOINT_PATTERN_RE),
            ("requested_functions", FUNCTION_PATTERN_RE),
        ):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                raise UsageError(f"tracer option {name}: expected a tuple of patterns")
            for x in value:
                if not isinstance(x, str) or not rx.match(x):
                    what = "function" if name == "requested_functions" else "tracepoint"
                    raise UsageError(
                        f"invalid {what} pattern {x!r} (letters, digits, _ . and * ? [ ] "
                        "wildcards only)"
                    )
        if self.generator_version != GENERATOR_VERSION:
            raise UsageError(f"tracer option generator_version: expected {GENERATOR_VERSION}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tracepoints"] = list(self.tracepoints)
        d["functions"] = list(self.functions)
        d["requested_tracepoints"] = list(self.requested_tracepoints)
        d["requested_functions"] = list(self.requested_functions)
        return d

    def instrument(self) -> dict[str, Any]:
        """The options that define the instrument: everything but machine-specific resolution."""
        d = self.to_dict()
        del d["tracepoints"], d["functions"], d["pid_max"]
        return d

    @property
    def buckets(self) -> int:
        """Buckets per syscall in ``okcounts``."""
        return RETVAL_BUCKETS if self.retvals else 1

    def tracepoint_function(self, tp: str) -> str | None:
        """The BPF function counting ``tp`` (None: counted inside the fork/exit handler)."""
        if tp in (FORK_TP, EXIT_TP):
            return None
        return f"tp_{self.tracepoints.index(tp)}"


def _inc(map_name: str, key: str, lost: str) -> list[str]:
    """Exact increment: update in place, insert when new, count a loss when full."""
    return [
        f"    u64 *v = {map_name}.lookup({key});",
        "    if (v) {",
        "        __sync_fetch_and_add(v, 1);",
        "    } else {",
        "        u64 one = 1;",
        f"        if ({map_name}.insert({key}, &one) != 0) {{",
        f"            v = {map_name}.lookup({key});",
        "            if (v)",
        "                __sync_fetch_and_add(v, 1);",
        "            else",
        f"                lost_inc({lost});",
        "        }",
        "    }",
    ]


def _tp_inc(index: int, indent: str = "    ") -> list[str]:
    return [
        f"{indent}{{",
        f"{indent}    u32 i = {index};",
        f"{indent}    u64 *v = tpcounts.lookup(&i);",
        f"{indent}    if (v)",
        f"{indent}        __sync_fetch_and_add(v, 1);",
        f"{indent}}}",
    ]


# BPF_F_MMAPABLE (1 << 10; Linux 5.5, and the batch reads need 5.6 anyway).
MMAPABLE = 1024


def _counter_array(name: str, entries: int) -> str:
    """A u64 counter array user space reads straight from memory (``mmap``): the
    counters are read after every iteration, and a map lookup is a syscall each."""
    return f'BPF_F_TABLE("array", int, u64, {name}, {entries}, {MMAPABLE});'


def generate(options: TracerOptions) -> str:
    """The whole BPF program for ``options`` (deterministic: golden-tested)."""
    o = options
    tps = o.tracepoints
    lines: list[str] = [
        f"// regress tracer, generator v{GENERATOR_VERSION} (regress/bpfgen.py); do not edit.",
        "// Reads only tracepoint arguments and BPF helpers: no kernel structs.",
        f"// syscalls={int(o.syscalls)} retvals={int(o.retvals)} "
        f"tracepoints={len(tps)} functions={len(o.functions)}",
        "",
    ]
    for i, name in enumerate(LOST_COUNTERS):
        lines.append(f"#define LOST_{name.upper()} {i}")
    lines += [
        "",
        f"BPF_ARRAY(tracked, u32, {o.pid_max});",
        "BPF_ARRAY(generation, u32, 1);",
        _counter_array("lost", len(LOST_COUNTERS)),
    ]
    if o.syscalls:
        lines += [
            "struct sc_key {",
            "    u32 id;",
            "    u16 err;",
            "    u16 bucket;",
            "};",
            f"BPF_HASH(counts, struct sc_key, u64, {o.max_counts});",
            _counter_array("okcounts", DENSE_SYSCALLS * o.buckets),
        ]
    if tps:
        lines.append(_counter_array("tpcounts", len(tps)))
    if o.functions:
        lines.append(f"BPF_HASH(fcounts, u64, u64, {o.max_functions});")
        if o.function_returns:
            lines += [
                "struct fr_key {",
                "    u64 ip;",
                "    s64 cls;",
                "};",
                f"BPF_HASH(frcounts, struct fr_key, u64, {o.max_functions});",
                "struct thread_state {",
                "    u64 ip;  // origin: the traced function that returned err first",
                "    u32 nr;  // the syscall the thread is in",
                "    s32 err;  // the errno propagating (negative), 0: none",
                "    s32 stack;  // origin's stack id, < 0: none",
                "    u32 pad;",
                "};",
                f"BPF_HASH(thread_state, u32, struct thread_state, {o.max_counts});",
                "struct or_key {",
                "    u64 ip;",
                "    u32 nr;",
                "    s32 err;",
                "    s32 stack;",
                "    u32 pad;",
                "};",
                f"BPF_HASH(origins, struct or_key, u64, {o.max_counts});",
                f"BPF_STACK_TRACE(stacks, {ORIGIN_STACKS});",
                "struct fs_key {",
                "    u64 ip;",
                "    u32 nr;",
                "    u32 pad;",
                "};",
                f"BPF_HASH(fsys, struct fs_key, u64, {o.max_functions});",
            ]
    lines += [
        "",
        "static __always_inline u32 current_generation(void)",
        "{",
        "    u32 zero = 0;",
        "    u32 *g = generation.lookup(&zero);",
        "    return g ? *g : 0;",
        "}",
        "",
        "static __always_inline int is_tracked(u32 pid)",
        "{",
        "    u32 *t = tracked.lookup(&pid);",
        "    return t && *t != 0 && *t == current_generation();",
        "}",
        "",
        "static __always_inline int current_tracked(void)",
        "{",
        "    return is_tracked((u32)bpf_get_current_pid_tgid());",
        "}",
        "",
        "static __always_inline void lost_inc(u32 i)",
        "{",
        "    u64 *v = lost.lookup(&i);",
        "    if (v)",
        "        __sync_fetch_and_add(v, 1);",
        "}",
        "",
        "// A tracked thread's child (process or thread) is tracked too.",
        "TRACEPOINT_PROBE(sched, sched_process_fork)",
        "{",
        "    if (!is_tracked(args->parent_pid))",
        "        return 0;",
        "    u32 child = args->child_pid;",
        "    u32 *t = tracked.lookup(&child);",
        "    if (t)",
        "        *t = current_generation();",
        "    else",
        "        lost_inc(LOST_TRACKED_FULL);  // tid >= pid_max at generation",
    ]
    if FORK_TP in tps:
        lines += _tp_inc(tps.index(FORK_TP))
    lines += [
        "    return 0;",
        "}",
        "",
        "TRACEPOINT_PROBE(sched, sched_process_exit)",
        "{",
        "    u32 pid = args->pid;",
        "    if (!is_tracked(pid))",
        "        return 0;",
    ]
    if EXIT_TP in tps:
        lines += _tp_inc(tps.index(EXIT_TP))
    lines += [
        "    u32 *t = tracked.lookup(&pid);",
        "    if (t)",
        "        *t = 0;",
    ]
    if o.syscalls and o.functions and o.function_returns:
        lines.append("    thread_state.delete(&pid);  // errno origins: the thread is gone")
    lines += [
        "    return 0;",
        "}",
    ]
    origins = o.syscalls and bool(o.functions) and o.function_returns
    if origins:
        lines += [
            "",
            "// Errno origins: which syscall the thread is in; a new syscall, no origin yet.",
            "TRACEPOINT_PROBE(raw_syscalls, sys_enter)",
            "{",
            "    if (!current_tracked())",
            "        return 0;",
            "    u32 tid = (u32)bpf_get_current_pid_tgid();",
            "    struct thread_state st = {};",
            "    st.nr = (u32)args->id;",
            "    st.stack = -1;",
            "    thread_state.update(&tid, &st);",
            "    return 0;",
            "}",
        ]
    if o.syscalls:
        lines += [
            "",
            "TRACEPOINT_PROBE(raw_syscalls, sys_exit)",
            "{",
            "    if (!current_tracked())",
            "        return 0;",
            "    long ret = args->ret;",
            "    u32 id = (u32)args->id;",
            "    struct sc_key k = {};",
            "    if (ret < 0 && ret >= -4095) {",
            "        k.err = (u16)(-ret);",
        ]
        if origins:
            lines += [
                "        u32 tid = (u32)bpf_get_current_pid_tgid();",
                "        struct thread_state *st = thread_state.lookup(&tid);",
                "        struct or_key ok = {};",
                "        ok.nr = id;",
                "        ok.err = (s32)ret;",
                "        ok.stack = -1;",
                "        if (st && st->err == (s32)ret) {",
                "            ok.ip = st->ip;",
                "            ok.stack = st->stack;",
                "        }",
                "        {",
                *["        " + x for x in _inc("origins", "&ok", "LOST_ORIGINS_FULL")],
                "        }",
            ]
        if o.retvals:
            lines += [
                "    } else {",
                "        if (ret > 0)",
                "            k.bucket = (u16)bpf_log2l((unsigned long)ret);",
                f"        if (id < {DENSE_SYSCALLS}) {{",
                f"            u32 i = id * {RETVAL_BUCKETS} + k.bucket;",
            ]
        else:
            lines += [
                "    } else {",
                f"        if (id < {DENSE_SYSCALLS}) {{",
                "            u32 i = id;",
            ]
        lines += [
            "            u64 *c = okcounts.lookup(&i);",
            "            if (c)",
            "                __sync_fetch_and_add(c, 1);",
            "            return 0;",
            "        }",
            "    }",
            "    k.id = id;",
            *_inc("counts", "&k", "LOST_COUNTS_FULL"),
            "    return 0;",
            "}",
        ]
    for i, tp in enumerate(tps):
        if tp in (FORK_TP, EXIT_TP):
            continue
        lines += [
            "",
            f"// {tp}",
            f"int tp_{i}(void *ctx)",
            "{",
            "    if (!current_tracked())",
            "        return 0;",
            *_tp_inc(i),
            "    return 0;",
            "}",
        ]
    if o.functions:
        lines += [
            "",
            "// One program for every function probe, keyed by the probed address.",
            "int fn_hit(void *ctx)",
            "{",
            "    if (!current_tracked())",
            "        return 0;",
            "    u64 ip = bpf_get_func_ip(ctx);",
            *_inc("fcounts", "&ip", "LOST_FUNCTIONS_FULL"),
            "    return 0;",
            "}",
        ]
    if o.functions and o.function_returns:
        lines += [
            "",
            "// One program for every return probe: the function (the kretprobe's own",
            "// address) and the class of its return value.",
            "int fn_ret(void *ctx)",
            "{",
            "    if (!current_tracked())",
            "        return 0;",
            "    struct fr_key k = {};",
            f"    s64 rc = ((s64 *)ctx)[{RC_SLOT}];  // rax in the kprobe context (pt_regs)",
            "    s32 low = (s32)rc;",
            "    k.ip = bpf_get_func_ip(ctx);",
            "    if (rc == 0)",
            f"        k.cls = {RET_ZERO};",
            f"    else if (rc < 0 && rc >= -{MAX_ERRNO})",
            "        k.cls = rc;",
            f"    else if (((u64)rc >> 32) == 0 && low < 0 && low >= -{MAX_ERRNO})",
            "        k.cls = low;",
            "    else",
            f"        k.cls = {RET_OTHER};",
            "    u32 tid = (u32)bpf_get_current_pid_tgid();",
            "    struct thread_state *st = thread_state.lookup(&tid);",
            "    struct fs_key fk = {};",
            "    fk.ip = k.ip;",
            f"    fk.nr = st ? st->nr : {NO_SYSCALL}u;",
            "    if (st && k.cls < 0 && st->err != (s32)k.cls) {  // an errno is born here",
            "        st->err = (s32)k.cls;",
            "        st->ip = k.ip;",
            "        st->stack = stacks.get_stackid(ctx, 0);",
            "    }",
            "    {",
            *["    " + x for x in _inc("fsys", "&fk", "LOST_RETURNS_FULL")],
            "    }",
            *_inc("frcounts", "&k", "LOST_RETURNS_FULL"),
            "    return 0;",
            "}",
        ]
    return "\n".join(lines) + "\n"


def fingerprint(options: TracerOptions, text: str) -> str:
    """sha256 identifying the instrument: equal on two kernels iff same regress + requests.

    ``text`` must be ``generate(options)``. The resolved tracepoint/function
    lists (and so the exact text) legitimately differ between kernels (a
    function inlined away, a new event matching ``sched:*``); those differences
    are reported per probe as ``absent``, not as a different tracer. So the hash
    covers the requested patterns, flags, map sizes and the program generated
    for a canonical resolution (one placeholder tracepoint and function when
    any were requested), which changes whenever the generator does.
    """
    if text != generate(options):
        raise UsageError("tracer text does not match its options (hand-edited?)")
    canonical = replace(
        options,
        pid_max=PID_MAX_DEFAULT,
        tracepoints=("regress:canonical",)
        if options.tracepoints or options.requested_tracepoints
        else (),
        functions=("canonical",) if options.functions or options.requested_functions else (),
    )
    doc = {"instrument": options.instrument(), "template": generate(canonical)}
    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()


def return_class(cls: int) -> str:
    """How a capture names ``frcounts`` class ``cls``: "0", "-<errno>" or "other"."""
    if cls == RET_ZERO:
        return "0"
    if -MAX_ERRNO <= cls < 0:
        return str(cls)
    return "other"


def split_okcount(options: TracerOptions, index: int) -> tuple[int, int]:
    """(syscall nr, bucket) counted in ``okcounts[index]``."""
    return divmod(index, options.buckets)
