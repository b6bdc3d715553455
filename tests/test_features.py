"""Feature extraction: the 92 Algonauts images through the offline models, layers, inputs, cache."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import lidutils.features as lf
from lidutils.features import extract, image_content_hash, layer_names
from lidutils.models import OFFLINE_MODELS, load_model

MIRROR = Path(os.environ.get("LIDUTILS_DATA_DIR") or "/work/shared/data")
needs_mirror = pytest.mark.skipif(not (MIRROR / "algonauts2019_92").is_dir(), reason="data mirror not available")


@pytest.fixture(scope="module", autouse=True)
def _threads():
    torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="module")
def algonauts():
    if not (MIRROR / "algonauts2019_92").is_dir():
        pytest.skip("data mirror not available")
    from lidutils.datasets import load_algonauts92

    return load_algonauts92("IT", data_dir=MIRROR)


@pytest.fixture(scope="module")
def models():
    return {n: load_model(n) for n in OFFLINE_MODELS}


def _count_forwards(model):
    calls = []
    handle = model.conv_stem.register_forward_pre_hook(lambda m, i: calls.append(i[0].shape[0]))
    return calls, handle


@pytest.fixture
def small_images():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    return np.clip(base + rng.integers(-40, 40, (6, 64, 64, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", OFFLINE_MODELS)
def test_extract_algonauts92(algonauts, models, name, tmp_path):
    model, info = models[name]
    calls, h = _count_forwards(model)
    images = algonauts.images[:24]  # 24 of the 92 images: two batches, enough rows for the rank check
    X = extract(models[name], images, batch_size=12, cache_dir=tmp_path, progress=False)
    assert X.shape == (24, model.num_features) and X.dtype == np.float32 and np.isfinite(X).all()
    assert calls == [12, 12]
    # second call: a pure cache hit
    X2 = extract(models[name], images, batch_size=6, cache_dir=tmp_path, progress=False)
    h.remove()
    assert calls == [12, 12]
    np.testing.assert_array_equal(X, X2)
    # deterministic and identical to a direct timm forward (no cache)
    Xd = extract(models[name], algonauts.images[:4], cache_dir=False, progress=False)
    np.testing.assert_allclose(Xd, X[:4], rtol=1e-4, atol=1e-5)
    # images differ: the features of different images are not all alike
    assert np.linalg.matrix_rank(X[:20].astype(np.float64)) == 20


@needs_mirror
def test_input_forms_agree(algonauts, models):
    m = models["mobilenetv2_100"]
    paths = algonauts.image_paths[:3]
    a = extract(m, algonauts.images[:3], cache_dir=False, progress=False)
    b = extract(m, paths, cache_dir=False, progress=False)
    c = extract(m, [Image.open(p) for p in paths], cache_dir=False, progress=False)
    d = extract(m[0], list(algonauts.images[:3]), cache_dir=False, progress=False)  # bare module + list
    for other in (b, c, d):
        np.testing.assert_array_equal(a, other)
    assert image_content_hash(paths) != image_content_hash(algonauts.images[:3])
    assert image_content_hash(algonauts.images[:3]) == image_content_hash(list(algonauts.images[:3]))


def test_penultimate_matches_timm_and_logits(models, small_images):
    from timm.data import create_transform

    model, info = models["tf_efficientnet_lite0"]
    tf = create_transform(**info.preprocessing)
    x = torch.stack([tf(Image.fromarray(a)) for a in small_images[:3]])
    with torch.no_grad():
        feats = model.forward_head(model.forward_features(x), pre_logits=True).numpy()
        logits = model(x).numpy()
    np.testing.assert_allclose(extract(models["tf_efficientnet_lite0"], small_images[:3], cache_dir=False,
                                       progress=False), feats, rtol=1e-5, atol=1e-5)
    L = extract(models["tf_efficientnet_lite0"], small_images[:3], layer="logits", cache_dir=False, progress=False)
    assert L.shape == (3, 1000)
    np.testing.assert_allclose(L, logits, rtol=1e-5, atol=1e-4)


def test_named_layers(models, small_images):
    m = models["tf_efficientnet_lite0"]
    a = extract(m, small_images[:2], layer="blocks.3", cache_dir=False, progress=False)
    f = extract(m, small_images[:2], layer="blocks.3", pool="flatten", cache_dir=False, progress=False)
    # 224 px input, blocks.3 at stride 16 with 80 channels
    assert a.shape == (2, 80) and f.shape == (2, 80 * 14 * 14)
    np.testing.assert_allclose(a, f.reshape(2, 80, 196).mean(-1), rtol=1e-4, atol=1e-5)
    assert "blocks.3" in layer_names(m[0])
    with pytest.raises(ValueError, match="unknown layer 'blocks.99'.*conv_stem"):
        extract(m, small_images[:2], layer="blocks.99", cache_dir=False, progress=False)


def test_random_control_differs(models, small_images):
    Xp = extract(models["tf_efficientnet_lite0"], small_images, cache_dir=False, progress=False)
    Xr = extract("random:tf_efficientnet_lite0", small_images, cache_dir=False, progress=False)
    assert Xp.shape == Xr.shape and np.isfinite(Xr).all()
    assert not np.allclose(Xp, Xr)
    Xr2 = extract(load_model("random:tf_efficientnet_lite0"), small_images, cache_dir=False, progress=False)
    np.testing.assert_array_equal(Xr, Xr2)


def test_cache_key_separates_models_layers_and_images(models, small_images, tmp_path):
    m = models["mobilenetv2_100"]
    kw = dict(cache_dir=tmp_path, progress=False)
    extract(m, small_images, **kw)
    extract(m, small_images, layer="blocks.2", **kw)
    extract(m, small_images[::-1].copy(), **kw)
    extract("random:mobilenetv2_100", small_images, **kw)
    files = sorted(tmp_path.rglob("*.npz"))
    assert len(files) == 4 and not list(tmp_path.rglob("*.parts*"))
    assert not list(tmp_path.rglob("*.tmp"))


def test_interrupted_run_resumes(models, small_images, tmp_path, monkeypatch):
    m = models["mobilenetv2_100"]
    ref = extract(m, small_images, cache_dir=False, progress=False)
    calls, h = _count_forwards(m[0])
    real = lf.to_pil
    seen = []

    def crash_on_third_batch(item):
        seen.append(1)
        if len(seen) == 5:  # first item of batch 3 (batch_size 2)
            raise KeyboardInterrupt
        return real(item)

    monkeypatch.setattr(lf, "to_pil", crash_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        extract(m, small_images, batch_size=2, cache_dir=tmp_path, progress=False)
    assert calls == [2, 2] and not [p for p in tmp_path.rglob("*.npz") if ".parts" not in str(p.parent)]
    monkeypatch.setattr(lf, "to_pil", real)
    X = extract(m, small_images, batch_size=2, cache_dir=tmp_path, progress=False)
    h.remove()
    assert calls == [2, 2, 2]  # only the missing batch was computed
    np.testing.assert_allclose(X, ref, rtol=1e-5, atol=1e-6)
    assert not list(tmp_path.rglob("*.parts*"))


def test_input_errors(models, small_images):
    m = models["mobilenetv2_100"]
    with pytest.raises(ValueError, match="uint8"):
        extract(m, small_images / 255.0, cache_dir=False, progress=False)
    with pytest.raises(ValueError, match="shape"):
        extract(m, small_images[0], cache_dir=False, progress=False)
    with pytest.raises(ValueError, match="does not exist"):
        extract(m, ["/no/such/image.jpg"], cache_dir=False, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        extract(m, small_images, batch_size=0, cache_dir=False, progress=False)
    with pytest.raises(ValueError, match="no images"):
        extract(m, [], cache_dir=False, progress=False)
    with pytest.raises(ValueError, match="model must be"):
        extract(42, small_images, cache_dir=False, progress=False)
