import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from scipy.spatial.distance import pdist, squareform

import lidutils.alignment as al
from lidutils.alignment import alignment_matrix, linear_cka, mutual_knn, mutual_knn_neighbors, rdm, ridge_alignment, rsa

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _rot(d, rng):
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return Q


# --------------------------------------------------------------------------- mutual kNN

def test_mutual_knn_similarity_transform_is_one():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(200, 16))
    B = 3.7 * A @ _rot(16, rng) + rng.normal(size=16) * 10  # A Q s + t
    assert mutual_knn(A, B, k=10, device="cpu") == 1.0


def test_mutual_knn_without_centering_is_huh_definition():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(150, 8))
    B = 2.0 * A @ _rot(8, rng)
    assert mutual_knn(A, B, k=5, center=False, device="cpu") == 1.0  # rotation+scale: still 1
    # uncentred + large translation changes the cosine neighbourhoods
    assert mutual_knn(A, B + 5.0, k=5, center=False, device="cpu") < 0.9
    # brute-force reference of Huh et al.: cosine similarity, self excluded
    C = rng.normal(size=(150, 8))
    def nn(X):
        Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
        S = Xn @ Xn.T
        np.fill_diagonal(S, -np.inf)
        return np.argsort(-S, axis=1)[:, :5]
    ia, ic = nn(A), nn(C)
    ref = np.mean([len(set(ia[i]) & set(ic[i])) / 5 for i in range(150)])
    assert mutual_knn(A, C, k=5, center=False, device="cpu") == pytest.approx(ref, abs=1e-12)


def test_mutual_knn_chance_level():
    rng = np.random.default_rng(2)
    n, k = 300, 10
    vals = [mutual_knn(rng.normal(size=(n, 20)), rng.normal(size=(n, 30)), k=k, device="cpu") for _ in range(4)]
    # chance = k/(N-1) = 0.0334; s.e. of the mean of 4 x 300 overlaps is about 0.0017
    assert np.mean(vals) == pytest.approx(k / (n - 1), abs=0.008)


def test_mutual_knn_precomputed_neighbors():
    rng = np.random.default_rng(3)
    A, B = rng.normal(size=(80, 6)), rng.normal(size=(80, 6))
    B[:, :3] = A[:, :3]
    direct = mutual_knn(A, B, k=7, device="cpu")
    ia, ib = mutual_knn_neighbors(A, 12, device="cpu"), mutual_knn_neighbors(B, 12, device="cpu")
    assert mutual_knn(None, None, k=7, neighbors=(ia, ib)) == pytest.approx(direct, abs=1e-15)
    assert 0.05 < direct < 1.0
    with pytest.raises(ValueError, match="columns"):
        mutual_knn(None, None, k=13, neighbors=(ia, ib))


def test_mutual_knn_bad_input():
    rng = np.random.default_rng(4)
    A = rng.normal(size=(20, 3))
    with pytest.raises(ValueError, match="rows"):
        mutual_knn(A, A[:-1])
    with pytest.raises(ValueError, match="k=20"):
        mutual_knn(A, A, k=20)
    An = A.copy()
    An[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        mutual_knn(An, A)


# --------------------------------------------------------------------------- CKA

def _cka_kernel_reference(A, B, debiased=False):
    """Direct kernel-form implementation (Kornblith et al. 2019, Song et al. 2012)."""
    n = A.shape[0]
    K, L = A @ A.T, B @ B.T
    if not debiased:
        H = np.eye(n) - 1.0 / n
        hsic = lambda K, L: np.trace(K @ H @ L @ H)  # noqa: E731
    else:
        def hsic(K, L):
            K, L = K.copy(), L.copy()
            np.fill_diagonal(K, 0)
            np.fill_diagonal(L, 0)
            one = np.ones(n)
            return (np.trace(K @ L) + (one @ K @ one) * (one @ L @ one) / ((n - 1) * (n - 2))
                    - 2.0 / (n - 2) * (one @ K @ L @ one)) / (n * (n - 3))
        A = A - A.mean(0)
        B = B - B.mean(0)
        K, L = A @ A.T, B @ B.T
    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("dims", [(5, 7), (60, 90)])  # feature form and kernel form (D > N)
def test_cka_matches_kernel_reference(debiased, dims):
    rng = np.random.default_rng(5)
    A = rng.normal(size=(40, dims[0]))
    B = A[:, :3] @ rng.normal(size=(3, dims[1])) + rng.normal(size=(40, dims[1]))
    assert linear_cka(A, B, debiased=debiased, device="cpu") == pytest.approx(
        _cka_kernel_reference(A, B, debiased), abs=1e-10)


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_invariances(debiased):
    rng = np.random.default_rng(6)
    A = rng.normal(size=(50, 10))
    B = np.tanh(A @ rng.normal(size=(10, 12)))
    base = linear_cka(A, B, debiased=debiased, device="cpu")
    assert linear_cka(A, A, debiased=debiased, device="cpu") == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(0.01 * A @ _rot(10, rng), 40 * B @ _rot(12, rng), debiased=debiased,
                      device="cpu") == pytest.approx(base, abs=1e-10)
    # CKA is not invariant to a general invertible linear map
    S = np.diag(np.linspace(0.1, 10, 10))
    assert abs(linear_cka(A @ S, B, debiased=debiased, device="cpu") - base) > 1e-3


def test_debiased_cka_near_zero_for_independent():
    rng = np.random.default_rng(7)
    A, B = rng.normal(size=(100, 500)), rng.normal(size=(100, 500))
    assert linear_cka(A, B, device="cpu") > 0.5  # the biased estimator is far from 0 when D >> N
    assert abs(linear_cka(A, B, debiased=True, device="cpu")) < 0.03


def test_cka_bad_input():
    rng = np.random.default_rng(8)
    A = rng.normal(size=(10, 3))
    with pytest.raises(ValueError, match="rows"):
        linear_cka(A, A[:5])
    with pytest.raises(ValueError, match="zero variance"):
        linear_cka(A, np.ones((10, 2)))


# --------------------------------------------------------------------------- ridge alignment

def test_ridge_alignment_self_is_one_and_noise_is_zero():
    rng = np.random.default_rng(9)
    A = rng.normal(size=(200, 30)) @ rng.normal(size=(30, 60))
    assert ridge_alignment(A, A, n_pcs=20, device="cpu") > 0.95
    res = ridge_alignment(A, rng.normal(size=(200, 25)), n_pcs=20, return_directions=True, device="cpu")
    assert set(res) == {"a_to_b", "b_to_a", "mean"}
    assert abs(res["a_to_b"]) < 0.05 and abs(res["b_to_a"]) < 0.05
    assert res["mean"] == pytest.approx(0.5 * (res["a_to_b"] + res["b_to_a"]))


def test_ridge_alignment_planted_linear_map():
    """B = A W + E with Var(signal) = Var(noise) per column: population R² = 0.5."""
    rng = np.random.default_rng(10)
    n, p, d = 1000, 5, 8
    A = rng.normal(size=(n, p))
    W = rng.normal(size=(p, d))
    signal = A @ W
    # noise covariance proportional to the signal's, so the explained share is 0.5 in every direction
    E = rng.normal(size=(n, p)) @ W
    B = signal + E
    res = ridge_alignment(A, B, n_pcs=300, return_directions=True, device="cpu")
    # expected out-of-sample value ~ 0.5 - 0.5 * p / n_train ≈ 0.497
    assert res["a_to_b"] == pytest.approx(0.5, abs=0.03)
    # isotropic noise: planted value = tr(W^T W) / (tr(W^T W) + d sigma^2)
    sigma = 2.0
    B2 = signal + sigma * rng.normal(size=(n, d))
    expected = np.trace(W.T @ W) / (np.trace(W.T @ W) + d * sigma ** 2)
    got = ridge_alignment(A, B2, n_pcs=300, return_directions=True, device="cpu")["a_to_b"]
    assert got == pytest.approx(expected, abs=0.03)


def test_ridge_alignment_scale_invariant_and_deterministic():
    rng = np.random.default_rng(11)
    A = rng.normal(size=(80, 10))
    B = A @ rng.normal(size=(10, 6)) + rng.normal(size=(80, 6))
    kw = dict(n_pcs=8, n_folds=3, inner_folds=3, device="cpu")
    r1 = ridge_alignment(A, B, **kw)
    assert ridge_alignment(1e4 * A, 1e-3 * B, **kw) == pytest.approx(r1, abs=1e-8)
    assert ridge_alignment(A, B, **kw) == r1
    assert ridge_alignment(A, B, seed=1, **kw) != r1


def test_ridge_alignment_bad_input():
    rng = np.random.default_rng(12)
    A = rng.normal(size=(30, 4))
    with pytest.raises(ValueError, match="rows"):
        ridge_alignment(A, A[:-1])
    with pytest.raises(ValueError, match="n_folds"):
        ridge_alignment(A[:8], A[:8], n_folds=5)
    with pytest.raises(ValueError, match="score"):
        ridge_alignment(A, A, score="median")


# --------------------------------------------------------------------------- RDM / RSA

@pytest.mark.parametrize("metric", ["correlation", "euclidean", "cosine"])
def test_rdm_matches_scipy(metric):
    rng = np.random.default_rng(13)
    X = rng.normal(size=(25, 9)) + 3.0
    R = rdm(X, metric, device="cpu")
    np.testing.assert_allclose(R, squareform(pdist(X, metric)), atol=1e-10)
    assert np.array_equal(R, R.T) and np.all(np.diag(R) == 0)


@pytest.mark.parametrize("method,fn", [("spearman", stats.spearmanr), ("pearson", stats.pearsonr),
                                       ("kendall", stats.kendalltau)])
def test_rsa_matches_scipy(method, fn):
    rng = np.random.default_rng(14)
    X = rng.normal(size=(30, 8))
    Y = X + rng.normal(size=X.shape)
    da, db = pdist(X, "correlation"), pdist(Y, "correlation")
    ref = fn(da, db)[0]
    assert rsa(squareform(da), squareform(db), method) == pytest.approx(ref, abs=1e-12)
    assert rsa(da, db, method) == pytest.approx(ref, abs=1e-12)  # condensed input


def test_rsa_bad_input():
    rng = np.random.default_rng(15)
    R = squareform(pdist(rng.normal(size=(10, 3))))
    with pytest.raises(ValueError, match="different numbers"):
        rsa(R, R[:9, :9])
    asym = R.copy()
    asym[0, 1] += 1
    with pytest.raises(ValueError, match="symmetric"):
        rsa(asym, R)
    with pytest.raises(ValueError, match="square"):
        rsa(R[:, :5], R[:, :5])
    with pytest.raises(ValueError, match="method"):
        rsa(R, R, "distance")
    with pytest.raises(ValueError, match="constant"):
        rdm(np.c_[np.ones(5), np.ones(5)], "correlation")


# --------------------------------------------------------------------------- all pairs

def _reps(seed=16, n=60):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 6))
    return {
        "a": base @ rng.normal(size=(6, 10)),
        "b": base @ rng.normal(size=(6, 8)) + 0.5 * rng.normal(size=(n, 8)),
        "c": rng.normal(size=(n, 12)),
    }


def test_alignment_matrix_mutual_knn_searches_once_per_rep(monkeypatch):
    reps = _reps()
    calls = []
    real = al.knn

    def counting(X, k, **kw):
        calls.append(X.shape)
        return real(X, k, **kw)

    monkeypatch.setattr(al, "knn", counting)
    df = alignment_matrix(reps, "mutual_knn", k=5, device="cpu")
    assert len(calls) == len(reps)  # not one per pair
    assert isinstance(df, pd.DataFrame) and list(df.index) == list(reps) == list(df.columns)
    np.testing.assert_allclose(df.values, df.values.T)
    np.testing.assert_allclose(np.diag(df.values), 1.0)
    assert df.loc["a", "b"] == pytest.approx(mutual_knn(reps["a"], reps["b"], k=5, device="cpu"))
    assert df.loc["a", "b"] > df.loc["a", "c"]


@pytest.mark.parametrize("metric,kw", [("cka", {}), ("rsa", {"rdm_metric": "euclidean"})])
def test_alignment_matrix_symmetric_metrics(metric, kw):
    reps = _reps()
    df = alignment_matrix(reps, metric, **kw)
    np.testing.assert_allclose(df.values, df.values.T, atol=1e-12)
    if metric == "cka":
        assert df.loc["a", "c"] == pytest.approx(linear_cka(reps["a"], reps["c"]))
    else:
        ref = rsa(rdm(reps["b"], "euclidean"), rdm(reps["c"], "euclidean"))
        assert df.loc["b", "c"] == pytest.approx(ref)


def test_alignment_matrix_ridge_directions():
    reps = _reps()
    df = alignment_matrix({k: reps[k] for k in ("a", "b")}, "ridge", n_pcs=10, device="cpu")
    res = ridge_alignment(reps["a"], reps["b"], n_pcs=10, return_directions=True, device="cpu")
    assert df.loc["a", "b"] == pytest.approx(res["a_to_b"]) and df.loc["b", "a"] == pytest.approx(res["b_to_a"])
    assert df.loc["a", "a"] > 0.95
    assert "predicting b (column) from a (row)" in df.attrs["note"]


def test_alignment_matrix_bad_input():
    reps = _reps()
    with pytest.raises(ValueError, match="same stimuli"):
        alignment_matrix({"a": reps["a"], "b": reps["b"][:-1]})
    with pytest.raises(ValueError, match="metric"):
        alignment_matrix(reps, "procrustes")
    with pytest.raises(ValueError, match="Unexpected"):
        alignment_matrix(reps, "mutual_knn", n_pcs=3)


@cuda
@pytest.mark.cuda
def test_cuda_matches_cpu():
    reps = _reps(n=300)
    a, b = reps["a"], reps["b"]
    assert mutual_knn(a, b, k=10, device="cuda") == mutual_knn(a, b, k=10, device="cpu")
    for deb in (False, True):
        assert linear_cka(a, b, debiased=deb, device="cuda") == pytest.approx(
            linear_cka(a, b, debiased=deb, device="cpu"), abs=1e-10)
    assert ridge_alignment(a, b, n_pcs=10, device="cuda") == pytest.approx(
        ridge_alignment(a, b, n_pcs=10, device="cpu"), abs=1e-8)
    np.testing.assert_allclose(rdm(a, device="cuda"), rdm(a, device="cpu"), atol=1e-10)
