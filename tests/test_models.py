"""Models: the four offline ImageNet models are the real thing; random controls; tables; errors."""
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from timm.data import create_transform

import lidutils.models as lm
from lidutils.models import OFFLINE_MODELS, PAPER_MODELS, ModelInfo, load_model, model_table

CATS = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968}  # espresso, cup


@pytest.fixture(scope="module")
def offline():
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return {n: load_model(n) for n in OFFLINE_MODELS}


def _predict(model, info, arrays):
    tf = create_transform(**info.preprocessing)
    with torch.no_grad():
        return model(torch.stack([tf(Image.fromarray(a)) for a in arrays]))


@pytest.mark.parametrize("name", OFFLINE_MODELS)
def test_offline_models_recognise_imagenet_classes(offline, name):
    model, info = offline[name]
    top5 = _predict(model, info, [data.chelsea(), data.coffee()]).topk(5).indices.tolist()
    assert top5[0][0] in CATS and CATS & set(top5[0])
    assert COFFEE & set(top5[1][:2])


@pytest.mark.parametrize("name, size, top1, mean", [
    ("tf_efficientnet_lite0", 224, 74.830, 0.5), ("tf_efficientnet_lite1", 240, 76.644, 0.5),
    ("tf_efficientnet_lite2", 260, 77.464, 0.5), ("mobilenetv2_100", 224, 71.878, 0.485)])
def test_offline_model_info(offline, name, size, top1, mean):
    model, info = offline[name]
    assert isinstance(info, ModelInfo) and model.lidutils_info is info
    assert info.name == name and info.pretrained and info.family == "offline"
    assert info.input_size == (3, size, size) and info.mean[0] == mean
    assert info.top1 == top1 and info.top1_source
    assert info.n_params == sum(p.numel() for p in model.parameters()) > 3_000_000
    assert len(info.weights_id) == 64 and not model.training
    assert info.weights_id == lm.file_sha256(lm.offline_weights_path(name))


def test_mobilenet_matches_torchvision(offline):
    """The remap onto timm reproduces torchvision's own MobileNetV2 exactly."""
    import torchvision

    model, info = offline["mobilenetv2_100"]
    assert "torchvision" in info.weights_source and info.interpolation == "bilinear"
    tv = torchvision.models.mobilenet_v2()
    tv.load_state_dict(torch.load(lm.offline_weights_path("mobilenetv2_100"), weights_only=True))
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(x), tv.eval()(x), rtol=1e-5, atol=1e-5)


def test_remap_refuses_mismatched_checkpoint(monkeypatch, tmp_path):
    import timm

    bad = {k: v for k, v in timm.create_model("tf_efficientnet_lite0").state_dict().items()}
    bad.pop(next(iter(bad)))
    torch.save(bad, tmp_path / "w.pth")
    monkeypatch.setattr(lm, "offline_weights_path", lambda name: tmp_path / "w.pth")
    with pytest.raises(RuntimeError, match="tensors"):
        load_model("tf_efficientnet_lite0")


def test_random_control(offline):
    m0, i0 = load_model("random:tf_efficientnet_lite0")
    m1, _ = load_model("tf_efficientnet_lite0", pretrained=False)
    m2, _ = load_model("random:tf_efficientnet_lite0", seed=1)
    assert i0.name == "random:tf_efficientnet_lite0" and not i0.pretrained and math.isnan(i0.top1)
    assert i0.weights_id == "random-seed0" and i0.mean == (0.5, 0.5, 0.5)
    w = lambda m: m.conv_stem.weight
    torch.testing.assert_close(w(m0), w(m1))
    assert not torch.equal(w(m0), w(m2))
    assert not torch.allclose(w(m0), w(offline["tf_efficientnet_lite0"][0]))
    _, imb = load_model("random:mobilenetv2_100")
    assert imb.interpolation == "bilinear" and imb.mean[0] == 0.485


def test_unknown_and_online_errors(monkeypatch):
    import timm

    with pytest.raises(ValueError, match="unknown model"):
        load_model("not_a_model_xyz")
    with pytest.raises(ValueError, match="non-empty"):
        load_model("")

    real = timm.create_model

    def no_network(name, pretrained=False, **kw):
        if pretrained:
            raise OSError("We couldn't connect to 'https://huggingface.co'")
        return real(name, pretrained=False, **kw)

    monkeypatch.setattr(timm, "create_model", no_network)
    with pytest.raises(RuntimeError, match="Models that work offline"):
        load_model("resnet18.tv_in1k")


def test_paper_models_table():
    import timm

    assert {"ConvNeXt", "ResNet", "ResMLP", "MAE-ViT"} <= set(PAPER_MODELS.family)
    pretrained = set(timm.list_pretrained())
    for name in PAPER_MODELS.name:
        assert name in pretrained, name  # every listed name is a real timm pretrained tag
    known = PAPER_MODELS.dropna(subset=["top1"])
    assert known.top1.between(60, 90).all() and (known.top1_source.str.contains("results-imagenet")).all()
    assert PAPER_MODELS[PAPER_MODELS.family == "MAE-ViT"].top1.isna().all()
    t = model_table(["tf_efficientnet_lite0", "resnet50.a1_in1k", "nope"])
    assert list(t.name) == ["tf_efficientnet_lite0", "resnet50.a1_in1k", "nope"]
    assert t.top1.iloc[0] == 74.830 and t.top1.iloc[1] == 81.214 and math.isnan(t.top1.iloc[2])
    assert len(model_table()) == len(PAPER_MODELS) + 4


@pytest.mark.slow
def test_lite0_top1_on_imagenet_sample(offline):
    from lidutils.datasets import load_imagenet_sample

    mirror = os.environ.get("LIDUTILS_DATA_DIR") or "/work/shared/data"
    if not Path(mirror, "imagenet_sample_1000").is_dir():
        pytest.skip("data mirror not available")
    s = load_imagenet_sample(mirror)
    model, info = offline["tf_efficientnet_lite0"]
    tf = create_transform(**info.preprocessing)
    idx = np.arange(0, 1000, 4)  # 250 classes keep the test short
    correct = 0
    with torch.no_grad():
        for b in range(0, len(idx), 50):
            x = torch.stack([tf(Image.open(s.image_paths[i]).convert("RGB")) for i in idx[b:b + 50]])
            correct += int((model(x).argmax(1).numpy() == s.labels[idx[b:b + 50]]).sum())
    assert correct / len(idx) > 0.80  # README: 88.8 % on all 1000 (likely training images)
