"""Tests of the global dimension measures (lidutils.global_dim)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from lidutils.global_dim import (covariance_spectrum, effective_rank, global_dims,
                                 participation_ratio, pca_n_components, spectrum_alpha)
from lidutils.lid import lid_twonn


def _embed(Z, D, rng):
    Q, _ = np.linalg.qr(rng.normal(size=(D, Z.shape[1])))
    return Z @ Q.T


@pytest.fixture(scope="module")
def isotropic():
    """Isotropic 12-dim Gaussian (N=5000) rotated into R^100."""
    rng = np.random.default_rng(0)
    return _embed(rng.normal(size=(5000, 12)), 100, rng)


def _power_law(alpha, n=4000, D=400, seed=0):
    rng = np.random.default_rng(seed)
    lam = np.arange(1, D + 1, dtype=float) ** -alpha
    return _embed(rng.normal(size=(n, D)) * np.sqrt(lam), D, rng), lam


def test_isotropic_gaussian(isotropic):
    with pytest.warns(UserWarning, match="returning nan"):  # 12 eigenvalues: no power law
        g = global_dims(isotropic)
    assert set(g) == {"participation_ratio", "effective_rank", "pca_n90", "twonn", "alpha"}
    assert g["participation_ratio"] == pytest.approx(12, rel=0.03)
    assert g["effective_rank"] == pytest.approx(12, rel=0.03)
    assert g["pca_n90"] == 11  # 10/12 = 0.83 < 0.9 <= 11/12 = 0.92
    assert g["twonn"] == lid_twonn(isotropic)
    assert abs(g["twonn"] / 12 - 1) < 0.10
    assert np.isnan(g["alpha"])
    assert participation_ratio(isotropic) == g["participation_ratio"]


@pytest.mark.parametrize("alpha", [0.8, 1.0, 1.5])
def test_power_law_spectrum(alpha):
    X, lam = _power_law(alpha)
    g = global_dims(X)
    assert g["alpha"] == pytest.approx(alpha, abs=0.05)
    pr_true = lam.sum() ** 2 / (lam ** 2).sum()
    assert g["participation_ratio"] == pytest.approx(pr_true, rel=0.05)
    n90_true = pca_n_components(lam, 0.9)
    # N/D = 10: the sample spectrum is spread (Marchenko-Pastur), so the tail looks lighter
    # and fewer components reach 90 % (measured: 255 vs 274 for alpha=0.8, 194 vs 208 for 1.0)
    assert n90_true * 0.9 <= g["pca_n90"] <= n90_true + 2


def test_spectrum_matches_numpy_both_branches():
    rng = np.random.default_rng(1)
    for shape in [(300, 40), (40, 300)]:  # D <= N: covariance; D > N: Gram matrix
        X = rng.normal(size=shape) @ np.diag(rng.uniform(0.1, 2, shape[1]))
        ref = np.sort(np.linalg.eigvalsh(np.cov(X, rowvar=False)))[::-1][: min(shape)]
        lam = covariance_spectrum(X)
        assert lam.shape == (min(shape),)
        np.testing.assert_allclose(lam, ref, rtol=1e-8, atol=1e-10 * ref[0])
        s = np.linalg.svd(X - X.mean(0), compute_uv=False)
        p = s / s.sum()
        assert effective_rank(lam) == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-8)
        assert participation_ratio(X) == pytest.approx(ref.sum() ** 2 / (ref ** 2).sum(), rel=1e-10)


def test_invariances():
    X, _ = _power_law(1.0, n=600, D=80, seed=2)
    rng = np.random.default_rng(3)
    Q, _ = np.linalg.qr(rng.normal(size=(80, 80)))
    a, b = global_dims(X), global_dims(2.5 * X @ Q - 7.0)
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-7), key


def test_pca_n_components_and_alpha_helpers():
    lam = np.array([5.0, 3.0, 1.0, 1.0])
    assert pca_n_components(lam, 0.5) == 1
    assert pca_n_components(lam, 0.8) == 2  # exactly 80 % counts as reached
    assert pca_n_components(lam, 1.0) == 4
    with pytest.raises(ValueError, match="variance"):
        pca_n_components(lam, 0)
    exact = np.arange(1, 1001, dtype=float) ** -1.3
    assert spectrum_alpha(exact) == pytest.approx(1.3, rel=1e-10)
    assert spectrum_alpha(exact, ranks=(1, 20)) == pytest.approx(1.3, rel=1e-10)
    with pytest.raises(ValueError, match="ranks"):
        spectrum_alpha(exact, ranks=(5, 5))


def test_errors(isotropic):
    X = isotropic[:100].copy()
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="1 row"):
        global_dims(X)
    with pytest.raises(ValueError, match="at least 3"):
        global_dims(isotropic[:2])
    with pytest.raises(ValueError, match="2-D"):
        participation_ratio(isotropic[:10, :, None])
    dup = np.concatenate([isotropic[:100], isotropic[:1]])
    with pytest.raises(ValueError, match="1 exact duplicate"):
        global_dims(dup)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        g = global_dims(dup, duplicates="drop", alpha_ranks=(1, 50))
    assert any("Dropped 1" in str(w.message) for w in rec)
    assert g == global_dims(isotropic[:100], alpha_ranks=(1, 50))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_equals_cpu():
    X, _ = _power_law(1.0, n=1500, D=200, seed=4)
    a, b = global_dims(X, device="cpu"), global_dims(X, device="cuda")
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-8), key
