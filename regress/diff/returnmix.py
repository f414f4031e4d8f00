"""Return mix: what *share* of a function's returns falls in each class, compared.

The seed bug is a function that returns NULL too early: ``find_ge_pid()`` ends the /proc
walk after pid 1 instead of pid 3. Every walk still ends with exactly one NULL, so the
NULL *count* per iteration does not move -- what moves is the share of the function's
returns that are NULL (1 of 4 -> 1 of 2), while functions downstream of it merely run
less often with the same mix. This module tests that share, per (function, return
class), between two groups of units:

* the runs of the old and the new kernel (``between_kernels``);
* the failing and the passing iterations of one kernel (``in_contrast``).

Per unit, share = class count / the function's returns (units where it did not return
are left out). Test: two-sided Mann–Whitney U on the per-unit shares (scipy; exact
without ties, tie-corrected otherwise) -- except that a share that is constant within
each group and differs between them, or a class present in every unit of one group and
absent from every unit of the other, is certain (p = 0) once each group has
``MIN_UNITS`` units in which the function returned at least ``MIN_RETURNS`` times (the
guard against chance constancy of small counts, as the main diff's exact rule).
Benjamini–Hochberg over the (function, class) pairs; a change counts when q <= alpha and
the share moved by at least ``MIN_SHARE_DELTA`` and by the diff's ratio gate (or a class
appeared/vanished).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import stats as sst

from regress.diff.keys import display_sub
from regress.model.capture import Capture
from regress.model.result import MixChange, TestMethod, Thresholds

MIN_UNITS = 3
MIN_RETURNS = 2
MIN_SHARE_DELTA = 0.05

METHOD = (
    "return mix: per function and return class, the share of the function's returns in "
    "that class per run (between kernels) or per iteration (failing vs passing); "
    "two-sided Mann–Whitney U, certain when constant within each group and different "
    f"(>= {MIN_UNITS} units with >= {MIN_RETURNS} returns each); Benjamini–Hochberg over "
    f"the pairs; the share must move by >= {MIN_SHARE_DELTA:g} and pass the ratio gate"
)

TEST = TestMethod("return-mix", METHOD)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Units = list[dict[str, dict[str, float]]]  # per unit: function -> class -> count


def _units(per_unit: Units) -> tuple[list[tuple[str, str]], FloatArray, FloatArray]:
    """(keys, class counts keys x units, the key's function's returns keys x units)."""
    keys: dict[tuple[str, str], int] = {}
    for unit in per_unit:
        for fn, classes in unit.items():
            for cls in classes:
                keys.setdefault((fn, cls), len(keys))
    counts = np.zeros((len(keys), len(per_unit)))
    calls = np.zeros((len(keys), len(per_unit)))
    for j, unit in enumerate(per_unit):
        for fn, classes in unit.items():
            total = float(sum(classes.values()))
            for cls, n in classes.items():
                counts[keys[(fn, cls)], j] = n
            for cls in classes:
                calls[keys[(fn, cls)], j] = total
    # a class the function did not return in a unit where it returned others: count 0
    by_fn: dict[str, list[int]] = {}
    for (fn, _), i in keys.items():
        by_fn.setdefault(fn, []).append(i)
    for rows in by_fn.values():
        calls[rows] = calls[rows].max(axis=0)
    return list(keys), counts, calls


def compare(per_unit: Units, group_b: BoolArray, th: Thresholds) -> list[MixChange]:
    """Shares in units ``group_b`` (after) against the other units (before)."""
    keys, counts, calls = _units(per_unit)
    if not keys:
        return []
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(calls > 0, counts / calls, np.nan)
    a_mask, b_mask = ~group_b, group_b
    p = np.ones(len(keys))
    before = np.full(len(keys), np.nan)
    after = np.full(len(keys), np.nan)
    for i in range(len(keys)):
        sa, sb = share[i, a_mask], share[i, b_mask]
        ca, cb = calls[i, a_mask], calls[i, b_mask]
        sa, sb = sa[~np.isnan(sa)], sb[~np.isnan(sb)]
        if len(sa) == 0 or len(sb) == 0:
            continue
        before[i], after[i] = float(sa.mean()), float(sb.mean())
        p[i] = _pvalue(sa, sb, ca[ca > 0], cb[cb > 0])
    q = sst.false_discovery_control(p)
    out: list[MixChange] = []
    for i in np.flatnonzero(q <= th.alpha).tolist():
        b, a = float(before[i]), float(after[i])
        moved = abs(a - b) >= MIN_SHARE_DELTA
        gate = b == 0 or a == 0 or max(a, b) / min(a, b) >= th.min_ratio
        if moved and gate:
            fn, cls = keys[i]
            out.append(MixChange(fn, display_sub("funcret", cls), b, a, float(p[i]), float(q[i])))
    out.sort(key=lambda m: (m.q, -abs(m.after - m.before), m.function, m.sub))
    return out


def _pvalue(sa: FloatArray, sb: FloatArray, ca: FloatArray, cb: FloatArray) -> float:
    guarded = (
        len(sa) >= MIN_UNITS
        and len(sb) >= MIN_UNITS
        and bool((ca >= MIN_RETURNS).all())
        and bool((cb >= MIN_RETURNS).all())
    )
    const_a, const_b = bool((sa == sa[0]).all()), bool((sb == sb[0]).all())
    if const_a and const_b:
        if sa[0] == sb[0]:
            return 1.0
        if guarded:
            return 0.0
    elif guarded and (((sa == 0).all() and (sb > 0).all()) or ((sb == 0).all() and (sa > 0).all())):
        return 0.0  # a class present in every unit of one group, absent from the other
    res = sst.mannwhitneyu(sb, sa, alternative="two-sided")
    value = float(res.pvalue)
    return 1.0 if np.isnan(value) else value


def between_kernels(old: Capture, new: Capture, th: Thresholds) -> list[MixChange]:
    """Per run shares, old runs against new runs."""
    units: Units = [
        {fn: {c: float(n) for c, n in classes.items()} for fn, classes in r.funcrets.items()}
        for r in (*old.runs, *new.runs)
    ]
    group = np.array([False] * len(old.runs) + [True] * len(new.runs))
    return compare(units, group, th)


def in_contrast(cap: Capture, failed: BoolArray, th: Thresholds) -> list[MixChange]:
    """Per iteration shares, failing iterations against passing ones (schema 4 series)."""
    units: Units = []
    for run in cap.runs:
        series = (run.per_iteration or {}).get("funcret", {})
        for it in range(run.iterations):
            units.append(
                {
                    fn: {cls: float(v[it]) for cls, v in classes.items() if it < len(v)}
                    for fn, classes in series.items()
                }
            )
    if len(units) != len(failed):
        return []
    return compare(units, failed, th)
