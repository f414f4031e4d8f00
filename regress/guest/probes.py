"""Probe patterns -> concrete probes on this kernel, and their statuses.

A requested probe that does not exist on a kernel must be reported as
``absent``, never as zero calls: "the function was inlined away in 6.18" and
"the function was never called" are different findings. Likewise a probe that
exists but cannot be attached (kprobes unavailable, EPERM) is ``failed`` with
the reason.

Function names are normalised: GCC clones (``foo.isra.0``, ``foo.constprop.3``,
``foo.part.1``, ``foo.cold``) count as ``foo``, because whether GCC cloned a
function is a build accident, not a behaviour change.

Stdlib-only: this module also runs inside the guest VM.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from regress.errors import UsageError
from regress.model.capture import ProbeStatus
from regress.model.workload import FUNCTION_PATTERN_RE, TRACEPOINT_PATTERN_RE

MAX_FUNCTIONS = 500
MAX_TRACEPOINTS = 1000
SYMBOL_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_.]{0,127}\Z")
TRACEPOINT_RE = re.compile(r"\A[A-Za-z0-9_]{1,64}:[A-Za-z0-9_]{1,128}\Z")
_CLONE_SUFFIX_RE = re.compile(r"(?:\.(?:isra|constprop|part|lto_priv|llvm)\.\d+|\.cold(?:\.\d+)?)$")

# Categories whose events are not plain tracepoints (perf/ftrace internals or
# per-syscall events that raw_syscalls already covers).
_EXCLUDED_CATEGORIES = frozenset({"ftrace", "syscalls", "kprobes", "uprobes"})


def normalise_function(symbol: str) -> str:
    """``foo.isra.0`` / ``foo.constprop.0.isra.0`` / ``foo.part.1`` / ``foo.cold`` -> ``foo``."""
    prev = None
    name = symbol
    while prev != name:
        prev = name
        name = _CLONE_SUFFIX_RE.sub("", name)
    return name


# --------------------------------------------------------------------------- tracepoints


def available_tracepoints(tracefs: Path) -> list[str]:
    """``category:event`` names from tracefs ``available_events``."""
    try:
        text = (tracefs / "available_events").read_text()
    except OSError:
        return []
    return [line.strip() for line in text.splitlines() if TRACEPOINT_RE.match(line.strip())]


def resolve_tracepoints(
    patterns: Sequence[str], available: Iterable[str]
) -> tuple[list[str], list[ProbeStatus]]:
    """Expand patterns (fnmatch per ``cat:event``); unmatched patterns become ``absent``."""
    avail = sorted(set(available))
    chosen: list[str] = []
    seen: set[str] = set()
    absent: list[ProbeStatus] = []
    for pattern in patterns:
        if not TRACEPOINT_PATTERN_RE.match(pattern):
            raise UsageError(
                f"invalid tracepoint pattern {pattern!r}",
                hint="expected category:event with letters, digits, _ and * ? wildcards",
            )
        cat_pat = pattern.split(":", 1)[0]
        matches = [
            tp
            for tp in avail
            if fnmatch.fnmatchcase(tp, pattern)
            and (tp.split(":", 1)[0] not in _EXCLUDED_CATEGORIES or cat_pat == tp.split(":", 1)[0])
        ]
        if not matches:
            absent.append(
                ProbeStatus("tracepoint", pattern, "absent", "no such event on this kernel")
            )
        for tp in matches:
            if tp not in seen:
                seen.add(tp)
                chosen.append(tp)
    if len(chosen) > MAX_TRACEPOINTS:
        raise UsageError(
            f"tracepoint patterns match {len(chosen)} events; the cap is {MAX_TRACEPOINTS}",
            hint="narrow the patterns",
        )
    return chosen, absent


# --------------------------------------------------------------------------- functions


@dataclass(frozen=True)
class FunctionTarget:
    """One normalised function and the kernel symbols (clones) it stands for."""

    name: str
    symbols: tuple[str, ...]


def traceable_functions(tracefs: Path) -> list[str]:
    """Symbols from ``available_filter_functions`` (module suffix stripped)."""
    try:
        text = (tracefs / "available_filter_functions").read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        sym = line.split(" ", 1)[0].strip()
        if SYMBOL_RE.match(sym):
            out.append(sym)
    return out


_KALLSYMS_TEXT_RE = re.compile(r"^([0-9a-fA-F]+) [tTwW] (\S+)", re.M)


def read_kallsyms(path: Path = Path("/proc/kallsyms")) -> list[tuple[int, str]]:
    """(address, symbol) of text symbols, sorted; addresses are 0 without privileges.

    One regex pass over the file: ~150k lines, and a per-line split took most of
    a second in a TCG guest.
    """
    try:
        text = path.read_text()
    except OSError:
        return []
    out = [(int(a, 16), s) for a, s in _KALLSYMS_TEXT_RE.findall(text)]
    out.sort()
    return out


def resolve_functions(
    patterns: Sequence[str], traceable: Iterable[str], *, cap: int = MAX_FUNCTIONS
) -> tuple[list[FunctionTarget], list[ProbeStatus]]:
    """Expand function patterns over traceable symbols, grouping GCC clones by name."""
    by_name: dict[str, list[str]] = {}
    for sym in traceable:
        by_name.setdefault(normalise_function(sym), []).append(sym)
    chosen: dict[str, FunctionTarget] = {}
    absent: list[ProbeStatus] = []
    for pattern in patterns:
        if not FUNCTION_PATTERN_RE.match(pattern):
            raise UsageError(
                f"invalid function pattern {pattern!r}",
                hint="expected a C identifier with * ? [] wildcards",
            )
        norm_pat = normalise_function(pattern)
        if any(c in norm_pat for c in "*?["):
            matches = fnmatch.filter(by_name, norm_pat)
        else:  # a plain name (narrowing passes ~150): a lookup, not a scan of ~50k symbols
            matches = [norm_pat] if norm_pat in by_name else []
        if not matches:
            absent.append(
                ProbeStatus("function", pattern, "absent", "no traceable function on this kernel")
            )
        for n in sorted(matches):
            chosen.setdefault(n, FunctionTarget(n, tuple(sorted(set(by_name[n])))))
    if len(chosen) > cap:
        raise UsageError(
            f"function patterns match {len(chosen)} functions; the cap is {cap}",
            hint="narrow the patterns (each function is one kprobe)",
        )
    return list(chosen.values()), absent


def kprobes_unavailable_reason(tracefs: Path) -> str | None:
    """Why kprobes cannot work here, or None when they might."""
    if not (tracefs / "kprobe_events").exists():
        return (
            "kprobes unavailable on this kernel (no kprobe_events in tracefs: CONFIG_KPROBES off)"
        )
    return None


class AddressMap:
    """Map a probed address (``bpf_get_func_ip``) back to a normalised function name."""

    def __init__(self, kallsyms: Sequence[tuple[int, str]]) -> None:
        import bisect

        self._bisect = bisect.bisect_right
        self._addrs = [a for a, _ in kallsyms]
        self._names = [s for _, s in kallsyms]

    def name_at(self, addr: int) -> str | None:
        i = self._bisect(self._addrs, addr) - 1
        if i < 0 or self._addrs[i] == 0:
            return None
        return normalise_function(self._names[i])
