"""Resumable sweeps of independent tasks, serial or on a Dask cluster.

A sweep is "run ``func(**task)`` for every task" - typically one task per
model x image set: extract features, compute the LID profile and the encoding
alignment (:func:`model_task`). Every finished task is written at once to an
on-disk cache (``<cache_dir>/<label>-<key>.npz`` plus a ``.json`` provenance
sidecar, both with atomic writes, :mod:`lidutils.cache`), so an interrupted
sweep resumes where it stopped: tasks whose file exists are loaded, not rerun.

Where it runs
-------------
``client=None``
    In this process, one task after another (a course laptop).
A ``dask.distributed.Client``, a scheduler address (``"tcp://host:8786"``) or a cluster object (``LocalCluster``, ``SLURMCluster``, ...)
    One Dask task per sweep task. Results come back to this process, which writes
    the cache, so the cache needs no shared file system (inputs such as image paths
    must of course be readable by the workers). On one machine::

        from dask.distributed import LocalCluster
        run_sweep(tasks, model_task, client=LocalCluster(n_workers=4, threads_per_worker=1))

    On a SLURM cluster it is a one-line change (``pip install dask-jobqueue``)::

        from dask_jobqueue import SLURMCluster
        cluster = SLURMCluster(cores=8, memory="64GB", walltime="04:00:00",
                               job_extra_directives=["--gres=gpu:1"]); cluster.scale(jobs=10)
        run_sweep(tasks, model_task, client=cluster)   # or client=Client(cluster)

The cache key of a task is a SHA-256 of the function's qualified name and of the
task's arguments (arrays by content), so changing any argument makes a new
entry, and the same task in another sweep is found again. Functions must be
importable by the workers (module-level, not lambdas or notebook closures) when
a cluster is used; results must be a dict of numbers, strings or numeric arrays.
"""
from __future__ import annotations

import re
import time
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from lidutils.cache import default_cache_dir, hash_key, load_npz, save_json, save_npz
from lidutils.encoding import encoding_alignment
from lidutils.features import extract
from lidutils.global_dim import participation_ratio
from lidutils.lid import lid_profile

__all__ = ["run_sweep", "sweep_table", "task_key", "representation_scores", "model_task"]

_ERRORS = ("raise", "warn")


# --------------------------------------------------------------------------- keys and storage

def _canon(obj, where="task"):
    """JSON-able canonical form of task arguments; arrays replaced by their content hash."""
    if hasattr(obj, "detach"):  # torch tensor
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        return {"__array__": hash_key(obj), "shape": list(obj.shape), "dtype": obj.dtype.str}
    if isinstance(obj, Mapping):
        return {str(k): _canon(v, f"{where}[{k!r}]") for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canon(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise ValueError(
        f"{where} is a {type(obj).__name__}, which has no stable cache key: pass names, numbers, "
        "strings, paths or arrays (e.g. the model name, not the model object)."
    )


def _func_name(func):
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


def task_key(func, task):
    """Cache key of ``func(**task)``: SHA-256 (20 hex) of the function name and canonical arguments."""
    return hash_key(_func_name(func), _canon(task))


def _slug(task):
    parts = [f"{v}" for k, v in sorted(task.items()) if isinstance(v, (str, int, float, np.integer)) and
             not isinstance(v, bool)]
    s = re.sub(r"[^A-Za-z0-9._=-]+", "_", "_".join(parts)).strip("_.")
    return s[:60] or "task"


def _pack(result, label):
    if not isinstance(result, Mapping):
        raise TypeError(f"task {label!r} returned {type(result).__name__}; a sweep function must return a "
                        "dict {name: number, string or numeric array}.")
    out = {}
    for k, v in result.items():
        if hasattr(v, "detach"):
            v = v.detach().cpu().numpy()
        a = np.asarray(v)
        if a.dtype == object or a.dtype.kind not in "biufUS":
            raise TypeError(f"task {label!r} returned {k!r} of type {type(v).__name__}; store numbers, "
                            "strings or numeric arrays (flatten tables into several keys).")
        out[str(k)] = a
    return out


def _unpack(arrays):
    return {k: (v.item() if v.ndim == 0 else v) for k, v in arrays.items()}


def _call(func, kwargs, common):
    """Worker-side wrapper: run one task, time it."""
    t0 = time.perf_counter()
    res = func(**common, **kwargs)
    return res, time.perf_counter() - t0


# --------------------------------------------------------------------------- dask plumbing

def _connect(client):
    """Return (client or None, whether we opened it and must close it)."""
    if client is None:
        return None, False
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - dask is an optional extra
        raise ImportError("a Dask client/cluster was given but dask.distributed is not installed: "
                          "pip install 'lidutils[dask]'.") from exc
    if isinstance(client, distributed.Client):
        return client, False
    if isinstance(client, str) or hasattr(client, "scheduler_address"):
        return distributed.Client(client), True
    raise ValueError(f"client must be None, a dask.distributed.Client, a scheduler address or a cluster "
                     f"object (LocalCluster, SLURMCluster...), got {type(client).__name__}.")


# --------------------------------------------------------------------------- public API

def run_sweep(tasks, func, client=None, cache_dir=None, name=None, common=None, overwrite=False,
              errors="raise", retries=0, progress=True):
    """Run ``func(**common, **task)`` for every task, caching each result on disk; resume on rerun.

    Parameters
    ----------
    tasks : list of dict, or dict {label: dict}
        Keyword arguments of each call. With a list, labels are made from the
        task's string/number arguments (e.g. ``"tf_efficientnet_lite0_20"``) plus the key.
    func : callable
        Module-level function returning a dict of numbers, strings or numeric arrays
        (e.g. :func:`model_task`, :func:`representation_scores`).
    client : None, dask.distributed.Client, str or cluster object
        ``None`` runs serially here; otherwise the tasks run on that Dask cluster
        (see the module docstring, including the SLURM one-liner). A client
        opened here from an address or cluster is closed at the end.
    cache_dir : str or Path, optional
        Folder of the result files; default
        ``lidutils.cache.default_cache_dir() / "sweeps" / name``.
    name : str, optional
        Sweep name for the default cache folder (default: the function's qualified name).
    common : dict, optional
        Arguments shared by every task (e.g. the fMRI array ``Y``); part of every
        cache key. On a cluster they are scattered to the workers once.
    overwrite : bool
        Recompute even tasks that are cached.
    errors : {"raise", "warn"}
        A failing task never stops the others (their results are cached). Then
        ``"raise"`` raises ``RuntimeError`` naming the failed tasks (chained to the
        first exception) and ``"warn"`` warns and leaves them out of the result;
        failed tasks are not cached, so a rerun retries them.
    retries : int
        Dask retries per task (cluster only).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    results : dict {label: dict}
        In task order; each result as ``func`` returned it (0-d arrays as Python
        scalars), plus ``"_seconds"`` (compute time, of the run that computed it).
    """
    if errors not in _ERRORS:
        raise ValueError(f"errors must be one of {_ERRORS}, got {errors!r}.")
    if not callable(func):
        raise ValueError(f"func must be callable, got {type(func).__name__}.")
    common = dict(common or {})
    if isinstance(tasks, Mapping):
        items = [(str(lab), dict(kw)) for lab, kw in tasks.items()]
    else:
        items = [(None, dict(kw)) for kw in tasks]
    for lab, kw in items:
        clash = set(kw) & set(common)
        if clash:
            raise ValueError(f"task {lab or kw} repeats the common argument(s) {sorted(clash)}.")
    name = name or _func_name(func)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "sweeps" / name
    entries = []  # (label, path, kwargs)
    seen = set()
    fname_, canon_common = _func_name(func), _canon(common, "common")  # hash shared arrays once
    for lab, kw in items:
        # same value as task_key(func, {**common, **kw}), without re-hashing common per task
        key = hash_key(fname_, dict(sorted({**canon_common, **_canon(kw)}.items())))
        label = lab if lab is not None else f"{_slug(kw)}-{key[:8]}"
        if label in seen:
            raise ValueError(f"two tasks share the label {label!r} (identical tasks?); labels must be unique.")
        seen.add(label)
        stem = re.sub(r"[^A-Za-z0-9._=-]+", "_", lab)[:60] if lab is not None else _slug(kw)
        fname = f"{stem}-{key}"
        entries.append((label, cache_dir / f"{fname}.npz", kw))

    results, pending = {}, []
    for label, path, kw in entries:
        if path.exists() and not overwrite:
            results[label] = _unpack(load_npz(path))
        else:
            pending.append((label, path, kw))

    failures = []

    def store(label, path, kw, res, seconds):
        packed = _pack(res, label)
        packed["_seconds"] = np.asarray(seconds)
        save_npz(path, **packed)
        save_json(path.with_suffix(".json"), {"label": label, "func": _func_name(func),
                                              "task": _canon(kw), "common": _canon(common),
                                              "seconds": seconds})
        results[label] = _unpack(packed)

    bar = tqdm(total=len(pending), desc=name.rsplit(".", 1)[-1], disable=not progress or not pending)
    cl, opened = _connect(client) if pending else (None, False)
    try:
        if cl is None:
            for label, path, kw in pending:
                try:
                    res, sec = _call(func, kw, common)
                    store(label, path, kw, res, sec)
                except Exception as exc:  # noqa: BLE001 - collected, reported below
                    failures.append((label, exc))
                bar.update()
        else:
            from distributed import as_completed
            shared = cl.scatter(common, broadcast=True) if common else {}
            futs = {cl.submit(_call, func, kw, shared, key=f"{label}-{path.stem[-20:]}", pure=False,
                              retries=retries): (label, path, kw) for label, path, kw in pending}
            for fut in as_completed(futs):
                label, path, kw = futs[fut]
                try:
                    res, sec = fut.result()
                    store(label, path, kw, res, sec)
                except Exception as exc:  # noqa: BLE001
                    failures.append((label, exc))
                fut.release()
                bar.update()
    finally:
        bar.close()
        if opened:
            cl.close()
    if failures:
        msg = (f"{len(failures)} of {len(entries)} sweep task(s) failed: "
               + "; ".join(f"{lab}: {type(e).__name__}: {e}" for lab, e in failures[:5])
               + ". The others are cached in " + str(cache_dir) + "; rerun to retry the failed ones.")
        if errors == "raise":
            raise RuntimeError(msg) from failures[0][1]
        warnings.warn(msg, stacklevel=2)
    return {label: results[label] for label, _, _ in entries if label in results}


def sweep_table(results):
    """One row per task label, one column per scalar result (arrays left out), as a DataFrame."""
    import pandas as pd
    rows = {lab: {k: v for k, v in res.items() if np.ndim(v) == 0} for lab, res in results.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


# --------------------------------------------------------------------------- typical tasks

def representation_scores(X, ks=(10, 20, 50), Y=None, roi_labels=None, n_pcs=300, n_folds=5,
                          device="cpu", duplicates="error", seed=0):
    """Dimension and (optionally) encoding scores of one representation, as a flat dict.

    Returns ``n_samples``, ``n_features``, ``lid_k<k>`` (mean over points of
    :func:`lidutils.lid.lid_mle`, one kNN search for all ``ks``),
    ``participation_ratio`` (:func:`lidutils.global_dim.participation_ratio`) and,
    when fMRI ``Y`` (array or dict {roi: array}) is given, ``encoding_r2`` (median
    voxel R² of :func:`lidutils.encoding.encoding_alignment`), ``encoding_r2_<roi>``
    per ROI and the per-voxel ``encoding_r2_voxels`` array.
    """

    X = np.asarray(X.detach().cpu().numpy() if hasattr(X, "detach") else X)
    prof = lid_profile(X, ks=list(ks), device=device, duplicates=duplicates)
    out = {"n_samples": X.shape[0], "n_features": X.shape[1]}
    out.update({f"lid_k{k}": float(np.mean(v)) for k, v in prof.items()})
    out["participation_ratio"] = float(participation_ratio(X, device=device))
    if Y is not None:
        enc = encoding_alignment(X, Y, n_pcs=n_pcs, n_folds=n_folds, device=device, seed=seed,
                                 roi_labels=roi_labels)
        out["encoding_r2"] = enc.score
        out["encoding_r2_voxels"] = enc.r2
        if enc.roi_table is not None:
            out.update({f"encoding_r2_{r}": v for r, v in zip(enc.roi_table.roi, enc.roi_table.r2)})
    return out


def model_task(model, images, ks=(10, 20, 50), Y=None, roi_labels=None, n_pcs=300, n_folds=5,
               device="cpu", duplicates="error", seed=0, extract_kwargs=None):
    """The typical sweep task: features of ``model`` on ``images``, then :func:`representation_scores`.

    ``model`` is a model name (:func:`lidutils.models.load_model`; offline:
    ``tf_efficientnet_lite0/1/2``, ``mobilenetv2_100``), ``images`` a list of image
    paths (cheap to send to workers), ``extract_kwargs`` extra arguments of
    :func:`lidutils.features.extract` (layer, batch size...). Pass the fMRI ``Y`` as
    ``run_sweep(..., common={"Y": Y, "images": paths})`` so it is shipped once.
    """

    feats = extract(model, images, device=device, **{"progress": False, **(extract_kwargs or {})})
    if isinstance(feats, Mapping):
        if len(feats) != 1:
            raise ValueError(f"extract returned several layers {list(feats)}; choose one with "
                             "extract_kwargs={'layer': ...}.")
        feats = next(iter(feats.values()))
    out = representation_scores(feats, ks=ks, Y=Y, roi_labels=roi_labels, n_pcs=n_pcs, n_folds=n_folds,
                                device=device, duplicates=duplicates, seed=seed)
    out["model"] = str(model)
    return out
