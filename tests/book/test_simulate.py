"""Synthetic worlds with a known answer (lidutils.simulate)."""
import numpy as np
import pytest
import torch

from lidutils.global_dim import participation_ratio
from lidutils.lid import lid_mle
from lidutils.book.simulate import World, claim_analysis, generalization_score, make_world
from lidutils.stats import corr


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # small problems: one torch thread avoids oversubscription on shared CPUs
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _cv(v):
    v = np.asarray(v, dtype=float)
    return v.std() / v.mean()


# ----------------------------------------------------------------------------- generator
def test_world_structure_and_determinism():
    a = make_world("positive", seed=3, n_models=4, n_stimuli=80, n_subjects=3)
    b = make_world("positive", seed=3, n_models=4, n_stimuli=80, n_subjects=3)
    c = make_world("positive", seed=4, n_models=4, n_stimuli=80, n_subjects=3)
    assert isinstance(a, World)
    assert a.model_names == ["model_0", "model_1", "model_2", "model_3"]
    assert a.brain_rdms.shape == (3, 80, 80)
    assert a.labels.shape == (80,) and len(np.unique(a.labels)) == 4
    for m in a.model_names:
        assert a.representations[m].shape == (80, 64)
        np.testing.assert_array_equal(a.representations[m], b.representations[m])
        assert not np.allclose(a.representations[m], c.representations[m])
        assert 0 <= a.generalization[m] <= 1
    np.testing.assert_array_equal(a.brain_rdms, b.brain_rdms)
    np.testing.assert_array_equal(a.truth["nuisance"], b.truth["nuisance"])
    # same world at another stimulus count: same models and parameters
    big = make_world("positive", seed=3, n_models=4, n_stimuli=120, n_subjects=3)
    np.testing.assert_array_equal(a.truth["nuisance"], big.truth["nuisance"])


def test_brain_noise_ceiling_follows_brain_noise():
    from lidutils.alignment import rsa

    def ceiling(noise):
        w = make_world("positive", seed=0, n_models=2, n_stimuli=60, brain_noise=noise)
        R = w.brain_rdms
        return np.mean([rsa(R[i], R[j]) for i in range(len(R)) for j in range(i + 1, len(R))])

    quiet, loud = ceiling(0.3), ceiling(3.0)
    assert 0.9 < quiet <= 1
    assert loud < quiet - 0.2


def test_invalid_parameters_raise():
    with pytest.raises(ValueError, match="unknown world"):
        make_world("nope")
    with pytest.raises(ValueError, match="unknown world parameter"):
        make_world("positive", n_model=3)
    with pytest.raises(ValueError, match="corruption_range"):
        make_world("positive", corruption_range=(0.2, 1.5))
    with pytest.raises(ValueError, match="n_models"):
        make_world("positive", n_models=1)
    with pytest.raises(ValueError, match="labels must have shape"):
        generalization_score(np.random.default_rng(0).standard_normal((20, 3)), np.zeros(19))


def test_generalization_score_tracks_signal():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 50)
    X = rng.standard_normal((100, 5))
    assert generalization_score(X, y) < 0.7  # no signal: near chance
    X[:, 0] += 4 * y
    assert generalization_score(X, y) > 0.95


# ----------------------------------------------------------------------------- worlds
def test_positive_world_recovers_negative_correlations():
    # default size (16 models, 400 stimuli): lower LID <=> better on every target
    res = claim_analysis(make_world("positive", seed=0), dims=("lid",), n_boot=1000, n_perm=2000)
    for target, r in res["corr"]["lid"].items():
        assert r["r"] < -0.5, target
        assert r["ci_high"] < 0, target
        assert r["verdict"] == "replicated", target
    t = res["table"]
    assert corr(t["nuisance"], t["lid"], method="spearman", n_boot=0, n_perm=0)["r"] > 0.9


def test_negative_worlds_give_null_intervals():
    # LID independent of quality: each 95% CI should cover 0 in ~95% of seeds. With
    # nominal coverage the number of covering seeds out of 20 is Binomial(20, 0.95),
    # P(<= 15) = 0.016; for an anti-conservative 90% interval (small-n percentile
    # bootstrap) it is still only 0.043, while a real effect would fail almost every seed.
    covered = {"generalization": 0, "brain_rsa": 0}
    for seed in range(20):
        w = make_world("negative", seed=seed, n_models=10, n_stimuli=150)
        res = claim_analysis(w, dims=("lid",), targets=tuple(covered), n_boot=500, n_perm=500)
        for t, r in res["corr"]["lid"].items():
            covered[t] += int(r["ci_low"] <= 0 <= r["ci_high"])
    assert all(v >= 16 for v in covered.values()), covered


def test_global_only_and_local_only_worlds():
    g = make_world("global_only", seed=1, n_models=8, n_stimuli=300)
    lid_g = [lid_mle(X, 10).mean() for X in g.representations.values()]
    pr_g = [participation_ratio(X) for X in g.representations.values()]
    assert _cv(pr_g) > 0.2 and _cv(lid_g) < 0.05

    loc = make_world("local_only", seed=1, n_models=8, n_stimuli=300)
    lid_l = [lid_mle(X, 10).mean() for X in loc.representations.values()]
    pr_l = [participation_ratio(X) for X in loc.representations.values()]
    assert _cv(lid_l) > 0.1 and _cv(pr_l) < 0.01
    assert np.ptp(loc.truth["spectrum"]) > 0  # PR held fixed by solving the spectrum

# decision-rule power: tests/book/test_power.py
