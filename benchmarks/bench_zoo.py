"""Time a cold run of the book's zoo population and check its premises.

Usage::

    python benchmarks/bench_zoo.py [--grids controlled controlled-animal] [--workers 2]
                                   [--cache-dir /tmp/zoo_bench] [--device cpu] [--out results.json]

Trains the grids one after the other into an empty cache folder (a cold run; a
fresh temporary folder when none is given) with ``--workers`` training processes
(each single-threaded), and reports:

- wall time per grid and in all, the number of networks, the machine's CPU count
  and its load average before, during (sampled every 10 s) and after: the machine
  may be shared, and a load above the CPU count means the wall time is inflated.
  So it also reports the networks' summed process CPU time (each training process
  is single-threaded) and the wall time this CPU time would take on ``--workers``
  dedicated cores: the finishing time of the greedy schedule the zoo uses (seed by
  seed, longest first, each network to the first free worker), plus the parent's
  own CPU time (data loading, probe, table);
- per data set and family: the final-epoch test accuracy range of the clean-label
  networks and how many networks pass the convergence rule
  (:func:`lidutils.book.zoo.convergence`);
- premise checks on seed-averaged design cells, per family and pooled: Pearson r
  (bootstrap 95 % CI, permutation p; :func:`lidutils.stats.corr`) of test
  accuracy against log10 parameters (capacity series) and against log10 training
  images (data series), and the accuracy drop of the noise series.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


class _LoadSampler(threading.Thread):
    """Samples the 1-minute load average every ``every`` seconds while training runs."""

    def __init__(self, every=10.0):
        super().__init__(daemon=True)
        self.every, self.samples, self._stop = every, [], threading.Event()

    def run(self):
        while not self._stop.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def stop(self):
        self._stop.set()
        return {"mean": float(np.mean(self.samples)) if self.samples else float("nan"),
                "max": float(np.max(self.samples)) if self.samples else float("nan"), "n": len(self.samples)}


def _cells(final):
    """Seed-averaged design cells of the final checkpoints."""
    return final.groupby("design").agg(
        family=("arch", "first"), params=("n_params", "first"), n_train=("n_train", "first"),
        label_noise=("label_noise", "first"), in_capacity=("in_capacity", "first"),
        in_data=("in_data", "first"), in_noise=("in_noise", "first"), test_acc=("test_acc", "mean"),
        test_acc_sd=("test_acc", "std"), n_seeds=("seed", "nunique"))


def _r(x, y):
    from lidutils.stats import corr

    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"n": int(len(x)), "r": float("nan")}
    c = corr(np.asarray(x, float), np.asarray(y, float), method="pearson", n_boot=2000, n_perm=2000)
    return {"n": c["n"], "r": round(c["r"], 3), "ci95": [round(c["ci_low"], 3), round(c["ci_high"], 3)],
            "p": round(c["p"], 4)}


def dedicated_wall(table, grid, workers):
    """Finishing time of the zoo's worker schedule if each network took its measured CPU time."""
    from lidutils.book.zoo import resolve_grid

    cpu = table.drop_duplicates("key").set_index("key")["cpu_seconds"]
    entries = [e for e in resolve_grid(grid) if e.key in cpu.index]
    order = sorted(entries, key=lambda e: (e.seed, -cpu[e.key]))  # longest first within a seed
    free = [0.0] * workers
    for e in order:
        i = int(np.argmin(free))
        free[i] += float(cpu[e.key])
    return max(free)


def premise_checks(table):
    """Accuracy vs log params / log data / label noise, per family and pooled.

    Each r is given on the seed-averaged design cells (the analysis unit; with 4-5
    cells per family its bootstrap CI is crude) and on the networks themselves
    (seed replicates as separate points: n = cells x seeds).
    """
    final = table[table["final"]]
    cells = _cells(final)
    out = {}
    for fam in sorted(cells["family"].unique()) + ["all families"]:
        c = cells if fam == "all families" else cells[cells["family"] == fam]
        f = final if fam == "all families" else final[final["arch"] == fam]
        res = {}
        for name, flag, x in (("acc_vs_log10_params", "in_capacity", "params"),
                              ("acc_vs_log10_n_train", "in_data", "n_train")):
            cc, ff = c[c[flag]], f[f[flag].astype(bool)]
            res[name] = {"cells": _r(np.log10(cc[x]), cc["test_acc"]),
                         "networks": _r(np.log10(ff["n_params" if x == "params" else "n_train"]), ff["test_acc"])}
        if fam != "all families":
            noi = c[c["in_noise"]].sort_values("label_noise")
            res["acc_by_label_noise"] = {f"{n:g}": round(a, 3) for n, a in zip(noi["label_noise"], noi["test_acc"])}
        out[fam] = res
    return out


def summarise(table):
    """Accuracy range (clean labels, final epoch) and convergence counts per family."""
    final = table[table["final"]]
    out = {}
    for fam, f in final.groupby("arch"):
        clean = f[f["label_noise"] == 0]
        conv_cells = clean.groupby("design")["converged"].all()
        out[fam] = {"networks": int(len(f)), "converged": int(f["converged"].sum()),
                    "clean_designs": int(clean["design"].nunique()),
                    "clean_designs_all_seeds_converged": int(conv_cells.sum()),
                    "test_acc_clean": [round(float(clean["test_acc"].min()), 3),
                                       round(float(clean["test_acc"].max()), 3)],
                    "train_acc_clean": [round(float(clean["train_acc"].min()), 3),
                                        round(float(clean["train_acc"].max()), 3)],
                    "train_seconds": round(float(f["seconds"].sum()), 1)}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grids", nargs="+", default=["controlled", "controlled-animal"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--resume", action="store_true",
                    help="allow a non-empty cache (not a cold run: the wall time covers only what was left; "
                         "the CPU-time estimate still covers every network)")
    args = ap.parse_args(argv)

    from lidutils.book.zoo import train_zoo

    cache = Path(args.cache_dir or tempfile.mkdtemp(prefix="zoo_bench_"))
    warm = cache.exists() and any(cache.iterdir())
    if warm and not args.resume:
        sys.exit(f"{cache} is not empty: a cold benchmark needs an empty cache folder (or pass --resume).")
    res = {"cold": not warm, "cpu_count": os.cpu_count(), "workers": args.workers, "loadavg_before": os.getloadavg(),
           "grids": {}, "cache_dir": str(cache)}
    sampler = _LoadSampler()
    sampler.start()
    t_all = time.perf_counter()
    import resource

    for grid in args.grids:
        t0, self0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        table = train_zoo(grid, cache_dir=cache, device=args.device, progress=True, num_workers=args.workers)
        wall = time.perf_counter() - t0
        self1 = resource.getrusage(resource.RUSAGE_SELF)
        parent_cpu = (self1.ru_utime + self1.ru_stime) - (self0.ru_utime + self0.ru_stime)
        cpu = table.drop_duplicates("key")["cpu_seconds"]
        res["grids"][grid] = {"wall_seconds": round(wall, 1), "cpu_seconds_networks": round(float(cpu.sum()), 1),
                              "parent_cpu_seconds": round(parent_cpu, 1),
                              "wall_on_dedicated_cores_estimate": round(
                                  dedicated_wall(table, grid, args.workers) + parent_cpu, 1),
                              "n_networks": int(table["key"].nunique()),
                              "n_checkpoints": int(len(table)), "data_set": table["data_set"].iloc[0],
                              "families": summarise(table), "premise": premise_checks(table)}
        print(json.dumps({grid: res["grids"][grid]}, indent=1), flush=True)
    res["wall_seconds"] = round(time.perf_counter() - t_all, 1)
    res["wall_on_dedicated_cores_estimate"] = round(sum(g["wall_on_dedicated_cores_estimate"]
                                                        for g in res["grids"].values()), 1)
    res["loadavg_during"] = sampler.stop()
    res["loadavg_after"] = os.getloadavg()
    print(json.dumps({k: v for k, v in res.items() if k != "grids"}, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
