"""Statistical tests, one object per test: what it applies to, its p-values and CI, and
the sentence every report prints about it (benchstat's ``Assumption`` idea).

``choose`` decides which test each key gets, ``run_tests`` runs them (vectorised: one
call per test over all its keys, so tens of thousands of keys cost a few array
operations, ``bench/bench_differ.py``), and the differ then adjusts (BH) and gates.
Nothing here prints or raises for statistical reasons; what the sample makes impossible
comes back as ``DiffWarning`` values for the renderers' footnotes.

Tests (README "Statistics"):

* ``exact`` -- counts constant across >= ``min_runs_exact`` runs on each side: p = 0 when
  they differ, p = 1 when equal (never for context rows).
* ``ql`` -- >= ``min_runs_per_side`` runs per side, counts that vary: quasi-likelihood
  F-test with a shared, trended noise prior and one run factor (``quasi.py``).
* ``mwu`` -- kept for ``bench/bench_stats.py``'s "before" column: two-sided Mann–Whitney U
  on per-iteration counts; exact null without ties, tie-corrected normal approximation
  floored at the exact minimum otherwise; Moses' CI.
* ``poisson`` -- 1 run on a side: pooled counts, exact conditional binomial test of two
  Poisson rates; Clopper–Pearson CI mapped to a rate ratio.
* ``fisher`` -- 1 run on a side, an errno row of a syscall that succeeded on both sides:
  Fisher's exact test of the errno's share of the syscall's calls.
* ``fisher-liveness`` -- the liveness row: Fisher's exact test on failed vs passed checks.
* Two-sided exact p-values double the smaller tail (central), capped at 1.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special
from scipy import stats as sst

from regress.diff import quasi
from regress.diff.keys import BoolArray, FloatArray, KeyCounts, KeyTuple, Sequences
from regress.model.result import DiffWarning, TestMethod, Thresholds

# --------------------------------------------------------------------------- MWU


def mwu_min_p(n1: int, n2: int) -> float:
    """Smallest two-sided exact MWU p-value possible with n1 vs n2 samples."""
    return min(1.0, 2.0 / math.comb(n1 + n2, n1))


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


FISHER_EXACT_MAX = 1e7  # trials per 2x2 table above which ``_fisher_large`` takes over
FISHER_SUPPORT_MAX = 100_000  # a smaller column total up to this: exact by log-gamma


def _fisher_large(a: float, b: float, c: float, d: float) -> float:
    """Fisher's central two-sided p for one table with huge counts, in time bounded by
    the smaller column total: exact (log-gamma pmf over that column's support) when it
    is at most FISHER_SUPPORT_MAX, else the chi-square test with Yates' correction --
    every cell is then large and the approximation is accurate."""
    n, r1 = a + b + c + d, a + b
    c1, c2 = a + c, b + d
    x, m = (a, c1) if c1 <= c2 else (b, c2)  # the old row's count in the smaller column
    if m <= FISHER_SUPPORT_MAX:
        # pmf(k) = C(m, k) * [r1]_k * [n - r1]_(m - k) / [n]_m with falling factorials
        # [x]_j = x (x-1) ... (x-j+1), summed in logs term by term: each term is ~log n,
        # so nothing cancels (log-gamma of 2^53-sized arguments would lose every digit).
        j = np.arange(m)
        falling_r1 = np.concatenate([[0.0], np.cumsum(np.log(np.maximum(r1 - j, 1e-300)))])
        falling_rest = np.concatenate([[0.0], np.cumsum(np.log(np.maximum(n - r1 - j, 1e-300)))])
        log_n_m = float(np.log(n - j).sum())
        k = np.arange(max(0.0, r1 + m - n), min(m, r1) + 1.0)
        ki = k.astype(np.int64)
        log_choose = special.gammaln(m + 1) - special.gammaln(k + 1) - special.gammaln(m - k + 1)
        logp = log_choose + falling_r1[ki] + falling_rest[int(m) - ki] - log_n_m
        pmf = np.exp(logp)
        lower, upper = float(pmf[k <= x].sum()), float(pmf[k >= x].sum())
        return float(min(1.0, 2.0 * min(lower, upper)))
    diff = max(abs(a * d - b * c) - n / 2.0, 0.0)
    chi2 = n * (diff / r1) * (diff / (c + d)) / c1 / c2
    return float(sst.chi2.sf(chi2, 1))


def fisher_pvalues(a: FloatArray, b: FloatArray, c: FloatArray, d: FloatArray) -> FloatArray:
    """Fisher's exact test on 2x2 tables [[a, b], [c, d]] per row, two-sided (central).

    Rows are (old, new); columns (event, other). Conditioning on the margins,
    ``a`` is hypergeometric. Tables with an empty row or column give p = 1.
    """
    total = a + b + c + d
    row_old = a + b
    col_event = a + c
    # scipy's hypergeometric slows down with the counts themselves (2^40 took minutes):
    # beyond FISHER_EXACT_MAX trials a table is done by ``_fisher_large`` instead.
    big = total > FISHER_EXACT_MAX
    p = np.ones(total.shape, dtype=np.float64)
    small = ~big
    if small.any():
        lower = sst.hypergeom.cdf(a[small], total[small], col_event[small], row_old[small])
        upper = sst.hypergeom.sf(a[small] - 1, total[small], col_event[small], row_old[small])
        p[small] = _central_p(
            np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
        )
    for i in np.flatnonzero(big).tolist():
        p[i] = _fisher_large(float(a[i]), float(b[i]), float(c[i]), float(d[i]))
    degenerate = (row_old == 0) | (c + d == 0) | (col_event == 0) | (b + d == 0)
    p[degenerate] = 1.0
    return p


# --------------------------------------------------------------------------- FDR


def adjust(p: FloatArray, context: BoolArray, exact: BoolArray) -> FloatArray:
    """BH q-values per family: context rows, exact rows, and the tested findings.

    Exact rows are certain (p is 0 or 1, and a constancy that chance would produce is
    not taken as exact), so they are their own family: hundreds of keys that are equal in
    every run would otherwise raise the bar for the few keys whose counts vary.
    """
    q = np.ones(p.size)
    for family in (context, ~context & exact, ~context & ~exact):
        if family.any():
            q[family] = bh_qvalues(p[family])
    return q


def bh_qvalues(p: FloatArray) -> FloatArray:
    """Benjamini–Hochberg adjusted p-values (q), same order as ``p`` (scipy's)."""
    if p.size == 0:
        return p.copy()
    return np.asarray(sst.false_discovery_control(p, method="bh"), dtype=np.float64)


# --------------------------------------------------------------------------- warnings


def sample_size_warnings(n_old: int, n_new: int, th: Thresholds) -> list[DiffWarning]:
    """What the run counts make weak, stated before anyone trusts a silent diff."""
    if min(n_old, n_new) < th.min_runs_per_side:
        return [
            DiffWarning(
                "single-run",
                f"{n_old} vs {n_new} runs: counts pooled per side and compared as Poisson rates "
                "(Fisher for errno shares); real counts vary more or less than Poisson between "
                "runs, so these p-values are approximate; capture >= 3 runs per side for the "
                "quasi-likelihood test",
            )
        ]
    if min(n_old, n_new) < th.min_runs_exact:
        return [
            DiffWarning(
                "few-runs",
                f"{n_old} vs {n_new} runs: counts constant in every run cannot be taken as "
                f"exact below {th.min_runs_exact} runs per side, and each key's own noise "
                "estimate rests on few runs (the prior shared across keys carries it)",
            )
        ]
    return []


# --------------------------------------------------------------------------- test objects


EXACT_CONSTANCY_MAX = 30.0  # larger counts: the normal approximation of chance_constancy


def chance_constancy(count: FloatArray, runs: int) -> FloatArray:
    """P(``runs`` independent Poisson(count) draws are all equal), per row.

    sum_k pmf(k)^runs, summed exactly for counts up to 30 and by its normal
    approximation ((2 pi mu)^-(n-1)/2 / sqrt(n), within a few % there) above. A count
    of 0 in every run is "constant" with probability 1 -- zero is no evidence either way.
    """
    mu = np.asarray(count, dtype=np.float64)
    out = np.ones(mu.shape, dtype=np.float64)
    big = mu > EXACT_CONSTANCY_MAX
    out[big] = (2 * np.pi * mu[big]) ** (-(runs - 1) / 2) / np.sqrt(runs)
    small = (mu > 0) & ~big
    if small.any():
        k = np.arange(int(EXACT_CONSTANCY_MAX * 4) + 1, dtype=np.float64)[None, :]
        out[small] = np.exp(runs * sst.poisson.logpmf(k, mu[small][:, None])).sum(axis=1)
    return out


def sequence_chance(
    seqs: Sequences | None, keys: list[KeyTuple], ask: BoolArray, runs: int
) -> FloatArray:
    """Per key: P(``runs`` Poisson draws coincide at every iteration), when every run
    repeated the same per-iteration sequence -- the product over iterations of
    ``chance_constancy`` of that iteration's count; 1 where the runs' sequences differ,
    there are none, or ``ask`` is False (only keys the run totals left in doubt are read)."""
    out = np.ones(len(keys), dtype=np.float64)
    if seqs is None:
        return out
    for i in np.flatnonzero(ask).tolist():
        seq = seqs.repeated(keys[i])
        if seq is not None:
            values = np.asarray(seq, dtype=np.float64)
            with np.errstate(divide="ignore"):
                out[i] = float(np.exp(np.log(chance_constancy(values, runs)).sum()))
            if len(set(seq)) == 1:
                # The same count at every iteration of every run: all runs x iterations
                # draws equal is rarer still; of the two events (chosen after seeing the
                # data) the smaller chance is taken twice over (Bonferroni).
                every = float(chance_constancy(values[:1], runs * values.size)[0])
                out[i] = min(1.0, 2.0 * min(out[i], every))
    return out


@dataclass(frozen=True)
class Outcome:
    """p-values and ratio CI bounds (NaN: no interval) of one test over its rows."""

    p: FloatArray
    lo: FloatArray
    hi: FloatArray
    notes: tuple[str, ...] = ()  # what the test learned about the data, for the report


class StatTest(ABC):
    """One statistical test: which keys it applies to, and what it says about them."""

    method: TestMethod

    @property
    def name(self) -> str:
        return self.method.name

    @abstractmethod
    def applies(self, counts: KeyCounts, th: Thresholds) -> BoolArray:
        """Rows this test can judge (the first test in ``choose``'s order that applies wins)."""

    @abstractmethod
    def run(self, counts: KeyCounts, rows: BoolArray, th: Thresholds) -> Outcome:
        """p and CI for ``rows`` (vectorised; returned arrays have one entry per row)."""


class ExactConstant(StatTest):
    method = TestMethod(
        "exact",
        "exact: the count was the same in every run on each side, so a difference is certain "
        "(p = 0) and equality is p = 1; taken only where Poisson noise would rarely make the "
        "runs equal (their totals, or the same count at every iteration of every run)",
    )

    def applies(self, counts: KeyCounts, th: Thresholds) -> BoolArray:
        if min(counts.n_old, counts.n_new) < th.min_runs_exact or not len(counts):
            return np.zeros(len(counts), dtype=bool)
        po, pn = counts.per_iter_old, counts.per_iter_new
        # Return-value buckets measure data sizes (/proc text lengths, clock digits),
        # which can be constant within one capture session yet differ between two
        # sessions of the same kernel (seen in ps-loop A/A runs): never exact.
        constant = (po == po[:, :1]).all(axis=1) & (pn == pn[:, :1]).all(axis=1)
        # Small counts can be equal in every run by chance (3 runs of a count near 6 are
        # all equal ~2% of the time under Poisson noise): only a constancy that chance
        # would rarely produce is taken as determinism.
        # A side that is 0 in every run says nothing either way; the other side must then
        # carry the evidence (an "appeared" key constant at 8 per iteration is certain).
        eps = th.max_chance_constancy
        rows = ~counts.context & constant
        a, b = counts.old[rows, 0], counts.new[rows, 0]
        co = chance_constancy(a, counts.n_old)
        cn = chance_constancy(b, counts.n_new)
        # What the run totals cannot tell, the per-iteration counts may: every run
        # repeating the same sequence is n coincidences per iteration, not one per run.
        keys = [counts.keys[i] for i in np.flatnonzero(rows)]
        co = np.minimum(
            co, sequence_chance(counts.old_seq, keys, (a > 0) & (co > eps), counts.n_old)
        )
        cn = np.minimum(
            cn, sequence_chance(counts.new_seq, keys, (b > 0) & (cn > eps), counts.n_new)
        )
        # Each non-zero side on its own evidence (judging both sides' chances jointly
        # made 2.65 A/A false positives per 10k keys in the 3-iteration CI profile)
        lo, ln = co <= eps, cn <= eps
        unlikely = (lo | (a == 0)) & (ln | (b == 0)) & (lo | ln)
        out = np.zeros(len(counts), dtype=np.bool_)
        out[rows] = unlikely
        return out

    def run(self, counts: KeyCounts, rows: BoolArray, th: Thresholds) -> Outcome:
        a, b = counts.per_iter_old[rows, 0], counts.per_iter_new[rows, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(a > 0, b / a, np.nan)
        return Outcome(np.where(a != b, 0.0, 1.0), r, r.copy())


class _PerRunTest(StatTest):
    """A test of run-to-run noise: applies to every key once both sides have enough runs."""

    def applies(self, counts: KeyCounts, th: Thresholds) -> BoolArray:
        ok = min(counts.n_old, counts.n_new) >= th.min_runs_per_side
        return np.full(len(counts), ok, dtype=bool)


class MannWhitney(_PerRunTest):
    method = TestMethod(
        "mwu",
        "Mann–Whitney U test on the per-run values (two-sided; exact null without ties), "
        "median ratio with Moses' distribution-free 95% CI",
    )

    def run(self, counts: KeyCounts, rows: BoolArray, th: Thresholds) -> Outcome:
        po, pn = counts.per_iter_old[rows], counts.per_iter_new[rows]
        lo, hi = moses_ratio_ci(po, pn, th.confidence)
        return Outcome(mwu_pvalues(po, pn), lo, hi)


RUN_FACTOR_NOTE_RATIO = 1.05


class QuasiLikelihood(_PerRunTest):
    """Counts that vary between runs: QL F-test with a shared, trended noise prior."""

    method = TestMethod(
        "ql",
        "quasi-likelihood F-test on the per-run counts (two-sided): a log-linear model with "
        "iterations as exposure, quasi-Poisson dispersion per key shrunk toward a prior "
        "shared by keys of similar size (empirical Bayes), Wald 95% CI of the ratio; keys "
        "that move together between runs get that run factor as an offset first (its "
        "estimation error widens their tests); assumes runs are independent apart from "
        "one shared factor, and variance proportional to the mean",
    )

    def run(self, counts: KeyCounts, rows: BoolArray, th: Thresholds) -> Outcome:
        # The prior is fitted on every non-context key (the noise is shared), then the
        # requested rows are read off.
        fit = ~counts.context | rows
        res = quasi.ql_test(
            counts.old[fit],
            counts.new[fit],
            counts.old_iters,
            counts.new_iters,
            th.confidence,
            noisy_within=_noisy_within(counts, rows)[fit],
        )
        pick = rows[fit]
        notes: tuple[str, ...] = ()
        fac = res.factor
        moved = float(np.median(np.exp(fac.b[fac.b != 0] * fac.shift))) if fac else 1.0
        # Said only when the factor moved between the kernels by a visible amount; the
        # method section always says that it is modelled.
        if fac is not None and abs(np.log(moved)) >= np.log(RUN_FACTOR_NOTE_RATIO):
            notes = (
                f"{fac.keys} keys move together from run to run (one factor shared by the "
                f"run explains {100 * fac.explained:.0f}% of their spread); it was taken out "
                "before testing them. Between the kernels it moved them by "
                f"x{moved:.3g} (median key), which is not counted as a change of "
                "any key",
            )
        return Outcome(res.p[pick], res.lo[pick], res.hi[pick], notes)


def _noisy_within(counts: KeyCounts, rows: BoolArray) -> BoolArray:
    """Of ``rows``, keys whose totals are equal in every run of each side although their
    runs split them differently over the iterations (on a side whose per-iteration
    counts are known): noisy keys whose run totals coincided."""
    out = np.zeros(len(counts), dtype=np.bool_)
    sides = ((counts.old, counts.old_seq), (counts.new, counts.new_seq))
    if not any(seq is not None and seq.known for _, seq in sides):
        return out
    flat = rows & (counts.old == counts.old[:, :1]).all(axis=1)
    flat &= (counts.new == counts.new[:, :1]).all(axis=1)
    for i in np.flatnonzero(flat).tolist():
        key = counts.keys[i]
        out[i] = any(
            seq is not None and seq.known and y[i, 0] > 0 and seq.repeated(key) is None
            for y, seq in sides
        )
    return out


class FisherShare(StatTest):
    method = TestMethod(
        "fisher",
        "Fisher's exact test of this errno's share of the syscall's calls (one run per "
        "side; a change in call volume shows on the syscall's ok row instead)",
    )

    def applies(self, counts: KeyCounts, th: Thresholds) -> BoolArray:
        if min(counts.n_old, counts.n_new) >= th.min_runs_per_side:
            return np.zeros(len(counts), dtype=bool)
        kinds, subs = counts.column("kind"), counts.column("sub")
        _, _, ok_old, ok_new = counts.syscall_totals()
        # Without successes on both sides there is no share to speak of: the errno's
        # rate is tested instead (Poisson).
        return np.asarray(
            (kinds == "syscall") & (subs != "0") & (ok_old > 0) & (ok_new > 0), dtype=np.bool_
        )

    def run(self, counts: KeyCounts, rows: BoolArray, th: Thresholds) -> Outcome:
        all_old, all_new, _, _ = counts.syscall_totals()
        to, tn = counts.total_old[rows], counts.total_new[rows]
        p = fisher_pvalues(to, all_old[rows] - to, tn, all_new[rows] - tn)
        nan = np.full(int(rows.sum()), np.nan)
        return Outcome(p, nan, nan.copy())


class PoissonRate(StatTest):
    method = TestMethod(
        "poisson",
        "exact test of two Poisson rates on the counts pooled per side (one run per side; "
        "optimistic when counts vary more than Poisson between runs), Clopper–Pearson CI",
    )

    def applies(self, counts: KeyCounts, th: Thresholds) -> BoolArray:
        return np.ones(len(counts), dtype=bool)

    def run(self, counts: KeyCounts, rows: BoolArray, th: Thresholds) -> Outcome:
        e_old, e_new = float(counts.old_iters.sum()), float(counts.new_iters.sum())
        to, tn = counts.total_old[rows], counts.total_new[rows]
        lo, hi = poisson_ratio_ci(to, e_old, tn, e_new, th.confidence)
        return Outcome(poisson_rate_pvalues(to, e_old, tn, e_new), lo, hi)


class FisherLiveness:
    """The outcome rows (liveness, exit status): pre-specified endpoints, alpha without FDR."""

    method = TestMethod(
        "fisher-outcome",
        "Fisher's exact test on failed vs passed iterations (liveness check; command exit "
        "status, a timeout counting as a failure), pooled per side; pre-specified "
        "endpoints, each tested at alpha without FDR adjustment",
    )

    @property
    def name(self) -> str:
        return self.method.name

    def pvalue(self, failed_old: int, passed_old: int, failed_new: int, passed_new: int) -> float:
        arr = np.array
        return float(
            fisher_pvalues(
                arr([float(failed_old)]),
                arr([float(passed_old)]),
                arr([float(failed_new)]),
                arr([float(passed_new)]),
            )[0]
        )


# Preference order: the first test that applies to a row judges it.
MULTI_RUN: tuple[StatTest, ...] = (ExactConstant(), QuasiLikelihood())
# Before the QL test (kept for bench/bench_stats.py's side-by-side comparison).
MULTI_RUN_MWU: tuple[StatTest, ...] = (ExactConstant(), MannWhitney())
SINGLE_RUN: tuple[StatTest, ...] = (FisherShare(), PoissonRate())
LIVENESS = FisherLiveness()


def choose(
    counts: KeyCounts, th: Thresholds, multi_run: tuple[StatTest, ...] = MULTI_RUN
) -> list[tuple[StatTest, BoolArray]]:
    """Which test judges which rows: every row exactly one test."""
    multi = min(counts.n_old, counts.n_new) >= th.min_runs_per_side
    free = np.ones(len(counts), dtype=bool)
    plan: list[tuple[StatTest, BoolArray]] = []
    for test in multi_run if multi else SINGLE_RUN:
        rows = free & test.applies(counts, th)
        if rows.any():
            plan.append((test, rows))
        free &= ~rows
    return plan


@dataclass(frozen=True)
class TestRun:
    """Every key's p, CI bounds and test name, plus the tests used (for the report)."""

    p: FloatArray
    lo: FloatArray
    hi: FloatArray
    test: list[str]
    methods: tuple[TestMethod, ...]
    notes: tuple[str, ...] = ()


def run_tests(
    counts: KeyCounts, th: Thresholds, multi_run: tuple[StatTest, ...] = MULTI_RUN
) -> TestRun:
    k = len(counts)
    p = np.ones(k)
    lo = np.full(k, np.nan)
    hi = np.full(k, np.nan)
    names = np.empty(k, dtype=object)
    methods: list[TestMethod] = []
    notes: list[str] = []
    for test, rows in choose(counts, th, multi_run):
        out = test.run(counts, rows, th)
        p[rows], lo[rows], hi[rows] = out.p, out.lo, out.hi
        names[rows] = test.name
        methods.append(test.method)
        notes += out.notes
    return TestRun(np.clip(p, 0.0, 1.0), lo, hi, names.tolist(), tuple(methods), tuple(notes))
