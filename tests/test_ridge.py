import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score

from lidutils.ridge import (
    DEFAULT_ALPHAS, pca_fit_transform, r2_columns, r2_weighted, ridge_cv_predict, ridge_predict,
)

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _data(n=60, p=12, T=5, n_test=15, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) * rng.uniform(0.1, 3, p) + 2.0
    W = rng.normal(size=(p, T))
    Y = X @ W + rng.normal(size=(n, T)) * 2 + 5.0
    Xt = rng.normal(size=(n_test, p)) + 2.0
    return X, Y, Xt


@pytest.mark.parametrize("alpha", [1e-3, 0.7, 50.0])
@pytest.mark.parametrize("shape", [(60, 12), (10, 40)])  # n > p and n < p
def test_ridge_predict_matches_sklearn(alpha, shape):
    X, Y, Xt = _data(*shape)
    ours = ridge_predict(X, Y, Xt, alpha, device="cpu")
    ref = Ridge(alpha=alpha, fit_intercept=True, solver="svd").fit(X, Y).predict(Xt)
    np.testing.assert_allclose(ours, ref, atol=1e-8, rtol=0)


def test_ridge_predict_per_target_alpha_and_chunks():
    X, Y, Xt = _data(T=7)
    alphas = np.logspace(-2, 3, 7)
    ours = ridge_predict(X, Y, Xt, alphas, target_chunk=3, device="cpu")
    for t, a in enumerate(alphas):
        ref = Ridge(alpha=a).fit(X, Y[:, t]).predict(Xt)
        np.testing.assert_allclose(ours[:, t], ref, atol=1e-8, rtol=0)


def test_ridge_predict_1d_target():
    X, Y, Xt = _data()
    out = ridge_predict(X, Y[:, 0], Xt, 1.0, device="cpu")
    assert out.shape == (Xt.shape[0], 1)


def _sklearn_inner_cv(X, Y, grid, inner_folds, seed, per_target):
    """Brute-force reference: same folds, sklearn Ridge per alpha, mean held-out R²."""
    n = len(X)
    perm = np.random.default_rng(seed).permutation(n)
    scores = np.zeros((len(grid), Y.shape[1]))
    for val in np.array_split(perm, inner_folds):
        tr = np.setdiff1d(perm, val)
        for i, a in enumerate(grid):
            P = Ridge(alpha=a).fit(X[tr], Y[tr]).predict(X[val])
            scores[i] += r2_score(Y[val], P, multioutput="raw_values")
    scores /= inner_folds
    if per_target:
        return grid[np.argmax(scores, axis=0)]
    return grid[np.argmax(scores.mean(1))]


@pytest.mark.parametrize("per_target", [False, True])
def test_ridge_cv_predict_matches_bruteforce_sklearn(per_target):
    X, Y, Xt = _data(n=50, T=4)
    grid = np.logspace(-3, 4, 15)
    pred, info = ridge_cv_predict(X, Y, Xt, alphas=grid, inner_folds=5, alpha_per_target=per_target,
                                  seed=3, return_info=True, target_chunk=3, device="cpu")
    expected = _sklearn_inner_cv(X, Y, grid, 5, 3, per_target)
    np.testing.assert_array_equal(np.atleast_1d(info["alpha"]), np.atleast_1d(expected))
    if per_target:
        ref = np.column_stack([Ridge(alpha=a).fit(X, Y[:, t]).predict(Xt) for t, a in enumerate(expected)])
    else:
        ref = Ridge(alpha=expected).fit(X, Y).predict(Xt)
    np.testing.assert_allclose(pred, ref, atol=1e-8, rtol=0)


def test_default_alphas_are_relative_so_scale_invariant():
    X, Y, Xt = _data(n=80)
    p1, i1 = ridge_cv_predict(X, Y, Xt, return_info=True, device="cpu")
    p2, i2 = ridge_cv_predict(X * 1000.0, Y, Xt * 1000.0, return_info=True, device="cpu")
    np.testing.assert_allclose(p1, p2, atol=1e-8 * np.abs(p1).max())
    np.testing.assert_allclose(i2["alpha"], i1["alpha"] * 1e6, rtol=1e-10)
    assert i1["alphas"].size == DEFAULT_ALPHAS.size


def test_ridge_cv_picks_small_alpha_for_clean_and_large_for_noise():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(100, 5))
    clean = X @ rng.normal(size=(5, 3))
    noise = rng.normal(size=(100, 3))
    _, ic = ridge_cv_predict(X, clean, X[:5], return_info=True, device="cpu")
    _, inn = ridge_cv_predict(X, noise, X[:5], return_info=True, device="cpu")
    assert ic["alpha"] == ic["alphas"][0]
    assert inn["alpha"] > 100 * ic["alpha"]


def test_constant_target_does_not_break_cv():
    X, Y, Xt = _data(n=40, T=3)
    Y[:, 1] = 4.0
    pred, info = ridge_cv_predict(X, Y, Xt, alpha_per_target=True, return_info=True, device="cpu")
    np.testing.assert_allclose(pred[:, 1], 4.0)
    assert np.isfinite(pred).all()
    assert info["alpha"][1] == info["alphas"][-1]


def test_r2_columns_matches_sklearn_and_weighted():
    rng = np.random.default_rng(2)
    Y = rng.normal(size=(30, 4)) * [1, 2, 3, 4]
    P = Y + rng.normal(size=Y.shape)
    np.testing.assert_allclose(r2_columns(Y, P), r2_score(Y, P, multioutput="raw_values"), atol=1e-12)
    assert r2_weighted(Y, P) == pytest.approx(r2_score(Y, P, multioutput="variance_weighted"), abs=1e-12)
    Y[:, 2] = 1.0
    assert np.isnan(r2_columns(Y, P)[2])


def test_r2_weighted_rotation_invariant():
    rng = np.random.default_rng(3)
    Y = rng.normal(size=(40, 6))
    P = Y + rng.normal(size=Y.shape) * 0.5
    Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    assert r2_weighted(Y @ Q, P @ Q) == pytest.approx(r2_weighted(Y, P), abs=1e-12)


def test_pca_fit_transform_train_only_and_clipped():
    rng = np.random.default_rng(4)
    tr, te = rng.normal(size=(20, 50)), rng.normal(size=(7, 50))
    ztr, zte, var = pca_fit_transform(tr, te, 300, device="cpu", return_variance=True)
    assert ztr.shape == (20, 19) and zte.shape == (7, 19)  # rank of centred train is n - 1
    np.testing.assert_allclose(ztr.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(ztr.var(0, ddof=1), var, rtol=1e-10)
    assert np.all(np.diff(var) <= 1e-12)
    # identical to sklearn PCA fitted on the training rows (up to component signs)
    from sklearn.decomposition import PCA
    pca = PCA(5, svd_solver="full").fit(tr)
    ref = pca.transform(te)
    z5 = pca_fit_transform(tr, te, 5, device="cpu")[1]
    np.testing.assert_allclose(np.abs(z5), np.abs(ref), atol=1e-10)
    # the test rows do not influence the fit
    z5b = pca_fit_transform(tr, te * 100, 5, device="cpu")[0]
    np.testing.assert_allclose(pca_fit_transform(tr, te, 5, device="cpu")[0], z5b)


def test_bad_inputs():
    X, Y, Xt = _data()
    with pytest.raises(ValueError, match="rows"):
        ridge_predict(X, Y[:-1], Xt, 1.0)
    with pytest.raises(ValueError, match="features"):
        ridge_predict(X, Y, Xt[:, :-1], 1.0)
    Xn = X.copy()
    Xn[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ridge_cv_predict(Xn, Y, Xt)
    with pytest.raises(ValueError, match="alphas"):
        ridge_predict(X, Y, Xt, -1.0)
    with pytest.raises(ValueError, match="alpha"):
        ridge_predict(X, Y, Xt, [1.0, 2.0])
    with pytest.raises(ValueError, match="inner_folds"):
        ridge_cv_predict(X[:7], Y[:7], Xt, inner_folds=5)
    with pytest.raises(ValueError, match="n_pcs"):
        pca_fit_transform(X, Xt, 0)
    with pytest.raises(ValueError, match="shape"):
        r2_columns(Y, Y[:, :2])


@cuda
@pytest.mark.cuda
def test_cuda_matches_cpu():
    X, Y, Xt = _data(n=200, p=30, T=50)
    cpu = ridge_cv_predict(X, Y, Xt, device="cpu")
    gpu = ridge_cv_predict(X, Y, Xt, device="cuda")
    np.testing.assert_allclose(gpu, cpu, atol=1e-8)
    a, b = pca_fit_transform(X, Xt, 10, device="cpu"), pca_fit_transform(X, Xt, 10, device="cuda")
    np.testing.assert_allclose(np.abs(a[1]), np.abs(b[1]), atol=1e-8)
