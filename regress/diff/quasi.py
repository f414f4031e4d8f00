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

Keys whose counts never vary carry no information about noise (``s2 = 0``) and are
left out of the prior fit (they are still tested with the prior). Stated assumptions
(printed by every report): counts are independent between runs; variance is
proportional to the mean with a dispersion that varies smoothly with abundance.
"""

from __future__ import annotations

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
        unit = 2.0 * (_xlogy(y, y) - _xlogy(y, mu) - (y - mu))
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
    d0: float  # inf: every key's dispersion is the trend's value

    @property
    def description(self) -> str:
        df = "infinite" if np.isinf(self.d0) else f"{self.d0:.1f}"
        return f"prior df {df}"


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
    d0 = float(2.0 * trigamma_inverse(np.array([evar]))[0]) if evar > 0 else float("inf")
    d0 = min(d0, MAX_PRIOR_DF)
    s0_sq = np.exp(trend + special.digamma(d0 / 2.0) - np.log(d0 / 2.0))
    return Prior(np.asarray(s0_sq, dtype=np.float64), d0)


@dataclass(frozen=True)
class QLResult:
    p: FloatArray
    lo: FloatArray
    hi: FloatArray
    s2_post: FloatArray
    prior: Prior
    df_total: float


def ql_test(
    old: FloatArray, new: FloatArray, e_old: FloatArray, e_new: FloatArray, confidence: float
) -> QLResult:
    """QL F-test of equal rates per row of ``old`` (k, n1) vs ``new`` (k, n2) raw counts."""
    n1, n2 = old.shape[1], new.shape[1]
    d = float(n1 + n2 - 2)
    tot_o, tot_n = old.sum(axis=1), new.sum(axis=1)
    exp_o, exp_n = float(e_old.sum()), float(e_new.sum())
    lam_o, lam_n = tot_o / exp_o, tot_n / exp_n
    lam_0 = (tot_o + tot_n) / (exp_o + exp_n)
    y = np.concatenate([old, new], axis=1)
    e = np.concatenate([e_old, e_new])[None, :]
    mu_alt = np.concatenate([lam_o[:, None] * e[:, :n1], lam_n[:, None] * e[:, n1:]], axis=1)
    mu_null = lam_0[:, None] * e
    dev_alt = poisson_deviance(y, mu_alt)
    dev_null = poisson_deviance(y, mu_null)
    s2 = dev_alt / d
    with np.errstate(divide="ignore"):  # keys never seen: -inf, left out of the prior fit
        abundance = np.log((tot_o + tot_n) / (n1 + n2))
    prior = fit_prior(s2, d, abundance, informative=dev_alt > 1e-12)
    if prior.d0 == 0:
        s2_post = np.maximum(s2, prior.s0_sq)
        df_total = d
    elif np.isinf(prior.d0):
        s2_post = prior.s0_sq.copy()
        df_total = float("inf")
    else:
        s2_post = (prior.d0 * prior.s0_sq + d * s2) / (prior.d0 + d)
        df_total = prior.d0 + d
    lr = np.maximum(dev_null - dev_alt, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(s2_post > 0, lr / s2_post, np.where(lr > 0, np.inf, 0.0))
    if np.isinf(df_total):
        p = sst.chi2.sf(f, 1)
    else:
        p = sst.f.sf(f, 1, df_total)
    p = np.where(tot_o + tot_n > 0, p, 1.0)
    # Wald interval of log(lambda_new / lambda_old) with the posterior dispersion
    quant = (
        sst.norm.ppf(0.5 + confidence / 2)
        if np.isinf(df_total)
        else sst.t.ppf(0.5 + confidence / 2, df_total)
    )
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
        df_total,
    )
