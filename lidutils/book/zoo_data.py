"""The zoo's data: named training sets, their split and fingerprint (:class:`ZooData`), and the
probe images in the training format.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from lidutils.cache import hash_key
from lidutils.datasets import load_algonauts92
from lidutils.loaders import deduplicate, load_animal_mnist, load_fashion_mnist
from .zoo_design import DATASETS, N_EVAL, SPLIT_SEED, TEST_SIZE, ZOO_VERSION


def _as_nchw(images, name="images"):
    """uint8 (n,h,w[,c]) in 0..255 or float in 0..1 -> float32 tensor (n,c,h,w) in 0..1."""
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"{name} must have shape (n, h, w) or (n, h, w, 1|3), got {x.shape}.")
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    elif x.dtype.kind == "f":
        if not np.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or inf.")
        if x.min() < 0 or x.max() > 1:
            raise ValueError(f"float {name} must lie in [0, 1] (or pass uint8 in 0..255).")
        x = x.astype(np.float32)
    else:
        raise ValueError(f"{name} must be uint8 or float, got dtype {x.dtype}.")
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def _border_mean(x):
    """Mean brightness of the 1-pixel image border (x: n,c,h,w in 0..1)."""
    b = torch.cat([x[..., 0, :], x[..., -1, :], x[..., :, 0], x[..., :, -1]], dim=-1)
    return float(b.mean())


def prepare_probe(probe_images, shape, invert="auto", reference=None):
    """Convert probe images to the training format: channels, size and polarity.

    RGB -> gray by ITU-R 601 luminance (or gray -> RGB by repetition) to match
    ``shape = (c, h, w)``; resized with PIL's antialiasing (LANCZOS) filter. With
    ``invert="auto"`` the probe is inverted (``1 - x``) when its background (the
    mean of the image border) is on the other side of 0.5 than that of the
    ``reference`` training images: Algonauts objects lie on white backgrounds,
    Animal-MNIST silhouettes are white on black, so the Algonauts images are
    inverted to bright objects on a dark background.

    Returns a float32 tensor (n, c, h, w) in [0, 1] and whether it was inverted.
    """
    from PIL import Image

    if isinstance(probe_images, (list, tuple)) and len({np.shape(a) for a in probe_images}) > 1:
        shapes = sorted({np.shape(a) for a in probe_images})
        raise ValueError(
            f"probe_images differ in size ({len(shapes)} shapes, e.g. {shapes[:3]}); bring them to one size "
            "first: lidutils.datasets.load_images(paths) resizes and centre-crops them "
            "(lidutils.datasets.IMAGE_POLICY).")
    x = np.asarray(probe_images)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3, 4):
        raise ValueError(f"probe_images must be (n, h, w) or (n, h, w, 1|3|4), got {np.shape(probe_images)}.")
    if x.dtype != np.uint8:
        if x.dtype.kind != "f" or x.min() < 0 or x.max() > 1:
            raise ValueError("probe_images must be uint8 (0..255) or float in [0, 1].")
        x = np.round(x * 255).astype(np.uint8)
    c, h, w = shape
    out = []
    for img in x[..., :3] if x.shape[-1] == 4 else x:
        if img.shape[-1] == 1:
            pil = Image.fromarray(img[..., 0], mode="L")
        else:
            pil = Image.fromarray(img, mode="RGB")
        pil = pil.convert("L" if c == 1 else "RGB").resize((w, h), Image.LANCZOS)
        a = np.asarray(pil, dtype=np.float32) / 255.0
        out.append(a[None] if c == 1 else a.transpose(2, 0, 1))
    t = torch.from_numpy(np.stack(out))
    if invert not in ("auto", True, False):
        raise ValueError(f"invert must be 'auto', True or False, got {invert!r}.")
    if invert == "auto":
        if reference is None:
            raise ValueError("invert='auto' needs reference training images.")
        invert = (_border_mean(t) > 0.5) != (_border_mean(reference) > 0.5)
    if invert:
        t = 1.0 - t
    return t, bool(invert)


def default_probe():
    try:

        return load_algonauts92("IT").images
    except Exception as err:  # noqa: BLE001 - no probe is a warning, not a failure
        warnings.warn(f"Algonauts 92 images unavailable ({err}); training the zoo without probe "
                      "embeddings. Pass probe_images= to embed your own images.", stacklevel=3)
        return None


def _load_dataset(name):
    """Named training set -> (images, labels, dedup info, test mask or None)."""
    if name == "animal-mnist":
        images, labels, info = load_animal_mnist(return_info=True)
        return images, labels, info, None
    if name == "fashion-mnist":
        images, labels, info = load_fashion_mnist(return_info=True)
        return images, labels, info, info.pop("is_test")
    raise ValueError(f"unknown data set {name!r}; choose one of {DATASETS} or pass images= and labels=.")


class ZooData:
    """Deduplicated data, fixed stratified split, normalisation and evaluation subset.

    A named data set with a standard split (Fashion-MNIST: 60 000 / 10 000) keeps
    it; otherwise (Animal-MNIST, custom arrays) a stratified ``1 - test_size`` /
    ``test_size`` split is drawn with ``split_seed``. Duplicates are removed first.
    """

    def __init__(self, images, labels, test_size=TEST_SIZE, split_seed=SPLIT_SEED, n_eval=N_EVAL,
                 dataset=None):
        from sklearn.model_selection import train_test_split

        test_mask = None
        if images is None:
            self.name = dataset or "animal-mnist"
            images, labels, info, test_mask = _load_dataset(self.name)
        else:
            if dataset is not None:
                raise ValueError("pass either a named data set (data=) or images= and labels=, not both.")
            if labels is None:
                raise ValueError("pass labels together with images.")
            labels = np.asarray(labels)
            if labels.ndim != 1 or labels.dtype.kind not in "iu":
                raise ValueError(f"labels must be a 1-D integer array, got shape {labels.shape} dtype {labels.dtype}.")
            images, labels, info = deduplicate(images, labels)
            self.name = "custom"
        x = _as_nchw(images)
        labels = np.asarray(labels, dtype=np.int64)
        classes = np.unique(labels)
        if classes[0] < 0:
            raise ValueError("labels must be non-negative class indices.")
        self.n_classes = int(classes[-1]) + 1
        idx = np.arange(len(labels))
        if test_mask is not None:
            tr, te = idx[~test_mask], idx[test_mask]
        else:
            tr, te = train_test_split(idx, test_size=test_size, stratify=labels, random_state=split_seed)
        self.train_idx, self.test_idx = np.sort(tr), np.sort(te)
        n_eval = min(int(n_eval), len(te))
        if n_eval < len(te):
            ev, _ = train_test_split(self.test_idx, train_size=n_eval, stratify=labels[self.test_idx],
                                     random_state=split_seed)
        else:
            ev = self.test_idx
        self.eval_idx = np.sort(ev)
        self.eval_pos = np.searchsorted(self.test_idx, self.eval_idx)  # eval rows inside the test set
        self.raw = x
        self.labels = labels
        # numpy float64 reductions: the same values whatever torch's thread count (worker processes)
        xt = x[self.train_idx].numpy()
        self.mean = np.mean(xt, axis=(0, 2, 3), dtype=np.float64).astype(np.float32).tolist()
        self.std = np.maximum(np.std(xt, axis=(0, 2, 3), dtype=np.float64, ddof=1), 1e-6).astype(np.float32).tolist()
        self.x = self.normalise(x)
        self.shape = tuple(x.shape[1:])
        self.dedup = {k: v for k, v in info.items() if k != "kept_index"}
        self.fingerprint = hash_key("zoo-data", np.ascontiguousarray(images), labels, self.train_idx,
                                    self.test_idx, n_eval)

    def normalise(self, x):
        m = torch.tensor(self.mean).view(1, -1, 1, 1)
        s = torch.tensor(self.std).view(1, -1, 1, 1)
        return (x - m) / s

    def describe(self):
        return {"name": self.name, "fingerprint": self.fingerprint, "n": int(len(self.labels)),
                "n_train": int(len(self.train_idx)), "n_test": int(len(self.test_idx)),
                "n_eval": int(len(self.eval_idx)), "shape": list(self.shape), "n_classes": self.n_classes,
                "mean": self.mean, "std": self.std, "dedup": self.dedup, "zoo_version": ZOO_VERSION}
