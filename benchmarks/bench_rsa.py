"""Benchmark: model-brain RSA for a whole population, batched vs per pair vs rsatoolbox.

Data: ``--models`` model RDMs and ``--subjects`` subject RDMs per region (``--regions``),
over ``--n`` stimuli (correlation distances of random 50-dim patterns, independent).

Printed side by side, per method (Pearson, Spearman):

1. ``lidutils.rsatools.rsa_many`` (rank the upper triangles once, one matrix product);
2. looping ``lidutils.rsatools.rsa`` over every (model, subject) pair (scipy per pair);
3. ``rsatoolbox.rdm.compare`` (``"corr"`` / ``"spearman"``), RDMs objects built from the arrays,
   per region;

with speed-ups and the largest absolute difference of the scores.

Usage::

    python benchmarks/bench_rsa.py [--models 50] [--subjects 15] [--regions 2] [--n 92]

Not a test: timings depend on the machine and its load.
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np
from scipy.spatial.distance import pdist, squareform

from lidutils.rsatools import rsa, rsa_many


def make_rdms(count, n, seed):
    rng = np.random.default_rng(seed)
    return np.stack([squareform(pdist(rng.standard_normal((n, 50)), "correlation")) for _ in range(count)])


def timed(fn, repeat=3):
    best, out = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=50)
    ap.add_argument("--subjects", type=int, default=15)
    ap.add_argument("--regions", type=int, default=2)
    ap.add_argument("--n", type=int, default=92)
    args = ap.parse_args()
    models = make_rdms(args.models, args.n, 0)
    regions = [make_rdms(args.subjects, args.n, 1 + r) for r in range(args.regions)]
    try:
        import rsatoolbox
    except ImportError:  # optional oracle (test extra)
        rsatoolbox = None
    print(f"{platform.processor() or platform.machine()}; {args.models} models x {args.subjects} subjects "
          f"x {args.regions} regions, N = {args.n} stimuli")
    for ours, theirs in (("pearson", "corr"), ("spearman", "spearman")):
        batched, t_b = timed(lambda: [rsa_many(models, subj, ours) for subj in regions])
        looped, t_l = timed(lambda: [np.array([[rsa(m, s, ours) for s in subj] for m in models])
                                     for subj in regions], repeat=1)
        diff = max(np.abs(a - b).max() for a, b in zip(batched, looped))
        line = (f"{ours:9s} rsa_many {t_b * 1e3:8.1f} ms | loop rsa {t_l * 1e3:8.1f} ms "
                f"({t_l / t_b:5.1f}x) max|diff| {diff:.1e}")
        if rsatoolbox is not None:
            # arrays in, scores out: building the RDMs objects (upper triangles) is part of the work
            ref, t_r = timed(lambda: [rsatoolbox.rdm.compare(rsatoolbox.rdm.RDMs(models), rsatoolbox.rdm.RDMs(subj),
                                                             method=theirs) for subj in regions])
            diff_r = max(np.abs(a - b).max() for a, b in zip(batched, ref))
            line += f" | rsatoolbox {t_r * 1e3:8.1f} ms ({t_r / t_b:5.1f}x) max|diff| {diff_r:.1e}"
        print(line)


if __name__ == "__main__":
    main()
