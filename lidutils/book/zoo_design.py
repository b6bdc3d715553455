"""The zoo's design: which networks are trained (entries, grids, the controlled and factorial
designs, the design table).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from lidutils.archs import ARCHS, build_model, n_parameters
from lidutils.cache import hash_key

ZOO_VERSION = 2  # bump when training or evaluation code changes results

EMBED_DIM = 128  # width of the common embedding layer of the controlled grids

DATASETS = ("animal-mnist", "fashion-mnist")

TEST_SIZE = 0.2

SPLIT_SEED = 0

N_EVAL = 1000

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

CELL_COLUMNS = ("design", "capacity_level", "data_level", "in_capacity", "in_data", "in_noise")


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
        c = cell_of(e)
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


def cell_of(entry):
    """Design metadata of an entry (its own cell when the grid attached none)."""
    if entry.cell is not None:
        return {k: entry.cell[k] for k in CELL_COLUMNS}
    return {"design": entry.name.rsplit("-s", 1)[0], "capacity_level": np.nan, "data_level": np.nan,
            "in_capacity": False, "in_data": False, "in_noise": False}
