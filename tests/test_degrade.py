"""Degradation series: seeded, exact at level 0, originals untouched, cache keys per level, dose-response."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data

from lidutils.degrade import (DEFAULT_LEVELS, blur, degradation_series, downsample, magnitude_prune,
                              weight_noise)
from lidutils.features import extract
from lidutils.models import load_model

MIRROR = Path(os.environ.get("LIDUTILS_DATA_DIR") or "/work/shared/data")


@pytest.fixture(scope="module", autouse=True)
def _threads():
    torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="module")
def net():
    return load_model("mobilenetv2_100")


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_same(a, b):
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_default_levels_have_six_doses_from_intact():
    for kind, levels in DEFAULT_LEVELS.items():
        assert len(levels) >= 6 and levels[0] in (0, None), kind
        doses = [np.inf if v is None else v for v in levels]
        assert doses == (sorted(doses, reverse=True) if kind == "downsample" else sorted(doses)), kind


def test_weight_noise_seeded_scaled_and_original_untouched(net):
    model, info = net
    before = _state(model)
    a, ia = weight_noise(net, 0.1, seed=3)
    b = weight_noise(model, 0.1, seed=3)
    c = weight_noise(model, 0.1, seed=4)
    _assert_same(before, _state(model))                      # original untouched
    _assert_same(_state(a), _state(b))                       # seeded
    w0, wa, wc = model.blocks[3][0].conv_pw.weight, a.blocks[3][0].conv_pw.weight, c.blocks[3][0].conv_pw.weight
    assert not torch.equal(wa, wc)
    assert float(((wa - w0).std() / w0.std()).detach()) == pytest.approx(0.1, rel=0.05)
    const = weight_noise(load_model("random:mobilenetv2_100")[0], 0.5)  # untrained BN scales: all 1, std 0
    assert torch.equal(const.bn1.weight, torch.ones_like(const.bn1.weight))   # noise in units of the tensor's std
    bn0, bna = model.blocks[3][0].bn1, a.blocks[3][0].bn1
    assert torch.equal(bn0.running_var, bna.running_var) and not torch.equal(bn0.weight, bna.weight)
    # the copy is named by its damage and carries a new weights id; the intact copy keeps the original's
    assert ia is a.lidutils_info and ia.name == f"{info.name}~weight_noise-0.1-seed3"
    assert len({info.weights_id, ia.weights_id, c.lidutils_info.weights_id}) == 3
    z = weight_noise(model, 0)
    _assert_same(before, _state(z))
    assert z.lidutils_info.name == info.name and z.lidutils_info.weights_id == info.weights_id
    with pytest.raises(ValueError, match="sigma"):
        weight_noise(model, -1)


def test_weight_noise_skips_torchscript_batchnorm_statistics():
    model, _ = load_model("inception_v3_tf_fid")
    noisy = weight_noise(model, 0.5, seed=0)
    p0, p1 = dict(model.named_parameters()), dict(noisy.named_parameters())
    stats = [k for k in p0 if k.rsplit(".", 1)[-1] in ("mean", "var")]
    assert stats and all(torch.equal(p0[k], p1[k]) for k in stats)
    weights = [k for k in p0 if k.endswith(".weight")]
    assert weights and not any(torch.equal(p0[k], p1[k]) for k in weights)


def test_magnitude_prune_per_layer_and_global(net):
    model, info = net
    before = _state(model)
    for scope in ("layer", "global"):
        pruned = magnitude_prune(net, 0.3, scope=scope)[0]
        _assert_same(before, _state(model))
        ws = [(n, p) for n, p in pruned.named_parameters() if p.ndim >= 2]
        zeros = np.array([int((p == 0).sum()) for _, p in ws])
        sizes = np.array([p.numel() for _, p in ws])
        if scope == "layer":
            np.testing.assert_array_equal(zeros, np.round(0.3 * sizes).astype(int))
        else:
            assert zeros.sum() == round(0.3 * sizes.sum()) and zeros.std() > 0
        # the survivors are the largest-magnitude weights of the original
        orig = dict(model.named_parameters())
        name, p = ws[5]
        kept, dropped = orig[name][p != 0].abs(), orig[name][p == 0].abs()
        if scope == "layer":
            assert kept.min() >= dropped.max()
        assert pruned.lidutils_info.name == f"{info.name}~magnitude_prune-0.3-{scope}"
        # biases and BatchNorm parameters are kept
        torch.testing.assert_close(pruned.bn1.weight, model.bn1.weight, rtol=0, atol=0)
    _assert_same(before, _state(magnitude_prune(model, 0.0)))
    with pytest.raises(ValueError, match="fraction"):
        magnitude_prune(model, 1.0)
    with pytest.raises(ValueError, match="scope"):
        magnitude_prune(model, 0.5, scope="row")


def test_blur_and_downsample():
    img = data.astronaut()[::2, ::2]  # 256 x 256 x 3
    imgs = np.stack([img, img[:, ::-1]])
    keep = imgs.copy()
    np.testing.assert_array_equal(blur(imgs, 0), imgs)
    # high-frequency energy falls monotonically with sigma
    energy = [np.abs(np.diff(blur(imgs, s).astype(float), axis=1)).mean() for s in (0, 1, 2, 4, 8)]
    assert all(a > b for a, b in zip(energy, energy[1:]))
    small = downsample(imgs, 32)
    assert [s.shape for s in small] == [(32, 32, 3)] * 2 and small[0].dtype == np.uint8
    assert abs(float(small[0].mean()) - float(img.mean())) < 2       # box filter keeps the mean
    assert downsample(imgs, 512)[0].shape == img.shape and downsample(imgs, None)[1].shape == img.shape
    np.testing.assert_array_equal(imgs, keep)                        # inputs untouched
    with pytest.raises(ValueError, match="size"):
        downsample(imgs, 0)
    with pytest.raises(ValueError, match="sigma"):
        blur(imgs, -2)


def test_cache_keys_differ_per_level(net, tmp_path):
    imgs = np.stack([data.astronaut()[:96, :96], data.coffee()[:96, :96], data.chelsea()[:96, :96]])
    feats = [extract(net, imgs, cache_dir=tmp_path, progress=False)]
    for s in (0.05, 0.1):
        feats.append(extract(weight_noise(net, s, seed=0), imgs, cache_dir=tmp_path, progress=False))
    feats.append(extract(weight_noise(net, 0.1, seed=1), imgs, cache_dir=tmp_path, progress=False))
    feats.append(extract(magnitude_prune(net, 0.1), imgs, cache_dir=tmp_path, progress=False))
    feats.append(extract(net, blur(imgs, 2), cache_dir=tmp_path, progress=False))
    entries = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.npz"))
    assert len(entries) == 6 and len({p.parent for p in entries}) == 5   # blur: same model, other images
    for i in range(1, len(feats)):
        assert not np.allclose(feats[0], feats[i])
    # level 0 is the intact model's own entry
    np.testing.assert_array_equal(extract(weight_noise(net, 0), imgs, cache_dir=tmp_path, progress=False), feats[0])
    assert len(list(tmp_path.rglob("*.npz"))) == 6


@pytest.mark.slow
def test_degradation_series_dose_response(tmp_path):
    if not (MIRROR / "imagenet_sample_1000").is_dir():
        pytest.skip("data mirror not available")
    probe = np.stack([data.astronaut()[:128, :128], data.coffee()[:128, :128]])
    kw = dict(images=probe, n_photos=24, cache_dir=tmp_path, data_dir=MIRROR)
    s = degradation_series("mobilenetv2_100", "weight_noise", levels=(0, 0.03, 0.3), seed=0, **kw)
    t = s.table
    assert list(t.dose) == [0, 1, 2] and list(t.member)[0] == "mobilenetv2_100"
    assert t.top1_agreement.iloc[0] == 1.0 and t.retained_accuracy.iloc[0] == 1.0
    assert t.accuracy.iloc[0] > 0.6                           # intact: the photos are ImageNet classes
    assert t.top1_agreement.iloc[2] < 0.3 and t.retained_accuracy.iloc[2] < 0.4
    assert s.features["photos"].shape == (3, 24, 1280) and s.features["probe"].shape == (3, 2, 1280)
    # level 0 = the intact model's features; accuracy from the cached features = from the logits
    np.testing.assert_array_equal(s.features["photos"][0],
                                  extract("mobilenetv2_100", s.photo_paths, cache_dir=tmp_path, progress=False))
    logits = extract("mobilenetv2_100", s.photo_paths, layer="logits", cache_dir=False, progress=False)
    assert (logits.argmax(1) == s.labels).mean() == t.accuracy.iloc[0]
    # seeded: the same series again is identical (and served from the cache)
    again = degradation_series("mobilenetv2_100", "weight_noise", levels=(0, 0.03, 0.3), seed=0, **kw)
    np.testing.assert_array_equal(again.features["photos"], s.features["photos"])

    b = degradation_series("mobilenetv2_100", "blur", levels=(0, 32), **kw)
    np.testing.assert_array_equal(b.features["photos"][0], s.features["photos"][0])
    assert b.table.top1_agreement.iloc[1] < 0.3
    with pytest.raises(ValueError, match="intact"):
        degradation_series("mobilenetv2_100", "blur", levels=(2, 4), **kw)
    with pytest.raises(ValueError, match="kind"):
        degradation_series("mobilenetv2_100", "jpeg", **kw)
