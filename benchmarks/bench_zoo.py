"""Time a cold run of a zoo grid (default: ``default``) and summarise the population.

Usage::

    python benchmarks/bench_zoo.py [--grid default] [--cache-dir /tmp/zoo_default]
                                   [--device cpu] [--out results.json]

The cache folder must be empty (a cold run); a fresh temporary folder is used
when none is given. Reports wall time, the machine's load average before and
after (other jobs share the CPU), per-family training time, the min / median /
max final-epoch test accuracy and, as an exploratory number, the Spearman
correlation (with n, bootstrap 95 % CI and p) between mean local ID (Levina-Bickel
MLE, k=20) of each checkpoint's evaluation embeddings and its test accuracy.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _lid_vs_accuracy(table, k=20, n_boot=2000, seed=0):
    from scipy.stats import spearmanr

    from lidutils.lid import lid_mle
    from lidutils.zoo import load_embeddings

    lids = []
    for _, row in table.iterrows():
        emb = load_embeddings(row, which="eval").astype(np.float64)
        lids.append(float(np.mean(lid_mle(emb, k=k, duplicates="drop"))))
    table = table.assign(lid=lids)
    out = {}
    subsets = {"all checkpoints": table, "final epochs": table[table["final"]],
               "final epochs, clean labels": table[table["final"] & (table["label_noise"] == 0)],
               "first saved epochs": table[table["epoch"] == table.groupby("key")["epoch"].transform("min")]}
    rng = np.random.default_rng(seed)
    for name, t in subsets.items():
        x, y = t["lid"].to_numpy(), t["test_acc"].to_numpy()
        rho, p = spearmanr(x, y)
        boots = []
        for _ in range(n_boot):
            i = rng.integers(0, len(x), len(x))
            if np.ptp(x[i]) > 0 and np.ptp(y[i]) > 0:
                boots.append(spearmanr(x[i], y[i])[0])
        lo, hi = np.nanpercentile(boots, [2.5, 97.5])
        out[name] = {"n": int(len(t)), "rho": float(rho), "ci95": [float(lo), float(hi)], "p": float(p)}
    return out, table


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grid", default="default")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--no-lid", action="store_true", help="skip the exploratory LID correlation")
    args = ap.parse_args(argv)

    from lidutils.zoo import GRIDS, train_zoo

    cache = Path(args.cache_dir or tempfile.mkdtemp(prefix="zoo_bench_"))
    if cache.exists() and any(cache.iterdir()):
        sys.exit(f"{cache} is not empty: a cold benchmark needs an empty cache folder.")
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    table = train_zoo(args.grid, cache_dir=cache, device=args.device, progress=True)
    wall = time.perf_counter() - t0
    load1 = os.getloadavg()
    final = table[table["final"]]
    res = {
        "grid": args.grid, "n_networks": int(table["key"].nunique()), "n_checkpoints": int(len(table)),
        "wall_seconds": wall, "cpu_count": os.cpu_count(), "loadavg_before": load0, "loadavg_after": load1,
        "seconds_by_family": final.groupby("arch")["seconds"].sum().round(1).to_dict(),
        "final_test_acc": {"min": float(final["test_acc"].min()), "median": float(final["test_acc"].median()),
                           "max": float(final["test_acc"].max())},
        "all_test_acc": {"min": float(table["test_acc"].min()), "median": float(table["test_acc"].median()),
                         "max": float(table["test_acc"].max())},
        "cache_dir": str(cache),
    }
    if args.grid in GRIDS:
        res["n_planned"] = len(GRIDS[args.grid])
    if not args.no_lid:
        res["spearman_lid_k20_vs_test_acc"], table = _lid_vs_accuracy(table)
    cols = ["name", "epoch", "test_acc", "train_acc", "dead_fraction", "seconds"] + (["lid"] if "lid" in table else [])
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(json.dumps(res, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
