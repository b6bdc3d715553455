"""A model zoo trained from scratch: a real population whose generalization is measured.

The paper correlates local intrinsic dimension with generalization and alignment
across a *population* of models that differ in capacity and training data. Offline
only four pretrained ImageNet CNNs are available, too few for a correlation, so
this module trains a population here: small image classifiers
(:mod:`lidutils.archs`: MLP, CNN, all-convolutional ConvNet, ResNet, MLP-Mixer)
swept over

- architecture family and capacity (``width``, ``depth``),
- data scale (``n_train`` images, or ``data_fraction`` of the training split;
  stratified and nested: for one seed a smaller subset is part of a larger one),
- label noise (``label_noise``: that fraction of the training labels replaced by
  a different class; the realised fraction is stored as ``label_noise_actual``),
- training duration (a checkpoint, its metrics and embeddings at each epoch in
  ``epochs``: under-trained and converged regimes are both population members),
- seeds (weight init, data order, augmentation, subset and noise draw).

Every ``(model, epoch)`` checkpoint is one row of the zoo table, with its held-out
test accuracy (the generalization score), train accuracy and loss, parameter
count, training examples seen, fraction of dead embedding units, the convergence
check (:func:`convergence`) and paths to its state_dict and to its embeddings of a
fixed held-out evaluation set (``which="eval"``) and of a probe image set
(``which="probe"``, by default the 92 Algonauts images, converted to the training
format). The per-epoch training curve of every network is stored
(:func:`load_learning_curve`).

Controlled design
-----------------
The book's population is a factorial design (:class:`Design`, :func:`design_table`):
``"controlled"`` on Fashion-MNIST (:data:`CONTROLLED`) and its replication
``"controlled-animal"`` on Animal-MNIST (:data:`CONTROLLED_ANIMAL`). Every network
of every family ends its trunk in the same ``EMBED_DIM``-wide embedding layer
(capacity varies only inside the trunk), is trained with AdamW, a cosine schedule
with linear warm-up, weight decay and random shifts, and carries its design cell
(``design``, shared by its seed replicates), ``capacity_level``, ``data_level``
and its series memberships ``in_capacity`` / ``in_data`` / ``in_noise``: three
one-factor series around one reference cell per family. The legacy grids
``"smoke"`` and ``"default"`` (constant-rate Adam, penultimate width growing with
``width``) stay available for comparison.

Data
----
Named training sets (:mod:`lidutils.loaders`): ``"fashion-mnist"`` (70 000 images,
its standard 60 000 / 10 000 split, verified on the SHA-256 of the decompressed
files) and ``"animal-mnist"`` (PyPI ``animal-mnist`` 0.4, MIT; 10 000 28x28
white-on-black silhouettes, 284 exact duplicates removed before a stratified
80/20 split, so 9 716 remain and no test image has a copy in the training set).
Any ``(images, labels)`` arrays work as well, e.g. CIFAR-10 on a machine with
internet access::

    import numpy as np, torchvision
    tr = torchvision.datasets.CIFAR10("data", train=True, download=True)
    te = torchvision.datasets.CIFAR10("data", train=False, download=True)
    images = np.concatenate([tr.data, te.data])            # uint8 (60000, 32, 32, 3)
    labels = np.concatenate([tr.targets, te.targets])
    table = train_zoo("default", images=images, labels=labels, cache_dir="zoo-cifar")

(the zoo makes its own stratified split of the pooled arrays; on CPU, CIFAR-10 is
far slower than the 28x28 sets).

Cache
-----
``cache_dir/data-<fingerprint>/<entry key>/``: ``entry.json`` (written last: an
entry is complete iff it exists), ``e<epoch>.pt`` (state_dict),
``e<epoch>_eval.npz`` (``emb``, ``labels``, ``pred``) and
``e<epoch>_probe-<probe hash>.npz`` (``emb``). All files are written atomically.
An entry's key hashes its fields (and ``ZOO_VERSION``), the data fingerprint
hashes the images, labels and split, so a rerun trains nothing that is already
there, an interrupted run resumes at the first unfinished entry, and a changed
entry retrains only itself. Probe embeddings of a new probe set are computed from
the stored checkpoints without retraining.

Determinism
-----------
On CPU, training runs single-threaded by default (``num_threads=1``) with
``torch.use_deterministic_algorithms(True)``: the same entry gives bit-identical
accuracies and embeddings on every run, also with ``num_workers=2`` training
processes (each trains whole networks; spawned, so a script that calls
:func:`train_zoo` with workers needs the usual ``if __name__ == "__main__":``
guard). (Measured on the shared 2-core machine: with two threads and other jobs
running, a training epoch was about 10x *slower* than with one thread, from
thread oversubscription.)
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from lidutils import _progress
from lidutils._device import resolve_device
from lidutils.archs import ARCHS, build_model, n_parameters
from lidutils.cache import atomic_path, computing, default_cache_dir, hash_key, save_json, save_npz
from lidutils.datasets import load_algonauts92
from lidutils.loaders import CLASS_NAMES, deduplicate, FASHION_CLASSES, load_animal_mnist, load_fashion_mnist
from lidutils.penalty import batch_penalty

ZOO_VERSION = 2  # bump when training or evaluation code changes results
EMBED_DIM = 128  # width of the common embedding layer of the controlled grids
DATASETS = ("animal-mnist", "fashion-mnist")
TEST_SIZE = 0.2
SPLIT_SEED = 0
N_EVAL = 1000


# --------------------------------------------------------------------------- data

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


def _default_probe():
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


# --------------------------------------------------------------------------- grid

SCHEDULES = ("constant", "cosine")
WARMUP = 0.1  # fraction of the optimisation steps spent warming the learning rate up (schedule="cosine")


def _penalty_code():
    """Hash of the source file of :mod:`lidutils.penalty` (read, not imported; the utility's file)."""
    return hash_key("penalty-code", (Path(__file__).parent.parent / "penalty.py").read_bytes())


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """One trained network of the zoo (all of its saved epochs).

    Parameters
    ----------
    arch : {"mlp", "cnn", "convnet", "resnet", "mixer"}
    width, depth : int
        Capacity of the trunk (see :mod:`lidutils.archs`).
    data_fraction : float in (0, 1]
        Fraction of the training split used (ignored when ``n_train`` is set).
    label_noise : float in [0, 1)
        Fraction of the used training labels replaced by a different class, drawn
        uniformly among the other classes (symmetric noise): exactly
        ``round(label_noise * n)`` labels are wrong.
    epochs : tuple of int
        Epochs after which a checkpoint, metrics and embeddings are saved; training
        stops at the last.
    seed : int
        Weight init, data order, augmentation, subset and label-noise draw.
    lr, batch_size, weight_decay
        Optimiser settings: ``schedule="constant"``: Adam at a constant ``lr``
        (L2 ``weight_decay``); ``"cosine"``: AdamW (decoupled ``weight_decay``),
        the rate rising linearly from 0 to ``lr`` over the first ``WARMUP`` (10 %)
        of the steps, then following a half cosine to 0 at the last step:
        :math:`\\eta_t = \\eta\\,t/t_w` for :math:`t < t_w`, else
        :math:`\\eta\\,\\tfrac12(1 + \\cos(\\pi (t - t_w)/(T - t_w)))`.
    n_train : int
        Number of training images (0: use ``data_fraction``). Subsets are nested:
        for one seed, a smaller subset is a prefix of a larger one (a per-seed,
        class-interleaved random order of the training split), and stratified.
    embed_dim : int
        Width of the common embedding layer that ends the trunk (0: none; see
        :mod:`lidutils.archs`). The controlled grids use :data:`EMBED_DIM`.
    schedule : {"constant", "cosine"}
    augment : int
        Random shifts of every training image by up to ``augment`` pixels in each
        direction (background-padded), redrawn every epoch; 0: none.
    penalty, penalty_weight, penalty_k
        Optional regulariser on the embedding: the loss becomes
        ``cross_entropy + penalty_weight * lidutils.penalty.batch_penalty(emb,
        kind=penalty, k=penalty_k)`` on every batch. With ``penalty_weight=0``
        nothing is computed (the run is bit-identical to an unpenalised one).
    cell : dict, optional
        Design metadata (design cell id, capacity and data level, series
        membership) attached by the grid; not a training setting, so not part of
        the key and not stored with the network.
    """

    arch: str
    width: int
    depth: int
    data_fraction: float = 1.0
    label_noise: float = 0.0
    epochs: tuple = (1, 3, 10)
    seed: int = 0
    lr: float = 1e-3
    batch_size: int = 128
    weight_decay: float = 0.0
    n_train: int = 0
    embed_dim: int = 0
    schedule: str = "constant"
    augment: int = 0
    penalty: str = "none"
    penalty_weight: float = 0.0
    penalty_k: int = 10
    cell: dict = dataclasses.field(default=None, compare=False, hash=False, repr=False)

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}; choose one of {ARCHS}.")
        ep = tuple(int(e) for e in np.atleast_1d(self.epochs))
        if not ep or min(ep) < 1 or list(ep) != sorted(set(ep)):
            raise ValueError(f"epochs must be increasing positive integers, got {self.epochs!r}.")
        object.__setattr__(self, "epochs", ep)
        if not 0 < float(self.data_fraction) <= 1:
            raise ValueError(f"data_fraction must be in (0, 1], got {self.data_fraction}.")
        if not 0 <= float(self.label_noise) < 1:
            raise ValueError(f"label_noise must be in [0, 1), got {self.label_noise}.")
        if int(self.batch_size) < 2:
            raise ValueError(f"batch_size must be >= 2, got {self.batch_size}.")
        if int(self.n_train) < 0 or int(self.embed_dim) < 0 or int(self.augment) < 0:
            raise ValueError(f"n_train, embed_dim and augment must be >= 0, got {self.n_train}, "
                             f"{self.embed_dim}, {self.augment}.")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {SCHEDULES}.")
        if self.penalty_weight and self.penalty == "none":
            raise ValueError(f"penalty_weight={self.penalty_weight} needs a penalty kind (penalty=...).")
        if int(self.penalty_k) < 1:
            raise ValueError(f"penalty_k must be >= 1, got {self.penalty_k}.")

    def fields(self):
        """The training settings (JSON-ready; without ``cell``)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "cell"}
        d["epochs"] = list(self.epochs)
        return d

    @property
    def key(self):
        """Stable hash of the training settings (and of ``ZOO_VERSION``).

        A penalised entry also hashes the source of :mod:`lidutils.penalty`, so a change
        to the penalty retrains exactly the networks trained with it.
        """
        extra = (_penalty_code(),) if self.penalty_weight else ()
        return hash_key("zoo-entry", ZOO_VERSION, self.fields(), *extra)

    @property
    def name(self):
        data = f"N{self.n_train}" if self.n_train else f"f{self.data_fraction:g}"
        pen = f"-p{self.penalty}{self.penalty_weight:g}" if self.penalty_weight else ""
        return f"{self.arch}-w{self.width}-d{self.depth}-{data}-n{self.label_noise:g}{pen}-s{self.seed}"


# Adam learning rate per family: the BatchNorm ConvNets and the Mixer learn
# markedly faster at 3e-3 than at 1e-3 in the first epochs (measured here).
_LR = {"mlp": 1e-3, "cnn": 3e-3, "convnet": 3e-3, "resnet": 3e-3, "mixer": 3e-3}


def _e(arch, width, depth, data_fraction=1.0, label_noise=0.0, epochs=(1, 3, 8), seed=0):
    return ZooEntry(arch, width, depth, data_fraction, label_noise, tuple(epochs), seed, lr=_LR[arch])


def _smoke_grid():
    ep = (1, 2)
    return [
        _e("mlp", 16, 1, epochs=ep),
        _e("mlp", 128, 2, epochs=ep),
        _e("mlp", 128, 2, 0.05, epochs=ep),
        _e("mixer", 16, 1, 0.3, epochs=ep),
    ]


# Save schedules by data fraction: a small training set gets more epochs, so every
# data scale is seen under-trained (first save) and converged (last save).
_EPOCHS = {1.0: (1, 3, 8), 0.2: (2, 10, 40), 0.05: (5, 30, 120)}


def _default_grid():
    """The legacy, uncontrolled zoo (width varies the embedding; constant-rate Adam)."""
    E = _EPOCHS
    g = []
    # capacity x family at full data, clean labels (14 networks)
    g += [_e("mlp", w, 2) for w in (16, 32, 128, 512)]
    g += [_e("mlp", 128, d) for d in (1, 4)]
    g += [_e("cnn", w, 3) for w in (4, 8, 16)]
    g += [_e("resnet", w, 1) for w in (4, 8)]
    g += [_e("mixer", w, 2) for w in (16, 32, 64)]
    # data scale: 5 % and 20 % of the training split (4)
    g += [_e(a, w, d, f, epochs=E[f]) for f in (0.05, 0.2) for a, w, d in (("mlp", 128, 2), ("mixer", 32, 2))]
    # label noise on 20 % of the data, trained long enough to memorise (6)
    g += [_e(a, w, d, 0.2, n, epochs=E[0.2]) for n in (0.2, 0.5)
          for a, w, d in (("mlp", 128, 2), ("mlp", 512, 2), ("mixer", 32, 2))]
    # seeds (8)
    g += [_e(a, w, d, seed=s) for s in (1, 2) for a, w, d in (("mlp", 32, 2), ("mlp", 128, 2), ("mlp", 512, 2))]
    g += [_e("cnn", 8, 3, seed=1), _e("mixer", 32, 2, seed=1)]
    return g


@dataclasses.dataclass(frozen=True)
class Design:
    """A factorial zoo design: three one-factor series around a reference cell per family.

    For every family, the *capacity series* trains each trunk size in
    ``capacity[family]`` at the reference data level; the *data series* trains
    the reference trunk (``capacity[family][ref_capacity]``) at every ``n_train``
    level; the *noise series* trains the reference trunk at the reference data
    level with each ``label_noise``. The reference cell belongs to all three.
    Every design cell is trained with each seed in ``seeds`` (replicates).
    Every network: embedding width ``embed_dim``, cosine schedule with warm-up,
    AdamW, ``augment``-pixel random shifts, ``epochs[n_train]`` epochs, saved at
    ``max(1, E // 5)`` (under-trained), ``E // 2`` and ``E``.
    """

    data: str
    capacity: dict          # family -> tuple of (width, depth), small to large
    n_train: tuple          # data levels, small to large
    ref_capacity: int       # index into capacity[family]
    ref_data: int           # index into n_train
    noise: tuple = (0.2, 0.4)
    seeds: tuple = (0, 1, 2)
    epochs: dict = None     # n_train -> number of epochs
    lr: dict = None         # family -> peak learning rate
    embed_dim: int = EMBED_DIM
    weight_decay: float = 5e-4
    augment: int = 2
    batch_size: int = 128

    def cells(self):
        """One dict per design cell: family, levels, width, depth, n_train, noise, series flags."""
        out = []
        for fam, caps in self.capacity.items():
            for ci, (w, d) in enumerate(caps):
                for di, n in enumerate(self.n_train):
                    for noise in (0.0,) + tuple(self.noise):
                        in_cap = di == self.ref_data and noise == 0
                        in_data = ci == self.ref_capacity and noise == 0
                        in_noise = ci == self.ref_capacity and di == self.ref_data
                        if in_cap or in_data or in_noise:
                            out.append({"design": f"{fam}-c{ci}-d{di}-n{noise:g}", "family": fam,
                                        "capacity_level": ci, "data_level": di, "width": w, "depth": d,
                                        "n_train": n, "label_noise": noise, "in_capacity": in_cap,
                                        "in_data": in_data, "in_noise": in_noise})
        return out

    def entries(self):
        g = []
        for c in self.cells():
            ep = self.epochs[c["n_train"]]
            saves = tuple(sorted({max(1, ep // 5), max(1, ep // 2), ep}))
            for s in self.seeds:
                g.append(ZooEntry(c["family"], c["width"], c["depth"], label_noise=c["label_noise"],
                                  epochs=saves, seed=s, lr=self.lr[c["family"]], batch_size=self.batch_size,
                                  weight_decay=self.weight_decay, n_train=c["n_train"],
                                  embed_dim=self.embed_dim, schedule="cosine", augment=self.augment,
                                  cell={**c, "data_set": self.data}))
        return g


_CONTROLLED_LR = {"mlp": 2e-3, "convnet": 4e-3, "mixer": 4e-3}
_CONTROLLED_CAPACITY = {
    "mlp": ((16, 2), (48, 2), (160, 2), (512, 2)),        # 16k .. 0.73M parameters
    "convnet": ((2, 1), (6, 1), (16, 1), (32, 1)),        # 2.9k .. 111k
    "mixer": ((8, 1), (24, 1), (48, 2), (96, 3)),         # 4k .. 0.13M
}
#: The book's primary design: Fashion-MNIST, 3 families x (4 capacity + 5 data - 1
#: shared + 2 noise) = 30 cells x 3 seeds = 90 networks.
CONTROLLED = Design(
    data="fashion-mnist", capacity=_CONTROLLED_CAPACITY, n_train=(500, 1400, 4000, 11000, 30000),
    ref_capacity=1, ref_data=1, epochs={500: 60, 1400: 36, 4000: 20, 11000: 12, 30000: 12},
    lr=_CONTROLLED_LR)
#: The replication on Animal-MNIST (all 7772 training images at the top level): same families and
#: trunks, 4 data levels (19x), 2 seeds: 3 x 9 cells x 2 = 54 networks.
CONTROLLED_ANIMAL = Design(
    data="animal-mnist", capacity=_CONTROLLED_CAPACITY, n_train=(400, 1200, 3000, 7772),
    ref_capacity=1, ref_data=1, seeds=(0, 1), epochs={400: 60, 1200: 36, 3000: 20, 7772: 12},
    lr=_CONTROLLED_LR)
#: A tiny design with the same structure (tests, quick looks): 2 families x
#: (2 capacity + 2 data - 1 + 1 noise) = 8 cells x 1 seed, a few epochs.
CONTROLLED_SMOKE = Design(
    data="animal-mnist", capacity={"mlp": ((8, 1), (32, 1)), "convnet": ((2, 1), (4, 1))},
    n_train=(300, 1000), ref_capacity=1, ref_data=1, noise=(0.4,), seeds=(0,),
    epochs={300: 6, 1000: 5}, lr=_CONTROLLED_LR)



@dataclasses.dataclass(frozen=True)
class FactorialDesign(Design):
    """A full factorial: every label noise x data level x capacity level, in every family.

    The families, trunks, data levels, learning rates, epochs and training recipe are
    those of a :class:`Design` (the controlled zoo's); ``capacity_levels`` and
    ``data_levels`` pick indices into ``capacity[family]`` and ``n_train``, and every
    combination with every noise level in ``(0,) + noise`` is a design cell. A cell that
    is also a cell of the controlled design (same family, trunk, ``n_train``, noise,
    seed, epochs) *is* the same :class:`ZooEntry` (same key), so it is trained once
    for both grids. The series flags (``in_capacity`` ...) keep their meaning relative
    to the reference cell, so the controlled series can be found inside the factorial.
    """

    capacity_levels: tuple = (0, 1)
    data_levels: tuple = (0, 1)

    def __post_init__(self):
        for name, levels, n in (("capacity_levels", self.capacity_levels, min(map(len, self.capacity.values()))),
                                ("data_levels", self.data_levels, len(self.n_train))):
            if not levels or any(not 0 <= int(i) < n for i in levels) or list(levels) != sorted(set(levels)):
                raise ValueError(f"{name} must be increasing indices in 0..{n - 1}, got {levels!r}.")

    def cells(self):
        out = []
        for fam, caps in self.capacity.items():
            for ci in self.capacity_levels:
                w, d = caps[ci]
                for di in self.data_levels:
                    n = self.n_train[di]
                    for noise in (0.0,) + tuple(self.noise):
                        out.append({"design": f"{fam}-c{ci}-d{di}-n{noise:g}", "family": fam,
                                    "capacity_level": ci, "data_level": di, "width": w, "depth": d,
                                    "n_train": n, "label_noise": noise,
                                    "in_capacity": di == self.ref_data and noise == 0,
                                    "in_data": ci == self.ref_capacity and noise == 0,
                                    "in_noise": ci == self.ref_capacity and di == self.ref_data})
        return out


#: The factorial of the chapter "When does lower LID mean better?" (beyond the paper, claim C9):
#: label noise 0 / 0.2 / 0.4 / 0.6 x the two smallest data levels of :data:`CONTROLLED` (500,
#: 1400 images) x its three smallest trunks (7-11x parameters), in every family, 2 seeds:
#: 3 x 24 cells x 2 = 144 networks. The 18 cells the controlled zoo already trains (its capacity
#: and data series through the reference cell, and the reference cell's noise series) are shared
#: (same keys), so 108 networks are new: 4 CPU-minutes measured on the book's 2-core machine
#: (2.2 s per network; the chapter shows the cost of each build), about 2 minutes with 2 workers.
FACTORIAL = FactorialDesign(
    data="fashion-mnist", capacity=_CONTROLLED_CAPACITY, n_train=CONTROLLED.n_train,
    ref_capacity=CONTROLLED.ref_capacity, ref_data=CONTROLLED.ref_data, noise=(0.2, 0.4, 0.6), seeds=(0, 1),
    epochs=CONTROLLED.epochs, lr=_CONTROLLED_LR, capacity_levels=(0, 1, 2), data_levels=(0, 1))
#: Its smoke version (tests): the families and trunks of :data:`CONTROLLED_SMOKE`, noise 0 / 0.4 / 0.6,
#: 2 x 2 x 3 = 12 cells per family, 1 seed, a few epochs (24 networks of a few seconds).
FACTORIAL_SMOKE = FactorialDesign(
    data="animal-mnist", capacity=CONTROLLED_SMOKE.capacity, n_train=CONTROLLED_SMOKE.n_train,
    ref_capacity=1, ref_data=1, noise=(0.4, 0.6), seeds=(0,), epochs=CONTROLLED_SMOKE.epochs,
    lr=_CONTROLLED_LR, capacity_levels=(0, 1), data_levels=(0, 1))

DESIGNS = {"controlled": CONTROLLED, "controlled-animal": CONTROLLED_ANIMAL,
           "controlled-smoke": CONTROLLED_SMOKE, "factorial": FACTORIAL, "factorial-smoke": FACTORIAL_SMOKE}
GRIDS = {"smoke": _smoke_grid(), "default": _default_grid(),
         **{name: d.entries() for name, d in DESIGNS.items()}}
#: Training set of each named grid (the legacy grids: Animal-MNIST).
GRID_DATA = {"smoke": "animal-mnist", "default": "animal-mnist",
             **{name: d.data for name, d in DESIGNS.items()}}


def resolve_grid(grid):
    """Grid name / a list of :class:`ZooEntry` or dicts -> list of entries."""
    if isinstance(grid, str):
        if grid not in GRIDS:
            raise ValueError(f"unknown grid {grid!r}; choose one of {sorted(GRIDS)} or pass a list of entries.")
        return list(GRIDS[grid])
    if isinstance(grid, (ZooEntry, dict)):
        grid = [grid]
    entries = [e if isinstance(e, ZooEntry) else ZooEntry(**e) for e in grid]
    if not entries:
        raise ValueError("the grid is empty.")
    keys = [e.key for e in entries]
    if len(set(keys)) != len(keys):
        raise ValueError("the grid holds the same entry twice.")
    return entries


_CELL_COLUMNS = ("design", "capacity_level", "data_level", "in_capacity", "in_data", "in_noise")


def design_table(grid="controlled", data_shape=(1, 28, 28), n_classes=10):
    """The design of a grid: one row per design cell.

    Columns: ``design`` (cell id, shared by its seed replicates), ``family``,
    ``capacity_level``, ``width``, ``depth``, ``params`` (trainable parameters
    for ``data_shape`` inputs), ``embed_dim``, ``data_level``, ``n_train``,
    ``label_noise``, ``epochs``, ``in_capacity`` / ``in_data`` / ``in_noise``
    (series memberships) and ``seeds`` (tuple). Entries without design metadata
    (legacy grids, hand-made lists) are each their own cell (``design`` = name
    without the seed).
    """
    rows = {}
    for e in resolve_grid(grid):
        c = _cell_of(e)
        if c["design"] not in rows:
            model = build_model(e.arch, data_shape, n_classes, e.width, e.depth, e.embed_dim)
            rows[c["design"]] = {
                "design": c["design"], "family": e.arch, "capacity_level": c["capacity_level"],
                "width": e.width, "depth": e.depth, "params": n_parameters(model),
                "embed_dim": int(model.embed_dim), "data_level": c["data_level"],
                "n_train": e.n_train or np.nan, "data_fraction": np.nan if e.n_train else e.data_fraction,
                "label_noise": e.label_noise,
                "epochs": e.epochs[-1], "in_capacity": c["in_capacity"], "in_data": c["in_data"],
                "in_noise": c["in_noise"], "seeds": ()}
        rows[c["design"]]["seeds"] += (e.seed,)
    return pd.DataFrame(list(rows.values()))


def _cell_of(entry):
    """Design metadata of an entry (its own cell when the grid attached none)."""
    if entry.cell is not None:
        return {k: entry.cell[k] for k in _CELL_COLUMNS}
    return {"design": entry.name.rsplit("-s", 1)[0], "capacity_level": np.nan, "data_level": np.nan,
            "in_capacity": False, "in_data": False, "in_noise": False}


# --------------------------------------------------------------------------- training

@contextlib.contextmanager
def _deterministic(device, num_threads):
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True, warn_only=True)
    if device.type == "cpu" and num_threads:
        torch.set_num_threads(int(num_threads))
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)
        torch.set_num_threads(prev_threads)


@torch.no_grad()
def _forward(model, x, device, batch=1000):
    feats, logits = [], []
    for i in range(0, len(x), batch):
        f = model.features(x[i:i + batch].to(device))
        feats.append(f.float().cpu())
        logits.append(model.head(f).float().cpu())
    return torch.cat(feats), torch.cat(logits)


def _evaluate(model, data, device, tr_idx, y_clean, y_noisy):
    model.eval()
    _, lt = _forward(model, data.x[tr_idx], device)
    fte, lte = _forward(model, data.x[data.test_idx], device)
    y_te = torch.from_numpy(data.labels[data.test_idx])
    yn, yc = torch.from_numpy(y_noisy), torch.from_numpy(y_clean)
    emb = fte[data.eval_pos]
    m = {
        "train_loss": float(F.cross_entropy(lt, yn)),
        "train_acc": float((lt.argmax(1) == yn).float().mean()),
        "train_acc_clean": float((lt.argmax(1) == yc).float().mean()),
        "test_loss": float(F.cross_entropy(lte, y_te)),
        "test_acc": float((lte.argmax(1) == y_te).float().mean()),
        "eval_acc": float((lte.argmax(1)[data.eval_pos] == y_te[data.eval_pos]).float().mean()),
        "dead_fraction": float((emb.amax(0) <= 0).float().mean()),
    }
    if len(y_noisy) and (y_noisy != y_clean).any():
        wrong = torch.from_numpy(y_noisy != y_clean)
        m["memorised_fraction"] = float((lt.argmax(1)[wrong] == yn[wrong]).float().mean())
    return m, emb.numpy(), lte.argmax(1)[data.eval_pos].numpy()


def _probe_embed(model, probe, device):
    model.eval()
    return _forward(model, probe, device)[0].numpy()


def _subset_order(labels, seed):
    """A per-seed random order of ``labels``' positions whose every prefix is stratified.

    Within each class the positions are shuffled; position ``p`` of class ``c``
    (``n_c`` members) gets the key :math:`(p + u)/n_c` with :math:`u \\sim U(0, 1)`,
    and the order sorts these keys, so the first ``n`` positions hold
    :math:`\\approx n\\,n_c/N` of each class and subsets of one seed are nested.
    """
    rng = np.random.default_rng([int(seed), 104729])
    keys = np.empty(len(labels))
    for c in np.unique(labels):
        pos = np.flatnonzero(labels == c)
        keys[rng.permutation(pos)] = (np.arange(len(pos)) + rng.random(len(pos))) / len(pos)
    return np.argsort(keys, kind="stable")


def _train_subset(entry, data):
    """Training indices (nested per seed, stratified) and clean / noisy labels of an entry.

    Label noise is symmetric: ``round(label_noise * n)`` positions, drawn per seed,
    get a label drawn uniformly from the *other* classes.
    """
    idx = data.train_idx
    n = int(entry.n_train) if entry.n_train else int(round(entry.data_fraction * len(idx)))
    if n > len(idx):
        raise ValueError(f"n_train={n} exceeds the {len(idx)} training images of this data set; "
                         "use a smaller n_train.")
    if n < data.n_classes:
        raise ValueError(f"the entry leaves {n} training images, fewer than the {data.n_classes} classes; "
                         "use a larger n_train or data_fraction.")
    if n < len(idx):
        idx = np.sort(idx[_subset_order(data.labels[idx], entry.seed)[:n]])
    clean = data.labels[idx]
    noisy = clean.copy()
    if entry.label_noise > 0:
        rng = np.random.default_rng([entry.seed, 7919])
        pick = rng.choice(len(idx), size=int(round(entry.label_noise * len(idx))), replace=False)
        shift = rng.integers(1, data.n_classes, size=len(pick))      # never 0: always a different class
        noisy[pick] = (clean[pick] + shift) % data.n_classes
    return idx, clean, noisy


def _shift_batch(x, max_shift, gen, fill):
    """Translate each image of ``x`` (n, c, h, w) by its own random integer offset in
    ``[-max_shift, max_shift]`` along each axis, filling the uncovered border with ``fill`` (c,)."""
    n, c, h, w = x.shape
    s = int(max_shift)
    pad = fill.view(1, c, 1, 1).expand(n, c, h + 2 * s, w + 2 * s).clone()
    pad[:, :, s:s + h, s:s + w] = x
    off = torch.randint(0, 2 * s + 1, (2, n), generator=gen)
    ni, ci = torch.arange(n).view(n, 1, 1, 1), torch.arange(c).view(1, c, 1, 1)
    ri = off[0].view(n, 1, 1, 1) + torch.arange(h).view(1, 1, h, 1)
    cj = off[1].view(n, 1, 1, 1) + torch.arange(w).view(1, 1, 1, w)
    return pad[ni, ci, ri, cj]


CONVERGENCE_WINDOW = 4     # epochs
CONVERGENCE_MARGIN = 0.005  # train accuracy per epoch


def convergence(train_acc, train_loss=None, n_train=None, window=CONVERGENCE_WINDOW, margin=CONVERGENCE_MARGIN):
    r"""Operational convergence rule on a per-epoch learning curve.

    A network is *converged* when its training accuracy (the accuracy of the
    epoch's minibatches on the labels trained on) has stopped rising: the
    least-squares slope :math:`b` of accuracy against epoch over the last
    ``window`` (4) epochs satisfies

    .. math:: b \le m + 2\,\mathrm{SE}_b, \qquad
              \mathrm{SE}_b = \sqrt{\frac{\bar a (1 - \bar a)/n}{\sum_e (e - \bar e)^2}},

    with ``margin`` :math:`m` = 0.5 accuracy points per epoch and
    :math:`\mathrm{SE}_b` the slope's standard error under binomial sampling
    noise of an accuracy measured on :math:`n` training images (0 when
    ``n_train`` is not given). At least ``window + 1`` epochs must have run. The
    plateau can be low: a small trunk on much data converges underfitted.

    Parameters
    ----------
    train_acc : sequence of float
        Training accuracy after each epoch 1..E.
    train_loss : sequence of float, optional
        Training loss per epoch (reported as ``conv_loss_change``, not used by the rule).
    n_train : int, optional
        Training images per epoch (for the noise allowance).

    Returns
    -------
    dict with ``converged`` (bool), ``conv_slope`` (:math:`b`), ``conv_threshold``
    (:math:`m + 2\,\mathrm{SE}_b`), ``conv_acc_range`` (max - min accuracy over
    the window), ``conv_loss_change`` (relative change of the loss over the
    window, :math:`(\ell_E - \ell_{E-w})/\ell_{E-w}`; NaN without losses),
    ``conv_window``, ``conv_margin``.
    """
    a = np.asarray(train_acc, dtype=float)
    out = {"conv_window": int(window), "conv_margin": float(margin)}
    if len(a) <= window:
        return {**out, "converged": False, "conv_slope": np.nan, "conv_threshold": np.nan,
                "conv_acc_range": np.nan, "conv_loss_change": np.nan}
    last = a[-window:]
    t = np.arange(window) - (window - 1) / 2
    slope = float((t * (last - last.mean())).sum() / (t ** 2).sum())
    se = 0.0
    if n_train:
        p = float(np.clip(last.mean(), 0, 1))
        se = float(np.sqrt(p * (1 - p) / n_train / (t ** 2).sum()))
    threshold = margin + 2 * se
    change = np.nan
    if train_loss is not None:
        lo = np.asarray(train_loss, dtype=float)
        change = float((lo[-1] - lo[-1 - window]) / max(lo[-1 - window], 1e-12))
    return {**out, "converged": bool(slope <= threshold + 1e-12), "conv_slope": slope,
            "conv_threshold": threshold, "conv_acc_range": float(last.max() - last.min()),
            "conv_loss_change": change}


def _lr_factor(step, total, schedule):
    """Learning-rate multiplier at optimisation step ``step`` (0-based) of ``total``."""
    if schedule == "constant":
        return 1.0
    warm = max(1, int(round(WARMUP * total)))
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def _train_entry(entry, data, folder, device, probe, probe_hash, num_threads, progress):
    """Train one entry, writing its checkpoints and embeddings; ``entry.json`` last."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    with _deterministic(device, num_threads):
        tr_idx, y_clean, y_noisy = _train_subset(entry, data)
        torch.manual_seed(entry.seed)
        model = build_model(entry.arch, data.shape, data.n_classes, entry.width, entry.depth,
                            entry.embed_dim).to(device)
        if entry.schedule == "constant":
            opt = torch.optim.Adam(model.parameters(), lr=entry.lr, weight_decay=entry.weight_decay)
        else:
            opt = torch.optim.AdamW(model.parameters(), lr=entry.lr, weight_decay=entry.weight_decay)
        penalty = None
        if entry.penalty_weight != 0:

            penalty = batch_penalty
        gen = torch.Generator().manual_seed(entry.seed)
        gen_aug = torch.Generator().manual_seed(entry.seed + 7)
        fill = data.normalise(torch.zeros(1, data.shape[0], 1, 1)).view(-1)  # a black pixel, normalised
        x_tr = data.x[tr_idx]
        y_tr = torch.from_numpy(y_noisy)
        n_tr = len(tr_idx)
        steps_per_epoch = sum(1 for i in range(0, n_tr, entry.batch_size) if n_tr - i >= 2)
        total = steps_per_epoch * entry.epochs[-1]
        step, seen, epochs_out, curve = 0, 0, [], []
        bar = _tqdm(range(1, entry.epochs[-1] + 1), progress, status=False, desc=entry.name, leave=False)
        for ep in bar:
            model.train()
            order = torch.randperm(n_tr, generator=gen)
            ep_loss = torch.zeros((), dtype=torch.float64)
            ep_correct = torch.zeros((), dtype=torch.int64)
            ep_n = 0
            for i in range(0, len(order), entry.batch_size):
                b = order[i:i + entry.batch_size]
                if len(b) < 2:  # BatchNorm needs two samples; drop a lone remainder
                    continue
                for g in opt.param_groups:
                    g["lr"] = entry.lr * _lr_factor(step, total, entry.schedule)
                xb = x_tr[b]
                if entry.augment:
                    xb = _shift_batch(xb, entry.augment, gen_aug, fill)
                xb, yb = xb.to(device), y_tr[b].to(device)
                emb = model.features(xb)
                logits = model.head(emb)
                ce = F.cross_entropy(logits, yb)
                loss = ce if penalty is None else \
                    ce + entry.penalty_weight * penalty(emb, kind=entry.penalty, k=entry.penalty_k)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                seen += len(b)
                ep_n += len(b)
                ep_loss += ce.detach().double().cpu() * len(b)
                ep_correct += (logits.detach().argmax(1) == yb).sum().cpu()
            curve.append({"epoch": ep, "train_loss": float(ep_loss) / max(ep_n, 1),
                          "train_acc": float(ep_correct) / max(ep_n, 1), "lr": float(opt.param_groups[0]["lr"])})
            if ep in entry.epochs:
                m, emb, pred = _evaluate(model, data, device, tr_idx, y_clean, y_noisy)
                stem = f"e{ep:03d}"
                state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
                with atomic_path(folder / f"{stem}.pt") as tmp:
                    torch.save(state, tmp)
                save_npz(folder / f"{stem}_eval.npz", emb=emb.astype(np.float32),
                         labels=data.labels[data.eval_idx], pred=pred)
                if probe is not None:
                    save_npz(folder / f"{stem}_probe-{probe_hash}.npz",
                             emb=_probe_embed(model, probe, device).astype(np.float32))
                m.update(epoch=ep, examples_seen=seen, seconds=time.perf_counter() - t0)
                m.update(convergence([c["train_acc"] for c in curve], [c["train_loss"] for c in curve], n_tr))
                epochs_out.append(m)
                if progress:
                    bar.set_postfix(test_acc=f"{m['test_acc']:.3f}")
    info = {
        "key": entry.key, "name": entry.name, "entry": entry.fields(), "zoo_version": ZOO_VERSION,
        "data": data.fingerprint, "data_set": data.name, "n_params": n_parameters(model),
        "embed_dim": int(model.embed_dim), "n_train": int(len(tr_idx)),
        "label_noise_actual": float((y_noisy != y_clean).mean()),
        "epochs": epochs_out, "curve": curve, "train_seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - cpu0, "device": str(device),
        "num_threads": int(num_threads or torch.get_num_threads()), "torch": torch.__version__,
        "probe_hash": probe_hash,
    }
    save_json(folder / "entry.json", info)
    return info


def _tqdm(it, progress, status=True, **kw):
    return _progress.bar(it, progress, status=status, **kw)


def _load_model(info, data_shape, n_classes, path, device="cpu"):
    e = info["entry"]
    model = build_model(e["arch"], data_shape, n_classes, e["width"], e["depth"], e.get("embed_dim", 0))
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.to(device).eval()


def _backfill_probe(info, folder, data, device, probe, probe_hash, num_threads):
    """Embed a new probe set with an entry's stored checkpoints (no retraining)."""
    with _deterministic(device, num_threads):
        for m in info["epochs"]:
            out = folder / f"e{m['epoch']:03d}_probe-{probe_hash}.npz"
            if not out.exists():
                model = _load_model(info, data.shape, data.n_classes, folder / f"e{m['epoch']:03d}.pt", device)
                save_npz(out, emb=_probe_embed(model, probe, device).astype(np.float32))
    if info.get("probe_hash") != probe_hash:
        info["probe_hash"] = probe_hash
        save_json(folder / "entry.json", info)


# Worker processes (num_workers > 1): each builds the data once and trains whole entries.
_WORKER = {}


def _worker_init(images, labels, dataset, device, probe, probe_hash, num_threads, fingerprint):
    torch.set_num_threads(int(num_threads or 1))
    data = ZooData(images, labels, dataset=dataset)
    if data.fingerprint != fingerprint:
        raise RuntimeError("a zoo worker built different data than the parent process.")
    _WORKER.update(data=data, device=torch.device(device), probe=probe, probe_hash=probe_hash,
                   num_threads=num_threads)


def _worker_train(entry, folder):
    w = _WORKER
    _train_once(entry, w["data"], Path(folder), w["device"], w["probe"], w["probe_hash"], w["num_threads"],
                False)
    return entry.key


def _train_once(entry, data, folder, device, probe, probe_hash, num_threads, progress):
    """:func:`_train_entry` unless another process has trained (or is training) the same entry:
    a process that finds it locked waits, then skips it (chapters run side by side)."""
    with computing(folder):
        if not (folder / "entry.json").exists():
            _train_entry(entry, data, folder, device, probe, probe_hash, num_threads, progress)


def _cost(entry, data):
    """Rough relative training cost (images seen x trunk size), to start the longest entries first."""
    n = entry.n_train or entry.data_fraction * len(data.train_idx)
    model = build_model(entry.arch, data.shape, data.n_classes, entry.width, entry.depth, entry.embed_dim)
    return n * entry.epochs[-1] * math.sqrt(n_parameters(model))


def _train_parallel(todo, data, root, device, probe, probe_hash, num_threads, num_workers, progress,
                    images, labels, dataset):
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # seed by seed (an interrupted run holds whole replicates), the longest networks first within a seed
    todo = sorted(todo, key=lambda e: (e.seed, -_cost(e, data)))
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=num_workers, mp_context=ctx, initializer=_worker_init,
                             initargs=(images, labels, dataset, str(device), probe, probe_hash, num_threads,
                                       data.fingerprint)) as pool:
        futures = [pool.submit(_worker_train, e, str(root / e.key)) for e in todo]
        bar = _tqdm(None, progress, total=len(todo), desc=f"training {dataset or 'zoo'} networks", unit="net")
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    f.result()  # re-raise a worker's error here
                    bar.update(1)
        except BaseException:
            for f in pending:
                f.cancel()
            raise
        finally:
            bar.close()


def train_zoo(grid="smoke", images=None, labels=None, cache_dir=None, device="auto", probe_images=None,
              progress=True, num_threads=1, invert_probe="auto", data=None, num_workers=1):
    """Train (or load from cache) a population of small classifiers.

    Parameters
    ----------
    grid : str or list of ZooEntry / dict
        A name in ``GRIDS``: ``"controlled"`` (the book's factorial design on
        Fashion-MNIST, :data:`CONTROLLED`; see :func:`design_table`),
        ``"controlled-animal"`` (its replication on Animal-MNIST),
        ``"controlled-smoke"`` (a tiny design for tests); the legacy
        ``"smoke"`` (4 networks, 2 epochs) and ``"default"`` (32 networks, widths
        of the penultimate layer varying) grids.
    images, labels : arrays, optional
        Training data, uint8 (n, h, w[, 3]) or float in [0, 1], and integer labels,
        instead of a named data set. Exact duplicates are removed, then a fixed
        stratified 80/20 split is made (``SPLIT_SEED``); the evaluation set is a
        fixed stratified subset of ``N_EVAL`` test images.
    data : {"fashion-mnist", "animal-mnist"}, optional
        Named training set; default the grid's (``GRID_DATA``; Animal-MNIST for a
        list of entries). Fashion-MNIST keeps its standard 60 000 / 10 000 split.
    cache_dir : path, optional
        Default ``default_cache_dir() / "zoo"``.
    device : "auto", "cpu", "cuda", ...
    probe_images : array (n, h, w[, 3]), optional
        Images embedded by every checkpoint (``which="probe"``); default the 92
        Algonauts images (:func:`lidutils.datasets.load_algonauts92`), converted by
        :func:`prepare_probe` (gray, resized, inverted to the training polarity).
    progress : bool
        tqdm bars, overall and per network.
    num_threads : int or None
        CPU threads per training process (1: deterministic and fastest on a shared
        machine; None: leave torch's setting).
    invert_probe : "auto", True or False
    num_workers : int
        Training processes run in parallel (spawned; each builds the data once and
        trains whole networks, so every network is bit-identical to a serial run).
        2 on a 2-core machine.

    Returns
    -------
    pandas.DataFrame
        One row per (network, saved epoch) of this grid; see :func:`zoo_summary`,
        plus the design columns ``design``, ``capacity_level``, ``data_level``,
        ``in_capacity``, ``in_data``, ``in_noise`` (see :func:`design_table`).
    """
    entries = resolve_grid(grid)
    device = resolve_device(device)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "zoo"
    if data is None and images is None:
        data = GRID_DATA.get(grid, "animal-mnist") if isinstance(grid, str) else "animal-mnist"
    dataset = data
    data = ZooData(images, labels, dataset=dataset)
    root = cache_dir / f"data-{data.fingerprint}"
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "data.json").exists():
        save_json(root / "data.json", data.describe())
    if probe_images is None:
        probe_images = _default_probe()
    probe, probe_hash = None, None
    if probe_images is not None:
        probe_raw, inverted = prepare_probe(probe_images, data.shape, invert=invert_probe, reference=data.raw)
        probe = data.normalise(probe_raw)
        probe_hash = hash_key("zoo-probe", probe.numpy())
        if not (root / f"probe-{probe_hash}.json").exists():
            save_json(root / f"probe-{probe_hash}.json",
                      {"n": len(probe), "inverted": inverted, "shape": list(np.shape(probe_images))})
    todo = []
    for e in entries:
        folder = root / e.key
        done = folder / "entry.json"
        if done.exists():
            if probe is not None:
                _backfill_probe(json.loads(done.read_text()), folder, data, device, probe, probe_hash,
                                num_threads)
        else:
            todo.append(e)
    if int(num_workers) > 1 and len(todo) > 1:
        _train_parallel(todo, data, root, device, probe, probe_hash, num_threads, int(num_workers), progress,
                        images, labels, dataset)
    else:
        for e in _tqdm(todo, progress and bool(todo), desc="zoo", unit="net"):
            _train_once(e, data, root / e.key, device, probe, probe_hash, num_threads, progress)
    table = zoo_summary(cache_dir)
    keys = [e.key for e in entries]
    table = table[(table["data"] == data.fingerprint) & table["key"].isin(keys)]
    order = table["key"].map({k: i for i, k in enumerate(keys)})
    table = table.assign(_order=order).sort_values(["_order", "epoch"]).drop(columns="_order")
    cells = pd.DataFrame([{"key": e.key, **_cell_of(e)} for e in entries])
    table = table.drop(columns=[c for c in _CELL_COLUMNS if c in table]).merge(cells, on="key", how="left")
    return table.reset_index(drop=True)


# --------------------------------------------------------------------------- results

def zoo_summary(cache_dir=None):
    """Table of every completed zoo network in ``cache_dir``: one row per (network, epoch).

    Columns: ``member`` (``key@epoch``), ``key``, ``name``, the entry fields
    (``arch``, ``width``, ``depth``, ``data_fraction``, ``label_noise``, ``seed``,
    ``lr``, ``batch_size``, ``weight_decay``), ``epoch``, ``final`` (last saved
    epoch), ``n_epochs_planned``, ``train_seconds`` and ``cpu_seconds`` (wall and
    process CPU time of the network's whole training run), metrics (``test_acc``, ``test_loss``,
    ``eval_acc``, ``train_acc`` and ``train_loss`` on the labels trained on,
    ``train_acc_clean`` on the true labels, ``memorised_fraction`` of the
    corrupted labels, ``dead_fraction`` of penultimate units never active on the
    evaluation set), ``n_params``, ``embed_dim``, ``n_train``,
    ``label_noise_actual``, ``examples_seen``, ``seconds``, ``data``
    (fingerprint), ``data_set`` (its name), the paths ``ckpt_path``,
    ``eval_path``, ``probe_path`` (NaN when no probe was embedded), and the
    convergence check of :func:`convergence` applied to the learning curve up to
    that epoch: ``converged``, ``conv_slope``, ``conv_threshold``,
    ``conv_acc_range``, ``conv_loss_change``, ``conv_window``, ``conv_margin``
    (a checkpoint saved before the plateau is not converged). The per-epoch curves: :func:`load_learning_curve`.
    Networks trained by ``ZOO_VERSION`` 1 (no convergence check, no curve) have
    NaN there.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "zoo"
    rows = []
    for done in sorted(cache_dir.glob("data-*/*/entry.json")):
        info = json.loads(done.read_text())
        folder = done.parent
        for m in info["epochs"]:
            stem = folder / f"e{m['epoch']:03d}"
            probe = Path(f"{stem}_probe-{info['probe_hash']}.npz") if info.get("probe_hash") else None
            row = {"member": f"{info['key']}@{m['epoch']}", "key": info["key"], "name": info["name"],
                   **{k: v for k, v in info["entry"].items() if k != "epochs"},
                   "family": info["entry"]["arch"], "n_epochs_planned": info["entry"]["epochs"][-1],
                   **m, "final": m["epoch"] == info["entry"]["epochs"][-1],
                   "n_params": info["n_params"], "embed_dim": info["embed_dim"], "n_train": info["n_train"],
                   "label_noise_actual": info["label_noise_actual"], "data": info["data"],
                   "train_seconds": info.get("train_seconds", np.nan), "cpu_seconds": info.get("cpu_seconds", np.nan),
                   "data_set": info.get("data_set", np.nan),
                   "ckpt_path": str(stem) + ".pt", "eval_path": str(stem) + "_eval.npz",
                   "probe_path": str(probe) if probe is not None and probe.exists() else np.nan}
            rows.append(row)
    cols = ["member", "key", "name", "arch", "width", "depth", "data_fraction", "label_noise", "seed",
            "epoch", "final", "test_acc", "train_acc"]
    if not rows:
        return pd.DataFrame(columns=cols)
    t = pd.DataFrame(rows)
    return t[cols + [c for c in t.columns if c not in cols]]


def _find_member(member, cache_dir, epoch):
    if isinstance(member, str):
        key, _, ep = member.partition("@")
        table = zoo_summary(cache_dir)
        rows = table[table["key"] == key]
        if rows.empty:
            raise ValueError(f"no zoo network with key {key!r} in {cache_dir or default_cache_dir() / 'zoo'}; "
                             "train it first with train_zoo.")
        ep = epoch if epoch is not None else (int(ep) if ep else int(rows["epoch"].max()))
        hit = rows[rows["epoch"] == ep]
        if hit.empty:
            raise ValueError(f"network {key} has epochs {rows['epoch'].tolist()}, not {ep}.")
        return hit.iloc[0]
    return member


def load_embeddings(member, which="eval", cache_dir=None, epoch=None):
    """Penultimate-layer embeddings of one zoo checkpoint.

    Parameters
    ----------
    member : row of :func:`zoo_summary` / :func:`train_zoo` (Series or dict), or
        a string ``"key@epoch"`` or ``"key"`` (last epoch, or ``epoch=``).
    which : {"eval", "probe"}
        The fixed held-out evaluation images (rows in the order of the evaluation
        set, same for every network) or the probe images (Algonauts 92 order).

    Returns
    -------
    float32 array (n_images, embed_dim)
    """
    if which not in ("eval", "probe"):
        raise ValueError(f"which must be 'eval' or 'probe', got {which!r}.")
    row = _find_member(member, cache_dir, epoch)
    path = row[f"{which}_path"]
    if not isinstance(path, (str, Path)) or not Path(path).exists():
        raise ValueError(f"no {which} embeddings stored for {row['key']}@{row['epoch']}: train the zoo with "
                         "probe_images= (or with the Algonauts data available) to embed the probe set.")
    with np.load(path, allow_pickle=False) as z:
        return z["emb"]


def load_learning_curve(member, cache_dir=None):
    """Per-epoch training curve of one zoo network.

    Parameters
    ----------
    member : row of :func:`zoo_summary` / :func:`train_zoo`, or ``"key[@epoch]"``.

    Returns
    -------
    DataFrame with ``epoch``, ``train_loss`` (mean cross-entropy of the epoch's
    minibatches, augmented, on the labels trained on), ``train_acc`` (their
    accuracy) and ``lr`` (learning rate at the epoch's last step); one row per
    epoch 1..E of the whole run.
    """
    row = _find_member(member, cache_dir, None)
    info = json.loads((Path(row["ckpt_path"]).parent / "entry.json").read_text())
    if "curve" not in info:
        raise ValueError(f"network {row['key']} was trained without a stored learning curve "
                         f"(zoo version {info.get('zoo_version')}); retrain it with this version.")
    return pd.DataFrame(info["curve"])


def load_eval_labels(member, cache_dir=None, epoch=None):
    """True labels and this checkpoint's predictions on the evaluation set."""
    row = _find_member(member, cache_dir, epoch)
    with np.load(row["eval_path"], allow_pickle=False) as z:
        return z["labels"], z["pred"]


def load_zoo_model(member, cache_dir=None, epoch=None, device="cpu"):
    """Rebuild a zoo checkpoint as a ``torch.nn.Module`` in eval mode.

    Its input is the *normalised* image (``(x - mean) / std`` with the training
    split's ``mean``/``std`` stored in ``data.json``).
    """
    row = _find_member(member, cache_dir, epoch)
    folder = Path(row["ckpt_path"]).parent
    info = json.loads((folder / "entry.json").read_text())
    desc = json.loads((folder.parent / "data.json").read_text())
    return _load_model(info, tuple(desc["shape"]), desc["n_classes"], row["ckpt_path"], device)
