"""Statistical tests for the differ: pure, vectorised, warnings returned as data.

Every function takes numpy arrays with one row per key so that tens of
thousands of keys are tested in a few array operations (``bench/bench_differ.py``).
Nothing here prints, logs or raises for statistical reasons; problems with the
sample (too few runs to ever reach significance, ...) come back as
``DiffWarning`` values for the renderer to show as footnotes.

Tests used (see README "Statistics"):

* >= 2 runs per side: two-sided Mann–Whitney U on per-iteration counts. Rows
  without ties use the exact null distribution; rows with ties use the
  tie-corrected normal approximation, floored at the smallest p-value the exact
  test can produce for that sample size (full separation), because the normal
  approximation is optimistic for the small run counts regress uses.
  95% CI of the ratio: Moses' distribution-free interval for the shift of
  log(count/iteration) (the interval that inverts the MWU test, centred on the
  Hodges–Lehmann estimate), exponentiated; only when every run has count > 0.
* 1 run on either side: counts are pooled per side and compared with the exact
  conditional binomial test for two Poisson rates (given k_old + k_new events,
  k_new ~ Binomial(k_old + k_new, E_new / (E_old + E_new)) with E = iterations);
  CI: Clopper–Pearson interval of that binomial proportion mapped to a rate ratio.
* errno composition of one syscall (one run per side): Fisher's exact test on
  the 2x2 table (calls failing with this errno, other calls of the syscall).
* Two-sided exact p-values are "doubled smaller tail" (central), capped at 1:
  conservative and vectorisable.
* Counts exactly constant across >= ``min_runs_exact`` runs on each side are
  exact: p = 0 when they differ, p = 1 when equal.
* Benjamini–Hochberg over all tested keys gives q (return-value buckets, which
  ``differ.py`` treats as context only, form their own family).
* Effect gate: a key with q <= alpha only counts when max(new/old, old/new)
  >= ``min_ratio`` AND |new - old| >= ``min_abs_delta`` per iteration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import special
from scipy import stats as sst

from regress.diffmodel import DiffWarning
from regress.errors import UsageError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# Ratios beyond this (log2) are "infinite" for ranking; 2**10 = 1024x.
MAX_LOG2_RATIO = 10.0
# -log10(q) beyond this is "certain" for ranking (double precision ends near here).
MAX_SIGNIFICANCE = 16.0


@dataclass(frozen=True)
class Thresholds:
    """Every knob of the differ in one place, recorded in each ``DiffResult``.

    alpha: FDR level; a key is significant when its BH q <= alpha (and the effect
        gate passes). Also the level of the liveness Fisher test.
    min_ratio: effect gate; new/old (or old/new) per-iteration ratio must reach this.
    min_abs_delta: effect gate; |new - old| per iteration must reach this.
    min_runs_mwu: runs per side needed for Mann–Whitney U; below it the sides are
        pooled and tested as Poisson rates.
    min_runs_exact: runs per side needed before counts that are identical in
        every run are treated as exact (deterministic) values.
    confidence: level of the ratio confidence intervals.
    """

    alpha: float = 0.05
    min_ratio: float = 1.2
    min_abs_delta: float = 0.05
    min_runs_mwu: int = 2
    min_runs_exact: int = 3
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise UsageError(f"alpha must be between 0 and 1 (got {self.alpha})")
        if not self.min_ratio >= 1.0:
            raise UsageError(f"min ratio must be >= 1 (got {self.min_ratio})")
        if not self.min_abs_delta >= 0.0:
            raise UsageError(f"min absolute delta must be >= 0 (got {self.min_abs_delta})")
        if self.min_runs_mwu < 2:
            raise UsageError(f"min runs for MWU must be >= 2 (got {self.min_runs_mwu})")
        if self.min_runs_exact < 2:
            raise UsageError(f"min runs for exact counts must be >= 2 (got {self.min_runs_exact})")
        if not 0.5 <= self.confidence < 1.0:
            raise UsageError(f"confidence must be in [0.5, 1) (got {self.confidence})")

    def as_dict(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "min_ratio": self.min_ratio,
            "min_abs_delta": self.min_abs_delta,
            "min_runs_mwu": self.min_runs_mwu,
            "min_runs_exact": self.min_runs_exact,
            "confidence": self.confidence,
        }


# --------------------------------------------------------------------------- MWU


def mwu_min_p(n1: int, n2: int) -> float:
    """Smallest two-sided exact MWU p-value possible with n1 vs n2 samples."""
    return min(1.0, 2.0 / math.comb(n1 + n2, n1))


def runs_needed_for(p_target: float) -> int:
    """Smallest n such that n vs n runs can give an exact MWU p <= ``p_target``."""
    n = 2
    while mwu_min_p(n, n) > p_target and n < 10_000:
        n += 1
    return n


def mwu_pvalues(old: FloatArray, new: FloatArray) -> FloatArray:
    """Two-sided MWU p per row of ``old`` (k, n1) vs ``new`` (k, n2).

    Exact distribution for rows without ties, tie-corrected normal approximation
    (floored at the exact minimum) otherwise; rows where every value is equal get 1.
    """
    k, n1 = old.shape
    n2 = new.shape[1]
    p = np.ones(k, dtype=np.float64)
    if k == 0:
        return p
    both = np.concatenate([old, new], axis=1)
    srt = np.sort(both, axis=1)
    has_ties = (np.diff(srt, axis=1) == 0).any(axis=1)
    all_equal = srt[:, 0] == srt[:, -1]
    exact_rows = ~has_ties
    tied_rows = has_ties & ~all_equal
    if exact_rows.any():
        res = sst.mannwhitneyu(
            new[exact_rows], old[exact_rows], axis=1, method="exact", alternative="two-sided"
        )
        p[exact_rows] = np.asarray(res.pvalue, dtype=np.float64)
    if tied_rows.any():
        res = sst.mannwhitneyu(
            new[tied_rows], old[tied_rows], axis=1, method="asymptotic", alternative="two-sided"
        )
        p[tied_rows] = np.maximum(np.asarray(res.pvalue, dtype=np.float64), mwu_min_p(n1, n2))
    return np.clip(p, 0.0, 1.0)


def _mwu_null_cdf_counts(n1: int, n2: int) -> npt.NDArray[np.float64]:
    """Number of rank arrangements giving U = 0..n1*n2 (exact null of U, no ties)."""
    # Classic recursion on the generating function prod (1-q^(n1+i)) / (1-q^i).
    maxu = n1 * n2
    # f[u] for the current (a, b); build with the Gaussian binomial coefficient.
    dist = np.zeros(maxu + 1, dtype=np.float64)
    dist[0] = 1.0
    # Multiply by (1 - q^(n1+i)) / (1 - q^i) for i = 1..n2.
    for i in range(1, n2 + 1):
        num = np.zeros(maxu + 1, dtype=np.float64)
        num[:] = dist
        shift = n1 + i
        if shift <= maxu:
            num[shift:] -= dist[: maxu + 1 - shift]
        # divide by (1 - q^i): cumulative sum with stride i
        for u in range(i, maxu + 1):
            num[u] += num[u - i]
        dist = num
    return dist


def moses_k(n1: int, n2: int, confidence: float) -> int:
    """Order-statistic index k (1-based) of Moses' CI: [D_(k), D_(N-k+1)]; 0 = unbounded."""
    alpha = 1.0 - confidence
    if n1 * n2 <= 10_000:
        dist = _mwu_null_cdf_counts(n1, n2)
        cdf = np.cumsum(dist) / dist.sum()
        # largest c with P(U <= c - 1) <= alpha/2; the CI is [D_(c), D_(N-c+1)]
        ok = np.nonzero(cdf <= alpha / 2 + 1e-12)[0]
        return int(ok[-1]) + 1 if ok.size else 0
    z = float(sst.norm.ppf(1 - alpha / 2))
    c = math.floor(n1 * n2 / 2 - z * math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12))
    return max(c, 0)


def moses_ratio_ci(
    old: FloatArray, new: FloatArray, confidence: float
) -> tuple[FloatArray, FloatArray]:
    """Distribution-free CI of new/old per row (NaN where a value is <= 0 or n is too small)."""
    k, n1 = old.shape
    n2 = new.shape[1]
    lo = np.full(k, np.nan)
    hi = np.full(k, np.nan)
    c = moses_k(n1, n2, confidence)
    if k == 0 or c < 1:
        return lo, hi
    positive = (old > 0).all(axis=1) & (new > 0).all(axis=1)
    if not positive.any():
        return lo, hi
    lo_old = np.log(old[positive])
    lo_new = np.log(new[positive])
    diffs = (lo_new[:, None, :] - lo_old[:, :, None]).reshape(lo_old.shape[0], n1 * n2)
    diffs.sort(axis=1)
    n = n1 * n2
    lo[positive] = np.exp(diffs[:, c - 1])
    hi[positive] = np.exp(diffs[:, n - c])
    return lo, hi


# --------------------------------------------------------------------------- Poisson / Fisher


def _central_p(lower_tail: FloatArray, upper_tail: FloatArray) -> FloatArray:
    """Two-sided p by doubling the smaller exact tail, capped at 1."""
    return np.clip(2.0 * np.minimum(lower_tail, upper_tail), 0.0, 1.0)


def poisson_rate_pvalues(
    k_old: FloatArray, e_old: float, k_new: FloatArray, e_new: float
) -> FloatArray:
    """Exact conditional (binomial) test of equal Poisson rates, two-sided, per row.

    ``k_*`` are pooled counts, ``e_*`` exposures (iterations).
    """
    n = k_old + k_new
    frac = e_new / (e_old + e_new)
    lower = sst.binom.cdf(k_new, n, frac)
    upper = sst.binom.sf(k_new - 1, n, frac)
    p = _central_p(np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64))
    p[n == 0] = 1.0
    return p


def poisson_ratio_ci(
    k_old: FloatArray, e_old: float, k_new: FloatArray, e_new: float, confidence: float
) -> tuple[FloatArray, FloatArray]:
    """Clopper–Pearson CI of the binomial share mapped to a rate ratio (inf upper when k_old=0)."""
    alpha = 1.0 - confidence
    n = k_old + k_new
    with np.errstate(divide="ignore", invalid="ignore"):
        pl = np.where(k_new > 0, special.betaincinv(k_new, n - k_new + 1, alpha / 2), 0.0)
        pu = np.where(k_old > 0, special.betaincinv(k_new + 1, n - k_new, 1 - alpha / 2), 1.0)
        scale = e_old / e_new
        lo = np.where(pl >= 1.0, np.inf, pl / (1.0 - pl)) * scale
        hi = np.where(pu >= 1.0, np.inf, pu / (1.0 - pu)) * scale
    bad = n == 0
    lo[bad] = np.nan
    hi[bad] = np.nan
    return np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)


def fisher_pvalues(a: FloatArray, b: FloatArray, c: FloatArray, d: FloatArray) -> FloatArray:
    """Fisher's exact test on 2x2 tables [[a, b], [c, d]] per row, two-sided (central).

    Rows are (old, new); columns (event, other). Conditioning on the margins,
    ``a`` is hypergeometric. Tables with an empty row or column give p = 1.
    """
    total = a + b + c + d
    row_old = a + b
    col_event = a + c
    lower = sst.hypergeom.cdf(a, total, col_event, row_old)
    upper = sst.hypergeom.sf(a - 1, total, col_event, row_old)
    p = _central_p(np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64))
    degenerate = (row_old == 0) | (c + d == 0) | (col_event == 0) | (b + d == 0)
    p[degenerate] = 1.0
    return p


# --------------------------------------------------------------------------- FDR, gate


def bh_qvalues(p: FloatArray) -> FloatArray:
    """Benjamini–Hochberg adjusted p-values (q), same order as ``p``."""
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(m, dtype=np.float64)
    q[order] = np.clip(q_sorted, 0.0, 1.0)
    return q


def effect_gate(old_center: FloatArray, new_center: FloatArray, th: Thresholds) -> BoolArray:
    """True where the change is big enough to matter: ratio AND absolute delta."""
    delta = np.abs(new_center - old_center)
    lo = np.minimum(old_center, new_center)
    hi = np.maximum(old_center, new_center)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_ok = np.where(lo > 0, hi / lo >= th.min_ratio, hi > 0)
    return np.asarray((delta >= th.min_abs_delta) & ratio_ok, dtype=np.bool_)


def rank_score(
    q: FloatArray, delta: FloatArray, old_center: FloatArray, new_center: FloatArray
) -> FloatArray:
    """Within-tier ranking score: significance plus effect size.

    score = min(-log10 q, 16) + log2(1 + |delta per iteration|) + min(|log2 ratio|, 10),
    a ratio with a zero side counting as 10 (1024x). Ties are broken by key.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        sig = np.minimum(-np.log10(np.maximum(q, 1e-300)), MAX_SIGNIFICANCE)
        lr = np.abs(np.log2(new_center / old_center))
    lr = np.where(np.isfinite(lr), np.minimum(lr, MAX_LOG2_RATIO), MAX_LOG2_RATIO)
    lr = np.where((old_center == 0) & (new_center == 0), 0.0, lr)
    sig = np.where(np.isnan(sig), 0.0, sig)
    return np.asarray(sig + np.log2(1.0 + np.abs(delta)) + lr, dtype=np.float64)


# --------------------------------------------------------------------------- warnings


def sample_size_warnings(
    n_old: int, n_new: int, keys_tested: int, th: Thresholds
) -> list[DiffWarning]:
    """What the run counts make impossible, stated before anyone trusts a silent diff."""
    out: list[DiffWarning] = []
    if min(n_old, n_new) < th.min_runs_mwu:
        out.append(
            DiffWarning(
                "single-run",
                f"{n_old} vs {n_new} runs: counts pooled per side and compared as Poisson rates "
                "(Fisher for errno shares); real counts vary more than Poisson between runs, "
                "so these p-values are optimistic; capture >= 5 runs per side for Mann–Whitney U",
            )
        )
        return out
    pmin = mwu_min_p(n_old, n_new)
    if pmin > th.alpha:
        need = runs_needed_for(th.alpha)
        out.append(
            DiffWarning(
                "few-runs",
                f"with {n_old} vs {n_new} runs the smallest possible Mann–Whitney p is "
                f"{pmin:.3g}: counts that vary between runs cannot reach p < {th.alpha:g}; "
                f"need >= {need} runs per side (counts constant in every run are still "
                "compared exactly)",
            )
        )
    elif keys_tested > 1 and pmin * keys_tested > th.alpha:
        need = runs_needed_for(th.alpha / keys_tested)
        out.append(
            DiffWarning(
                "mwu-power",
                f"with {n_old} vs {n_new} runs the smallest Mann–Whitney p is {pmin:.3g}; "
                f"across {keys_tested} keys a single changed key that varies between runs "
                f"cannot reach q <= {th.alpha:g} (needs ~{need} runs per side); "
                "many keys changing together, or counts constant in every run, still can",
            )
        )
    return out
