"""stats.py against scipy references and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sst

from regress.diff import rank
from regress.diff import tests as stats
from regress.errors import UsageError
from regress.model.result import Thresholds


def test_mwu_min_p() -> None:
    assert stats.mwu_min_p(3, 3) == pytest.approx(0.1)
    assert stats.mwu_min_p(4, 4) == pytest.approx(2 / 70)
    assert stats.mwu_min_p(5, 5) == pytest.approx(2 / 252)


def test_mwu_matches_scipy_exact_without_ties() -> None:
    rng = np.random.default_rng(0)
    old = rng.normal(10, 1, size=(6, 5))
    new = rng.normal(11, 1, size=(6, 5))
    p = stats.mwu_pvalues(old, new)
    for i in range(6):
        ref = sst.mannwhitneyu(new[i], old[i], method="exact").pvalue
        assert p[i] == pytest.approx(ref)


def test_mwu_full_separation_reaches_exact_minimum() -> None:
    old = np.array([[1.0, 2, 3, 4, 5]])
    new = np.array([[6.0, 7, 8, 9, 10]])
    assert stats.mwu_pvalues(old, new)[0] == pytest.approx(2 / 252)


def test_mwu_ties_are_floored_at_exact_minimum_and_equal_rows_get_one() -> None:
    old = np.array([[1.0, 1, 1], [5.0, 5, 5]])
    new = np.array([[2.0, 2, 2], [5.0, 5, 5]])
    p = stats.mwu_pvalues(old, new)
    # the normal approximation alone would say ~0.05 here; 3 vs 3 can never beat 0.1
    assert p[0] == pytest.approx(0.1)
    assert p[1] == 1.0


def test_moses_k_matches_table() -> None:
    # n1 = n2 = 5, two-sided 0.05: critical U = 2, so the CI uses the 3rd order statistic
    assert stats.moses_k(5, 5, 0.95) == 3
    assert stats.moses_k(3, 3, 0.95) == 0  # 95% impossible: min p is 0.1
    # exact null distribution sums to C(n1+n2, n1)
    assert stats._mwu_null_cdf_counts(4, 6).sum() == math.comb(10, 4)


def test_moses_ratio_ci_covers_true_ratio() -> None:
    rng = np.random.default_rng(3)
    old = rng.lognormal(np.log(100), 0.05, size=(200, 10))
    new = rng.lognormal(np.log(150), 0.05, size=(200, 10))
    lo, hi = stats.moses_ratio_ci(old, new, 0.95)
    covered = np.mean((lo <= 1.5) & (hi >= 1.5))
    assert 0.9 <= covered <= 1.0
    # no CI when a run counted zero (log undefined)
    old[0, 0] = 0.0
    lo, hi = stats.moses_ratio_ci(old, new, 0.95)
    assert math.isnan(lo[0]) and math.isnan(hi[0])


def test_poisson_rate_test_matches_doubled_binomial_tail() -> None:
    k_old = np.array([20.0, 200.0, 0.0, 0.0])
    k_new = np.array([60.0, 255.0, 9.0, 0.0])
    p = stats.poisson_rate_pvalues(k_old, 50.0, k_new, 50.0)
    for i in range(3):
        n = int(k_old[i] + k_new[i])
        lower = sst.binomtest(int(k_new[i]), n, 0.5, alternative="less").pvalue
        upper = sst.binomtest(int(k_new[i]), n, 0.5, alternative="greater").pvalue
        assert p[i] == pytest.approx(min(1.0, 2 * min(lower, upper)))
    assert p[3] == 1.0
    # unequal exposure: same rate, twice the iterations, is no difference
    assert stats.poisson_rate_pvalues(np.array([100.0]), 10.0, np.array([200.0]), 20.0)[0] > 0.9


def test_poisson_ratio_ci() -> None:
    lo, hi = stats.poisson_ratio_ci(
        np.array([100.0, 0.0]), 10.0, np.array([200.0, 5.0]), 10.0, 0.95
    )
    assert lo[0] < 2.0 < hi[0]
    assert 1.5 < lo[0] and hi[0] < 2.6
    assert hi[1] == math.inf and lo[1] > 0


def test_fisher_matches_doubled_one_sided_scipy() -> None:
    tables = [(3, 97, 15, 85), (0, 50, 37, 163), (10, 10, 10, 10)]
    a, b, c, d = (np.array([t[i] for t in tables], dtype=float) for i in range(4))
    p = stats.fisher_pvalues(a, b, c, d)
    for i, t in enumerate(tables):
        table = [[t[0], t[1]], [t[2], t[3]]]
        less = sst.fisher_exact(table, alternative="less").pvalue
        greater = sst.fisher_exact(table, alternative="greater").pvalue
        assert p[i] == pytest.approx(min(1.0, 2 * min(less, greater)))
    # an empty row (syscall never made on one side) is no evidence at all
    assert stats.fisher_pvalues(*(np.array([x], dtype=float) for x in (0, 0, 5, 5)))[0] == 1.0


def test_bh_matches_scipy() -> None:
    rng = np.random.default_rng(5)
    p = np.concatenate([rng.uniform(size=50), [0.0, 1e-6, 0.001]])
    q = stats.bh_qvalues(p)
    assert np.allclose(q, sst.false_discovery_control(p))
    assert stats.bh_qvalues(np.array([])).size == 0


def test_effect_gate_needs_ratio_and_delta() -> None:
    th = Thresholds(min_ratio=1.2, min_abs_delta=0.05)
    old = np.array([1000.0, 0.01, 1.0, 0.0, 0.0, 1.0])
    new = np.array([1010.0, 0.04, 1.3, 0.2, 0.0, 0.0])
    assert rank.effect_gate(old, new, th).tolist() == [False, False, True, True, False, True]


def test_rank_score_orders_by_significance_and_effect() -> None:
    q = np.array([1e-10, 1e-10, 0.04, 0.0])
    old = np.array([10.0, 10.0, 10.0, 0.0])
    new = np.array([20.0, 11.0, 20.0, 8.0])
    s = rank.rank_score(q, new - old, old, new)
    assert s[0] > s[1]  # same q, bigger effect first
    assert s[0] > s[2]  # same effect, more significant first
    assert s[3] == pytest.approx(16 + math.log2(9) + 10)


def test_thresholds_validate() -> None:
    with pytest.raises(UsageError):
        Thresholds(alpha=0)
    with pytest.raises(UsageError):
        Thresholds(min_ratio=0.5)
    with pytest.raises(UsageError):
        Thresholds(min_abs_delta=-1)
    assert Thresholds().as_dict()["alpha"] == 0.05


def test_sample_size_warnings() -> None:
    th = Thresholds()
    assert [w.code for w in stats.sample_size_warnings(1, 5, th)] == ["single-run"]
    few = stats.sample_size_warnings(2, 3, th)
    assert [w.code for w in few] == ["few-runs"]
    assert "cannot be taken as exact below 3 runs" in few[0].message
    assert stats.sample_size_warnings(3, 3, th) == []
    assert stats.sample_size_warnings(10, 10, th) == []
