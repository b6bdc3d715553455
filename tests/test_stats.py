import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lidutils.dependent import compare_dependent, steiger_z, zou_ci
from lidutils.stats import (
    VERDICTS, corr, corr_batch, corr_table, excludes, holm, partial_corr,
    verdict, verdict_batch,
)
from lidutils import stats as S

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
    ({"r": -0.6, "ci_low": -0.8, "ci_high": -0.3, "p": 0.2}, -1, "replicated"),  # the CI decides
    ({"r": -0.6, "ci_low": float("nan"), "ci_high": float("nan"), "p": 0.001}, -1, "inconclusive"),
])
def test_verdict_logic(res, sign, expected):
    assert verdict(res, expected_sign=sign) == expected


def test_verdict_uninformative_and_errors():
    res = {"r": -0.6, "ci_low": -0.8, "ci_high": -0.3, "p": 0.2}
    assert verdict(res, -1, informative=False) == "uninformative"
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


# --------------------------------------------------------------------------- oracles: scipy


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_corr_against_scipy_bootstrap_and_permutation_test(method):
    x, y = _pair(30, 0.4, seed=11)

    def stat(a, b, axis=-1):
        if method == "spearman":
            a, b = stats.rankdata(a, axis=axis), stats.rankdata(b, axis=axis)
        a = a - a.mean(axis, keepdims=True)
        b = b - b.mean(axis, keepdims=True)
        return (a * b).sum(axis) / np.sqrt((a * a).sum(axis) * (b * b).sum(axis))

    res = corr(x, y, method=method, n_boot=4000, n_perm=20000, seed=3)
    boot = stats.bootstrap((x, y), stat, paired=True, vectorized=True, n_resamples=4000,
                           method="percentile", random_state=np.random.default_rng(5))
    # percentile bounds from 4000 resamples: Monte-Carlo s.e. of a 2.5 % quantile ~0.01 here
    assert res["ci_low"] == pytest.approx(boot.confidence_interval.low, abs=0.04)
    assert res["ci_high"] == pytest.approx(boot.confidence_interval.high, abs=0.04)
    # same two-sided |r| definition: scipy's 'two-sided' doubles the smaller tail, so use |r|
    perm = stats.permutation_test((x, y), lambda a, b, axis=-1: np.abs(stat(a, b, axis)),
                                  permutation_type="pairings", vectorized=True, n_resamples=20000,
                                  alternative="greater", random_state=np.random.default_rng(6))
    # s.e. of a p ~0.03 from 20000 permutations: ~0.0012 each
    assert res["p"] == pytest.approx(perm.pvalue, abs=0.006)


# --------------------------------------------------------------------------- verdicts, CI flags


def test_verdict_names_and_batch_form():
    assert VERDICTS == ("replicated", "not replicated", "opposite", "inconclusive", "uninformative", "descriptive")
    lo = np.array([-0.8, 0.2, -0.3, np.nan])
    hi = np.array([-0.1, 0.6, 0.2, np.nan])
    assert list(verdict_batch(lo, hi, -1)) == ["replicated", "opposite", "inconclusive", "inconclusive"]
    assert list(verdict_batch(lo, hi, 1)) == ["opposite", "replicated", "inconclusive", "inconclusive"]
    for a, b in zip(lo, hi):  # the scalar rule is the batched rule
        assert verdict({"ci_low": a, "ci_high": b}, -1) == verdict_batch(a, b, -1)


def test_verdict_agrees_with_ci_on_real_results():
    rng = np.random.default_rng(12)
    for i in range(30):
        x, y = _pair(12, rng.uniform(-0.9, 0.9), seed=100 + i)
        res = corr(x, y, n_boot=300, n_perm=200, seed=i)
        v = verdict(res, -1)
        assert (v == "inconclusive") == (not excludes(res, 0.0))
        if v != "inconclusive":
            assert (v == "replicated") == (res["ci_high"] < 0)


def test_excludes():
    res = {"r": -0.5, "ci_low": -0.7, "ci_high": -0.2}
    assert excludes(res, 0.0) and excludes(res, -0.916) and not excludes(res, -0.6)
    assert excludes(res, None) is None
    assert excludes({"ci_low": np.nan, "ci_high": np.nan}, 0.0) is False


def test_holm_known_example_and_hand_computation():
    # sorted: .005*4=.02, .01*3=.03, .03*2=.06, .04*1=.04 -> running max .06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.2, 9)
    order = np.argsort(p)
    hand = np.empty(9)
    running = 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (9 - i) * p[j]))
        hand[j] = running
    np.testing.assert_allclose(holm(p), hand)
    out = holm([0.01, np.nan, 0.02])  # NaN ignored, m = 2
    np.testing.assert_allclose(out[[0, 2]], [0.02, 0.02])
    assert np.isnan(out[1])
    with pytest.raises(ValueError, match="p-values"):
        holm([0.5, 1.5])


def test_corr_batch_matches_corr_statistics():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((20, 15))
    y = -0.5 * x + rng.standard_normal((20, 15))
    for method in ("pearson", "spearman"):
        b = corr_batch(x, y, method=method, n_boot=2000, n_perm=0, seed=1)
        for i in range(0, 20, 5):
            one = corr(x[i], y[i], method=method, n_boot=2000, n_perm=0, seed=2)
            assert b["r"][i] == pytest.approx(one["r"], abs=1e-12)
            assert b["p"][i] == pytest.approx(one["p"], abs=1e-10)
            assert b["ci_low"][i] == pytest.approx(one["ci_low"], abs=0.06)  # different draws
            assert b["ci_high"][i] == pytest.approx(one["ci_high"], abs=0.06)


# --------------------------------------------------------------------------- dependent correlations


def _three(n, r1, r2, r12, seed):
    C = np.array([[1, r1, r2], [r1, 1, r12], [r2, r12, 1.0]])
    return np.random.default_rng(seed).multivariate_normal(np.zeros(3), C, size=n).T


def test_steiger_z_hand_value_and_null_calibration():
    # hand computation: r1=.5, r2=.3, r12=.4, n=100 -> rbar=.4, psi=.4*.68-.5*.16*(.68-.16)=.2304,
    # c=.2304/.84^2=.326531, z=.239786*sqrt(97)/sqrt(1.346939)=2.0349
    z, p = steiger_z(0.5, 0.3, 0.4, 100)
    expected = (np.arctanh(0.5) - np.arctanh(0.3)) * np.sqrt(97) / np.sqrt(2 - 2 * 0.2304 / 0.84 ** 2)
    assert z == pytest.approx(expected, rel=1e-12) and z == pytest.approx(2.0349, abs=1e-4)
    assert p == pytest.approx(2 * stats.norm.sf(expected), rel=1e-12)
    # under H0 (equal population correlations) the test rejects ~5 % of the time
    n, m = 60, 2000
    C = np.array([[1, 0.5, 0.5], [0.5, 1, 0.3], [0.5, 0.3, 1.0]])
    V = np.random.default_rng(1).multivariate_normal(np.zeros(3), C, size=(m, n))  # (m, n, 3)
    R = np.array([np.corrcoef(v.T) for v in V])
    _, pv = steiger_z(R[:, 0, 1], R[:, 0, 2], R[:, 1, 2], n)
    assert 0.03 < (pv < 0.05).mean() < 0.07


def test_compare_dependent_detects_a_stronger_predictor():
    x, y1, y2 = _three(80, -0.7, -0.1, 0.1, seed=2)
    res = compare_dependent(x, y1, y2, n_boot=1000)
    assert res["diff"] == pytest.approx(abs(res["r1"]) - abs(res["r2"]))
    assert res["ci_low"] > 0 and res["p"] < 0.01
    # equal strength, opposite sign: |r| difference ~0, r difference large
    x, y1, y2 = _three(80, -0.5, 0.5, -0.2, seed=3)
    a = compare_dependent(x, y1, y2, n_boot=1000)
    assert a["ci_low"] < 0 < a["ci_high"] and a["p"] > 0.05
    s = compare_dependent(x, y1, y2, absolute=False, n_boot=1000)
    assert s["ci_high"] < 0 and s["p"] < 0.01
    assert compare_dependent(x, y1, y2, method="spearman", n_boot=200)["r1"] == pytest.approx(
        stats.spearmanr(x, y1)[0], abs=1e-12)


# --------------------------------------------------------------------------- C4 rule


def _rec(label, lo, hi):
    return {"analysis": label, "r": (lo + hi) / 2, "ci_low": lo, "ci_high": hi}


def _cmp(lo, hi):
    return {"diff": (lo + hi) / 2, "ci_low": lo, "ci_high": hi}


def test_compare_dependent_within_groups_removes_a_between_group_effect():
    """Three families that differ in every variable: pooled, y2 predicts x as well as y1; within, it does not."""
    rng = np.random.default_rng(0)
    g = np.repeat([0, 1, 2], 12)
    x = rng.normal(size=g.size) + 4 * g
    y1 = x + 0.6 * rng.normal(size=g.size)          # predicts x inside every family
    y2 = rng.normal(size=g.size) + 4 * g            # shares only the family means with x
    pooled = compare_dependent(x, y1, y2, n_boot=400)
    within = compare_dependent(x, y1, y2, n_boot=400, groups=g)
    assert abs(pooled["r2"]) > 0.8 and abs(within["r2"]) < 0.5
    assert within["ci_low"] > 0 and within["n_eff"] == g.size - 3 + 1 and within["n_groups"] == 3
    from lidutils.stats import corr_within
    assert within["r1"] == pytest.approx(corr_within(x, y1, g, n_boot=0, n_perm=0)["r"], abs=1e-12)
    # groups of one case carry nothing and are left out; fewer than 4 effective cases is an error
    g2 = np.array(list(g[:-1]) + [9])
    assert compare_dependent(x, y1, y2, n_boot=0, groups=g2)["n"] == g.size - 1
    with pytest.raises(ValueError, match="groups"):
        compare_dependent(x[:4], y1[:4], y2[:4], n_boot=0, groups=[0, 0, 1, 1])


def test_rmcorr_is_the_within_group_association():
    from lidutils.stats import rmcorr

    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(6), 6)
    x = rng.normal(size=36)
    y = -0.8 * x + 0.4 * rng.normal(size=36)
    shift = 10 * np.arange(6)[g]  # between-group differences go the other way
    res = rmcorr(x + shift, y + shift, g, n_boot=500, n_perm=500)
    assert corr(x + shift, y + shift, n_boot=0, n_perm=0)["r"] > 0.9  # pooled: carried by the groups
    assert res["r"] < -0.8 and res["ci_high"] < 0 and res["p"] < 0.01
    assert res["n"] == 36 and res["n_groups"] == 6 and res["df"] == 29
    # group constants never matter
    again = rmcorr(x, y + 3 * np.arange(6)[g], g, n_boot=0, n_perm=0)
    assert again["r"] == pytest.approx(rmcorr(x, y, g, n_boot=0, n_perm=0)["r"])
    with pytest.raises(ValueError, match="groups"):
        rmcorr(x[:4], y[:4], g[:4])


# --------------------------------------------------------------------------- the design: within family

def _families(within, between, per=6, G=3, seed=0):
    """x, y and family labels: correlation ``within`` inside each family, family means along ``between``."""
    rng = np.random.default_rng(seed)
    fam = np.repeat([f"f{g}" for g in range(G)], per)
    off = np.repeat(np.arange(G) * 4.0, per)
    e = rng.standard_normal((2, G * per))
    x = off + e[0]
    y = between * off + within * e[0] + np.sqrt(1 - within ** 2) * e[1]
    return x, y, fam


def test_corr_within_equals_rmcorr_and_reports_the_between_part():
    x, y, fam = _families(0.0, -2.0, seed=3)
    res = S.corr_within(x, y, fam, n_boot=500, n_perm=2000, seed=1)
    assert res["r"] == pytest.approx(S.rmcorr(x, y, fam, n_boot=0, n_perm=0)["r"])
    assert res["n"] == 18 and res["n_families"] == 3 and res["n_eff"] == 16 and res["df"] == 14
    assert res["r_between"] < -0.99 and corr(x, y, n_boot=0, n_perm=0)["r"] < -0.8  # pooled r is the families'
    assert res["ci_low"] < res["r"] < res["ci_high"]
    assert res["ci_fisher_low"] < res["r"] < res["ci_fisher_high"]


def test_a_between_family_only_effect_is_not_replicated():
    """The pooled correlation of a design whose only effect is between families 'replicates'; within family it must not."""
    labels, pooled = [], []
    for seed in range(30):
        x, y, fam = _families(0.0, -2.0, seed=seed)
        labels.append(S.label(S.corr_within(x, y, fam, n_boot=300, n_perm=300, seed=seed), -1))
        pooled.append(S.label(corr(x, y, n_boot=300, n_perm=300, seed=seed), -1))
    assert pooled.count("replicated") == 30
    assert labels.count("replicated") <= 4  # the false-positive rate of a 5 % two-sided test, one side


def test_corr_within_detects_a_within_family_effect_and_permutes_within_family():
    x, y, fam = _families(-0.8, +2.0, seed=4)  # between families the other way
    res = S.corr_within(x, y, fam, n_boot=500, n_perm=2000, seed=0)
    assert res["r"] < -0.6 and res["ci_high"] < 0 and res["p"] < 0.01 and res["r_between"] > 0.99
    assert S.label(res, -1) == "replicated"
    sp = S.corr_within(x, y, fam, method="spearman", n_boot=200, n_perm=200)
    assert sp["r"] < -0.5
    with pytest.raises(ValueError, match="beyond"):
        S.corr_within(x[:6:2], y[:6:2], ["a", "b", "c"])


@pytest.mark.parametrize("res,expected", [
    (dict(r=-0.9, ci_low=-0.99, ci_high=-0.5, p=0.01, n=6), "descriptive"),          # too few units
    (dict(r=-0.9, ci_low=-0.99, ci_high=-0.5, p=0.01, n=8), "replicated"),
    (dict(r=-0.9, ci_low=-0.99, ci_high=-0.5, p=0.08, n=8), "inconclusive"),         # CI and p disagree
    (dict(r=-0.9, ci_low=-0.99, ci_high=-0.5, p=0.01, n=8, n_families=4), "descriptive"),  # 2 per family
    (dict(r=-0.9, ci_low=-0.99, ci_high=-0.5, p=0.01, n=9, n_families=3), "replicated"),
    (dict(r=-0.9, ci_low=-0.99, ci_high=-0.5, p=0.01, n=8, n_families=8, design="pooled"), "replicated"),
    (dict(r=0.9, ci_low=0.5, ci_high=0.99, p=0.01, p_holm=0.11, n=20), "opposite"),
])
def test_label_needs_units_and_agreement(res, expected):
    assert S.label(res, -1) == expected
    if "p_holm" in res:
        assert S.label(res, -1, p_key="p_holm") == "inconclusive"


def test_fisher_ci_matches_the_formula():
    lo, hi = S.fisher_ci(0.5, 12)
    h = stats.norm.ppf(0.975) / 3.0
    assert lo == pytest.approx(np.tanh(np.arctanh(0.5) - h)) and hi == pytest.approx(np.tanh(np.arctanh(0.5) + h))
    assert S.fisher_ci(0.9, 3) == (-1.0, 1.0)
    assert S.n_effective(12, 3) == 10 and S.n_effective(5) == 5


def test_zou_interval_covers_the_difference_of_dependent_correlations_at_small_n():

    # Zou (2007), overlapping correlations: r1 = .396, r2 = .179, r12 = .088, n = 66 -> about (-0.09, 0.52)
    lo, hi = zou_ci(0.396, 0.179, 0.088, 66)
    assert lo == pytest.approx(-0.093, abs=0.005) and hi == pytest.approx(0.517, abs=0.005)
    rng = np.random.default_rng(0)
    C = np.array([[1, -0.6, -0.2], [-0.6, 1, 0.4], [-0.2, 0.4, 1.0]])
    hits = 0
    for _ in range(600):
        x, y1, y2 = rng.multivariate_normal(np.zeros(3), C, size=10).T
        r = np.corrcoef([x, y1, y2])
        lo, hi = zou_ci(r[0, 1], r[0, 2], r[1, 2], 10)
        hits += lo <= -0.6 - (-0.2) <= hi
    assert 0.91 < hits / 600 < 0.99
    res = compare_dependent(x, y1, y2, n_boot=0)
    assert res["ci_zou_low"] < res["diff"] < res["ci_zou_high"]
