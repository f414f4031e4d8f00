"""Per-iteration counts from the tracer's cumulative counters.

The BPF counters are zeroed once per run and only grow; reading them after every
iteration and subtracting the previous read gives each iteration's own counts
without a reset between iterations (a reset is two batch writes per map, a read is
one batch read). The last read is the run's total, so the series adds up to it by
construction. Stdlib-only: runs in the guest.
"""

from __future__ import annotations

from regress.guest.bpfgen import return_class
from regress.guest.tracer import RawCounts
from regress.model import names
from regress.model.capture import KeyTotals, Series, origin_sub


def flat_counts(raw: RawCounts) -> KeyTotals:
    """One read of the maps keyed like the differ: ``(kind, name, sub)``."""
    out: KeyTotals = {}
    for (nr, err), n in raw.syscalls.items():
        out[("syscall", names.name_of(nr), str(err))] = n
    for (nr, bucket), n in raw.retvals.items():
        out[("retval", names.name_of(nr), str(bucket))] = n
    for tp, n in raw.tracepoints.items():
        out[("tracepoint", tp, "")] = n
    for fn, n in raw.functions.items():
        out[("function", fn, "")] = n
    for (fn, cls), n in raw.funcrets.items():
        out[("funcret", fn, return_class(cls))] = n
    for (nr, err, fn, _), n in raw.origins.items():
        key = ("origin", names.name_of(nr), origin_sub(err, fn))
        out[key] = out.get(key, 0) + n
    return out


class IterationSeries:
    """Accumulates one run's per-iteration counts from cumulative reads."""

    def __init__(self, iterations: int) -> None:
        self.iterations = iterations
        self._previous: KeyTotals = {}
        self._values: dict[tuple[str, str, str], list[int]] = {}

    def add(self, iteration: int, cumulative: KeyTotals) -> None:
        """Record iteration ``iteration`` given the counters read right after it."""
        for key, n in cumulative.items():
            delta = n - self._previous.get(key, 0)
            if delta:
                values = self._values.get(key)
                if values is None:
                    values = self._values[key] = [0] * self.iterations
                values[iteration] = delta
        self._previous = cumulative

    def to_series(self) -> Series:
        out: Series = {}
        for (kind, name, sub), values in sorted(self._values.items()):
            out.setdefault(kind, {}).setdefault(name, {})[sub] = values
        return out
