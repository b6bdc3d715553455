"""Tests of the local intrinsic dimension estimators (lidutils.lid)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import lidutils.lid as lid_module
from lidutils.neighbors import knn
from lidutils.lid import lid_mada, lid_mle, lid_mom, lid_profile, lid_twonn

skdim = pytest.importorskip("skdim")


def assert_same_path_free(a, b):
    """Equal up to rounding: knn's float32-ranked, float64-re-measured path (small k on
    the CPU) and its float64 GEMM path (large k) round distances differently (~1e-14)."""
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)


@pytest.fixture(scope="module")
def low_rank():
    """1200 points on a 6-dim linear subspace of R^40 plus a little isotropic noise."""
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(1200, 6)) @ rng.normal(size=(6, 40))
    return Z + 0.01 * rng.normal(size=Z.shape)


# ----------------------------------------------------------------------------- oracles
@pytest.mark.parametrize("k", [2, 5, 20, 100])
def test_mle_equals_skdim_per_point(low_rank, k):
    ours = lid_mle(low_rank, k=k)
    ref = skdim.id.MLE().fit(low_rank, n_neighbors=k).dimension_pw_
    np.testing.assert_allclose(ours, ref, rtol=1e-6)


def test_mle_mean_is_skdim_comb_mean(low_rank):
    ref = skdim.id.MLE().fit(low_rank, n_neighbors=20, comb="mean").dimension_
    assert lid_mle(low_rank, 20).mean() == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("k", [5, 20, 100])
def test_mom_equals_skdim_per_point(low_rank, k):
    ours = lid_mom(low_rank, k=k)
    ref = skdim.id.MOM().fit(low_rank, n_neighbors=k).dimension_pw_
    np.testing.assert_allclose(ours, ref, rtol=1e-6)


def test_twonn_equals_skdim(low_rank):
    for f in (0.1, 0.3):
        ref = skdim.id.TwoNN(discard_fraction=f).fit(low_rank).dimension_
        assert lid_twonn(low_rank, discard_fraction=f) == pytest.approx(ref, rel=1e-6)


def test_twonn_equals_dadapy(low_rank):
    dadapy = pytest.importorskip("dadapy")
    for f in (0.9, 0.7):
        ref = dadapy.Data(low_rank, verbose=False).compute_id_2NN(mu_fraction=f)[0]
        assert lid_twonn(low_rank, discard_fraction=1 - f) == pytest.approx(ref, rel=1e-6)


def test_twonn_no_discard_is_finite(low_rank):
    d0 = lid_twonn(low_rank, discard_fraction=0.0)
    assert np.isfinite(d0) and d0 == lid_twonn(low_rank, discard_fraction=1 / len(low_rank))


def test_mle_by_hand_small():
    """Direct evaluation of the formula on a tiny set, neighbours found by brute force."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(30, 4))
    D = np.linalg.norm(X[:, None] - X[None], axis=-1)
    np.fill_diagonal(D, np.inf)
    T = np.sort(D, axis=1)[:, :7]
    expect = 1 / np.mean(np.log(T[:, -1:] / T[:, :-1]), axis=1)
    np.testing.assert_allclose(lid_mle(X, k=7), expect, rtol=1e-10)
    mu = T.mean(1)
    np.testing.assert_allclose(lid_mom(X, k=7), -mu / (mu - T[:, -1]), rtol=1e-10)


def test_similarity_invariance(low_rank):
    rng = np.random.default_rng(2)
    Q, _ = np.linalg.qr(rng.normal(size=(40, 40)))
    Y = 3.7 * low_rank @ Q + 5.0
    np.testing.assert_allclose(lid_mle(Y, 10), lid_mle(low_rank, 10), rtol=1e-7)
    assert lid_twonn(Y) == pytest.approx(lid_twonn(low_rank), rel=1e-7)


# ----------------------------------------------------------------------------- profile, shared neighbours
def test_profile_equals_single_k_with_one_knn_call(low_rank, monkeypatch):
    calls = []

    def counting_knn(*args, **kwargs):
        calls.append(args[1] if len(args) > 1 else kwargs["k"])
        return knn(*args, **kwargs)

    monkeypatch.setattr(lid_module, "knn", counting_knn)
    ks = (5, 10, 20, 50, 100, 200, 500, 1000)
    prof = lid_profile(low_rank, ks)
    assert calls == [1000]
    assert list(prof) == list(ks)
    for k in ks:
        assert_same_path_free(prof[k], lid_mle(low_rank, k))
    prof_mom = lid_profile(low_rank, (5, 50), estimator="mom")
    for k in (5, 50):
        assert_same_path_free(prof_mom[k], lid_mom(low_rank, k))


def test_profile_local_to_global():
    """A closed curve winding through R^10 at 5 frequencies: 1-D at small scale, spread over
    several dimensions at large scale, so the LID profile rises with K."""
    t = np.random.default_rng(0).uniform(0, 2 * np.pi, 2000)
    X = np.concatenate([np.c_[np.cos(w * t), np.sin(w * t)] / w ** 0.5 for w in (1, 3, 7, 13, 29)], 1)
    prof = lid_profile(X, (20, 1000))
    assert abs(prof[20].mean() - 1) < 0.1
    assert prof[1000].mean() > 2


def test_precomputed_neighbors(low_rank):
    nb = knn(low_rank, 60)
    for k in (5, 60):
        assert_same_path_free(lid_mle(low_rank, k, neighbors=nb), lid_mle(low_rank, k))
        assert_same_path_free(lid_mom(low_rank, k, neighbors=nb), lid_mom(low_rank, k))
    assert lid_twonn(low_rank, neighbors=nb) == pytest.approx(lid_twonn(low_rank), rel=1e-12)
    prof = lid_profile(low_rank, (5, 60), neighbors=nb)
    assert_same_path_free(prof[60], lid_mle(low_rank, 60))
    t_nb = (torch.as_tensor(nb[0]), torch.as_tensor(nb[1]))
    assert_same_path_free(lid_mle(low_rank, 5, neighbors=t_nb), lid_mle(low_rank, 5))


def test_precomputed_neighbors_validation(low_rank):
    dist, idx = knn(low_rank, 10)
    with pytest.raises(ValueError, match="10 neighbours per point but k=20"):
        lid_mle(low_rank, 20, neighbors=(dist, idx))
    with pytest.raises(ValueError, match="computed for 1199 points but X has 1200"):
        lid_mle(low_rank, 5, neighbors=(dist[1:], idx[1:]))
    with pytest.raises(ValueError, match="sorted ascending"):
        lid_mle(low_rank, 5, neighbors=(dist[:, ::-1], idx[:, ::-1]))
    with pytest.raises(ValueError, match="same shape"):
        lid_mle(low_rank, 5, neighbors=(dist, idx[:, :5]))
    with pytest.raises(ValueError, match=r"\(dist, idx\) pair"):
        lid_mle(low_rank, 5, neighbors=dist)
    bad = idx.copy()
    bad[:, 0] = np.arange(len(bad))
    with pytest.raises(ValueError, match="point itself"):
        lid_mle(low_rank, 5, neighbors=(dist, bad))
    zero = dist.copy()
    zero[0, 0] = 0.0
    with pytest.raises(ValueError, match="distance 0"):
        lid_mle(low_rank, 5, neighbors=(zero, idx))


# ----------------------------------------------------------------------------- known manifolds
# Uniform samples, N = 5000, isometrically rotated into R^D. K = 20 for the MLE.
# Honest limits (measured, seed 0): the MLE at K=20 is within 10 % of d for the sphere up
# to d = 12 (ratio 0.94 at d = 12); the hypercube's boundary biases it down (0.95 at
# d = 6, 0.87 at d = 10) and the flat torus (S^1)^d in R^(2d) is over-estimated beyond
# d = 2 (chords shorten large distances: 1.09 at d = 4), so those are tested at modest d.
# TwoNN is biased down at high d (sphere: 0.95 at d = 10, 0.93 at d = 12).
MANIFOLDS = [
    ("sphere", 2, 64, True), ("sphere", 5, 128, True), ("sphere", 8, 512, True),
    ("sphere", 12, 64, False), ("cube", 2, 32, True), ("cube", 4, 128, True),
    ("cube", 6, 512, False), ("torus", 2, 16, True),
]


@pytest.mark.parametrize("kind,d,D,check_twonn", MANIFOLDS)
def test_known_manifold_dimension(rotated_manifold, kind, d, D, check_twonn):
    X = rotated_manifold(kind, 5000, d, D, seed=0)
    nb = knn(X, 20)
    mle = lid_mle(X, 20, neighbors=nb).mean()
    assert abs(mle / d - 1) < 0.10, f"{kind} d={d}: mean MLE {mle:.2f}"
    if check_twonn:
        two = lid_twonn(X, neighbors=nb)
        assert abs(two / d - 1) < 0.10, f"{kind} d={d}: TwoNN {two:.2f}"


# ----------------------------------------------------------------------------- errors
def test_error_nan(low_rank):
    X = low_rank.copy()
    X[[3, 7], 0] = np.nan
    with pytest.raises(ValueError, match="2 row"):
        lid_mle(X)
    with pytest.raises(ValueError, match="NaN or inf"):
        lid_twonn(X)


def test_error_k(low_rank):
    with pytest.raises(ValueError, match="k <= 1199"):
        lid_mle(low_rank, k=1200)
    with pytest.raises(ValueError, match="k >= 2"):
        lid_mle(low_rank, k=1)
    with pytest.raises(ValueError, match="integer"):
        lid_mom(low_rank, k=2.5)
    with pytest.raises(ValueError, match="largest allowed k is 1199"):
        lid_profile(low_rank, ks=(10, 5000))
    with pytest.raises(ValueError, match="estimator"):
        lid_profile(low_rank, ks=(10,), estimator="tle")
    with pytest.raises(ValueError, match="discard_fraction"):
        lid_twonn(low_rank, discard_fraction=1.0)


def test_error_shape():
    with pytest.raises(ValueError, match="at least 3 samples"):
        lid_mle(np.random.default_rng(0).normal(size=(2, 5)), k=1)
    with pytest.raises(ValueError, match="2-D"):
        lid_mle(np.zeros((10, 4, 3)))
    with pytest.raises(ValueError, match="2-D"):
        lid_twonn(np.zeros(10))


def test_duplicates(low_rank):
    X = np.concatenate([low_rank, low_rank[:3]])
    with pytest.raises(ValueError, match="3 exact duplicate"):
        lid_mle(X)
    with pytest.raises(ValueError, match="duplicate"):
        lid_twonn(X)
    with pytest.warns(UserWarning, match="Dropped 3 exact duplicate"):
        out = lid_mle(X, duplicates="drop")
    assert_same_path_free(out, lid_mle(low_rank))
    with pytest.warns(UserWarning, match="Dropped 3"):
        prof = lid_profile(X, (5, 10), duplicates="drop")
    assert prof[10].shape == (len(low_rank),)
    # "ignore" gives degenerate estimates for the copies (T_1 ~ 0): far below the true 6.
    ign = lid_mle(X, duplicates="ignore")
    assert (ign[[0, 1, 2, -3, -2, -1]] < 2).all()


# ----------------------------------------------------------------------------- CUDA
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_equals_cpu(low_rank):
    for k in (5, 50):
        np.testing.assert_allclose(lid_mle(low_rank, k, device="cuda"),
                                   lid_mle(low_rank, k, device="cpu"), rtol=1e-9)
    assert lid_twonn(low_rank, device="cuda") == pytest.approx(lid_twonn(low_rank, device="cpu"),
                                                               rel=1e-9)


# ----------------------------------------------------------------------------- MADA
@pytest.mark.parametrize("k", [2, 5, 20, 21, 100])
def test_mada_equals_skdim_per_point(low_rank, k):
    # measured: max relative difference 2e-11 at k = 2 (log(T2/T1) near 0 amplifies rounding), 1e-13 else
    ref = skdim.id.MADA().fit(low_rank, n_neighbors=k)
    ours = lid_mada(low_rank, k)
    np.testing.assert_allclose(ours, ref.dimension_pw_, rtol=1e-9)
    assert ours.mean() == pytest.approx(ref.dimension_, rel=1e-9)


def test_mada_by_hand_profile_and_neighbors(low_rank):
    X = np.random.default_rng(3).normal(size=(30, 4))
    T = np.sort(np.linalg.norm(X[:, None] - X[None], axis=-1), axis=1)[:, 1:]  # self excluded
    np.testing.assert_allclose(lid_mada(X, k=7), np.log(2) / np.log(T[:, 6] / T[:, 2]), rtol=1e-10)
    nb = knn(low_rank, 60)
    prof = lid_profile(low_rank, (5, 60), estimator="mada", neighbors=nb)
    for k in (5, 60):
        assert_same_path_free(prof[k], lid_mada(low_rank, k))


@pytest.mark.parametrize("kind,d,D", [("sphere", 2, 64), ("sphere", 5, 128), ("sphere", 8, 512),
                                      ("cube", 4, 128), ("torus", 2, 16)])
def test_mada_known_manifold_dimension(rotated_manifold, kind, d, D):
    # measured mean / d at K = 20, n = 5000: 1.08, 1.06, 1.00, 1.00, 1.08
    X = rotated_manifold(kind, 5000, d, D, seed=0)
    assert abs(lid_mada(X, 20).mean() / d - 1) < 0.10


# ----------------------------------------------------------------------------- fast profile = straightforward formula
def _profile_by_hand(X, ks):
    """Per-K formulas on brute-force sorted distances, one K at a time (the old per-k code)."""
    from scipy.spatial.distance import cdist

    D = cdist(X, X)
    np.fill_diagonal(D, np.inf)
    T = np.sort(D, axis=1)[:, :max(ks)]
    out = {}
    for k in ks:
        mle = 1 / np.mean(np.log(T[:, k - 1:k] / T[:, :k - 1]), axis=1)
        mu = T[:, :k].mean(1)
        mada = np.log(2) / np.log(T[:, k - 1] / T[:, k // 2 - 1])
        out[k] = {"mle": mle, "mom": mu / (T[:, k - 1] - mu), "mada": mada}
    return out


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e4])
def test_profile_equals_per_k_formula(scale):
    """The cumulative-log-sum profile equals the per-K formula to 1e-10, at every K,
    for the float32 (small K) and float64 (large K) neighbour paths, at any data scale."""
    rng = np.random.default_rng(8)
    X = scale * (np.tanh(rng.normal(size=(1500, 8)) @ rng.normal(size=(8, 60))) + 0.01 * rng.normal(size=(1500, 60)))
    ks = (2, 3, 5, 10, 20, 50, 100, 200, 500, 1000)
    ref = _profile_by_hand(X, ks)
    for est in ("mle", "mom", "mada"):
        prof = lid_profile(X, ks, estimator=est)
        small = lid_profile(X, (2, 5, 20), estimator=est)  # kmax=20: float32 search path
        for k in ks:
            np.testing.assert_allclose(prof[k], ref[k][est], rtol=1e-10, err_msg=f"{est} K={k}")
            single = {"mle": lid_mle, "mom": lid_mom, "mada": lid_mada}[est](X, k)
            np.testing.assert_allclose(prof[k], single, rtol=1e-10, err_msg=f"{est} K={k}")
        for k in small:
            np.testing.assert_allclose(small[k], ref[k][est], rtol=1e-10, err_msg=f"{est} K={k}")


def test_profile_with_ignored_duplicates_matches_per_k():
    """duplicates='ignore': a zero distance gives MLE 0 (and NaN when T_K = 0 too), as per K.
    (N >= 64 (k + margin): the float32 path, whose re-measured distances of copies are exactly 0;
    the float64 GEMM path gives rounding noise ~1e-8 for them and LID values that are noise.)"""
    rng = np.random.default_rng(9)
    base = rng.normal(size=(1300, 5))
    X = np.concatenate([base, base[:3], base[:3]])  # triples: T_1 = T_2 = 0
    prof = lid_profile(X, (2, 3, 10), duplicates="ignore")
    for k in (2, 3, 10):
        single = lid_mle(X, k, duplicates="ignore")
        np.testing.assert_array_equal(np.isnan(prof[k]), np.isnan(single))
        ok = ~np.isnan(single)
        np.testing.assert_allclose(prof[k][ok], single[ok], rtol=1e-10)
    assert np.isnan(prof[2][:3]).all() and (prof[3][:3] == 0).all() and (prof[10][:3] == 0).all()
