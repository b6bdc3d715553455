"""RSA primitives (lidutils.rsatools): batched RSA, noise ceiling, ranking reliability, partial RSA."""
import os
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import pdist, squareform

from lidutils.rsatools import (
    brain_test_informative, check_rdms, gabor_features, gabor_rdm, noise_ceiling, partial_rsa, pixel_rdm,
    ranking_reliability, rdm, rsa, rsa_many, upper_triangles,
)
from lidutils.stats import partial_corr, verdict

MIRROR = Path(os.environ.get("LIDUTILS_DATA_DIR") or "/work/shared/data")
needs_mirror = pytest.mark.skipif(not (MIRROR / "algonauts2019_92").is_dir(), reason="data mirror not available")


def _rdms(rng, n, N=20, d=5, shared=None, noise=1.0):
    """n correlation-distance RDMs of random patterns (optionally around a shared one)."""
    out = []
    for _ in range(n):
        X = rng.standard_normal((N, d)) * noise + (0 if shared is None else shared)
        out.append(squareform(pdist(X, "correlation")))
    return np.stack(out)


@pytest.fixture(scope="module")
def algonauts():
    from lidutils.datasets import load_algonauts92

    return {roi: load_algonauts92(roi, data_dir=MIRROR) for roi in ("IT", "EVC")}


# --------------------------------------------------------------------------- rsa_many


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_rsa_many_equals_looping_rsa(method):
    rng = np.random.default_rng(0)
    models, subjects = _rdms(rng, 7), _rdms(rng, 4)
    S = rsa_many(models, subjects, method)
    assert S.shape == (7, 4)
    loop = np.array([[rsa(m, s, method) for s in subjects] for m in models])
    np.testing.assert_allclose(S, loop, atol=1e-12)
    # one RDM, lists and condensed vectors give the same numbers
    np.testing.assert_allclose(rsa_many(models[2], subjects, method), S[2:3], atol=1e-14)
    np.testing.assert_allclose(rsa_many(list(models), upper_triangles(subjects), method), S, atol=1e-14)


def test_rsa_many_errors():
    rng = np.random.default_rng(1)
    a, b = _rdms(rng, 2, N=10), _rdms(rng, 2, N=12)
    with pytest.raises(ValueError, match="same stimuli"):
        rsa_many(a, b)
    with pytest.raises(ValueError, match="Kendall"):
        rsa_many(a, a, "kendall")
    flat = np.ones((10, 10)) - np.eye(10)
    with pytest.raises(ValueError, match="constant"):
        rsa_many(flat, a)
    bad = a.copy()
    bad[0, 0, 1] += 1
    with pytest.raises(ValueError, match="symmetric"):
        rsa_many(bad, a)


def test_rsa_many_matches_rsatoolbox_compare():
    rsatoolbox = pytest.importorskip("rsatoolbox")
    rng = np.random.default_rng(2)
    models, subjects = _rdms(rng, 5, N=15), _rdms(rng, 3, N=15)
    for ours, theirs in (("pearson", "corr"), ("spearman", "spearman")):
        ref = rsatoolbox.rdm.compare(rsatoolbox.rdm.RDMs(models), rsatoolbox.rdm.RDMs(subjects), method=theirs)
        np.testing.assert_allclose(rsa_many(models, subjects, ours), ref, atol=1e-12)


# --------------------------------------------------------------------------- noise ceiling


@needs_mirror
@pytest.mark.parametrize("method,theirs", [("pearson", "corr"), ("spearman", "spearman")])
def test_noise_ceiling_matches_rsatoolbox_on_algonauts92(algonauts, method, theirs):
    rsatoolbox = pytest.importorskip("rsatoolbox")
    from rsatoolbox.inference.noise_ceiling import boot_noise_ceiling

    for roi, data in algonauts.items():
        nc = noise_ceiling(data.rdms, method=method)
        lo, up = boot_noise_ceiling(rsatoolbox.rdm.RDMs(data.rdms), method=theirs)
        assert nc["lower"] == pytest.approx(lo, abs=1e-12), roi
        assert nc["upper"] == pytest.approx(up, abs=1e-12), roi


@needs_mirror
def test_pearson_upper_bound_is_not_beaten_by_the_pooled_rdm(algonauts):
    # issue 11 item 8: the mean of the z-scored subject RDMs scored above the old upper bound on IT
    V = upper_triangles(algonauts["IT"].rdms)
    pooled = stats.zscore(V, axis=1).mean(0)
    score = rsa_many(pooled, V, "pearson").mean()
    nc = noise_ceiling(algonauts["IT"].rdms, "pearson")
    assert score == pytest.approx(nc["upper"], abs=1e-12)  # the pooled RDM is the upper bound itself
    raw = rsa_many(V.mean(0), V, "pearson").mean()  # the old pool (raw mean) scores lower
    assert raw < nc["upper"]


def test_noise_ceiling_synthetic_bounds():
    rng = np.random.default_rng(3)
    base = rng.standard_normal((25, 6))
    rdms = _rdms(rng, 6, N=25, d=6, shared=3 * base)
    for method in ("pearson", "spearman"):
        nc = noise_ceiling(rdms, method)
        assert 0 < nc["lower"] < nc["upper"] < 1
        assert (nc["per_subject_lower"] < nc["per_subject_upper"]).all()
    with pytest.raises(ValueError, match="at least 2 subjects"):
        noise_ceiling(rdms[:1])


# --------------------------------------------------------------------------- ranking reliability


def test_ranking_reliability_reliable_vs_noise():
    rng = np.random.default_rng(4)
    true = np.linspace(0, 1, 12)
    reliable = true[:, None] + 0.1 * rng.standard_normal((12, 10))
    noise = rng.standard_normal((12, 10))
    r1 = ranking_reliability(reliable, n_splits=500)
    r0 = ranking_reliability(noise, n_splits=500)
    assert r1["ci_low"] > 0.9 and r1["mean"] > r1["rho_half"] > 0.9
    assert abs(r0["mean"]) < 0.4 and r0["ci_low"] < 0
    assert r1["per_split"].shape == (500,)


def test_ranking_reliability_spearman_brown_on_two_subjects():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((8, 2))
    rho = stats.spearmanr(X[:, 0], X[:, 1])[0]  # the only split: one subject per half
    out = ranking_reliability(X, n_splits=20)
    assert out["mean"] == pytest.approx(2 * rho / (1 + rho), abs=1e-12)
    assert out["ci_low"] == pytest.approx(out["ci_high"])
    with pytest.raises(ValueError, match="3 models"):
        ranking_reliability(X[:2])


# --------------------------------------------------------------------------- partial RSA


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_partial_rsa_matches_partial_corr_and_regression(method):
    rng = np.random.default_rng(6)
    base = _rdms(rng, 2, N=16)
    models = _rdms(rng, 3, N=16)
    brains = upper_triangles(_rdms(rng, 2, N=16)) + upper_triangles(base).sum(0)
    out = partial_rsa(models, brains, base, method)
    assert out["partial"].shape == (3, 2)
    M, Z = upper_triangles(models), upper_triangles(base).T
    for m in range(3):
        for s in range(2):
            ref = partial_corr(M[m], brains[s], Z, method=method, n_boot=0, n_perm=0)["r"]
            assert out["partial"][m, s] == pytest.approx(ref, abs=1e-10)
            assert out["score"][m, s] == pytest.approx(rsa(M[m], brains[s], method), abs=1e-12)
    if method == "pearson":  # unique variance = R²(b ~ Z, m) - R²(b ~ Z)
        def r2(y, X):
            X = np.column_stack([np.ones(len(y)), X])
            e = y - X @ np.linalg.lstsq(X, y, rcond=None)[0]
            return 1 - e @ e / ((y - y.mean()) @ (y - y.mean()))
        b, m = brains[0], M[1]
        assert out["unique_r2"][1, 0] == pytest.approx(r2(b, np.column_stack([Z, m])) - r2(b, Z), abs=1e-10)
        assert out["baseline_r2"][0] == pytest.approx(r2(b, Z), abs=1e-10)


def _pixel_world(rng, brain_extra, n_models=10, n_subj=6, N=40):
    """Images are random pixel arrays; model i mixes pixels with a hidden feature space (weight
    growing with i) and its own features; every subject's brain RDM is the pixel RDM
    (+ ``brain_extra`` x the hidden space's RDM) + independent measurement noise."""
    images = rng.random((N, 8, 8))
    hidden = rng.standard_normal((N, 20))
    pix_rdm, hid_rdm = pixel_rdm(images), rdm(hidden, device="cpu")
    models = []
    for i in range(n_models):
        w = i / (n_models - 1)
        X = np.hstack([images.reshape(N, -1) * (1 - 0.5 * w), w * 3 * hidden, rng.standard_normal((N, 20))])
        models.append(rdm(X, device="cpu"))
    brains = []
    for _ in range(n_subj):
        E = rng.standard_normal((N, N)) * 0.1
        E = np.triu(E, 1) + np.triu(E, 1).T
        brains.append(pix_rdm + brain_extra * hid_rdm + E)
    return images, np.stack(models), np.stack(brains)


def test_brain_rdms_of_pure_pixel_statistics_are_uninformative():
    rng = np.random.default_rng(7)
    images, models, brains = _pixel_world(rng, brain_extra=0.0)
    scores = rsa_many(models, brains, "pearson")
    rel = ranking_reliability(scores)
    assert rel["ci_low"] > 0.5  # reliable ranking ... by pixel similarity alone
    part = partial_rsa(models, brains, [pixel_rdm(images)], "pearson")
    ok, why = brain_test_informative(rel, part)
    assert not ok and "partialled out" in why
    res = {"r": -0.9, "ci_low": -0.95, "ci_high": -0.8}
    assert verdict(res, -1, informative=ok) == "uninformative"
    # the same models against brains with structure beyond pixels: informative
    rng = np.random.default_rng(7)
    images, models, brains = _pixel_world(rng, brain_extra=1.0)
    scores = rsa_many(models, brains, "pearson")
    part = partial_rsa(models, brains, [pixel_rdm(images)], "pearson")
    ok, why = brain_test_informative(ranking_reliability(scores), part)
    assert ok, why


def test_unreliable_ranking_is_uninformative():
    rel = ranking_reliability(np.random.default_rng(8).standard_normal((10, 8)))
    ok, why = brain_test_informative(rel)
    assert not ok and "not reliable" in why


# --------------------------------------------------------------------------- baselines


def test_pixel_rdm_is_correlation_distance_of_pixels():
    imgs = np.random.default_rng(9).integers(0, 256, (6, 5, 5, 3), dtype=np.uint8)
    ref = squareform(pdist(imgs.reshape(6, -1).astype(float), "correlation"))
    np.testing.assert_allclose(pixel_rdm(imgs), ref, atol=1e-12)
    assert check_rdms(pixel_rdm(imgs, size=4)).shape == (1, 6, 6)


def test_gabor_rdm_groups_gratings_by_orientation_not_phase():
    yy, xx = np.mgrid[0:64, 0:64]
    imgs, ori = [], []
    for k, th in enumerate((0, np.pi / 4, np.pi / 2)):
        for ph in np.linspace(0, 2 * np.pi, 4, endpoint=False):
            imgs.append(0.5 + 0.5 * np.sin(2 * np.pi * 0.1 * (xx * np.cos(th) + yy * np.sin(th)) + ph))
            ori.append(k)
    imgs, ori = np.stack(imgs), np.array(ori)
    same = (ori[:, None] == ori[None]) & ~np.eye(len(ori), dtype=bool)
    diff = ori[:, None] != ori[None]
    G = gabor_rdm(imgs)
    assert G[same].max() < G[diff].min()  # phase-invariant energy: same orientation ~ identical
    P = pixel_rdm(imgs)
    assert P[same].max() > P[diff].min()  # pixels see phase, not orientation
    assert gabor_features(imgs, frequencies=(0.1,), n_orientations=2, grid=2).shape == (12, 8)
