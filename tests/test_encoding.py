"""Voxelwise encoding alignment and split-half noise ceiling on synthetic voxels."""
import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold

from lidutils.encoding import encoding_alignment, roi_summary, split_half_noise_ceiling


def planted(n=600, p=20, fracs=(0.2, 0.5, 0.8), per=10, seed=0):
    """Voxels y = sqrt(s) * z(Xw) + sqrt(1-s) * e: signal variance fraction s exactly known."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    cols, frac = [], []
    for s in fracs:
        W = rng.standard_normal((p, per)) / np.sqrt(p)  # var(Xw) = 1 in expectation
        cols.append(np.sqrt(s) * X @ W + np.sqrt(1 - s) * rng.standard_normal((n, per)))
        frac += [s] * per
    return X, np.hstack(cols), np.array(frac)


def test_planted_signal_reaches_theoretical_r2():
    X, Y, s = planted()
    out = encoding_alignment(X, Y, n_pcs=20, n_folds=5, device="cpu")
    assert out.r2.shape == (30,) and out.r2_folds.shape == (5, 30) and out.n_pcs == 20
    # Out-of-sample R^2 of a p-dim linear fit on n_train rows: s - (1-s) p/(n_train-p-1) (OLS);
    # ridge can only help. 0.04 tolerance ~ 3 SE of a 10-voxel mean at n=600.
    n_train, p = 480, 20
    for frac in np.unique(s):
        got = out.r2[s == frac].mean()
        ols = frac - (1 - frac) * p / (n_train - p - 1)
        assert ols - 0.04 < got < frac + 0.02, (frac, got, ols)
    assert out.score == pytest.approx(np.median(out.r2))
    assert np.all(out.alpha > 0)


def test_no_signal_gives_r2_near_zero_not_inflated():
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((400, 30)), rng.standard_normal((400, 40))
    out = encoding_alignment(X, Y, n_pcs=30, n_folds=5, device="cpu")
    assert np.abs(out.r2).mean() < 0.02
    assert out.r2.mean() < 0.0  # held-out mean baseline: pure-noise fits score slightly below 0


def test_matches_sklearn_pca_ridge_pipeline_at_fixed_alpha():
    X, Y, _ = planted(n=200, p=40, per=3, seed=5)
    alpha, q = 30.0, 15
    out = encoding_alignment(X, Y, n_pcs=q, n_folds=4, alphas=[alpha], device="cpu", seed=2)
    ref = []
    for tr, te in KFold(4, shuffle=True, random_state=2).split(X):
        pca = PCA(q, svd_solver="full").fit(X[tr])
        m = Ridge(alpha=alpha).fit(pca.transform(X[tr]), Y[tr])
        ref.append(r2_score(Y[te], m.predict(pca.transform(X[te])), multioutput="raw_values"))
    np.testing.assert_allclose(out.r2, np.mean(ref, 0), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("per_voxel", [True, False])
def test_voxel_chunking_is_exact(per_voxel):
    X, Y, _ = planted(n=150, p=12, per=7, seed=1)
    a = encoding_alignment(X, Y, n_pcs=10, n_folds=3, alpha_per_voxel=per_voxel, voxel_chunk=4, device="cpu")
    b = encoding_alignment(X, Y, n_pcs=10, n_folds=3, alpha_per_voxel=per_voxel, voxel_chunk=10_000,
                           device="cpu")
    np.testing.assert_allclose(a.r2_folds, b.r2_folds, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(a.alpha, b.alpha)
    if not per_voxel:
        assert np.all(a.alpha == a.alpha[:, :1])  # one alpha per fold


def test_memmap_targets(tmp_path):
    X, Y, _ = planted(n=120, p=8, per=4, seed=4)
    np.save(tmp_path / "y.npy", Y.astype(np.float32))
    Ym = np.load(tmp_path / "y.npy", mmap_mode="r")
    a = encoding_alignment(X, Ym, n_pcs=8, n_folds=3, voxel_chunk=5, device="cpu")
    b = encoding_alignment(X, Y.astype(np.float32), n_pcs=8, n_folds=3, device="cpu")
    np.testing.assert_allclose(a.r2, b.r2, rtol=1e-10)


def test_roi_table_from_dict_and_labels():
    rng = np.random.default_rng(7)
    X, Y, s = planted(n=300, p=10, fracs=(0.6,), per=12, seed=7)
    noise = rng.standard_normal((300, 8))
    out = encoding_alignment(X, {"FFA": Y, "V1": noise}, n_pcs=10, n_folds=3, summary="mean", device="cpu")
    t = out.roi_table
    assert list(t.roi) == ["FFA", "V1"] and list(t.n_voxels) == [12, 8]
    assert t.r2.iloc[0] == pytest.approx(out.r2[:12].mean())
    assert t.r2.iloc[0] > 0.45 and abs(t.r2.iloc[1]) < 0.05
    assert t.frac_positive.iloc[0] == 1.0
    # same result from an array + labels, with a noise ceiling column
    labels = ["FFA"] * 12 + ["V1"] * 8
    nc = np.r_[np.full(12, 0.6), np.full(8, 0.1)]
    out2 = encoding_alignment(X, np.hstack([Y, noise]), n_pcs=10, n_folds=3, summary="mean", device="cpu",
                              roi_labels=labels, noise_ceiling=nc)
    np.testing.assert_allclose(out2.r2, out.r2)
    assert out2.roi_table.r2_normalized.iloc[0] == pytest.approx(out2.roi_table.r2.iloc[0] / 0.6)
    med = roi_summary(out.r2, labels)  # default median
    assert med.r2.iloc[1] == pytest.approx(np.median(out.r2[12:]))


def test_noise_ceiling_recovers_planted_reliability():
    rng = np.random.default_rng(11)
    n, V = 3000, 40
    sig_var = np.linspace(0.25, 2.0, V)  # noise variance 1 per half
    S = rng.standard_normal((n, V)) * np.sqrt(sig_var)
    h1, h2 = S + rng.standard_normal((n, V)), S + rng.standard_normal((n, V))
    rho = sig_var / (sig_var + 0.5)  # reliability of the 2-half average
    nc = split_half_noise_ceiling(h1, h2)
    assert np.max(np.abs(nc - rho)) < 0.06 and abs(np.mean(nc - rho)) < 0.01


def test_noise_ceiling_bounds_encoding_r2():
    """A model that sees the true signal reaches R^2 ~ NC on the averaged data (R^2 units, not NC^2)."""
    rng = np.random.default_rng(12)
    n, p, V = 800, 6, 12
    X = rng.standard_normal((n, p))
    S = X @ rng.standard_normal((p, V)) / np.sqrt(p)
    h1, h2 = S + rng.standard_normal((n, V)), S + rng.standard_normal((n, V))
    nc = split_half_noise_ceiling(h1, h2)
    out = encoding_alignment(X, (h1 + h2) / 2, n_pcs=p, n_folds=5, device="cpu")
    assert abs(np.mean(out.r2) - np.mean(nc)) < 0.05
    assert abs(np.mean(out.r2) - np.mean(nc) ** 2) > 0.1  # and clearly not the squared version


def test_noise_ceiling_edge_cases():
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((20, 3)), rng.standard_normal((20, 3))
    A[:, 0] = 1.0
    nc = split_half_noise_ceiling(A, -A + 0 * B)
    assert np.isnan(nc[0])
    assert np.all(split_half_noise_ceiling(A[:, 1:], -A[:, 1:], clip=True) == 0)
    with pytest.raises(ValueError, match="same images"):
        split_half_noise_ceiling(A, B[:10])
    B[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        split_half_noise_ceiling(A, B)


def test_input_errors():
    X, Y, _ = planted(n=40, p=5, per=2)
    with pytest.raises(ValueError, match="same images"):
        encoding_alignment(X[:30], Y)
    with pytest.raises(ValueError, match="roi_labels has 3"):
        encoding_alignment(X, Y, roi_labels=["a", "b", "c"])
    with pytest.raises(ValueError, match="n_folds=30 needs at least 60"):
        encoding_alignment(X, Y, n_folds=30)
    with pytest.raises(ValueError, match="summary"):
        encoding_alignment(X, Y, summary="max")
    Xn = X.copy()
    Xn[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        encoding_alignment(Xn, Y)
    with pytest.raises(ValueError, match="different numbers of rows"):
        encoding_alignment(X, {"a": Y, "b": Y[:20]})
