"""NSD loaders on a small synthetic replica of the Algonauts 2023 layout."""
import numpy as np
import pytest
from PIL import Image

from lidutils.nsd import load_algonauts2023, load_nsd_betas

MAPPINGS = {
    "prf-visualrois": {0: "Unknown", 1: "V1v", 2: "V1d", 3: "V2v", 4: "V2d", 5: "V3v", 6: "V3d", 7: "hV4"},
    "floc-bodies": {0: "Unknown", 1: "EBA", 2: "FBA-1", 3: "FBA-2", 4: "mTL-bodies"},
    "floc-faces": {0: "Unknown", 1: "OFA", 2: "FFA-1", 3: "FFA-2", 4: "mTL-faces", 5: "aTL-faces"},
    "floc-places": {0: "Unknown", 1: "OPA", 2: "PPA", 3: "RSC"},
    "floc-words": {0: "Unknown", 1: "OWFA", 2: "VWFA-1", 3: "VWFA-2", 4: "mfs-words", 5: "mTL-words"},
    "streams": {0: "Unknown", 1: "early", 2: "midventral", 3: "midlateral", 4: "midparietal",
                5: "ventral", 6: "lateral", 7: "parietal"},
}
N_VERT = {"lh": 120, "rh": 90}


def make_replica(root, subject=1, n_images=6, seed=0):
    """Write a tiny Algonauts-2023-layout subject; return the arrays written."""
    rng = np.random.default_rng(seed)
    s = root / f"subj{subject:02d}"
    imgs = s / "training_split" / "training_images"
    fm = s / "training_split" / "training_fmri"
    rm = s / "roi_masks"
    for d in (imgs, fm, rm):
        d.mkdir(parents=True)
    nsd = rng.choice(73000, n_images, replace=False)
    # written in shuffled order: the loader must sort by name
    for i in rng.permutation(n_images):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(
            imgs / f"train-{i + 1:04d}_nsd-{nsd[i]:05d}.png")
    written = {"nsd": nsd, "fmri": {}, "labels": {}}
    for h, nv in N_VERT.items():
        Y = rng.standard_normal((n_images, nv)).astype(np.float32)
        np.save(fm / f"{h}_training_fmri.npy", Y)
        written["fmri"][h] = Y
        for cls, mp in MAPPINGS.items():
            lab = rng.integers(0, len(mp), nv)
            np.save(rm / f"{h}.{cls}_challenge_space.npy", lab.astype(np.float32 if cls == "streams" else np.int32))
            written["labels"][h, cls] = lab
    for cls, mp in MAPPINGS.items():
        np.save(rm / f"mapping_{cls}.npy", mp)
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
