"""The C4 rule (local vs global dimension): lidutils.book.local_global.c4_rule (was lidutils.stats.c4_rule)."""
import numpy as np
import pytest

from lidutils.book.local_global import c4_rule
from lidutils.dependent import compare_dependent
from lidutils.stats import corr


def _three(n, r1, r2, r12, seed):
    C = np.array([[1, r1, r2], [r1, 1, r12], [r2, r12, 1.0]])
    return np.random.default_rng(seed).multivariate_normal(np.zeros(3), C, size=n).T


def _rec(label, lo, hi):
    return {"analysis": label, "r": (lo + hi) / 2, "ci_low": lo, "ci_high": hi}


def _cmp(lo, hi):
    return {"diff": (lo + hi) / 2, "ci_low": lo, "ci_high": hi}


def test_c4_local_predicts_global_does_not():
    loc, globs = _rec("lid k=10", -0.8, -0.4), [_rec("PR", -0.3, 0.2), _rec("TwoNN big-K", -0.1, 0.4)]
    v, why = c4_rule(loc, globs, [_cmp(0.2, 0.6), _cmp(0.3, 0.7)])
    assert v == "replicated" and "local" in why
    # globals that merely fail to predict are not evidence that local predicts better
    assert c4_rule(loc, globs)[0] == "inconclusive"
    assert c4_rule(loc, globs, [_cmp(0.2, 0.6), _cmp(-0.1, 0.5)])[0] == "inconclusive"


def test_c4_both_predict_equally():
    loc, glob = _rec("lid", -0.8, -0.4), _rec("PR", -0.8, -0.4)
    comp = {"diff": 0.0, "ci_low": -0.2, "ci_high": 0.2}
    v, why = c4_rule(loc, [glob], {"PR": comp})
    assert v == "not replicated" and "PR" in why
    assert c4_rule(loc, [glob])[0] == "not replicated"  # no comparison: not shown weaker


def test_c4_global_opposite_sign_counts_against():
    v, why = c4_rule(_rec("lid", -0.8, -0.4), [_rec("PR", 0.3, 0.7)])
    assert v == "not replicated" and "PR" in why


def test_c4_global_significantly_weaker_and_other_cases():
    loc, glob = _rec("lid", -0.9, -0.6), _rec("PR", -0.5, -0.1)
    assert c4_rule(loc, [glob], [{"diff": 0.3, "ci_low": 0.1, "ci_high": 0.5}])[0] == "replicated"
    assert c4_rule(_rec("lid", 0.2, 0.6), [_rec("PR", -0.2, 0.2)])[0] == "opposite"
    assert c4_rule(_rec("lid", -0.5, 0.1), [_rec("PR", -0.2, 0.2)])[0] == "inconclusive"
    assert c4_rule(_rec("lid", -0.5, 0.1), [glob])[0] == "not replicated"
    with pytest.raises(ValueError, match="comparisons"):
        c4_rule(loc, [glob], [None, None])


def test_c4_rule_equal_strength_on_constructed_data_is_never_replicated():
    """Local and global measures equally strong (same population r with accuracy): no "replicated"."""
    for seed in range(3):
        x, loc, glob = _three(60, -0.7, -0.7, 0.5, seed=seed)
        recs = [dict(corr(x, v, n_boot=500, n_perm=500, seed=seed), analysis=a)
                for v, a in ((loc, "lid"), (glob, "PR"))]
        comp = compare_dependent(x, loc, glob, n_boot=500, seed=seed)
        assert comp["ci_low"] <= 0, comp
        v, why = c4_rule(recs[0], recs[1:], [comp])
        assert v == "not replicated" and "PR" in why, why
    # every global measure must be beaten: one significantly weaker, one equal -> not "replicated"
    x, loc, weak = _three(80, -0.8, -0.1, 0.1, seed=5)
    _, _, equal = _three(80, -0.8, -0.8, 0.6, seed=5)
    rl = dict(corr(x, loc, n_boot=500, n_perm=500), analysis="lid")
    gs = [dict(corr(x, g, n_boot=500, n_perm=500), analysis=a) for g, a in ((weak, "PR"), (equal, "ER"))]
    comps = [compare_dependent(x, loc, g, n_boot=500) for g in (weak, equal)]
    assert comps[0]["ci_low"] > 0
    assert c4_rule(rl, gs, comps)[0] != "replicated"
    assert c4_rule(rl, gs[:1], comps[:1])[0] == "replicated"


def test_c4_rule_reason_names_the_stronger_global_measure():
    loc, glob = _rec("lid", -0.8, -0.5), dict(_rec("PCA-n90", 0.85, 0.97), measure="pca_n90")
    v, why = c4_rule(loc, [glob], [_cmp(-0.3, -0.05)])
    assert v == "not replicated"
    assert "MORE strongly" in why and "pca_n90" in why and "against C4" in why


def test_c4_rule_descriptive_local_record_gives_no_verdict():
    v, _ = c4_rule(dict(_rec("lid", -0.9, -0.6), verdict="descriptive"), [_rec("PR", -0.2, 0.2)], [_cmp(0.2, 0.5)])
    assert v == "descriptive"
