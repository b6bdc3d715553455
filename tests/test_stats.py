import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lidutils.stats import corr, corr_table, partial_corr, verdict

KEYS = {"r", "ci_low", "ci_high", "p", "n", "method", "n_boot", "n_perm"}


def _pair(n, rho=0.5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = rho * x + np.sqrt(1 - rho ** 2) * rng.normal(size=n)
    return x, y


@pytest.mark.parametrize("method,fn", [("pearson", stats.pearsonr), ("spearman", stats.spearmanr)])
def test_corr_r_and_p_match_scipy(method, fn):
    x, y = _pair(40, 0.35, seed=1)
    res = corr(x, y, method=method, n_boot=500, n_perm=20000, seed=0)
    assert KEYS <= set(res)
    ref = fn(x, y)
    assert res["r"] == pytest.approx(ref[0], abs=1e-12)
    assert res["n"] == 40 and res["method"] == method and res["n_perm"] == 20000
    # permutation p vs analytic p at moderate n: Monte-Carlo s.e. ~ sqrt(p(1-p)/m) <= 0.0036
    assert res["p"] == pytest.approx(ref[1], abs=0.02)
    assert res["ci_low"] <= res["r"] <= res["ci_high"]
    assert corr(x, y, method=method, n_perm=0, n_boot=0)["p"] == pytest.approx(ref[1], abs=1e-12)


def test_spearman_with_ties_matches_scipy():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 5, 30).astype(float)
    y = x + rng.integers(0, 3, 30)
    assert corr(x, y, "spearman", n_boot=200, n_perm=200)["r"] == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)


def test_permutation_p_bounds_and_strong_signal():
    x = np.arange(30.0)
    res = corr(x, 2 * x + 1, n_perm=999, n_boot=200)
    assert res["r"] == pytest.approx(1.0)
    assert res["p"] == pytest.approx(1 / 1000)  # (0 + 1) / (999 + 1): never exactly 0
    x, y = _pair(50, 0.0, seed=3)
    assert corr(x, y, n_perm=2000, n_boot=200)["p"] > 0.05


def test_ci_contains_r_and_narrows_with_n():
    small = corr(*_pair(20, 0.5, seed=4), n_boot=2000, n_perm=100)
    large = corr(*_pair(400, 0.5, seed=4), n_boot=2000, n_perm=100)
    for res in (small, large):
        assert res["ci_low"] < res["r"] < res["ci_high"]
    assert large["ci_high"] - large["ci_low"] < 0.5 * (small["ci_high"] - small["ci_low"])
    # 95% CI at n=400 is about r ± 1.96 (1 - r²)/sqrt(n) ≈ ±0.074
    assert large["ci_high"] - large["ci_low"] == pytest.approx(2 * 1.96 * 0.75 / 20, rel=0.25)


def test_large_offset_small_spread_is_not_degenerate():
    x, y = _pair(30, 0.6, seed=10)
    res = corr(1e6 + 1e-3 * x, y, n_boot=500, n_perm=200)
    assert res["r"] == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-6)
    assert res["n_boot_valid"] == 500


def test_seed_determinism():
    x, y = _pair(25, 0.3, seed=5)
    a = corr(x, y, n_boot=300, n_perm=300, seed=7)
    assert a == corr(x, y, n_boot=300, n_perm=300, seed=7)
    assert a != corr(x, y, n_boot=300, n_perm=300, seed=8)


def test_degenerate_bootstrap_resamples_are_dropped():
    x = np.array([0.0, 0, 0, 0, 1])
    y = np.array([0.1, 0.3, 0.2, 0.0, 1.0])
    with pytest.warns(UserWarning, match="degenerate"):
        res = corr(x, y, n_boot=1000, n_perm=100)
    assert 0 < res["n_boot_valid"] < 1000
    assert np.isfinite(res["ci_low"]) and np.isfinite(res["ci_high"])


def test_corr_bad_input():
    x, y = _pair(10)
    with pytest.raises(ValueError, match="at least 3"):
        corr(x[:2], y[:2])
    with pytest.raises(ValueError, match="NaN"):
        corr(np.r_[x[:-1], np.nan], y)
    with pytest.raises(ValueError, match="paired"):
        corr(x, y[:-1])
    with pytest.raises(ValueError, match="constant"):
        corr(np.ones(10), y)
    with pytest.raises(ValueError, match="method"):
        corr(x, y, method="kendall")


def test_partial_corr_matches_formula_and_residual_definition():
    rng = np.random.default_rng(6)
    n = 60
    z = rng.normal(size=n)
    x = z + 0.7 * rng.normal(size=n)
    y = z + 0.7 * rng.normal(size=n) + 0.3 * x
    res = partial_corr(x, y, z, n_boot=300, n_perm=3000)
    rxy, rxz, ryz = np.corrcoef([x, y, z])[[0, 0, 1], [1, 2, 2]]
    expected = (rxy - rxz * ryz) / np.sqrt((1 - rxz ** 2) * (1 - ryz ** 2))
    assert res["r"] == pytest.approx(expected, abs=1e-10)
    assert res["ci_low"] < res["r"] < res["ci_high"]
    assert res["n_covariates"] == 1
    # raw correlation is inflated by the confounder
    assert corr(x, y, n_boot=0, n_perm=0)["r"] > res["r"] + 0.2
    # spearman: residualise ranks on ranks of two covariates
    Z = np.c_[z, rng.normal(size=n)]
    rk = lambda v: stats.rankdata(v)  # noqa: E731
    D = np.c_[np.ones(n), rk(Z[:, 0]), rk(Z[:, 1])]
    ex = rk(x) - D @ np.linalg.lstsq(D, rk(x), rcond=None)[0]
    ey = rk(y) - D @ np.linalg.lstsq(D, rk(y), rcond=None)[0]
    sp = partial_corr(x, y, Z, method="spearman", n_boot=200, n_perm=0)
    assert sp["r"] == pytest.approx(stats.pearsonr(ex, ey)[0], abs=1e-10)
    assert sp["n_covariates"] == 2


def test_partial_corr_removes_pure_confound():
    rng = np.random.default_rng(7)
    z = rng.normal(size=200)
    x, y = z + 0.3 * rng.normal(size=200), z + 0.3 * rng.normal(size=200)
    assert verdict(corr(x, y, n_boot=500, n_perm=500), expected_sign=1) == "replicated"
    assert verdict(partial_corr(x, y, z, n_boot=500, n_perm=500), expected_sign=1) == "inconclusive"


def test_partial_corr_bad_input():
    x, y = _pair(10)
    with pytest.raises(ValueError, match="rows"):
        partial_corr(x, y, np.ones((9, 1)))
    with pytest.raises(ValueError, match="n >= "):
        partial_corr(x[:5], y[:5], np.random.default_rng(0).normal(size=(5, 3)))
    with pytest.raises(ValueError, match="explained"):
        partial_corr(x, y, np.c_[x])


@pytest.mark.parametrize("res,sign,expected", [
    ({"r": -0.6, "ci_low": -0.8, "ci_high": -0.3, "p": 0.001}, -1, "replicated"),
    ({"r": -0.6, "ci_low": -0.8, "ci_high": -0.3, "p": 0.001}, 1, "opposite"),
    ({"r": 0.6, "ci_low": 0.3, "ci_high": 0.8, "p": 0.001}, -1, "opposite"),
    ({"r": 0.6, "ci_low": 0.3, "ci_high": 0.8, "p": 0.001}, 1, "replicated"),
    ({"r": -0.4, "ci_low": -0.7, "ci_high": 0.1, "p": 0.04}, -1, "inconclusive"),
    ({"r": -0.6, "ci_low": -0.8, "ci_high": -0.3, "p": 0.2}, -1, "inconclusive"),
    ({"r": -0.6, "ci_low": float("nan"), "ci_high": float("nan"), "p": 0.001}, -1, "inconclusive"),
])
def test_verdict_logic(res, sign, expected):
    assert verdict(res, expected_sign=sign) == expected


def test_verdict_alpha_none_and_errors():
    res = {"r": -0.6, "ci_low": -0.8, "ci_high": -0.3, "p": 0.2}
    assert verdict(res, -1, alpha=None) == "replicated"
    with pytest.raises(ValueError, match="expected_sign"):
        verdict(res, expected_sign=0)
    with pytest.raises(ValueError, match="lacks"):
        verdict({"r": 0.1}, -1)


def test_corr_table():
    x, y = _pair(30, -0.8, seed=8)
    df = pd.DataFrame({"lid": x, "align": y, "noise": np.random.default_rng(9).normal(size=30)})
    df.loc[3, "noise"] = np.nan
    t = corr_table(df, "lid", ["align", "noise"], method="spearman", expected_sign=-1, n_boot=300, n_perm=300)
    assert list(t.index) == ["align", "noise"]
    assert t.loc["align", "verdict"] == "replicated"
    assert t.loc["noise", "n"] == 29  # NaN row dropped for that y only
    assert t.loc["align", "r"] == pytest.approx(stats.spearmanr(x, y)[0])
    with pytest.raises(ValueError, match="not in the DataFrame"):
        corr_table(df, "lid", ["acc"])
