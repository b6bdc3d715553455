"""Data layer: hash-checked mirror / download, Algonauts-92, ImageNet sample, own RDM sets, noise ceiling."""
import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import lidutils.datasets as ds
from lidutils.datasets import (DataError, fetch_file, load_algonauts92, load_images, load_imagenet_sample,
                               load_rdm_dataset, noise_ceiling)

MIRROR = Path(os.environ.get("LIDUTILS_DATA_DIR") or Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
if not (MIRROR / "algonauts2019_92").is_dir():
    MIRROR = Path("/work/shared/data")
needs_mirror = pytest.mark.skipif(not (MIRROR / "algonauts2019_92").is_dir(), reason="data mirror not available")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LIDUTILS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LIDUTILS_DATA_DIR", raising=False)


@pytest.fixture
def unreachable(monkeypatch):
    """No network: every upstream address points at a closed local port."""
    for k in ds.UPSTREAM:
        monkeypatch.setitem(ds.UPSTREAM, k, "http://127.0.0.1:9/")


# ----------------------------------------------------------------------------- Algonauts 92
@needs_mirror
@pytest.mark.parametrize("roi", ["EVC", "IT"])
def test_algonauts92_shapes_and_rdms(roi):
    b = load_algonauts92(roi, data_dir=MIRROR)
    assert b.images.shape == (92, 175, 175, 3) and b.images.dtype == np.uint8
    assert len(b.image_paths) == 92 and b.image_paths[0].name == "image_01.jpg"
    assert b.rdms.shape == (15, 92, 92) and b.rdms.dtype == np.float64
    np.testing.assert_array_equal(b.rdms, b.rdms.transpose(0, 2, 1))
    assert np.all(np.diagonal(b.rdms, axis1=1, axis2=2) == 0)
    assert (b.rdms[:, ~np.eye(92, dtype=bool)] > 0).all()
    assert b.roi == roi and roi in b.description
    cat = b.categories
    assert list(cat.columns) == ["image", *ds.ALGONAUTS92_CATEGORY_RANGES]
    assert cat.animate.sum() == 48 and cat.face.sum() == 24 and (cat.animate + cat.inanim == 1).all()


@needs_mirror
def test_env_var_selects_mirror(monkeypatch, unreachable):
    monkeypatch.setenv("LIDUTILS_DATA_DIR", str(MIRROR))
    assert load_algonauts92("IT").rdms.shape == (15, 92, 92)


def test_bad_roi():
    with pytest.raises(ValueError, match="roi"):
        load_algonauts92("V1")


@needs_mirror
def test_noise_ceiling_matches_readme():
    evc = noise_ceiling(load_algonauts92("EVC", data_dir=MIRROR).rdms)
    it = noise_ceiling(load_algonauts92("IT", data_dir=MIRROR).rdms)
    assert evc["lower"] == pytest.approx(0.24, abs=0.01)  # README: ~0.24 EVC, ~0.45 IT
    assert it["lower"] == pytest.approx(0.45, abs=0.01)
    for nc in (evc, it):
        assert nc["n_subjects"] == 15 and nc["n_pairs"] == 92 * 91 // 2
        assert nc["lower"] < nc["upper"] < 1
        assert (nc["per_subject_lower"] < nc["per_subject_upper"]).all()
        assert nc["lower_ci95"][0] < nc["lower"] < nc["lower_ci95"][1]


def _random_rdms(rng, S, N, shared=1.0, noise=0.0):
    base = rng.random((N, 3))
    out = []
    for _ in range(S):
        X = shared * base + noise * rng.standard_normal((N, 3))
        D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
        out.append(D)
    return np.stack(out)


def test_noise_ceiling_synthetic():
    rng = np.random.default_rng(0)
    same = _random_rdms(rng, 4, 20)
    nc = noise_ceiling(same, method="pearson")
    assert nc["lower"] == pytest.approx(1) and nc["upper"] == pytest.approx(1)
    indep = _random_rdms(rng, 6, 30, shared=0.0, noise=1.0)
    nc = noise_ceiling(indep)
    assert abs(nc["lower"]) < 0.15 and nc["upper"] > nc["lower"]


@pytest.mark.parametrize("bad, msg", [
    (np.zeros((1, 5, 5)), "at least 2 subjects"),
    (np.ones((3, 5, 5)), "zero diagonal"),
    (np.triu(np.ones((3, 5, 5)), 1), "symmetric"),
    (np.zeros((3, 5, 4)), "square"),
])
def test_noise_ceiling_validation(bad, msg):
    with pytest.raises(ValueError, match=msg):
        noise_ceiling(bad)
    R = _random_rdms(np.random.default_rng(1), 3, 6)
    R[1, 0, 2] = R[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        noise_ceiling(R)
    with pytest.raises(ValueError, match="method"):
        noise_ceiling(_random_rdms(np.random.default_rng(1), 3, 6), method="kendall")


# ----------------------------------------------------------------------------- ImageNet sample
@needs_mirror
def test_imagenet_sample_labels(monkeypatch):
    from timm.data import ImageNetInfo

    calls = []
    real = ds.file_sha256
    monkeypatch.setattr(ds, "file_sha256", lambda p: calls.append(p) or real(p))
    s = load_imagenet_sample(data_dir=MIRROR)
    assert len(s.image_paths) == 1000 and len(calls) == 1000
    np.testing.assert_array_equal(s.labels, np.arange(1000))
    assert s.synsets == ImageNetInfo().label_names()
    assert s.class_names[0] == "tench" and s.class_names[1] == "goldfish"
    assert all(p.name.startswith(syn) for p, syn in zip(s.image_paths, s.synsets))
    # verified once: the stamp (in the cache, not the mirror) spares re-hashing
    calls.clear()
    load_imagenet_sample(data_dir=MIRROR)
    assert calls == []
    assert list((Path(os.environ["LIDUTILS_CACHE_DIR"]) / "data" / "verified").glob("*.json"))


# ----------------------------------------------------------------------------- integrity
@pytest.fixture
def tmp_mirror(tmp_path):
    if not (MIRROR / "algonauts2019_92").is_dir():
        pytest.skip("data mirror not available")
    dst = tmp_path / "mirror"
    shutil.copytree(MIRROR / "algonauts2019_92", dst / "algonauts2019_92")
    return dst


def test_corrupted_mirror_file_is_rejected(tmp_mirror):
    victim = tmp_mirror / "algonauts2019_92" / "images" / "image_07.jpg"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(DataError, match="corrupted.*image_07"):
        load_algonauts92("IT", data_dir=tmp_mirror)


def test_file_changed_after_verification_is_rechecked(tmp_mirror):
    load_algonauts92("EVC", data_dir=tmp_mirror)  # all verified and stamped
    victim = tmp_mirror / "algonauts2019_92" / "fmri_EVC_RDMs.npz"
    with open(victim, "ab") as f:
        f.write(b"\0")
    with pytest.raises(DataError, match="corrupted"):
        load_algonauts92("EVC", data_dir=tmp_mirror)


def test_missing_file_in_mirror(tmp_mirror):
    (tmp_mirror / "algonauts2019_92" / "images" / "image_92.jpg").unlink()
    with pytest.raises(DataError, match="missing from the data mirror"):
        load_algonauts92("IT", data_dir=tmp_mirror)


def test_mirror_is_never_written(tmp_mirror):
    before = {p: p.stat().st_mtime_ns for p in tmp_mirror.rglob("*")}
    load_algonauts92("IT", data_dir=tmp_mirror)
    assert {p: p.stat().st_mtime_ns for p in tmp_mirror.rglob("*")} == before


def test_nonexistent_mirror(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        load_algonauts92("IT", data_dir=tmp_path / "nope")


def test_offline_without_mirror_says_how_to_fix(unreachable):
    with pytest.raises(DataError, match="LIDUTILS_DATA_DIR"):
        load_algonauts92("IT")


@needs_mirror
def test_categories_rebuilt_offline_match_mirror(unreachable):
    path = fetch_file("algonauts2019_92/categories.csv")  # no mirror, no network
    assert path.read_bytes() == (MIRROR / "algonauts2019_92" / "categories.csv").read_bytes()


@pytest.fixture
def upstream_server(tmp_path, monkeypatch):
    """A local HTTP server laid out like the pinned Net2Brain upstream."""
    if not (MIRROR / "algonauts2019_92").is_dir():
        pytest.skip("data mirror not available")
    root = tmp_path / "upstream"
    (root / "input_data/brain_data/92images").mkdir(parents=True)
    shutil.copy(MIRROR / "algonauts2019_92/fmri_IT_RDMs.npz", root / "input_data/brain_data/92images")
    shutil.copytree(MIRROR / "algonauts2019_92/images", root / "input_data/stimuli_data/92images")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setitem(ds.UPSTREAM, "net2brain", f"http://127.0.0.1:{server.server_address[1]}/")
    yield root
    server.shutdown()
    server.server_close()


def test_download_into_cache_and_hash_check(upstream_server):
    b = load_algonauts92("IT")  # downloaded with pooch into the cache
    cache = Path(os.environ["LIDUTILS_CACHE_DIR"]) / "data" / "algonauts2019_92"
    assert (cache / "fmri_IT_RDMs.npz").is_file() and len(list((cache / "images").glob("*.jpg"))) == 92
    assert b.rdms.shape == (15, 92, 92)
    # a corrupted upstream file is refused, never cached as valid
    (cache / "images" / "image_03.jpg").unlink()
    (upstream_server / "input_data/stimuli_data/92images/image_03.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="hash"):
        load_algonauts92("IT")
    assert not (cache / "images" / "image_03.jpg").exists()


# ----------------------------------------------------------------------------- own data sets
def _write_dataset(tmp_path, N=5, S=2, n_images=None, key="rdms"):
    R = _random_rdms(np.random.default_rng(2), S, N)
    np.savez(tmp_path / "rdms.npz", **{key: R})
    img = tmp_path / "imgs"
    img.mkdir(exist_ok=True)
    rng = np.random.default_rng(3)
    for i in range(N if n_images is None else n_images):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(img / f"im_{i:02d}.png")
    return tmp_path / "rdms.npz", img, R


def test_load_rdm_dataset(tmp_path):
    path, img, R = _write_dataset(tmp_path)
    b = load_rdm_dataset(path, img, roi="V4", categories=pd.DataFrame({"a": range(5)}))
    np.testing.assert_allclose(b.rdms, R)
    assert b.images.shape == (5, 16, 16, 3) and b.images.dtype == np.uint8
    assert [p.name for p in b.image_paths] == [f"im_{i:02d}.png" for i in range(5)]
    np.testing.assert_array_equal(b.images[2], np.asarray(Image.open(img / "im_02.png")))
    assert b.roi == "V4" and len(b.categories) == 5


def test_load_rdm_dataset_errors(tmp_path):
    path, img, _ = _write_dataset(tmp_path, n_images=4)
    with pytest.raises(ValueError, match="holds 4 images"):
        load_rdm_dataset(path, img)
    with pytest.raises(ValueError, match="does not exist"):
        load_rdm_dataset(path, tmp_path / "missing")
    with pytest.raises(ValueError, match="does not exist"):
        load_rdm_dataset(tmp_path / "none.npz", img)
    path, img, _ = _write_dataset(tmp_path, key="Net_RDM")
    with pytest.raises(ValueError, match="no key 'rdms'"):
        load_rdm_dataset(path, img)
    np.savez(tmp_path / "rect.npz", rdms=np.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match="square"):
        load_rdm_dataset(tmp_path / "rect.npz", img)


def test_load_images_sizes(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.new("RGB", (10, 8), (255, 0, 0)).save(a)
    Image.new("L", (12, 12), 7).save(b)
    with pytest.raises(ValueError, match="different sizes"):
        load_images([a, b])
    X = load_images([a, b], size=(6, 5))
    assert X.shape == (2, 6, 5, 3) and X.dtype == np.uint8
    assert (X[0, ..., 0] == 255).all() and (X[1] == 7).all()
    with pytest.raises(ValueError, match="not found"):
        load_images([tmp_path / "zz.png"])
