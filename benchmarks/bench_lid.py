"""Benchmark: lidutils LID (one torch kNN search for all scales) vs scikit-dimension.

Data: ``--n`` points in R^``--d`` with a 20-dim latent structure, pushed through a random
nonlinear map plus a little isotropic noise:

    X = tanh(Z W1 / sqrt(20)) W2 + 0.01 E,   Z ~ N(0, I_20), W1: 20 x 100, W2: 100 x d.

Printed side by side, in one run:

1. the LID profile at 8 scales K = 5..1000: ``lidutils.lid.lid_profile`` (one exact kNN
   at max K) vs ``skdim.id.MLE().fit(X, n_neighbors=K)`` refitted for each K;
2. a single scale K = ``--k``: ``lidutils.lid.lid_mle`` vs skdim;

with speed-ups and the largest relative difference of the per-point values.

Usage::

    python benchmarks/bench_lid.py [--n 10000] [--d 300] [--k 20] [--device auto]

Not a test: timings depend on the machine and its load (printed with the results).
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

KS = (5, 10, 20, 50, 100, 200, 500, 1000)


def make_data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 20))
    W1 = rng.normal(size=(20, 100))
    W2 = rng.normal(size=(100, d)) / np.sqrt(100)
    X = np.tanh(Z @ W1 / np.sqrt(20)) @ W2
    return X + 0.01 * rng.normal(size=X.shape)


def timed(fn, repeat=1):
    """Run ``fn`` ``repeat`` times; return its output and the best wall time
    (best-of-N is robust to other processes on a shared machine)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def max_rel(a, b):
    return float(np.max(np.abs(a / b - 1)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="number of points (default 10000)")
    ap.add_argument("--d", type=int, default=300, help="ambient dimension (default 300)")
    ap.add_argument("--k", type=int, default=20, help="single-scale K (default 20)")
    ap.add_argument("--device", default="auto", help="torch device for lidutils (default auto)")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs per timing (default 3)")
    args = ap.parse_args(argv)

    import skdim

    from lidutils._device import resolve_device
    from lidutils.lid import lid_mle, lid_profile

    ks = tuple(k for k in KS if k < args.n)
    dev = resolve_device(args.device)
    X = make_data(args.n, args.d)
    print(f"N={args.n} D={args.d} latent=20, ks={ks}, single K={args.k}")
    print(f"lidutils device={dev}, torch {torch.__version__} threads={torch.get_num_threads()}, "
          f"skdim {getattr(skdim, '__version__', '?')}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load avg at start {os.getloadavg()[0]:.2f}, best of {args.repeat}")

    small = make_data(200, args.d, seed=1)  # warm-up: imports, BLAS and CUDA initialisation
    lid_profile(small, (5, 10), device=dev)
    skdim.id.MLE().fit(small, n_neighbors=5)
    if dev.type == "cuda":
        torch.cuda.synchronize()

    prof, t_prof = timed(lambda: lid_profile(X, ks, device=dev), args.repeat)
    t_sk, ref = {}, {}
    for k in ks:
        ref[k], t_sk[k] = timed(lambda: skdim.id.MLE().fit(X, n_neighbors=k).dimension_pw_, args.repeat)
        print(f"  skdim MLE K={k:<5d} {t_sk[k]:8.2f} s   mean LID {ref[k].mean():7.3f}  "
              f"lidutils mean {prof[k].mean():7.3f}  max rel diff {max_rel(prof[k], ref[k]):.1e}")
    single, t_single = timed(lambda: lid_mle(X, args.k, device=dev), args.repeat)
    ref_single, t_sk_single = timed(lambda: skdim.id.MLE().fit(X, n_neighbors=args.k).dimension_pw_, args.repeat)

    t_sk_all = sum(t_sk.values())
    diff_prof = max(max_rel(prof[k], ref[k]) for k in ks)
    diff_single = max_rel(single, ref_single)
    print()
    print(f"{'task':<34s}{'lidutils [s]':>13s}{'skdim [s]':>11s}{'speed-up':>10s}{'max rel diff':>14s}")
    print(f"{'LID profile, ' + str(len(ks)) + ' scales (1 kNN)':<34s}{t_prof:13.2f}{t_sk_all:11.2f}"
          f"{t_sk_all / t_prof:9.1f}x{diff_prof:14.1e}")
    print(f"{'single K=' + str(args.k):<34s}{t_single:13.2f}{t_sk_single:11.2f}"
          f"{t_sk_single / t_single:9.1f}x{diff_single:14.1e}")
    print(f"load avg at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
