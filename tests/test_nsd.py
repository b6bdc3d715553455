"""NSD loaders on a small synthetic replica of the Algonauts 2023 layout."""
import numpy as np
import pytest

from lidutils.nsd import load_algonauts2023, load_nsd_betas, ncsnr_to_noise_ceiling
from lidutils.standins import N_FSAVERAGE, N_FSAVERAGE5, ROI_MAPPINGS, make_nsd_layout

N_VERT = {"lh": 120, "rh": 90}


def make_replica(root, subject=1, n_images=6, seed=0):
    """A tiny Algonauts-2023-layout folder from lidutils.standins; return the arrays as written on disk."""
    w = make_nsd_layout(root, n_subjects=subject, n_images=n_images, seed=seed,
                        n_vertices=(N_VERT["lh"], N_VERT["rh"]), image_size=8)
    s = root / f"subj{subject:02d}"
    fm, rm = s / "training_split" / "training_fmri", s / "roi_masks"
    written = {"nsd": w.nsd_ids[subject], "fmri": {}, "labels": {}, "standin": w}
    for h in N_VERT:
        written["fmri"][h] = np.load(fm / f"{h}_training_fmri.npy")
        for cls in ROI_MAPPINGS:
            path = rm / f"{h}.{cls}_challenge_space.npy"
            lab = np.load(path)
            if cls == "streams":  # float labels are accepted too
                np.save(path, lab.astype(np.float32))
            written["labels"][h, cls] = lab
    return written


@pytest.fixture
def replica(tmp_path):
    return tmp_path, make_replica(tmp_path)


def test_algonauts2023_loads_rois_and_groups(replica):
    root, w = replica
    b = load_algonauts2023(root, subject=1, rois=("V1", "V1v", "EBA", "FFA", "early", "all"))
    assert b.roi_names == ["V1", "V1v", "EBA", "FFA", "early", "all"]
    assert [p.name for p in b.image_paths] == sorted(p.name for p in b.image_paths)
    assert b.image_paths[0].name.startswith("train-0001_")
    np.testing.assert_array_equal(b.nsd_ids, w["nsd"])
    lab = w["labels"]
    for roi, cls, codes in [("V1", "prf-visualrois", (1, 2)), ("V1v", "prf-visualrois", (1,)),
                            ("EBA", "floc-bodies", (1,)), ("FFA", "floc-faces", (2, 3)),
                            ("early", "streams", (1,))]:
        expect = np.concatenate([w["fmri"][h][:, np.isin(lab[h, cls], codes)] for h in ("lh", "rh")], 1)
        assert b.fmri[roi].dtype == np.float32
        np.testing.assert_array_equal(b.fmri[roi], expect)
        np.testing.assert_array_equal(b.vertices[roi]["lh"], np.flatnonzero(np.isin(lab["lh", cls], codes)))
    assert b.fmri["all"].shape == (6, 210)


def test_algonauts2023_one_hemisphere(replica):
    root, w = replica
    b = load_algonauts2023(root, rois=["V1v"], hemis=["rh"])
    np.testing.assert_array_equal(b.fmri["V1v"], w["fmri"]["rh"][:, w["labels"]["rh", "prf-visualrois"] == 1])


def test_algonauts2023_env_default(replica, monkeypatch):
    root, _ = replica
    monkeypatch.setenv("LIDUTILS_NSD_DIR", str(root))
    assert load_algonauts2023(rois="hV4").subject == 1


def test_empty_roi_is_dropped_with_warning(replica):
    root, _ = replica
    rm = root / "subj01" / "roi_masks"
    for h in ("lh", "rh"):
        lab = np.load(rm / f"{h}.floc-places_challenge_space.npy")
        lab[lab == 3] = 0  # no RSC vertex
        np.save(rm / f"{h}.floc-places_challenge_space.npy", lab)
    with pytest.warns(UserWarning, match="RSC"):
        b = load_algonauts2023(root, rois=("PPA", "RSC"))
    assert b.roi_names == ["PPA"]


def test_unknown_roi_lists_valid_names(replica):
    with pytest.raises(ValueError, match="valid names.*EBA"):
        load_algonauts2023(replica[0], rois=("V9",))


@pytest.mark.parametrize("breakage, match", [
    ("no_subject", "subj02"),
    ("no_fmri", "rh_training_fmri.npy"),
    ("no_images", "no .png images"),
    ("rows", "lh_training_fmri.npy has 5 rows"),
    ("mask_len", "lh.prf-visualrois_challenge_space.npy must be a 1-D integer label"),
    ("mapping", "mapping_prf-visualrois.npy must hold a dict"),
    ("corrupt", "lh_training_fmri.npy"),
])
def test_malformed_layout_names_the_path(replica, breakage, match):
    root, _ = replica
    s = root / "subj01"
    subject = 1
    if breakage == "no_subject":
        subject = 2
    elif breakage == "no_fmri":
        (s / "training_split/training_fmri/rh_training_fmri.npy").unlink()
    elif breakage == "no_images":
        for p in (s / "training_split/training_images").glob("*.png"):
            p.unlink()
    elif breakage == "rows":
        np.save(s / "training_split/training_fmri/lh_training_fmri.npy", np.zeros((5, 120), np.float32))
    elif breakage == "mask_len":
        np.save(s / "roi_masks/lh.prf-visualrois_challenge_space.npy", np.zeros(7, np.int32))
    elif breakage == "mapping":
        np.save(s / "roi_masks/mapping_prf-visualrois.npy", np.arange(8))
    elif breakage == "corrupt":
        (s / "training_split/training_fmri/lh_training_fmri.npy").write_bytes(b"not an npy file")
    err = FileNotFoundError if breakage.startswith("no_") else ValueError
    with pytest.raises(err, match=match) as exc:
        load_algonauts2023(root, subject=subject, rois=("V1",))
    assert "layout" in str(exc.value) or breakage == "rows"


def test_no_root_anywhere(monkeypatch):
    monkeypatch.delenv("LIDUTILS_NSD_DIR", raising=False)
    monkeypatch.delenv("LIDUTILS_DATA_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="LIDUTILS_NSD_DIR"):
        load_algonauts2023()


def test_nsd_betas_2d_with_label_and_dict_masks(tmp_path):
    rng = np.random.default_rng(1)
    B = rng.standard_normal((10, 50))
    np.save(tmp_path / "betas.npy", B)
    lab = np.zeros(50, np.int64)
    lab[:10], lab[30:45] = 1, 2
    np.save(tmp_path / "labels.npy", lab)
    b = load_nsd_betas(tmp_path / "betas.npy", tmp_path / "labels.npy", mapping={1: "V1", 2: "FFA"})
    assert b.roi_names == ["V1", "FFA"] and b.fmri_repeats is None
    np.testing.assert_allclose(b.fmri["FFA"], B[:, 30:45].astype(np.float32))
    np.savez(tmp_path / "masks.npz", V1=lab == 1, idx=np.array([3, 4, 49]))
    b = load_nsd_betas(tmp_path / "betas.npy", tmp_path / "masks.npz")
    np.testing.assert_allclose(b.fmri["idx"], B[:, [3, 4, 49]].astype(np.float32))
    assert load_nsd_betas(tmp_path / "betas.npy").fmri["all"].shape == (10, 50)


def test_nsd_betas_3d_repeats(tmp_path):
    rng = np.random.default_rng(2)
    B = rng.standard_normal((3, 8, 20))
    np.savez(tmp_path / "b.npz", betas=B, other=np.zeros(3))
    b = load_nsd_betas(tmp_path / "b.npz", {"roi": np.arange(20) < 5})
    assert b.fmri_repeats["roi"].shape == (3, 8, 5) and b.n_images == 8
    np.testing.assert_allclose(b.fmri["roi"], B[:, :, :5].mean(0), rtol=1e-6)


def test_nsd_betas_errors(tmp_path):
    np.save(tmp_path / "b.npy", np.zeros((4, 10)))
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        load_nsd_betas(tmp_path / "missing.npy")
    with pytest.raises(ValueError, match="shape .5,. but the betas have 10 voxels"):
        load_nsd_betas(tmp_path / "b.npy", {"x": np.ones(5, bool)})
    with pytest.raises(ValueError, match="outside"):
        load_nsd_betas(tmp_path / "b.npy", {"x": np.array([1, 10])})
    np.savez(tmp_path / "two.npz", a=np.zeros((2, 2)), c=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="key="):
        load_nsd_betas(tmp_path / "two.npz")
    bad = np.zeros((4, 10))
    bad[1, 3] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(ValueError, match="NaN"):
        load_nsd_betas(tmp_path / "nan.npy")
    with pytest.raises(ValueError, match="unsupported"):
        load_nsd_betas(_touch(tmp_path / "b.mat"))


def _touch(p):
    p.write_bytes(b"")
    return p


def test_loader_output_feeds_encoding(tmp_path):
    """load_algonauts2023(...).fmri goes straight into encoding_alignment, one table row per ROI."""
    from lidutils.encoding import encoding_alignment

    make_replica(tmp_path, n_images=20, seed=3)
    b = load_algonauts2023(tmp_path, rois=("V1", "FFA", "early"))
    X = np.random.default_rng(0).standard_normal((20, 7))
    enc = encoding_alignment(X, b.fmri, n_pcs=5, n_folds=2, inner_folds=2, device="cpu")
    assert list(enc.roi_table.roi) == b.roi_names
    assert list(enc.roi_table.n_voxels) == [b.fmri[r].shape[1] for r in b.roi_names]
    assert enc.r2.shape == (sum(b.fmri[r].shape[1] for r in b.roi_names),)


def test_standin_layout_shape_fsaverage_and_shared_images(tmp_path):
    w = make_nsd_layout(tmp_path, n_subjects=2, n_images=12, n_vertices=(900, 700), image_size=16)
    assert (tmp_path / "STANDIN.json").exists()
    b = load_algonauts2023(tmp_path, subject=2, rois=("V1", "FFA", "EBA"))
    for h, nv in (("lh", 900), ("rh", 700)):
        idx = b.fsaverage_index[h]
        assert idx.shape == (nv,) and np.all(np.diff(idx) > 0) and idx.max() < N_FSAVERAGE
        mask = np.load(tmp_path / "subj02" / "roi_masks" / f"{h}.all-vertices_fsaverage_space.npy")
        assert mask.shape == (N_FSAVERAGE,) and mask.sum() == nv
        # the fsaverage-space mask holds the challenge-space labels at the challenge vertices
        full = np.load(tmp_path / "subj02" / "roi_masks" / f"{h}.floc-faces_fsaverage_space.npy")
        chal = np.load(tmp_path / "subj02" / "roi_masks" / f"{h}.floc-faces_challenge_space.npy")
        np.testing.assert_array_equal(full[idx], chal)
        assert full[np.setdiff1d(np.arange(N_FSAVERAGE), idx)].max() == 0
        # ROIs sit (partly) on fsaverage5 vertices, so they can be drawn on fsaverage5
        assert np.any(idx[b.vertices["V1"][h]] < N_FSAVERAGE5)
    np.testing.assert_allclose(b.noise_ceiling["FFA"], 0.45, rtol=1e-6)
    np.testing.assert_allclose(b.noise_ceiling["V1"], 0.10, rtol=1e-6)
    # shared NSD images are identical files for both subjects; the latents are a function of the id
    shared = np.intersect1d(w.nsd_ids[1], w.nsd_ids[2])
    assert len(shared) == 6
    i1, i2 = (np.flatnonzero(w.nsd_ids[s] == shared[0])[0] for s in (1, 2))
    p1 = sorted((tmp_path / "subj01/training_split/training_images").glob("*.png"))[i1]
    p2 = sorted((tmp_path / "subj02/training_split/training_images").glob("*.png"))[i2]
    assert p1.read_bytes() == p2.read_bytes()
    np.testing.assert_array_equal(w.latents[1][i1], w.latents[2][i2])
    with pytest.raises(ValueError, match="already holds"):
        make_nsd_layout(tmp_path, n_subjects=1, n_images=12, n_vertices=(900, 700))
    with pytest.raises(ValueError, match="unknown ROI"):
        make_nsd_layout(tmp_path / "x", rois=("V9",))


def test_standin_planted_signal_is_recovered_from_the_latents(tmp_path):
    """Encoding from the true latent reaches the planted ceiling s (minus the OLS shrinkage)."""
    from lidutils.encoding import encoding_alignment

    w = make_nsd_layout(tmp_path, n_subjects=1, n_images=400, n_vertices=(300, 300), image_size=8,
                        n_latent=4, rois=("V1", "hV4", "FFA"))
    b = load_algonauts2023(tmp_path, rois=("V1", "hV4", "FFA"))
    enc = encoding_alignment(w.latents[1], b.fmri, n_pcs=4, device="cpu",
                             noise_ceiling=np.concatenate([b.noise_ceiling[r] for r in b.roi_names]))
    t = enc.roi_table.set_index("roi")
    n_train, p = 320, 4
    for roi in ("V1", "hV4", "FFA"):
        s = w.signal[roi]
        got = t.loc[roi, "r2_mean"]
        assert s - (1 - s) * p / (n_train - p - 1) - 0.03 < got < s + 0.02, (roi, got, s)
    assert t["r2"].is_monotonic_increasing  # V1 < hV4 < FFA, as planted


def test_ncsnr_to_noise_ceiling():
    np.testing.assert_allclose(ncsnr_to_noise_ceiling([0.0, 1.0, 2.0]), [0.0, 0.75, 12 / 13])
    np.testing.assert_allclose(ncsnr_to_noise_ceiling(1.0, n_repeats=1), 0.5)
    with pytest.raises(ValueError, match="ncsnr"):
        ncsnr_to_noise_ceiling([-1.0])
