"""Within-model degradation series: the same trained weights, damaged in controlled steps.

A dose–response population for the natural-image analyses: one real ImageNet
model at several levels of one damage, so LID, alignment and brain scores can
be compared *within* a model (paired by level, not pooled as independent models).

Weight damage (a new model; the original is never modified)
    :func:`weight_noise` — every learned parameter tensor ``W`` with more than
    one element becomes ``W + sigma * std(W) * Z``, ``Z ~ N(0, 1)`` i.i.d.
    (seeded). BatchNorm running statistics are not learned parameters and stay
    untouched (in the TorchScript Inception they are stored as parameters named
    ``mean`` / ``var``: skipped by name).

    :func:`magnitude_prune` — the ``fraction`` of smallest-magnitude entries of
    every convolution / linear weight (tensors with >= 2 dimensions) is set to
    zero, **per layer** by default (each tensor loses the same fraction: BatchNorm
    rescales every layer, so magnitudes are not comparable across layers) or
    with one **global** threshold (``scope="global"``).

Input damage (new uint8 images; the inputs are never modified)
    :func:`blur` — Gaussian blur with standard deviation ``sigma`` pixels
    (PIL's ``GaussianBlur``, an extended-box approximation of the Gaussian).

    :func:`downsample` — shorter side reduced to ``size`` pixels (antialiased,
    ``Image.BOX``); the model's own preprocessing enlarges it again, so what is
    lost is resolution, not field of view.

:func:`degradation_series` runs one model at every level of one kind on the
ImageNet sample photos (and on any other image sets, e.g. the 92 brain probe
images) and measures the **retained function** at each level: top-1 agreement
with the intact model and top-1 accuracy relative to the intact model. The
photos are probably ImageNet *training* images, so this is retained function,
not generalization.
"""
from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pandas as pd
import torch

from lidutils.cache import hash_key
from lidutils.datasets import load_imagenet_sample
from lidutils.features import as_images, extract, model_weights_id, to_pil
from lidutils.models import load_model

__all__ = ["weight_noise", "magnitude_prune", "blur", "downsample", "degradation_series",
           "DegradationSeries", "DEFAULT_LEVELS", "KINDS"]

#: Default dose levels per kind (6 each; the first is the intact model / input).
#: weight_noise: sigma in units of each tensor's std; magnitude_prune: fraction of
#: weights zeroed; blur: sigma in pixels of the model's resized input; downsample:
#: shorter side in pixels before the model's own resize (None = untouched).
#: Calibrated on 40 photos (retained accuracy of mobilenetv2_100 / tf_efficientnet_lite0):
#: noise 0.02 -> 1.0 / 1.0, 0.05 -> 0.86 / 0.81, 0.1 -> 0.09 / 0.14; pruning 0.1 -> 0.97 / 0.97,
#: 0.2 -> 0.77 / 0.56, 0.3 -> 0.23 / 0.11; blur 1 -> 0.83 / 0.83, 2 -> 0.66 / 0.61, 8 -> 0.03 / 0.0;
#: downsample 128 -> 0.83, 64 -> 0.66, 16 -> 0.03 (mobilenetv2_100). So each series runs from
#: intact to (nearly) no retained function.
DEFAULT_LEVELS = {
    "weight_noise": (0.0, 0.02, 0.04, 0.06, 0.08, 0.12),
    "magnitude_prune": (0.0, 0.05, 0.1, 0.15, 0.2, 0.3),
    "blur": (0.0, 0.5, 1.0, 2.0, 4.0, 8.0),
    "downsample": (None, 128, 96, 64, 32, 16),
}
KINDS = tuple(DEFAULT_LEVELS)
_WEIGHT_KINDS = ("weight_noise", "magnitude_prune")
_STAT_NAMES = ("mean", "var", "running_mean", "running_var")


# ----------------------------------------------------------------------------- weights
def _copy_model(model, tag):
    """Deep copy of ``model`` whose ``lidutils_info`` (if any) names the damage ``tag``.

    The copy gets a new ``name`` and a ``weights_id`` that hashes the original
    weights' id with the damage, so feature caches of different damage levels
    can never collide (and the state-dict hash cached on the original is dropped).
    """
    new = copy.deepcopy(model)
    vars(new).pop("_lidutils_state_hash", None)
    info = getattr(model, "lidutils_info", None)
    if info is not None:

        wid = hash_key(model_weights_id(model, info), tag)
        new.lidutils_info = dataclasses.replace(info, name=f"{info.name}~{tag}", weights_id=wid, top1=float("nan"),
                                                top1_source="degraded copy: no published top-1")
    return new


def _unpack(model):
    if isinstance(model, tuple) and len(model) == 2:
        return model[0], True
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch module or the (model, info) pair of load_model, got "
                         f"{type(model).__name__}.")
    return model, False


def _pack(new, as_pair):
    return (new, getattr(new, "lidutils_info", None)) if as_pair else new


def weight_noise(model, sigma, seed=0):
    """A copy of ``model`` with Gaussian noise added to its learned parameters.

    .. math:: W' = W + \\sigma \\, \\mathrm{std}(W) \\, Z, \\qquad Z_{ij} \\sim \\mathcal N(0, 1)

    for every parameter tensor with more than one element (convolution and
    linear weights and biases, BatchNorm scales and shifts); BatchNorm running
    statistics are left as they are, and so is a constant tensor (std 0, e.g.
    the BatchNorm scales of an untrained network).

    Parameters
    ----------
    model : torch.nn.Module or (model, info)
        Not modified.
    sigma : float >= 0
        Noise standard deviation in units of each tensor's own standard
        deviation. ``0`` returns an exact copy that keeps the original's
        name and weights id (so its feature cache is the intact model's).
    seed : int
        Seed of the noise (a CPU ``torch.Generator``; parameters in
        ``named_parameters`` order).

    Returns
    -------
    torch.nn.Module (or (model, info) when given a pair)
    """
    model, as_pair = _unpack(model)
    sigma = float(sigma)
    if not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma}.")
    if sigma == 0:
        new = copy.deepcopy(model)
        return _pack(new, as_pair)
    new = _copy_model(model, f"weight_noise-{sigma:g}-seed{int(seed)}")
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for name, p in new.named_parameters():
            if p.numel() < 2 or not p.is_floating_point() or name.rsplit(".", 1)[-1] in _STAT_NAMES:
                continue
            z = torch.randn(p.shape, generator=gen, dtype=torch.float32).to(p.device, p.dtype)
            p.add_(z * (sigma * p.float().std().to(p.dtype)))
    return _pack(new, as_pair)


def _prunable(model):
    return [(n, p) for n, p in model.named_parameters()
            if p.ndim >= 2 and p.is_floating_point() and n.rsplit(".", 1)[-1] not in _STAT_NAMES]


def magnitude_prune(model, fraction, scope="layer"):
    """A copy of ``model`` with the smallest-magnitude weights set to zero.

    For each convolution / linear weight tensor ``W`` (``ndim >= 2``), entries
    with ``|W_ij| <= t`` are zeroed, where ``t`` is the ``fraction`` quantile of
    ``|W|`` within the tensor (``scope="layer"``: every layer loses the same
    fraction) or across all such tensors together (``scope="global"``). Ties at
    the threshold are broken by position so that exactly
    ``round(fraction * n)`` entries are zeroed. Biases and BatchNorm parameters
    are kept.

    Parameters
    ----------
    model : torch.nn.Module or (model, info)
        Not modified.
    fraction : float in [0, 1)
        Share of the weights removed; ``0`` returns an exact copy that keeps the
        original's name and weights id.
    scope : {"layer", "global"}

    Returns
    -------
    torch.nn.Module (or (model, info) when given a pair)
    """
    model, as_pair = _unpack(model)
    fraction = float(fraction)
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}.")
    if scope not in ("layer", "global"):
        raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}.")
    if fraction == 0:
        return _pack(copy.deepcopy(model), as_pair)
    new = _copy_model(model, f"magnitude_prune-{fraction:g}-{scope}")
    params = _prunable(new)
    if not params:
        raise ValueError("the model has no convolution / linear weights (parameters with >= 2 dimensions) to prune.")
    with torch.no_grad():
        groups = [[p] for _, p in params] if scope == "layer" else [[p for _, p in params]]
        for group in groups:
            mags = torch.cat([p.detach().abs().flatten().float().cpu() for p in group])
            k = int(round(fraction * mags.numel()))
            if k == 0:
                continue
            drop = torch.zeros(mags.numel(), dtype=torch.bool)
            drop[torch.argsort(mags, stable=True)[:k]] = True
            start = 0
            for p in group:
                m = drop[start:start + p.numel()].view(p.shape).to(p.device)
                p.masked_fill_(m, 0)
                start += p.numel()
    return _pack(new, as_pair)


# ----------------------------------------------------------------------------- inputs
def _pil_items(images):

    return [to_pil(it) for it in as_images(images)]


def blur(images, sigma):
    """Gaussian-blurred copies of ``images`` (uint8 RGB arrays, one per image).

    Parameters
    ----------
    images : uint8 array (N, H, W, 3), list of arrays, PIL images or paths
        Not modified.
    sigma : float >= 0
        Standard deviation of the Gaussian in pixels of each image
        (:class:`PIL.ImageFilter.GaussianBlur` radius). ``0`` returns the
        images unchanged (as arrays).

    Returns
    -------
    list of uint8 arrays (H, W, 3), or a uint8 array (N, H, W, 3) when given one
    """
    from PIL import ImageFilter

    sigma = float(sigma)
    if not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma}.")
    out = [np.asarray(im.filter(ImageFilter.GaussianBlur(sigma)) if sigma > 0 else im, dtype=np.uint8)
           for im in _pil_items(images)]
    return np.stack(out) if isinstance(images, np.ndarray) else out


def downsample(images, size):
    """Copies of ``images`` whose shorter side is at most ``size`` pixels.

    Each image larger than ``size`` is resized (aspect ratio kept, box-filter
    antialiasing) so its shorter side is ``size``; smaller images are returned
    unchanged. ``size=None`` returns all images unchanged.

    Parameters
    ----------
    images : uint8 array (N, H, W, 3), list of arrays, PIL images or paths
        Not modified.
    size : int >= 1 or None

    Returns
    -------
    list of uint8 arrays (h, w, 3)
    """
    from PIL import Image

    if size is not None and (not isinstance(size, (int, np.integer)) or size < 1):
        raise ValueError(f"size must be a positive integer (pixels of the shorter side) or None, got {size!r}.")
    out = []
    for im in _pil_items(images):
        w, h = im.size
        if size is not None and min(w, h) > size:
            s = size / min(w, h)
            im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BOX)
        out.append(np.asarray(im, dtype=np.uint8))
    return out


# ----------------------------------------------------------------------------- series
@dataclasses.dataclass
class DegradationSeries:
    """Result of :func:`degradation_series`.

    Attributes
    ----------
    table : DataFrame
        One row per level: ``model``, ``kind``, ``level``, ``dose`` (0 = intact,
        then 1, 2, ...), ``member`` (``"<model>~<kind>@<level>"``; the intact row
        is the model's own name), ``top1_agreement`` (share of photos whose top-1
        class equals the intact model's), ``accuracy`` (top-1 on the photos'
        labels) and ``retained_accuracy`` (accuracy / intact accuracy); the
        three are NaN for headless trunks. ``n_photos``.
    features : dict[str, ndarray]
        Image set -> float32 array (n_levels, N, D) of penultimate features:
        ``"photos"`` and each set passed in ``images``.
    photo_paths : list of Path
    labels : ndarray
        ImageNet-1k class indices of the photos.
    """

    table: pd.DataFrame
    features: dict
    photo_paths: list
    labels: np.ndarray


def _pick_photos(n_photos, data_dir):

    sample = load_imagenet_sample(data_dir=data_dir)
    n_all = len(sample.image_paths)
    if not isinstance(n_photos, (int, np.integer)) or not 10 <= n_photos <= n_all:
        raise ValueError(f"n_photos must be an integer in [10, {n_all}], got {n_photos!r}.")
    pick = np.unique(np.linspace(0, n_all - 1, n_photos).round().astype(int))  # as population's ImageNet group
    return [sample.image_paths[i] for i in pick], sample.labels[pick]


def _model_sized(items, info):
    """Images brought to the model's pre-crop size (its own first transform step)."""
    from timm.data import create_transform

    resize = create_transform(**info.preprocessing).transforms[0]
    return [resize(im) for im in _pil_items(items)]


def _level_label(level):
    return "none" if level is None else f"{level:g}"


def degradation_series(name, kind, levels=None, images=None, n_photos=300, seed=0, scope="layer",
                       cache_dir=None, device="auto", data_dir=None, batch_size=32, progress=False):
    """Features and retained function of one model at every level of one damage.

    Parameters
    ----------
    name : str
        Model name for :func:`lidutils.models.load_model` (the offline
        classifiers give retained function; headless trunks give features only).
    kind : {"weight_noise", "magnitude_prune", "blur", "downsample"}
    levels : sequence, optional
        Dose levels, first = intact (``0`` / ``None``); default
        :data:`DEFAULT_LEVELS` [kind]. Weight kinds apply to the model;
        input kinds to every image set. For input kinds each image is first
        brought to the model's own resize (shorter side = input size / crop_pct,
        its first preprocessing step, so the model's transform leaves it as is),
        then damaged: ``blur`` sigma and ``downsample`` size are in the model's
        pixels. The intact level uses the images exactly as given.
    images : dict[str, images] or images, optional
        Further image sets to embed at every level (e.g. ``{"probe": algonauts.images}``);
        a bare image collection is stored as ``"probe"``.
    n_photos : int
        ImageNet sample photos (evenly spaced over the 1000 classes, as in the
        population's ImageNet group) for retained function and features.
    seed : int
        Seed of ``weight_noise``.
    scope : {"layer", "global"}
        Scope of ``magnitude_prune``.
    cache_dir, device, batch_size, progress
        Passed to :func:`lidutils.features.extract` (its cache key contains the
        damaged model's name and weights id, or the damaged images' bytes, so
        levels never share an entry; the intact level shares the intact
        model's entry).
    data_dir : str or Path, optional
        Data mirror for :func:`lidutils.datasets.load_imagenet_sample`.

    Returns
    -------
    DegradationSeries
    """

    if kind not in DEFAULT_LEVELS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {KINDS}.")
    levels = list(DEFAULT_LEVELS[kind] if levels is None else levels)
    if len(levels) < 2:
        raise ValueError(f"levels must hold at least the intact level and one damage level, got {levels}.")
    intact = None if kind == "downsample" else 0.0
    if levels[0] != intact and not (intact == 0.0 and levels[0] == 0):
        raise ValueError(f"the first level of {kind!r} must be the intact one ({intact!r}), got {levels[0]!r}.")
    if images is None:
        sets = {}
    elif isinstance(images, dict):
        sets = dict(images)
    else:
        sets = {"probe": images}
    if "photos" in sets:
        raise ValueError("'photos' is reserved for the ImageNet sample photos; name your image set differently.")
    photos, labels = _pick_photos(n_photos, data_dir)
    sets = {"photos": photos, **sets}

    base, info = load_model(name, device="cpu")
    head = None if info.headless else base.get_classifier()
    kw = dict(cache_dir=cache_dir, device=device, batch_size=batch_size, progress=progress)
    sized = {} if kind in _WEIGHT_KINDS else {k: _model_sized(v, info) for k, v in sets.items()}

    feats = {k: [] for k in sets}
    rows = []
    preds0 = acc0 = None
    for dose, level in enumerate(levels):
        model, mname = base, info.name
        if kind == "weight_noise" and dose > 0:
            model = weight_noise(base, level, seed=seed)
        elif kind == "magnitude_prune" and dose > 0:
            model = magnitude_prune(base, level, scope=scope)
        for k, items in sets.items():
            if kind in _WEIGHT_KINDS or dose == 0:
                use = items
            else:
                use = blur(sized[k], level) if kind == "blur" else downsample(sized[k], level)
            feats[k].append(extract((model, model.lidutils_info), use, **kw))
        if dose > 0:
            mname = f"{info.name}~{kind}@{_level_label(level)}"
        agree = acc = np.nan
        if head is not None:
            clf = model.get_classifier() if kind in _WEIGHT_KINDS else head
            with torch.inference_mode():
                logits = clf(torch.from_numpy(feats["photos"][-1]).to(next(clf.parameters()).device))
            preds = logits.argmax(1).cpu().numpy()
            if dose == 0:
                preds0, acc0 = preds, float((preds == labels).mean())
            agree, acc = float((preds == preds0).mean()), float((preds == labels).mean())
        rows.append(dict(model=info.name, kind=kind, level=np.nan if level is None else float(level), dose=dose,
                         member=mname, top1_agreement=agree, accuracy=acc,
                         retained_accuracy=acc / acc0 if acc0 else np.nan, n_photos=len(photos)))
    table = pd.DataFrame(rows)
    features = {k: np.stack(v).astype(np.float32, copy=False) for k, v in feats.items()}
    return DegradationSeries(table=table, features=features, photo_paths=photos, labels=labels)
