"""Resumable sweeps: serial and on a 2-worker dask LocalCluster."""
import os
from pathlib import Path

import numpy as np
import pytest

from lidutils.lid import lid_mle
from lidutils.sweep import representation_scores, run_sweep, sweep_table, task_key


def counted_scores(X, ks, log_dir, tag):
    """A real task that also leaves a mark each time it is actually computed."""
    Path(log_dir, f"{tag}-{os.getpid()}-{len(os.listdir(log_dir))}").touch()
    return representation_scores(X, ks=ks)


def make_tasks(n_tasks=4, n=120, seed=0):
    rng = np.random.default_rng(seed)
    # intrinsic dimension d embedded linearly in 8-D: LID should track d
    tasks = {}
    for d in range(2, 2 + n_tasks):
        Z = rng.standard_normal((n, d))
        tasks[f"d{d}"] = {"X": Z @ rng.standard_normal((d, 8)), "ks": [5, 10]}
    return tasks


def test_serial_sweep_matches_direct_and_resumes(tmp_path):
    log = tmp_path / "log"
    log.mkdir()
    tasks = make_tasks()
    for kw in tasks.values():
        kw.update(log_dir=str(log))
    tagged = {lab: {**kw, "tag": lab} for lab, kw in tasks.items()}
    half = dict(list(tagged.items())[:2])
    r1 = run_sweep(half, counted_scores, cache_dir=tmp_path / "c", progress=False)
    assert sorted(r1) == ["d2", "d3"] and len(os.listdir(log)) == 2
    r2 = run_sweep(tagged, counted_scores, cache_dir=tmp_path / "c", progress=False)
    marks = sorted(p.split("-")[0] for p in os.listdir(log))
    assert marks == ["d2", "d3", "d4", "d5"]  # only the missing half was computed
    assert list(r2) == list(tagged)
    for lab, kw in tasks.items():
        assert r2[lab]["lid_k10"] == pytest.approx(lid_mle(kw["X"], 10).mean(), rel=1e-12)
        assert r2[lab]["n_samples"] == 120 and r2[lab]["_seconds"] >= 0
    assert r2["d2"]["lid_k10"] < r2["d5"]["lid_k10"]
    assert len(list((tmp_path / "c").glob("*.npz"))) == 4 == len(list((tmp_path / "c").glob("*.json")))
    # overwrite recomputes everything
    run_sweep(tagged, counted_scores, cache_dir=tmp_path / "c", overwrite=True, progress=False)
    assert len(os.listdir(log)) == 8
    t = sweep_table(r2)
    assert list(t.index) == list(tagged) and "lid_k5" in t.columns


def test_cache_key_tracks_arguments():
    X = np.arange(12.0).reshape(4, 3)
    k1 = task_key(representation_scores, {"X": X, "ks": [5]})
    assert k1 == task_key(representation_scores, {"ks": [5], "X": X.copy()})
    assert k1 != task_key(representation_scores, {"X": X + 1e-9, "ks": [5]})
    assert k1 != task_key(representation_scores, {"X": X, "ks": [6]})
    assert k1 != task_key(counted_scores, {"X": X, "ks": [5]})
    with pytest.raises(ValueError, match="no stable cache key"):
        task_key(representation_scores, {"X": object()})


def test_failures_are_reported_and_not_cached(tmp_path):
    tasks = make_tasks(3)
    tasks["bad"] = {"X": tasks["d2"]["X"][:8], "ks": [10]}  # k >= n: ValueError inside the task
    with pytest.raises(RuntimeError, match="1 of 4 sweep task.*bad.*k=10") as exc:
        run_sweep(tasks, representation_scores, cache_dir=tmp_path, progress=False)
    assert isinstance(exc.value.__cause__, ValueError)
    assert len(list(tmp_path.glob("*.npz"))) == 3  # the good ones are kept
    with pytest.warns(UserWarning, match="bad"):
        res = run_sweep(tasks, representation_scores, cache_dir=tmp_path, errors="warn", progress=False)
    assert sorted(res) == ["d2", "d3", "d4"]


def test_list_tasks_labels_and_common(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((60, 4))
    res = run_sweep([{"ks": [5]}, {"ks": [10]}], representation_scores, common={"X": X},
                    cache_dir=tmp_path, progress=False)
    assert len(res) == 2 and all(lab.startswith(("5-", "10-")) or "-" in lab for lab in res)
    key = task_key(representation_scores, {"X": X, "ks": [5]})  # common args are part of the key
    assert any(p.stem.endswith(key) for p in tmp_path.glob("*.npz"))
    vals = sorted(v for r in res.values() for k, v in r.items() if k.startswith("lid_k"))
    assert vals == sorted([lid_mle(X, 5).mean(), lid_mle(X, 10).mean()])
    with pytest.raises(ValueError, match="common"):
        run_sweep([{"X": X}], representation_scores, common={"X": X}, cache_dir=tmp_path)


def test_bad_result_type(tmp_path):
    with pytest.raises(RuntimeError, match="must return a dict"):
        run_sweep({"a": {"a": np.eye(3)}}, np.sum, cache_dir=tmp_path, progress=False)


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=40) as c:
        yield c


def _inodes(folder):
    return {p.name: p.stat().st_ino for p in Path(folder).glob("*.npz")}


def test_dask_sweep_equals_serial_and_resumes(tmp_path, cluster):
    from distributed import Client
    tasks = make_tasks(4, seed=3)
    serial = run_sweep(tasks, representation_scores, cache_dir=tmp_path / "serial", progress=False)
    half = dict(list(tasks.items())[:2])
    with Client(cluster) as client:
        r1 = run_sweep(half, representation_scores, client=client, cache_dir=tmp_path / "dask", progress=False)
        first = _inodes(tmp_path / "dask")
        assert sorted(r1) == ["d2", "d3"] and len(first) == 2
        # the cluster object itself also works (a client is opened and closed inside)
        r2 = run_sweep(tasks, representation_scores, client=cluster, cache_dir=tmp_path / "dask", progress=False)
    after = _inodes(tmp_path / "dask")
    assert len(after) == 4 and all(after[f] == ino for f, ino in first.items())  # not rewritten
    for lab in tasks:
        for k in ("lid_k5", "lid_k10", "participation_ratio"):
            assert r2[lab][k] == pytest.approx(serial[lab][k], rel=1e-12)


def _sample_images(n):
    root = Path(os.environ.get("LIDUTILS_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
    paths = sorted((root / "imagenet_sample_1000").glob("*.JPEG"))
    if len(paths) < n:
        pytest.skip(f"ImageNet sample mirror not found under {root}")
    return [str(p) for p in paths[:: len(paths) // n][:n]]


@pytest.mark.slow
def test_offline_model_sweep_on_local_cluster(tmp_path, cluster):
    """The typical task: 4 offline ImageNet models -> features -> LID + encoding, on 2 workers."""
    from lidutils.features import extract
    from lidutils.models import OFFLINE_MODELS
    from lidutils.sweep import model_task

    images = _sample_images(16)
    Y = np.random.default_rng(0).standard_normal((16, 6))
    common = {"images": images, "Y": {"roiA": Y[:, :4], "roiB": Y[:, 4:]}, "ks": [5, 10], "n_folds": 3,
              "extract_kwargs": {"cache_dir": str(tmp_path / "features"), "batch_size": 8}}
    tasks = {m: {"model": m} for m in OFFLINE_MODELS}
    res = run_sweep(tasks, model_task, client=cluster, common=common, cache_dir=tmp_path / "sweep",
                    progress=False)
    assert list(res) == OFFLINE_MODELS
    for m, r in res.items():
        assert r["model"] == m and r["n_samples"] == 16
        assert 1 < r["lid_k5"] < r["n_features"] and np.isfinite(r["participation_ratio"])
        assert r["encoding_r2_voxels"].shape == (6,) and "encoding_r2_roiA" in r
    # the worker's numbers are the ones computed here from the (now cached) features
    X = extract("mobilenetv2_100", images, device="cpu", progress=False, **common["extract_kwargs"])
    assert res["mobilenetv2_100"]["lid_k10"] == pytest.approx(lid_mle(X, 10).mean(), rel=1e-6)
    # resume: a second call computes nothing (no client needed)
    again = run_sweep(tasks, model_task, common=common, cache_dir=tmp_path / "sweep", progress=False)
    assert all(again[m]["_seconds"] == res[m]["_seconds"] for m in tasks)
