"""The zoo's training engine: deterministic training of one entry, workers, :func:`train_zoo`,
and the readers of what it wrote (summary, embeddings, learning curves, checkpoints).
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from lidutils import _progress
from lidutils._device import resolve_device
from lidutils.archs import build_model, n_parameters
from lidutils.cache import atomic_path, computing, default_cache_dir, hash_key, save_json, save_npz
from lidutils.penalty import batch_penalty
from .zoo_data import ZooData, default_probe, prepare_probe
from .zoo_design import GRID_DATA, WARMUP, ZOO_VERSION, CELL_COLUMNS, cell_of, resolve_grid


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
        probe_images = default_probe()
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
    cells = pd.DataFrame([{"key": e.key, **cell_of(e)} for e in entries])
    table = table.drop(columns=[c for c in CELL_COLUMNS if c in table]).merge(cells, on="key", how="left")
    return table.reset_index(drop=True)


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
