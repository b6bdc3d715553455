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
    X, info = load_images([a, b], return_info=True)  # mixed sizes: shorter side 8, centre crop 8x8
    assert X.shape == (2, 8, 8, 3) and X.dtype == np.uint8 and info["resized"]
    assert info["sizes"] == {(10, 8): 1, (12, 12): 1} and info["modes"] == {"RGB": 1, "L": 1}
    assert "centre-cropped to 8x8" in info["note"] and "1 L" in info["note"]
    assert (X[0, ..., 0] == 255).all() and (X[1] == 7).all()
    X = load_images([a, b], size=(6, 5))
    assert X.shape == (2, 6, 5, 3) and X.dtype == np.uint8
    assert (X[0, ..., 0] == 255).all() and (X[1] == 7).all()
    with pytest.raises(ValueError, match="not found"):
        load_images([tmp_path / "zz.png"])


# ----------------------------------------------------------------------------- image policy
def test_same_size_images_are_untouched(tmp_path):
    rng = np.random.default_rng(0)
    arrs = [rng.integers(0, 255, (20, 30, 3), dtype=np.uint8) for _ in range(3)]
    for i, x in enumerate(arrs):
        Image.fromarray(x).save(tmp_path / f"{i}.png")
    X, info = load_images(sorted(tmp_path.glob("*.png")), return_info=True)
    np.testing.assert_array_equal(X, np.stack(arrs))  # non-square, but one size: kept as it is
    assert not info["resized"] and "used at their size" in info["note"]


def test_mixed_sizes_resize_shorter_side_then_centre_crop(tmp_path):
    """Photos cropped by hand (400x400, 399x400, 402x400) and a wide one: one S x S array, the centre kept."""
    rng = np.random.default_rng(1)
    paths = []
    for i, (h, w) in enumerate([(400, 400), (400, 399), (400, 402), (40, 120)]):
        x = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        paths.append(tmp_path / f"im{i}.png")
        Image.fromarray(x).save(paths[-1])
    # the wide image: left third red, centre green, right third blue -> the crop keeps the green centre
    wide = np.zeros((40, 120, 3), dtype=np.uint8)
    wide[:, :40, 0] = wide[:, 40:80, 1] = wide[:, 80:, 2] = 255
    Image.fromarray(wide).save(paths[-1])
    X, info = load_images(paths, return_info=True)
    assert X.shape == (4, 40, 40, 3) and info["shape"] == (40, 40)  # S = smallest shorter side
    assert (X[3, :, 5:35, 1] == 255).all() and (X[3, :, 5:35, [0, 2]] == 0).all()
    big = tmp_path / "big.png"
    Image.new("RGB", (900, 700), (1, 2, 3)).save(big)
    Y = load_images([big, big])  # one size, but larger than MAX_IMAGE_SIDE: shrunk to the cap
    assert Y.shape == (2, ds.MAX_IMAGE_SIDE, ds.MAX_IMAGE_SIDE, 3) and (Y == [1, 2, 3]).all()


def test_image_kinds_become_rgb(tmp_path):
    """Grey, RGBA (transparency on white), palette, 16-bit grey, JPEG: all uint8 RGB."""
    Image.new("L", (8, 8), 100).save(tmp_path / "a_grey.png")
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[:4, :, 3] = 255  # top half opaque red, bottom half fully transparent
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "b_rgba.png")
    Image.new("RGB", (8, 8), (0, 0, 255)).convert("P").save(tmp_path / "c_palette.png")
    Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16)).save(tmp_path / "d_16bit.png")
    Image.new("RGB", (8, 8), (0, 200, 0)).save(tmp_path / "e.jpg", quality=100)
    X, info = load_images(sorted(tmp_path.iterdir()), return_info=True)
    assert X.shape == (5, 8, 8, 3) and X.dtype == np.uint8
    assert (X[0] == 100).all()
    assert (X[1, :4] == [255, 0, 0]).all() and (X[1, 4:] == 255).all()  # composited on white
    assert (X[2] == [0, 0, 255]).all() and (X[3] == 255).all()
    assert np.abs(X[4].astype(int) - [0, 200, 0]).max() <= 3
    assert {"L", "RGBA", "P"} <= set(info["modes"]) and any(m.startswith("I") for m in info["modes"])


def test_exif_orientation_is_applied(tmp_path):
    """A phone photo stored sideways (EXIF orientation 6) is loaded upright: 20 wide x 10 high -> 10 x 20."""
    im = Image.new("RGB", (20, 10), (255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(tmp_path / "a.jpg", exif=exif)
    Image.new("RGB", (10, 20), (0, 0, 0)).save(tmp_path / "b.png")
    X, info = load_images([tmp_path / "a.jpg", tmp_path / "b.png"], return_info=True)
    assert X.shape == (2, 20, 10, 3) and not info["resized"] and info["sizes"] == {(10, 20): 2}


def test_unreadable_image_names_the_file(tmp_path):
    path, img, _ = _write_dataset(tmp_path)
    (img / "im_03.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"cannot read image .*im_03\.png.*re-save it"):
        load_rdm_dataset(path, img)
    (img / "im_03.png").write_bytes(Path(img / "im_02.png").read_bytes()[:60])  # truncated
    with pytest.raises(ValueError, match=r"im_03\.png"):
        load_rdm_dataset(path, img)


def test_hidden_and_other_files_are_ignored_and_numbering_is_checked(tmp_path):
    path, img, _ = _write_dataset(tmp_path)
    (img / "._im_00.png").write_bytes(b"macOS resource fork")  # hidden: ignored
    (img / "notes.txt").write_text("ignored")
    b = load_rdm_dataset(path, img)
    assert len(b.image_paths) == 5 and "._im_00.png" not in [p.name for p in b.image_paths]
    R = _random_rdms(np.random.default_rng(5), 1, 11)
    np.savez(tmp_path / "r11.npz", rdms=R)
    d = tmp_path / "unpadded"
    d.mkdir()
    for i in range(11):
        Image.new("RGB", (4, 4), (i, i, i)).save(d / f"im{i}.png")
    with pytest.warns(UserWarning, match="zero padding"):
        b = load_rdm_dataset(tmp_path / "r11.npz", d)
    assert [p.name for p in b.image_paths][:3] == ["im0.png", "im1.png", "im10.png"]  # the stated name order


# ----------------------------------------------------------------------------- RDM forms
def _forms(rng, N=6, S=3):
    """The same subjects' RDMs stored in each accepted form -> {name: (array, expected (S', N, N))}."""
    from scipy.spatial.distance import pdist, squareform

    X = rng.normal(size=(S, N, 4))
    cond = np.stack([pdist(x, "correlation") for x in X])
    sq = np.stack([squareform(c) for c in cond])
    nan_diag = sq.copy()
    nan_diag[:, range(N), range(N)] = np.nan
    rounded = sq.copy()
    rounded[:, 0, 1] += 1e-6  # asymmetry at the level of rounding
    return {
        "square stack": (sq, sq), "one subject (N, N)": (sq[0], sq[:1]),
        "condensed vector": (cond[0], sq[:1]), "condensed stack": (cond, sq),
        "NaN diagonal": (nan_diag, sq), "float32": (sq.astype(np.float32), sq), "rounding": (rounded, sq),
    }


@pytest.mark.parametrize("form", list(_forms(np.random.default_rng(0))))
def test_rdm_forms_are_accepted(tmp_path, form):
    arr, expected = _forms(np.random.default_rng(0))[form]
    _, img, _ = _write_dataset(tmp_path, N=6)
    np.savez(tmp_path / "f.npz", rdms=arr)
    b = load_rdm_dataset(tmp_path / "f.npz", img, roi="V1")
    assert b.rdms.dtype == np.float64 and b.rdms.shape == expected.shape
    np.testing.assert_allclose(b.rdms, expected, atol=1e-5)
    np.testing.assert_array_equal(b.rdms, b.rdms.transpose(0, 2, 1))
    assert (np.diagonal(b.rdms, axis1=1, axis2=2) == 0).all()
    assert list(b.regions) == ["V1"] and b.rdm_forms["V1"] in b.description
    assert "centre-cropped" in b.description and b.image_policy == ds.IMAGE_POLICY  # policies stated


def test_rdm_npy_and_several_regions_in_mixed_forms(tmp_path):
    from scipy.spatial.distance import squareform

    forms = _forms(np.random.default_rng(1))
    _, img, _ = _write_dataset(tmp_path, N=6)
    np.save(tmp_path / "one.npy", forms["condensed stack"][0])
    assert load_rdm_dataset(tmp_path / "one.npy", img).rdms.shape == (3, 6, 6)
    np.savez(tmp_path / "reg.npz", rdms_EVC=forms["condensed vector"][0], rdms_IT=forms["NaN diagonal"][0])
    b = load_rdm_dataset(tmp_path / "reg.npz", img)
    assert list(b.regions) == ["EVC", "IT"] and b.regions["EVC"].shape == (1, 6, 6)
    np.testing.assert_allclose(b.regions["EVC"][0], squareform(forms["condensed vector"][0]))


@pytest.mark.parametrize("make,match", [
    (lambda sq, c: c[:, :-1], r"key 'rdms' holds vectors of length 14, which is not .*N\(N-1\)/2"),
    (lambda sq, c: np.concatenate([c, c[:, :1]], 1)[:, :16], r"reshape a flattened matrix"),
    (lambda sq, c: _set(sq, (1, 2, 4), np.nan), r"subject 1: 1 off-diagonal pair\(s\) are NaN or inf, the first R\[2, 4\]"),
    (lambda sq, c: _set(sq, (0, 3, 3), 0.5), r"subject 0: the diagonal must be 0 or NaN.*R\[3, 3\] = 0\.5"),
    (lambda sq, c: 1 - sq, r"similarity matrix.*1 - R"),
    (lambda sq, c: _set(sq, (2, 0, 5), sq[2, 0, 5] + 0.3), r"subject 2: the RDM is not symmetric beyond rounding: R\[0, 5\]"),
    (lambda sq, c: sq[:, :2, :2], r"N=2 images; RSA needs at least 3"),
    (lambda sq, c: np.zeros((2, 6, 5)), r"must be square"),
    (lambda sq, c: sq.astype(str), r"not numbers"),
])
def test_rdm_errors_name_key_value_and_fix(tmp_path, make, match):
    forms = _forms(np.random.default_rng(2))
    sq, cond = forms["square stack"][0].copy(), forms["condensed stack"][0]
    _, img, _ = _write_dataset(tmp_path, N=6)
    np.savez(tmp_path / "bad.npz", rdms=make(sq, cond))
    with pytest.raises(ValueError, match=match) as err:
        load_rdm_dataset(tmp_path / "bad.npz", img)
    assert "bad.npz" in str(err.value)


def _set(a, idx, value):
    a = a.copy()
    a[idx] = value
    return a


def test_rdm_file_errors(tmp_path):
    forms = _forms(np.random.default_rng(3))
    _, img, _ = _write_dataset(tmp_path, N=6)
    np.savez(tmp_path / "n.npz", rdms_EVC=forms["square stack"][0], rdms_IT=np.zeros((3, 5, 5)))
    with pytest.raises(ValueError, match=r"differ in size \(N per region: \{'EVC': 6, 'IT': 5\}\)"):
        load_rdm_dataset(tmp_path / "n.npz", img)
    np.savez(tmp_path / "arr0.npz", forms["square stack"][0])  # np.savez(path, R): key arr_0
    with pytest.raises(ValueError, match=r"no key 'rdms'.*arr_0.*np.savez\(path, rdms=R\)"):
        load_rdm_dataset(tmp_path / "arr0.npz", img)
    (tmp_path / "x.npz").write_bytes(b"MATLAB 5.0 MAT-file")
    with pytest.raises(ValueError, match=r"cannot read RDM file .*x\.npz"):
        load_rdm_dataset(tmp_path / "x.npz", img)
    np.savez(tmp_path / "obj.npz", rdms=np.array([np.zeros((6, 6)), np.zeros((5, 5))], dtype=object))
    with pytest.raises(ValueError, match=r"key 'rdms' cannot be read without pickle"):
        load_rdm_dataset(tmp_path / "obj.npz", img)
    np.savez(tmp_path / "ok.npz", rdms=forms["condensed stack"][0])
    (tmp_path / "five").mkdir()
    _, five, _ = _write_dataset(tmp_path / "five", N=5)
    with pytest.raises(ValueError, match=r"6x6 \(user: 3 subjects' condensed vectors \(N=6\)\) but .* holds 5 images"):
        load_rdm_dataset(tmp_path / "ok.npz", five)


def test_zoo_probe_refuses_images_of_different_sizes():
    """A list of differently sized arrays stops with the fix, not numpy's 'inhomogeneous' error."""
    from lidutils.book.zoo import prepare_probe

    imgs = [np.zeros((400, 400, 3), np.uint8), np.zeros((399, 400, 3), np.uint8)]
    with pytest.raises(ValueError, match=r"differ in size.*load_images"):
        prepare_probe(imgs, (1, 28, 28), invert=False)
    t, _ = prepare_probe(imgs[:1] * 2, (1, 28, 28), invert=False)  # one size: fine
    assert tuple(t.shape) == (2, 1, 28, 28)


def test_book_states_the_policies():
    """The book's page on bringing your own data states the numbers the loader uses."""
    page = (Path(__file__).resolve().parents[1] / "book" / "rerun.md").read_text()
    section = page[page.index("(own-data)="):]
    section = section[:section.index("\n## ", section.index("## Your own brain data") + 5)]
    for part in (f"{ds.MAX_IMAGE_SIDE} px", f"{ds.RDM_SYMMETRY_RTOL:g} of the", "centre-cropped", "condensed",
                 "squareform", "NaN", "IMAGE_POLICY", "RDM_POLICY", *ds.IMAGE_EXTENSIONS):
        assert part in section, part
