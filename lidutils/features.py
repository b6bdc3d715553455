"""Feature extraction from image models, with a content-keyed on-disk cache.

:func:`extract` runs a model over images with the model's own preprocessing
(timm's eval transform built from :class:`lidutils.models.ModelInfo`: resize
to ``size / crop_pct``, centre crop, normalise) and returns one float32 row per
image.

Layers
------
``"penultimate"`` (default)
    The pooled pre-logit vector: ``model.forward_head(model.forward_features(x),
    pre_logits=True)`` (for ConvNets the global-average-pooled last feature map,
    for ViTs the class token / pooled tokens, as timm defines it).
``"logits"``
    The classifier output ``model(x)``.
any name from ``model.named_modules()``
    The module's output, captured by a forward hook. A 4-D output (B, C, H, W) is
    reduced by ``pool``: ``"avg"`` (default, global average over space: C
    features) or ``"flatten"`` (C*H*W features); a 3-D token output (B, T, C)
    likewise (mean over tokens, or flattened).

Cache
-----
With ``cache_dir`` (default ``lidutils.cache.default_cache_dir() / "features"``;
``cache_dir=False`` disables it) the result is stored as
``<cache_dir>/<model name>/<key>.npz``, the key hashing the model name, the
weights (file SHA-256 / seed, else a hash of the state dict), the image contents
(bytes of the array or of each file), the preprocessing, the layer and the
pooling. A second identical call is a pure cache hit (no forward pass). Every
file is written atomically; during a run each finished batch is saved in
``<key>.parts/`` so an interrupted run resumes from its last complete batch and
never leaves a corrupt entry.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import torch

from lidutils import _progress
from lidutils._device import resolve_device
from lidutils.cache import computing, default_cache_dir, file_sha256, hash_key, load_npz, save_npz
from lidutils.models import load_model, ModelInfo

__all__ = ["extract", "layer_names", "image_content_hash"]

_CACHE_VERSION = 1


def as_images(images):
    """Normalise ``images`` to a list of items: uint8 HxWx3 arrays, PIL images or Paths."""
    from PIL import Image

    if isinstance(images, np.ndarray):
        if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
            raise ValueError(f"an image array must have shape (N, H, W, 3), got {images.shape}.")
        if images.dtype != np.uint8:
            raise ValueError(f"an image array must be uint8 (0..255), got {images.dtype}; convert with "
                             f"(x * 255).round().astype(np.uint8) if it holds floats in [0, 1].")
        return list(images)
    if isinstance(images, (str, Path, Image.Image)):
        images = [images]
    items = list(images)
    if not items:
        raise ValueError("no images given.")
    out = []
    for it in items:
        if isinstance(it, (str, Path)):
            p = Path(it)
            if not p.is_file():
                raise ValueError(f"image file {str(p)!r} does not exist.")
            out.append(p)
        elif isinstance(it, Image.Image):
            out.append(it)
        elif isinstance(it, np.ndarray) and it.ndim == 3 and it.dtype == np.uint8:
            out.append(it)
        else:
            raise ValueError(f"images must be a uint8 array (N, H, W, 3), PIL images or file paths; got an item of type "
                             f"{type(it).__name__}.")
    return out


def image_content_hash(images):
    """SHA-256 of the image contents (array bytes, PIL pixels or file bytes), in order."""
    items = as_images(images)
    h = hashlib.sha256()
    for it in items:
        if isinstance(it, Path):
            h.update(b"file" + bytes.fromhex(file_sha256(it)))
        elif isinstance(it, np.ndarray):
            h.update(str(it.shape).encode() + np.ascontiguousarray(it).tobytes())
        else:
            h.update(f"{it.mode}{it.size}".encode() + it.tobytes())
    return h.hexdigest()


def to_pil(item):
    from PIL import Image

    if isinstance(item, Path):
        with Image.open(item) as im:
            return im.convert("RGB")
    if isinstance(item, np.ndarray):
        if item.shape[-1] == 1:
            item = np.repeat(item, 3, axis=-1)
        return Image.fromarray(item[..., :3])
    return item.convert("RGB")


def _resolve_model(model, device):

    if isinstance(model, str):
        return load_model(model, device=device)
    if isinstance(model, tuple) and len(model) == 2 and isinstance(model[1], ModelInfo):
        return model
    if isinstance(model, torch.nn.Module):
        info = getattr(model, "lidutils_info", None)
        if info is None:
            info = _info_from_module(model)
        return model, info
    raise ValueError("model must be a name, the (model, info) pair from load_model, or a torch module "
                     f"(timm model); got {type(model).__name__}.")


def _info_from_module(model):
    from timm.data import resolve_data_config


    if not hasattr(model, "forward_features"):
        raise ValueError("a bare torch module must be a timm model (with forward_features / pretrained_cfg); "
                         "load other models with lidutils.models.load_model.")
    cfg = resolve_data_config({}, model=model)
    name = getattr(model, "pretrained_cfg", {}).get("architecture", type(model).__name__)
    return ModelInfo(name=name, architecture=name, pretrained=True, pretrained_tag=None,
                     weights_source="user module", n_params=sum(p.numel() for p in model.parameters()),
                     input_size=tuple(cfg["input_size"]), mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
                     interpolation=cfg["interpolation"], crop_pct=float(cfg["crop_pct"]),
                     crop_mode=cfg.get("crop_mode", "center"))


def model_weights_id(model, info):
    if info.weights_id:
        return info.weights_id
    cached = getattr(model, "_lidutils_state_hash", None)
    if cached is None:
        h = hashlib.sha256()
        for k, v in model.state_dict().items():
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        cached = h.hexdigest()
        model._lidutils_state_hash = cached
    return cached


def layer_names(model):
    """Names accepted by ``extract(layer=...)``: "penultimate", "logits" and module names."""
    return ["penultimate", "logits"] + [n for n, _ in model.named_modules() if n]


def reduce_output(out, pool, layer):
    """A module's output as an (N, D) tensor: ``pool="avg"`` averages spatial (4-D) / token (3-D) axes, ``"flatten"`` keeps them."""
    if isinstance(out, (tuple, list)):
        out = out[0]
    if hasattr(out, "last_hidden_state"):
        out = out.last_hidden_state
    if not torch.is_tensor(out):
        raise ValueError(f"layer {layer!r} does not output a tensor ({type(out).__name__}).")
    if out.ndim == 2 or pool == "flatten":
        return out.flatten(1)
    if out.ndim == 4:
        return out.mean(dim=(2, 3))
    if out.ndim == 3:
        return out.mean(dim=1)
    return out.flatten(1)


def extract(model, images, layer="penultimate", batch_size=32, device="auto", cache_dir=None,
            progress=True, pool="avg", wait=True):
    """Representations of images in a model: an (N, D) float32 array.

    Parameters
    ----------
    model : str, (model, info) or torch.nn.Module
        A name for :func:`lidutils.models.load_model`, its return value, or a
        timm model.
    images : uint8 array (N, H, W, 3), list of PIL images, uint8 arrays or paths
        Files are opened lazily, batch by batch.
    layer : str
        ``"penultimate"``, ``"logits"`` or a module name (see module docstring).
    batch_size : int
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    cache_dir : str, Path, None or False
        Cache folder; None uses the default, False disables caching.
    progress : bool
        Show a tqdm progress bar over batches.
    pool : {"avg", "flatten"}
        How a named layer's spatial/token output becomes a vector.
    wait : bool
        With a cache: when another process is extracting the same features, wait for
        it (default) or return ``None`` at once (a caller with several models extracts
        the others first; chapters that run side by side then share the work).

    Returns
    -------
    ndarray of shape (N, D), float32 (``None`` only with ``wait=False``, see above)
    """
    if pool not in ("avg", "flatten"):
        raise ValueError(f"pool must be 'avg' or 'flatten', got {pool!r}.")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    items = as_images(images)
    dev = resolve_device(device)
    model, info = _resolve_model(model, dev)

    hook_module = None
    if layer == "logits" and getattr(info, "headless", False):
        raise ValueError(f"{info.name} is a headless trunk (no classifier): it has no logits. Use "
                         f"layer='penultimate' or a module name.")
    if layer not in ("penultimate", "logits"):
        modules = dict(model.named_modules())
        if layer not in modules or not layer:
            names = layer_names(model)
            raise ValueError(f"unknown layer {layer!r} for {info.name}. Use 'penultimate', 'logits' or a module "
                             f"name, e.g. {names[2:6]} ... {names[-4:]} (lidutils.features.layer_names(model)).")
        hook_module = modules[layer]

    if cache_dir is not False:
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "features"
        key = hash_key(_CACHE_VERSION, info.name, model_weights_id(model, info), image_content_hash(items),
                       info.preprocessing, layer, pool if hook_module is not None else None, len(items))
        final = root / info.name.replace("/", "_").replace(":", "_") / f"{key}.npz"
        # one process extracts, any other asking for the same features meanwhile waits for it
        # (or, with wait=False, returns None at once to come back later)
        with computing(final, wait=wait) as mine:
            if final.is_file():
                return load_npz(final)["features"]
            if not mine:
                return None
            parts = final.with_name(f"{key}.parts-bs{batch_size}")  # chunks depend on the batch size
            return _run_extraction(model, info, items, dev, batch_size, hook_module, pool, layer, progress,
                                   final, parts)
    return _run_extraction(model, info, items, dev, batch_size, hook_module, pool, layer, progress)


def _run_extraction(model, info, items, dev, batch_size, hook_module, pool, layer, progress, final=None,
                    parts=None):
    """The batches of :func:`extract`; resumable from ``parts`` and saved to ``final`` when given."""
    from timm.data import create_transform

    model = model.to(dev).eval()
    transform = create_transform(**info.preprocessing)
    captured = {}
    handle = None
    if hook_module is not None:
        handle = hook_module.register_forward_hook(lambda m, i, o: captured.__setitem__("out", o))
    chunks = []
    starts = range(0, len(items), batch_size)
    try:
        for b, start in enumerate(_progress.bar(starts, progress, desc=f"features of {info.name}", unit="batch")):
            part = parts / f"{b:06d}.npz" if parts is not None else None
            if part is not None and part.is_file():
                chunks.append(load_npz(part)["features"])
                continue
            batch = torch.stack([transform(to_pil(it)) for it in items[start:start + batch_size]]).to(dev)
            with torch.inference_mode():
                if layer == "penultimate":
                    out = model.forward_head(model.forward_features(batch), pre_logits=True)
                elif layer == "logits":
                    out = model(batch)
                else:
                    model(batch)
                    out = reduce_output(captured.pop("out"), pool, layer)
            feats = out.flatten(1).float().cpu().numpy()
            if part is not None:
                save_npz(part, features=feats)
            chunks.append(feats)
    finally:
        if handle is not None:
            handle.remove()
    X = np.ascontiguousarray(np.concatenate(chunks, axis=0), dtype=np.float32)
    if not np.isfinite(X).all():
        raise ValueError(f"{info.name} produced non-finite features at layer {layer!r}; check the input images.")
    if final is not None:
        save_npz(final, features=X)
        shutil.rmtree(parts, ignore_errors=True)
    return X
