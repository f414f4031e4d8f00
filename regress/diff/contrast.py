"""Failure-conditioned contrast: one kernel's failing iterations against its passing ones.

When the workload's outcome (liveness check, exit status, timeout) fails in some
iterations of a kernel and passes in others, the keys whose per-iteration counts
differ between the two groups are the mechanism of the failure on that kernel ("in
failing iterations ``find_ge_pid`` returned NULL twice, in passing ones once") -- a
comparison the kernel-vs-kernel diff cannot make, because it sees run totals only.

Needs the per-iteration counts of capture schema 4. Per key, a two-sided Mann–Whitney
U test of the failing iterations' counts against the passing ones' (scipy, asymptotic
with tie correction, vectorised over keys; at least ``MIN_GROUP`` iterations per
group), Benjamini–Hochberg over the keys, and the same effect gate as the main diff.
Assumption, stated in the method: iterations of one kernel are exchangeable apart from
their outcome (a failure confined to one run would also pick up that run's factor).
"""

from __future__ import annotations

import numpy as np
from scipy import stats as sst

from regress.diff import returnmix
from regress.diff.keys import KeyTuple, display_sub
from regress.diff.rank import KIND_ORDER, effect_gate
from regress.model.capture import Capture
from regress.model.result import Contrast, ContrastRow, DiffWarning, Divergence, Thresholds

MIN_GROUP = 3  # iterations per group (failing, passing)

METHOD = (
    "failing vs passing iterations of the same kernel: two-sided Mann–Whitney U per key "
    "on per-iteration counts (asymptotic, tie-corrected), Benjamini–Hochberg over the "
    "keys, the diff's effect gate; assumes the kernel's iterations are exchangeable apart "
    "from their outcome"
)


def iteration_failed(cap: Capture) -> list[bool]:
    """Per iteration, run after run: did the liveness check or the command fail?"""
    out: list[bool] = []
    for run in cap.runs:
        for i in range(run.iterations):
            live = run.liveness[i] if i < len(run.liveness) else None
            code = run.exit_codes[i] if i < len(run.exit_codes) else 0
            late = run.timed_out[i] if i < len(run.timed_out) else False
            out.append(live is False or code != 0 or late)
    return out


def _matrix(cap: Capture) -> tuple[list[KeyTuple], np.ndarray] | None:
    """(keys, keys x iterations counts) from the per-iteration series, or None."""
    if not cap.runs or any(r.per_iteration is None for r in cap.runs):
        return None
    keys: dict[KeyTuple, int] = {}
    for run in cap.runs:
        for key, _ in run.series_items():
            keys.setdefault(key, len(keys))
    total = sum(r.iterations for r in cap.runs)
    m = np.zeros((len(keys), total))
    col = 0
    for run in cap.runs:
        for key, values in run.series_items():
            m[keys[key], col : col + run.iterations] = values
        col += run.iterations
    return list(keys), m


def contrast(cap: Capture, side: str, th: Thresholds) -> tuple[Contrast | None, list[DiffWarning]]:
    """The contrast of ``cap``'s failing and passing iterations, when it has both."""
    failed = np.asarray(iteration_failed(cap), dtype=bool)
    n_fail, n_pass = int(failed.sum()), int((~failed).sum())
    if n_fail == 0 or n_pass == 0:
        return None, []
    if n_fail < MIN_GROUP or n_pass < MIN_GROUP:
        return None, [
            DiffWarning(
                f"contrast-{side}",
                f"{side} kernel: {n_fail} failing and {n_pass} passing iterations; the "
                f"failing/passing contrast needs at least {MIN_GROUP} of each",
            )
        ]
    data = _matrix(cap)
    if data is None:
        return None, [
            DiffWarning(
                f"contrast-{side}",
                f"{side} kernel: iterations failed, but the capture has no per-iteration "
                "counts (captured before schema 4) to contrast them with the passing ones",
            )
        ]
    keys, m = data
    fail, ok = m[:, failed], m[:, ~failed]
    varies = ~(m == m[:, :1]).all(axis=1) if len(keys) else np.zeros(0, dtype=bool)
    p = np.ones(len(keys))
    if varies.any():
        res = sst.mannwhitneyu(
            fail[varies], ok[varies], axis=1, alternative="two-sided", method="asymptotic"
        )
        p[varies] = np.nan_to_num(np.asarray(res.pvalue, dtype=float), nan=1.0)
    q = sst.false_discovery_control(p) if len(p) else p
    mean_f, mean_p = fail.mean(axis=1), ok.mean(axis=1)
    gate = effect_gate(mean_p, mean_f, th)
    pick = np.flatnonzero((q <= th.alpha) & gate)
    order = sorted(
        pick,
        key=lambda i: (q[i], KIND_ORDER.get(keys[i][0], 9), -abs(mean_f[i] - mean_p[i]), keys[i]),
    )
    rows = []
    for i in order:
        kind, name, sub = keys[i]
        shown = display_sub(kind, sub)
        label = Divergence.label_of(kind, name, shown)
        rows.append(
            ContrastRow(
                kind=kind,  # type: ignore[arg-type]
                name=name,
                sub=shown,
                label=label,
                failing=float(mean_f[i]),
                passing=float(mean_p[i]),
                p=float(p[i]),
                q=float(q[i]),
            )
        )
    return (
        Contrast(
            side="old" if side == "old" else "new",
            failing=n_fail,
            passing=n_pass,
            rows=tuple(rows),
            keys_tested=int(varies.sum()),
            method=METHOD,
            mix=tuple(returnmix.in_contrast(cap, failed, th)),
        ),
        [],
    )
