"""A model zoo trained from scratch: a real population whose generalization is measured.

The paper correlates local intrinsic dimension with generalization and alignment
across a *population* of models that differ in capacity and training data. Offline
only four pretrained ImageNet CNNs are available, too few for a correlation, so
this module trains a population here: small image classifiers
(:mod:`lidutils.archs`: MLP, CNN, ResNet, MLP-Mixer) swept over

- architecture family and capacity (``width``, ``depth``),
- data scale (``data_fraction`` of the training split, stratified),
- label noise (``label_noise``: that fraction of the training labels shuffled
  among themselves; about one in ten shuffled labels lands on its true class by
  chance, the realised corruption is stored as ``label_noise_actual``),
- training duration (a checkpoint, its metrics and embeddings at each epoch in
  ``epochs``: under-trained and converged regimes are both population members),
- seeds (weight init, data order, subset and noise draw).

Every ``(model, epoch)`` checkpoint is one row of the zoo table, with its held-out
test accuracy (the generalization score), train accuracy and loss, parameter
count, training examples seen, fraction of dead penultimate units, and paths to
its state_dict and to its penultimate-layer embeddings of a fixed held-out
evaluation set (``which="eval"``) and of a probe image set (``which="probe"``,
by default the 92 Algonauts images, converted to the training format).

Data
----
Default: Animal-MNIST (PyPI ``animal-mnist`` 0.4, MIT; 10 000 28x28 white-on-black
animal silhouettes, 10 classes ``CLASS_NAMES``). It holds 284 exact duplicate
images (all pairs, each with the same label); :func:`load_animal_mnist` removes
them *before* the split, leaving 9 716 images, so no test image has a copy in the
training set. Any ``(images, labels)`` arrays work as well, e.g. CIFAR-10 on a
machine with internet access::

    import numpy as np, torchvision
    tr = torchvision.datasets.CIFAR10("data", train=True, download=True)
    te = torchvision.datasets.CIFAR10("data", train=False, download=True)
    images = np.concatenate([tr.data, te.data])            # uint8 (60000, 32, 32, 3)
    labels = np.concatenate([tr.targets, te.targets])
    table = train_zoo("default", images=images, labels=labels, cache_dir="zoo-cifar")

(the zoo makes its own stratified split of the pooled arrays; on CPU, CIFAR-10 is
far slower than Animal-MNIST).

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
accuracies and embeddings on every run. (Measured on the shared 2-core machine:
with two threads and other jobs running, a training epoch was about 10x *slower*
than with one thread, from thread oversubscription.)
"""
from __future__ import annotations

import contextlib
import dataclasses
import gzip
import io
import json
import pickle
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from ._device import resolve_device
from .archs import ARCHS, build_model, n_parameters
from .cache import atomic_path, default_cache_dir, hash_key, save_json, save_npz

ZOO_VERSION = 1  # bump when training or evaluation code changes results
CLASS_NAMES = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse",
               "sheep", "zebra")  # Animal-MNIST label order (alphabetical; checked visually)
TEST_SIZE = 0.2
SPLIT_SEED = 0
N_EVAL = 1000


# --------------------------------------------------------------------------- data

class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can only rebuild numpy arrays (the package ships pickles)."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the Animal-MNIST files")


def _animal_mnist_dir():
    import importlib.util

    spec = importlib.util.find_spec("animal_mnist")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "Animal-MNIST is not installed. Install it without its TensorFlow dependency: "
            "pip install --no-deps animal-mnist==0.4")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "Animal_MNIST"


def deduplicate(images, labels):
    """Remove exact duplicate images before any split.

    Policy: of a group of identical images with one label, the first is kept; a
    group whose copies carry *different* labels is removed entirely (its label is
    ambiguous, and keeping any one copy would be arbitrary).

    Returns
    -------
    images, labels : arrays without duplicates (original order of the kept rows)
    info : dict
        ``n_in``, ``n_out``, ``n_removed``, ``n_duplicate_groups``,
        ``n_conflicting_groups``, ``n_conflicting_removed``, ``kept_index``.
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if len(images) != len(labels):
        raise ValueError(f"images and labels differ in length: {len(images)} vs {len(labels)}.")
    flat = np.ascontiguousarray(images.reshape(len(images), -1))
    rows = flat.view(np.dtype((np.void, flat.dtype.itemsize * flat.shape[1]))).ravel()
    _, first, inv, counts = np.unique(rows, return_index=True, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    # a group conflicts when its labels are not all equal
    lab_min = np.full(len(first), np.iinfo(np.int64).max)
    lab_max = np.full(len(first), np.iinfo(np.int64).min)
    np.minimum.at(lab_min, inv, labels.astype(np.int64))
    np.maximum.at(lab_max, inv, labels.astype(np.int64))
    conflict = lab_min != lab_max
    keep = np.zeros(len(images), dtype=bool)
    keep[first[~conflict]] = True
    kept = np.flatnonzero(keep)
    info = {
        "n_in": int(len(images)), "n_out": int(len(kept)), "n_removed": int(len(images) - len(kept)),
        "n_duplicate_groups": int((counts > 1).sum()),
        "n_conflicting_groups": int(conflict.sum()),
        "n_conflicting_removed": int(counts[conflict].sum()),
        "kept_index": kept,
    }
    return images[kept], labels[kept], info


def load_animal_mnist(deduplicate_images=True, return_info=False):
    """Animal-MNIST images and labels, exact duplicates removed.

    Reads the gzip-pickled arrays shipped in the ``animal-mnist`` package directly
    (its own loader imports TensorFlow). 10 000 uint8 images (28, 28), white
    silhouettes on black, labels 0-9 in ``CLASS_NAMES`` order, 1000 per class; 284
    images are exact copies of another image (same label), so 9 716 remain.

    Returns
    -------
    images : uint8 (n, 28, 28)
    labels : int64 (n,)
    info : dict, only with ``return_info=True`` (see :func:`deduplicate`)
    """
    folder = _animal_mnist_dir()
    arrays = []
    for name in ("animal_data_version_3.gz", "animal_label_version_3.gz"):
        with gzip.open(folder / name, "rb") as f:
            arrays.append(np.asarray(_NumpyOnlyUnpickler(io.BytesIO(f.read())).load()))
    images, labels = arrays[0].astype(np.uint8), arrays[1].astype(np.int64)
    info = {"n_in": len(images), "n_out": len(images), "n_removed": 0}
    if deduplicate_images:
        images, labels, info = deduplicate(images, labels)
    return (images, labels, info) if return_info else (images, labels)


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
        from .datasets import load_algonauts92

        return load_algonauts92("IT").images
    except Exception as err:  # noqa: BLE001 - no probe is a warning, not a failure
        warnings.warn(f"Algonauts 92 images unavailable ({err}); training the zoo without probe "
                      "embeddings. Pass probe_images= to embed your own images.", stacklevel=3)
        return None


class _Data:
    """Deduplicated data, fixed stratified split, normalisation and evaluation subset."""

    def __init__(self, images, labels, test_size=TEST_SIZE, split_seed=SPLIT_SEED, n_eval=N_EVAL):
        from sklearn.model_selection import train_test_split

        if images is None:
            images, labels, info = load_animal_mnist(return_info=True)
            self.name = "animal-mnist"
        else:
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
        xt = x[self.train_idx]
        self.mean = xt.mean(dim=(0, 2, 3)).tolist()
        self.std = xt.std(dim=(0, 2, 3)).clamp_min(1e-6).tolist()
        self.x = self.normalise(x)
        self.shape = tuple(x.shape[1:])
        self.dedup = {k: v for k, v in info.items() if k != "kept_index"}
        self.fingerprint = hash_key("zoo-data", np.ascontiguousarray(images), labels, test_size, split_seed,
                                    n_eval)

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

@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """One trained network of the zoo (all of its saved epochs).

    Parameters
    ----------
    arch : {"mlp", "cnn", "resnet", "mixer"}
    width, depth : int
        Capacity (see :mod:`lidutils.archs`).
    data_fraction : float in (0, 1]
        Stratified fraction of the training split used.
    label_noise : float in [0, 1)
        Fraction of the used training labels shuffled among themselves.
    epochs : tuple of int
        Epochs after which a checkpoint, metrics and embeddings are saved; training
        stops at the last.
    seed : int
        Weight init, data order, subset and label-noise draw.
    lr, batch_size, weight_decay : Adam hyper-parameters (constant learning rate).
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

    @property
    def key(self):
        """Stable hash of the entry's fields (and of ``ZOO_VERSION``)."""
        return hash_key("zoo-entry", ZOO_VERSION, dataclasses.asdict(self))

    @property
    def name(self):
        return (f"{self.arch}-w{self.width}-d{self.depth}-f{self.data_fraction:g}"
                f"-n{self.label_noise:g}-s{self.seed}")

    def fields(self):
        d = dataclasses.asdict(self)
        d["epochs"] = list(self.epochs)
        return d


# Adam learning rate per family: the BatchNorm ConvNets and the Mixer learn
# markedly faster at 3e-3 than at 1e-3 in the first epochs (measured here).
_LR = {"mlp": 1e-3, "cnn": 3e-3, "resnet": 3e-3, "mixer": 3e-3}


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


GRIDS = {"smoke": _smoke_grid(), "default": _default_grid()}


def resolve_grid(grid):
    """``"smoke"`` / ``"default"`` / a list of :class:`ZooEntry` or dicts -> list of entries."""
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


def _train_subset(entry, data):
    """Training indices and (possibly noisy) labels of an entry."""
    from sklearn.model_selection import train_test_split

    idx = data.train_idx
    y = data.labels[idx]
    if entry.data_fraction < 1:
        n = int(round(entry.data_fraction * len(idx)))
        if n < data.n_classes:
            raise ValueError(f"data_fraction={entry.data_fraction} leaves {n} training images, fewer than "
                             f"the {data.n_classes} classes; use a larger fraction.")
        idx, _ = train_test_split(idx, train_size=n, stratify=y, random_state=entry.seed)
        idx = np.sort(idx)
    clean = data.labels[idx]
    noisy = clean.copy()
    if entry.label_noise > 0:
        rng = np.random.default_rng([entry.seed, 7919])
        pick = rng.choice(len(idx), size=int(round(entry.label_noise * len(idx))), replace=False)
        noisy[pick] = clean[rng.permutation(pick)]
    return idx, clean, noisy


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


def _train_entry(entry, data, folder, device, probe, probe_hash, num_threads, progress):
    """Train one entry, writing its checkpoints and embeddings; ``entry.json`` last."""
    t0 = time.perf_counter()
    with _deterministic(device, num_threads):
        tr_idx, y_clean, y_noisy = _train_subset(entry, data)
        torch.manual_seed(entry.seed)
        model = build_model(entry.arch, data.shape, data.n_classes, entry.width, entry.depth).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=entry.lr, weight_decay=entry.weight_decay)
        gen = torch.Generator().manual_seed(entry.seed)
        x_tr = data.x[tr_idx]
        y_tr = torch.from_numpy(y_noisy)
        seen, epochs_out = 0, []
        bar = _tqdm(range(1, entry.epochs[-1] + 1), progress, desc=entry.name, leave=False)
        for ep in bar:
            model.train()
            order = torch.randperm(len(tr_idx), generator=gen)
            for i in range(0, len(order), entry.batch_size):
                b = order[i:i + entry.batch_size]
                if len(b) < 2:  # BatchNorm needs two samples; drop a lone remainder
                    continue
                loss = F.cross_entropy(model(x_tr[b].to(device)), y_tr[b].to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                seen += len(b)
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
                epochs_out.append(m)
                if progress:
                    bar.set_postfix(test_acc=f"{m['test_acc']:.3f}")
    info = {
        "key": entry.key, "name": entry.name, "entry": entry.fields(), "zoo_version": ZOO_VERSION,
        "data": data.fingerprint, "n_params": n_parameters(model), "embed_dim": int(model.embed_dim),
        "n_train": int(len(tr_idx)), "label_noise_actual": float((y_noisy != y_clean).mean()),
        "epochs": epochs_out, "train_seconds": time.perf_counter() - t0, "device": str(device),
        "num_threads": int(num_threads or torch.get_num_threads()), "torch": torch.__version__,
        "probe_hash": probe_hash,
    }
    save_json(folder / "entry.json", info)
    return info


def _tqdm(it, progress, **kw):
    if not progress:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, **kw)


def _load_model(info, data_shape, n_classes, path, device="cpu"):
    e = info["entry"]
    model = build_model(e["arch"], data_shape, n_classes, e["width"], e["depth"])
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


def train_zoo(grid="smoke", images=None, labels=None, cache_dir=None, device="auto", probe_images=None,
              progress=True, num_threads=1, invert_probe="auto"):
    """Train (or load from cache) a population of small classifiers.

    Parameters
    ----------
    grid : {"smoke", "default"} or list of ZooEntry / dict
        ``"smoke"``: 4 small networks, 2 epochs each (about 10-20 s on two
        busy CPU cores); ``"default"``: 32 networks x 3 saved epochs spanning family,
        capacity, data scale, label noise, training time and seeds (see ``GRIDS``).
    images, labels : arrays, optional
        Training data, uint8 (n, h, w[, 3]) or float in [0, 1], and integer labels;
        default Animal-MNIST (:func:`load_animal_mnist`). Exact duplicates are
        removed, then a fixed stratified 80/20 split is made (``SPLIT_SEED``); the
        evaluation set is a fixed stratified subset of ``N_EVAL`` test images.
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
        CPU threads while training (1: deterministic and fastest on a shared
        machine; None: leave torch's setting).
    invert_probe : "auto", True or False

    Returns
    -------
    pandas.DataFrame
        One row per (network, saved epoch) of this grid; see :func:`zoo_summary`.
    """
    entries = resolve_grid(grid)
    device = resolve_device(device)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "zoo"
    data = _Data(images, labels)
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
    for e in _tqdm(todo, progress and bool(todo), desc="zoo", unit="net"):
        _train_entry(e, data, root / e.key, device, probe, probe_hash, num_threads, progress)
    table = zoo_summary(cache_dir)
    keys = [e.key for e in entries]
    table = table[(table["data"] == data.fingerprint) & table["key"].isin(keys)]
    order = table["key"].map({k: i for i, k in enumerate(keys)})
    table = table.assign(_order=order).sort_values(["_order", "epoch"]).drop(columns="_order")
    return table.reset_index(drop=True)


# --------------------------------------------------------------------------- results

def zoo_summary(cache_dir=None):
    """Table of every completed zoo network in ``cache_dir``: one row per (network, epoch).

    Columns: ``member`` (``key@epoch``), ``key``, ``name``, the entry fields
    (``arch``, ``width``, ``depth``, ``data_fraction``, ``label_noise``, ``seed``,
    ``lr``, ``batch_size``, ``weight_decay``), ``epoch``, ``final`` (last saved
    epoch), ``n_epochs_planned``, metrics (``test_acc``, ``test_loss``,
    ``eval_acc``, ``train_acc`` and ``train_loss`` on the labels trained on,
    ``train_acc_clean`` on the true labels, ``memorised_fraction`` of the
    corrupted labels, ``dead_fraction`` of penultimate units never active on the
    evaluation set), ``n_params``, ``embed_dim``, ``n_train``,
    ``label_noise_actual``, ``examples_seen``, ``seconds``, ``data``
    (fingerprint) and the paths ``ckpt_path``, ``eval_path``, ``probe_path``
    (NaN when no probe was embedded).
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
