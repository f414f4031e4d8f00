"""Effect gate, classes, the regression rule and the ranking (README "Ranking").

Rows fall in tiers, highest first -- 4 the workload's outcomes (liveness, exit status)
differ, 3 significant appeared/vanished, 2 significant rate change, 1.75 certain but
below the effect gate, 1.5 suggestive (past the gate, p <= alpha, not past the FDR),
1 probe absent on one side, 0 the rest;
within a tier by ``rank_score`` (significance + effect); ties by kind (liveness, exit,
syscall, funcret, tracepoint, function, retval), then by key, so the same inputs always give
the same order.

A row is a *regression* when it is significant and one of: liveness failures or
command failures went up; a syscall error (``syscall:X:ERRNO``) appeared or went up;
successful calls of a syscall (``syscall:X:ok``) vanished -- except on a syscall whose
ENOSYS vanished (it is now implemented: ``differ.interpret``). Certain-small and
suggestive rows are shown, never regressions, never significant.
"""

from __future__ import annotations

import numpy as np

from regress.diff.keys import BoolArray, FloatArray, KeyCounts
from regress.model.result import METRIC_KINDS, Thresholds

TIER_OUTCOME = 4
TIER_APPEAR = 3
TIER_RATE = 2
TIER_CERTAIN_SMALL = 1.75
TIER_SUGGESTIVE = 1.5
TIER_ABSENT = 1
TIER_REST = 0
TIER_WEIGHT = 1000.0
# Ratios beyond this (log2) are "infinite" for ranking; 2**10 = 1024x.
MAX_LOG2_RATIO = 10.0
# A side with no counts at all stands for a rate of at most this many counts over its
# iterations (the 95% upper bound of a Poisson rate after zero events: -ln 0.05 ~ 3).
ZERO_SIDE_COUNTS = 3.0
# -log10(q) beyond this is "certain" for ranking (double precision ends near here).
MAX_SIGNIFICANCE = 16.0
KIND_ORDER = {kind: i for i, kind in enumerate(METRIC_KINDS)}


def effect_gate(
    old_center: FloatArray,
    new_center: FloatArray,
    th: Thresholds,
    signal_race: BoolArray | None = None,
    boot_state: BoolArray | None = None,
    iterations: tuple[float, float] | None = None,
) -> BoolArray:
    """True where the change is big enough to matter: ratio AND absolute delta (signal-race
    rows need ``th.signal_ratio``, noisy kernel-function rows ``th.function_ratio``).

    ``iterations``: each side's iterations in all; then a signal-race row's side that
    never saw it counts at what "none in all these iterations" still allows (95%: three
    counts, the rule of three), not at zero -- with a few iterations per run a race that
    lands about once a run is absent from every run of one boot often enough (the race
    rate moves x0.5-x2 between boots), and "appeared" would pass any ratio gate.
    """
    delta = np.abs(new_center - old_center)
    if signal_race is not None and iterations is not None:
        old_center = np.where(
            signal_race & (old_center == 0), ZERO_SIDE_COUNTS / iterations[0], old_center
        )
        new_center = np.where(
            signal_race & (new_center == 0), ZERO_SIDE_COUNTS / iterations[1], new_center
        )
    lo = np.minimum(old_center, new_center)
    hi = np.maximum(old_center, new_center)
    need: float | FloatArray = th.min_ratio
    if boot_state is not None:
        need = np.where(boot_state, th.function_ratio, need)
    if signal_race is not None:
        need = np.where(signal_race, th.signal_ratio, need)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_ok = np.where(lo > 0, hi / lo >= need, hi > 0)
    return np.asarray((delta >= th.min_abs_delta) & ratio_ok, dtype=np.bool_)


def rank_score(
    q: FloatArray, delta: FloatArray, old_center: FloatArray, new_center: FloatArray
) -> FloatArray:
    """Within-tier ranking score: significance plus effect size.

    score = min(-log10 q, 16) + log2(1 + |delta per iteration|) + min(|log2 ratio|, 10),
    a ratio with a zero side counting as 10 (1024x).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        sig = np.minimum(-np.log10(np.maximum(q, 1e-300)), MAX_SIGNIFICANCE)
        lr = np.abs(np.log2(new_center / old_center))
    lr = np.where(np.isfinite(lr), np.minimum(lr, MAX_LOG2_RATIO), MAX_LOG2_RATIO)
    lr = np.where((old_center == 0) & (new_center == 0), 0.0, lr)
    sig = np.where(np.isnan(sig), 0.0, sig)
    return np.asarray(sig + np.log2(1.0 + np.abs(delta)) + lr, dtype=np.float64)


def tier_score(tier: float, score: float) -> float:
    return round(tier * TIER_WEIGHT + score, 6)


class Classes:
    """Per key: significant, class, regression, score (vectorised over ``KeyCounts``)."""

    def __init__(
        self, counts: KeyCounts, p: FloatArray, q: FloatArray, exact: BoolArray, th: Thresholds
    ) -> None:
        c_old, c_new = counts.center_old, counts.center_new
        # Kernel-function counts tested as noisy follow the boot's state (timers, slab,
        # entropy), which one boot's runs do not sample: they need th.function_ratio.
        boot_state = counts.function_level & ~exact
        self.gate = effect_gate(
            c_old,
            c_new,
            th,
            counts.signal_race,
            boot_state,
            (float(counts.old_iters.sum()), float(counts.new_iters.sum())),
        )
        self.would_be = (q <= th.alpha) & self.gate
        self.significant = self.would_be & ~counts.context
        self.gated = (q <= th.alpha) & ~self.gate
        finding = ~counts.context
        # Certain (constant counts on both sides, different) yet below the effect gate:
        # shown as such, because nothing certain may read as "unchanged".
        self.certain_small = finding & exact & (p == 0.0) & ~self.gate
        # Past the gate and nominally significant, not past the FDR: worth a look.
        self.suggestive = finding & ~self.significant & self.gate & (p <= th.alpha) & ~exact
        # Signal races and noisy function counts past the FDR but below their own gate:
        # shown, not counted.
        self.own_gate = counts.signal_race | boot_state
        self.suggestive |= finding & self.own_gate & (q <= th.alpha) & ~self.gate
        appeared = (counts.total_old == 0) & (counts.total_new > 0)
        vanished = (counts.total_new == 0) & (counts.total_old > 0)
        sig = self.significant
        tier = np.where(
            sig,
            np.where(appeared | vanished, TIER_APPEAR, TIER_RATE),
            np.where(
                self.certain_small,
                TIER_CERTAIN_SMALL,
                np.where(self.suggestive, TIER_SUGGESTIVE, TIER_REST),
            ),
        )
        self.score = np.round(tier * TIER_WEIGHT + rank_score(q, c_new - c_old, c_old, c_new), 6)
        is_sys = counts.column("kind") == "syscall"
        is_ok = counts.column("sub") == "0"
        self.regression = sig & is_sys & np.where(is_ok, vanished, c_new > c_old)
        self.cls = np.where(
            sig,
            np.where(appeared, "appeared", np.where(vanished, "vanished", "rate")),
            np.where(
                self.certain_small,
                "certain-small",
                np.where(self.suggestive, "suggestive", "unchanged"),
            ),
        )
