"""Quasi-likelihood F-tests for count keys with a shared, abundance-trended noise prior.

The problem is genomics' (edgeR/DESeq2/limma): a handful of runs per kernel and
thousands of count keys. A per-key test on 3-5 runs has almost no power (Mann–Whitney's
smallest p at 5 vs 5 runs is 0.0079, nothing survives BH over thousands of keys), but
the keys share their noise: the run-to-run variation of one key tells a lot about
another of similar size. So, per key (vectorised over all keys):

1. A two-group log-linear model of the per-run counts, with iterations as exposure:
   ``mu_j = e_j * lambda_side``, fitted in closed form (the Poisson MLE).
2. The quasi-Poisson dispersion ``s2 = D_alt / d`` (residual deviance over its ``d =
   n_old + n_new - 2`` degrees of freedom): variance = ``s2 * mu``. It may be < 1 --
   regress's counts are often *under*-dispersed, which a negative binomial cannot say.
3. Empirical-Bayes shrinkage (limma's ``squeezeVar``): the ``s2`` of all keys are
   fitted as a scaled F distribution whose scale ``s0^2`` follows a trend in log
   abundance (so keys whose noise grows like ``mu^2`` -- one shared per-run factor --
   are judged against keys of their own size), giving prior df ``d0``; each key's
   posterior dispersion is ``(d0 s0^2 + d s2) / (d0 + d)``.
4. ``F = (D_null - D_alt) / s2_post`` on ``(1, d0 + d)`` degrees of freedom, and a
   Wald interval for the rate ratio with the posterior dispersion.

5. **Shared run factors.** Keys are not independent: in real captures most of the
   run-to-run movement of the varying keys is one factor shared by the run (how often
   the shell's ``wait`` is interrupted moves a dozen keys together). Pooling noise over
   keys then adds no information about *that* factor -- every key saw the same few
   runs -- and testing on ``d0 + d`` df made whole clusters of keys significant in A/A
   pairs. So the first principal component of the keys' standardised residuals is
   measured; the share of each key's residual variation it explains beyond what
   independent noise would give (``loading``) takes that fraction of the prior's df
   away from the key: ``df_k = d + d0 (1 - loading_k)``. A key driven by the shared
   factor is tested on its own ``d`` df, an independent one keeps the full prior.

Keys whose counts never vary carry no information about noise (``s2 = 0``) and are
left out of the prior fit (they are still tested with the prior). Stated assumptions
(printed by every report): runs are independent; variance is proportional to the mean
with a dispersion that varies smoothly with abundance; keys share at most one run
factor beyond that.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special
from scipy import stats as sst

FloatArray = npt.NDArray[np.float64]

# Fewer keys with varying counts than this: no prior, each key on its own df.
MIN_KEYS_FOR_PRIOR = 8
# Trend of the prior's scale: polynomial degree in log abundance.
TREND_DEGREE = 2
# The prior never counts for more than this many residual df: a key whose own noise is
# far above its neighbours' still moves its posterior (limma's d0 can be infinite when
# the keys' dispersions scatter no more than sampling explains; with 2-6 df per key that
# is common, and one unusually noisy key would then be judged by its neighbours alone).
MAX_PRIOR_DF = 30.0


def _xlogy(y: FloatArray, x: FloatArray) -> FloatArray:
    """y * log(x) with 0 * log(0) = 0."""
    return np.asarray(special.xlogy(y, x), dtype=np.float64)


def poisson_deviance(y: FloatArray, mu: FloatArray) -> FloatArray:
    """Row sums of the Poisson unit deviance 2 [y log(y/mu) - (y - mu)]."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.divide(y, mu, out=np.ones_like(y), where=mu > 0)
        unit = 2.0 * (_xlogy(y, ratio) - (y - mu))
    unit = np.where(mu > 0, unit, 0.0)
    return np.asarray(np.maximum(unit, 0.0).sum(axis=1), dtype=np.float64)


def trigamma_inverse(x: FloatArray) -> FloatArray:
    """Solve trigamma(y) = x for y > 0 (Newton's method, as limma's trigammaInverse)."""
    x = np.asarray(x, dtype=np.float64)
    y = 0.5 + 1.0 / x
    for _ in range(50):
        tri = special.polygamma(1, y)
        step = tri * (1.0 - tri / x) / special.polygamma(2, y)
        y = y + step
        if np.all(np.abs(step / y) < 1e-8):
            break
    return y


@dataclass(frozen=True)
class Prior:
    """The shared noise prior: scale per key (trended) and prior degrees of freedom."""

    s0_sq: FloatArray  # per key
    d0: float  # at most MAX_PRIOR_DF


def fit_prior(
    s2: FloatArray, d: float, log_abundance: FloatArray, informative: npt.NDArray[np.bool_]
) -> Prior:
    """limma's fitFDist with an abundance trend, over the ``informative`` keys."""
    k = s2.size
    use = informative & (s2 > 0) & np.isfinite(log_abundance)
    if int(use.sum()) < MIN_KEYS_FOR_PRIOR:
        # Too few keys to learn the noise from: no prior (d0 = 0); ``ql_test`` then floors
        # each key's dispersion at Poisson's, as edgeR floors at Poisson -- never "no
        # noise at all" for a key that happened not to vary.
        return Prior(np.ones(k), 0.0)
    z = np.log(s2[use])
    e = z - special.digamma(d / 2.0) + np.log(d / 2.0)
    x = log_abundance[use]
    degree = min(TREND_DEGREE, max(0, int(np.unique(np.round(x, 6)).size) - 1))
    coef = np.polyfit(x, e, degree) if degree > 0 else np.array([e.mean()])
    fitted = np.polyval(coef, x)
    n = e.size
    evar = float(np.sum((e - fitted) ** 2) / max(n - degree - 1, 1)) - float(
        special.polygamma(1, d / 2.0)
    )
    trend = np.polyval(coef, np.where(np.isfinite(log_abundance), log_abundance, x.mean()))
    d0 = float(2.0 * trigamma_inverse(np.array([evar]))[0]) if evar > 0 else MAX_PRIOR_DF
    d0 = min(d0, MAX_PRIOR_DF)
    s0_sq = np.exp(trend + special.digamma(d0 / 2.0) - np.log(d0 / 2.0))
    return Prior(np.asarray(s0_sq, dtype=np.float64), d0)


# Simulated residual matrices averaged to know what the first component's loadings
# would be with independent noise (deterministic: fixed seed), at most NULL_ROWS keys
# each: the null's loadings settle long before that, and fewer keys only make the null
# share larger (a factor must stand out more to be fitted).
NULL_DRAWS = 8
NULL_ROWS = 4000


def _center_within(m: FloatArray, n1: int) -> FloatArray:
    """``m`` (keys x runs) with each side's mean removed per key (in place; returned)."""
    m[:, :n1] -= m[:, :n1].mean(axis=1, keepdims=True)
    m[:, n1:] -= m[:, n1:].mean(axis=1, keepdims=True)
    return m


def _null_draws(rows: int, n: int, n1: int) -> Iterator[FloatArray]:
    """``NULL_DRAWS`` Gaussian (rows x n) matrices, centred within sides like residuals;
    fixed seed, at most ``NULL_ROWS`` rows."""
    rng = np.random.default_rng(0)
    for _ in range(NULL_DRAWS):
        yield _center_within(rng.standard_normal((min(rows, NULL_ROWS), n)), n1)


# The nulls depend on the shape alone (fixed seed): computed once per shape and process
# (a run diffs twice -- the kernels, then the A/A split -- and bisect many times).
@functools.lru_cache(maxsize=64)
def _null_loading(rows: int, n: int, n1: int) -> float:
    """Mean first-component loading of independent Gaussian residuals of this shape."""
    draws = _null_draws(rows, n, n1)
    return sum(float(_first_component_loadings(g).mean()) for g in draws) / NULL_DRAWS


@functools.lru_cache(maxsize=64)
def _null_explained(rows: int, n: int, n1: int) -> float:
    """The largest share a first component explains in NULL_DRAWS Gaussian draws."""
    return max(first_component_share(g) for g in _null_draws(rows, n, n1))


def _top_component(m: FloatArray) -> tuple[float, FloatArray]:
    """(squared first singular value, first right singular vector) of ``m`` (keys x runs),
    from the runs x runs Gram matrix: a thin SVD of 50k x 20 computes U as well and took
    ~0.3 s a time; this is a 20 x 20 eigenproblem."""
    w, vecs = np.linalg.eigh(m.T @ m)
    return float(max(w[-1], 0.0)), np.asarray(vecs[:, -1], dtype=np.float64)


def _first_component_loadings(resid: FloatArray) -> FloatArray:
    """Per row: squared cosine between the row and the matrix's first right singular vector."""
    norms = np.linalg.norm(resid, axis=1)
    z = resid[norms > 0] / norms[norms > 0, None]
    out = np.zeros(resid.shape[0])
    if z.shape[0] < 2:
        return out
    _, v = _top_component(z)
    out[norms > 0] = (z @ v) ** 2
    return out


def shared_factor_loading(
    resid: FloatArray, groups: tuple[int, int], informative: npt.NDArray[np.bool_]
) -> FloatArray:
    """Per key, 0..1: how much of its residual variation one factor shared by the runs
    explains beyond independent noise (0 for keys that are not ``informative``).

    The expected loading under independence is measured on Gaussian matrices of the
    same shape with the group means removed, as the real residuals have them.
    """
    k = resid.shape[0]
    out = np.zeros(k)
    use = informative & np.all(np.isfinite(resid), axis=1)
    if int(use.sum()) < MIN_KEYS_FOR_PRIOR:
        return out
    observed = _first_component_loadings(resid[use])
    n1, n2 = groups
    null = _null_loading(min(int(use.sum()), NULL_ROWS), n1 + n2, n1)
    if null >= 1.0:
        return out
    out[use] = np.clip((observed - null) / (1.0 - null), 0.0, 1.0)
    return out


@dataclass(frozen=True)
class QLResult:
    p: FloatArray
    lo: FloatArray
    hi: FloatArray
    s2_post: FloatArray
    prior: Prior
    df_total: FloatArray  # per key: d + the prior df left after the shared factor
    loading: FloatArray  # per key: share of its noise that is the shared run factor
    factor: RunFactor | None  # the run factor taken out first, when there was one


@dataclass(frozen=True)
class RunFactor:
    """One factor shared by the runs, fitted from the keys that move together.

    ``log mu_kj = log e_j + log lambda_k,side + b_k f_j``: ``f`` per run (old runs,
    then new), ``b`` per key (0 for keys the factor does not drive). ``shift`` is the
    factor's move between the sides (new - old), estimated from the driven keys'
    log ratios by a weighted median: most keys do not really change, as DESeq2's
    size factors assume, so what the driven keys share is the runs' doing.
    """

    b: FloatArray  # per key
    f: FloatArray  # per run, the between-side shift included
    shift: float
    shift_var: float  # sampling variance of ``shift``, added to every driven key's test
    keys: int  # keys driven by it
    explained: float  # share of the residual variation of the fitted keys it explains


# A key is driven by the run factor when the factor explains more than this share of its
# residual variation (weighted log scale).
DRIVEN_SHARE = 0.5
# Keys averaging fewer counts per run than this (on either side) are too grainy to fit
# the factor on.
MIN_FACTOR_COUNTS = 10.0
# No driven key's weight in the factor's shift exceeds this many median keys' weights.
MAX_WEIGHT_SHARE = 3.0


def first_component_share(m: FloatArray) -> float:
    """Share of ``m``'s squared norm its first component explains, rows made unit length
    (the null for ``fit_run_factor``'s direction; bench_stats measures real captures'
    shared factor with it)."""
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    z = np.divide(m, norms, out=np.zeros_like(m), where=norms > 0)
    return _top_component(z)[0] / max(float((z**2).sum()), 1e-300)


def _weighted_median(x: FloatArray, w: FloatArray) -> float:
    order = np.argsort(x)
    cum = np.cumsum(w[order])
    return float(x[order][int(np.searchsorted(cum, 0.5 * cum[-1]))])


def fit_run_factor(
    y: FloatArray, e: FloatArray, n1: int, informative: npt.NDArray[np.bool_]
) -> RunFactor | None:
    """The run factor of ``y`` (keys, runs), or None when there is none to speak of.

    Needs at least 3 residual df (it costs the driven keys one) and
    ``MIN_KEYS_FOR_PRIOR`` keys with enough counts; the first principal component of
    their within-side log residuals (each key's scaled to unit length) must explain more
    than it does in Gaussian noise of the same shape.
    """
    k, n = y.shape
    if n - 2 < 3:
        return None
    # Enough counts on both sides: a small key that changed must not qualify by its change
    smaller = np.minimum(y[:, :n1].mean(axis=1), y[:, n1:].mean(axis=1))
    use = informative & (smaller >= MIN_FACTOR_COUNTS)
    if int(use.sum()) < MIN_KEYS_FOR_PRIOR:
        return None
    # Log counts of every key that varies, each side's mean removed (within-side residuals).
    ly = np.log((y[informative] + 0.5) / e[informative])
    lr_all = ly[:, n1:].mean(axis=1) - ly[:, :n1].mean(axis=1)  # log ratio new/old
    resid = _center_within(ly, n1)
    sub = use[informative]  # the keys with enough counts to fit the factor on
    r = resid[sub]
    # The direction from rows of unit length: every key counts once, so one noisy key
    # (or one whose change scaled its noise) cannot make the "shared" factor its own.
    norms = np.linalg.norm(r, axis=1)
    rw = np.divide(r, norms[:, None], out=np.zeros_like(r), where=norms[:, None] > 0)
    top, v = _top_component(rw)
    explained = top / max(float((rw**2).sum()), 1e-300)
    null = _null_explained(min(rw.shape[0], NULL_ROWS), n, n1)
    if explained <= null:
        return None
    b_use = r @ v
    share = (rw @ v) ** 2
    driven = share > DRIVEN_SHARE
    if int(driven.sum()) < 2:
        return None
    lr = lr_all[sub]
    bd = b_use[driven]
    # Each key's own estimate of the shift is its log ratio over its loading; weighted
    # by its precision: the loading squared over the key's residual variance that the
    # factor leaves (floored at Poisson's on the log scale, from its smaller side, so a
    # key's own change never buys it weight).
    left = np.maximum(norms[driven] ** 2 - bd**2, 0.0) / max(n - 3, 1)
    sigma2 = np.maximum(left, 1.0 / smaller[use][driven])
    # ...and no key weighs more than MAX_WEIGHT_SHARE times the median driven key: a
    # weighted median that one key can carry is that key's estimate, not the keys'.
    wd = bd**2 / sigma2
    wd = np.minimum(wd, MAX_WEIGHT_SHARE * float(np.median(wd)))
    ratios = lr[driven] / bd
    shift = _weighted_median(ratios, wd)
    # Its sampling variance: the weighted MAD of the keys' own estimates, a median's
    # efficiency (pi/2) and the effective number of keys behind it -- never below what
    # the keys' own noise gives the weighted mean of their estimates (a MAD can be 0).
    mad = 1.4826 * _weighted_median(np.abs(ratios - shift), wd)
    n_eff = float(wd.sum() ** 2 / max(float((wd**2).sum()), 1e-300))
    own = sigma2 * (1.0 / n1 + 1.0 / (n - n1)) / bd**2
    floor = float((wd**2 * own).sum() / wd.sum() ** 2)
    shift_var = max(mad**2 * (np.pi / 2) / max(n_eff, 1.0), floor)
    # Every key that varies gets its own loading (smaller keys too: the factor moves
    # them as well, their counts are just grainier); keys it does not touch get ~0.
    b = np.zeros(k)
    b[informative] = resid @ v
    f = v.copy()
    f[n1:] += shift
    return RunFactor(b, f, shift, shift_var, int(driven.sum()), explained)


def ql_test(
    old: FloatArray,
    new: FloatArray,
    e_old: FloatArray,
    e_new: FloatArray,
    confidence: float,
    noisy_within: npt.NDArray[np.bool_] | None = None,
) -> QLResult:
    """QL F-test of equal rates per row of ``old`` (k, n1) vs ``new`` (k, n2) raw counts.

    When the keys share a run factor (``fit_run_factor``), the keys it drives get it as
    a per-run offset (one residual df less) and are tested on what it leaves.
    ``noisy_within``: keys known to vary from iteration to iteration although their run
    totals may not (their posterior is then floored at Poisson's).
    """
    n1, n2 = old.shape[1], new.shape[1]
    y = np.concatenate([old, new], axis=1)
    e_runs = np.concatenate([e_old, e_new])
    e = np.broadcast_to(e_runs[None, :], y.shape)
    fit = _fit(y, e, n1)
    factor = fit_run_factor(y, e, n1, fit.dev_alt > 1e-12)
    d = np.full(y.shape[0], float(n1 + n2 - 2))
    if factor is not None:
        e = e * np.exp(factor.b[:, None] * factor.f[None, :])
        fit = _fit(y, e, n1)
        d = d - (factor.b != 0)
    return _ql_from_fit(y, fit, d, n1, n2, confidence, factor, noisy_within)


@dataclass(frozen=True)
class _Fit:
    tot_o: FloatArray
    tot_n: FloatArray
    lam_o: FloatArray
    lam_n: FloatArray
    mu_alt: FloatArray
    dev_alt: FloatArray
    dev_null: FloatArray


def _fit(y: FloatArray, e: FloatArray, n1: int) -> _Fit:
    """Poisson MLE of the one- and two-rate models with per-key, per-run exposures."""
    tot_o, tot_n = y[:, :n1].sum(axis=1), y[:, n1:].sum(axis=1)
    exp_o, exp_n = e[:, :n1].sum(axis=1), e[:, n1:].sum(axis=1)
    lam_o, lam_n = tot_o / exp_o, tot_n / exp_n
    lam_0 = (tot_o + tot_n) / (exp_o + exp_n)
    mu_alt = np.concatenate([lam_o[:, None] * e[:, :n1], lam_n[:, None] * e[:, n1:]], axis=1)
    mu_null = lam_0[:, None] * e
    return _Fit(
        tot_o,
        tot_n,
        lam_o,
        lam_n,
        mu_alt,
        poisson_deviance(y, mu_alt),
        poisson_deviance(y, mu_null),
    )


def _ql_from_fit(
    y: FloatArray,
    fit: _Fit,
    d_keys: FloatArray,
    n1: int,
    n2: int,
    confidence: float,
    factor: RunFactor | None,
    noisy_within: npt.NDArray[np.bool_] | None = None,
) -> QLResult:
    tot_o, tot_n, lam_o, lam_n = fit.tot_o, fit.tot_n, fit.lam_o, fit.lam_n
    mu_alt, dev_alt, dev_null = fit.mu_alt, fit.dev_alt, fit.dev_null
    d = float(n1 + n2 - 2)
    s2 = dev_alt / d_keys
    with np.errstate(divide="ignore"):  # keys never seen: -inf, left out of the prior fit
        abundance = np.log((tot_o + tot_n) / (n1 + n2))
    informative = dev_alt > 1e-12
    prior = fit_prior(s2, d, abundance, informative=informative)
    with np.errstate(divide="ignore", invalid="ignore"):
        resid = np.where(mu_alt > 0, (y - mu_alt) / np.sqrt(mu_alt), 0.0)
    loading = shared_factor_loading(resid, (n1, n2), informative)
    if prior.d0 == 0:
        s2_post = np.maximum(s2, prior.s0_sq)
        df_total = d_keys.copy()
    else:
        d0 = prior.d0 * (1.0 - loading)
        s2_post = (d0 * prior.s0_sq + d_keys * s2) / (d0 + d_keys)
        df_total = d0 + d_keys
    # Keys that did not vary within either side (s2 = 0) but were not certain enough for
    # the exact rule (small counts at few runs): identical small counts are what rounding
    # gives, so their own zero may not pull them below their neighbours' noise -- unless
    # that is above Poisson's: the posterior is floored at the neighbours' scale, capped
    # at Poisson. (Without a floor, rounding flips like [2, 2, 2] -> [3, 3, 3] among quiet
    # neighbours were significant in clusters; flooring at the neighbours' scale alone
    # let the selftest fault's openat EACCES, 0 -> 6 in every run of 4, drown in noisy
    # neighbours.)
    # A key whose runs split their equal totals differently over the iterations is a
    # noisy key whose totals happened to coincide: at least Poisson's noise, then.
    floor = np.minimum(prior.s0_sq, 1.0)
    if noisy_within is not None:
        floor = np.where(noisy_within, np.maximum(floor, 1.0), floor)
    s2_post = np.where(dev_alt > 1e-12, s2_post, np.maximum(s2_post, floor))
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / tot_o + 1.0 / tot_n
        if factor is not None:
            # The offset b_k * shift is estimated, not known: the shift's error (shared by
            # every driven key) and the key's own loading's error (its within-side noise,
            # on the log scale, extrapolated by the shift) both widen the key's test.
            per_run = (tot_o + tot_n) / (n1 + n2)
            var_b = np.where((factor.b != 0) & (per_run > 0), s2_post / per_run, 0.0)
            extra = factor.b**2 * factor.shift_var + factor.shift**2 * var_b
            s2_post = s2_post + np.where(np.isfinite(inv) & (inv > 0), extra / inv, 0.0)
    lr = np.maximum(dev_null - dev_alt, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(s2_post > 0, lr / s2_post, np.where(lr > 0, np.inf, 0.0))
    p = sst.f.sf(f, 1, df_total)
    p = np.where(tot_o + tot_n > 0, p, 1.0)
    # Wald interval of log(lambda_new / lambda_old) with the posterior dispersion
    # df_total takes few distinct values (prior df + residual df): the quantile once each
    df_u, df_at = np.unique(np.broadcast_to(df_total, lam_n.shape), return_inverse=True)
    quant = sst.t.ppf(0.5 + confidence / 2, df_u)[df_at.reshape(lam_n.shape)]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        beta = np.log(lam_n / lam_o)
        se = np.sqrt(s2_post * (1.0 / tot_o + 1.0 / tot_n))
        ok = (tot_o > 0) & (tot_n > 0)
        lo = np.where(ok, np.exp(beta - quant * se), np.nan)
        hi = np.where(ok, np.exp(beta + quant * se), np.nan)
    return QLResult(
        np.asarray(np.clip(p, 0.0, 1.0), dtype=np.float64),
        np.asarray(lo, dtype=np.float64),
        np.asarray(hi, dtype=np.float64),
        np.asarray(s2_post, dtype=np.float64),
        prior,
        np.asarray(df_total, dtype=np.float64),
        loading,
        factor,
    )
