"""CPU vs CUDA timings of the two heavy steps of the paper tier, at NSD size.

    python benchmarks/bench_gpu.py                       # NSD size: 73 000 x 300, 10 000 voxels
    python benchmarks/bench_gpu.py --n 5000 --voxels 1000 --device cpu   # a laptop

Steps timed (synthetic data, fixed seed; each step once, after a small warm-up):

- ``lid_profile``: exact kNN + per-point Levina-Bickel MLE at every k of
  ``--ks`` for ``n`` points in 300 dimensions (:func:`lidutils.lid.lid_profile`);
- ``encoding_alignment``: 5 outer folds x (PCA on the training fold, ridge with
  per-voxel alpha by 5-fold inner CV over 19 alphas) for ``--voxels`` voxels
  (:func:`lidutils.encoding.encoding_alignment`).

CUDA rows are skipped with a note when no GPU is visible. When both devices run,
the last column reports the largest CPU/CUDA difference of the outputs (mean
LID per k; voxel R²), so one run checks speed and agreement.
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from lidutils.encoding import encoding_alignment
from lidutils.lid import lid_profile


def make_data(n, n_features, n_voxels, latent=20, seed=0):
    """Features with a ``latent``-dim curved manifold plus noise; voxels = linear readout + noise."""
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, latent))
    W = rng.standard_normal((latent, n_features)) / np.sqrt(latent)
    X = np.tanh(Z @ W) + 0.1 * rng.standard_normal((n, n_features))
    B = rng.standard_normal((latent, n_voxels)) / np.sqrt(latent)
    snr = rng.uniform(0.0, 1.0, n_voxels)
    Y = np.sqrt(snr) * (Z @ B) + np.sqrt(1 - snr) * rng.standard_normal((n, n_voxels))
    return X.astype(np.float32), Y.astype(np.float32)


def _sync(dev):
    if dev == "cuda":
        torch.cuda.synchronize()


def timed(fn, dev):
    _sync(dev)
    t0 = time.perf_counter()
    out = fn()
    _sync(dev)
    return time.perf_counter() - t0, out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=73_000, help="images / points (NSD: 73 000)")
    ap.add_argument("--features", type=int, default=300, help="feature dimension (paper: 300 PCs)")
    ap.add_argument("--voxels", type=int, default=10_000, help="voxels for the encoding step")
    ap.add_argument("--ks", type=int, nargs="+", default=[5, 10, 20, 50, 100, 200, 500, 1000])
    ap.add_argument("--device", choices=["cpu", "cuda", "both"], default="both")
    ap.add_argument("--voxel-chunk", type=int, default=4096)
    ap.add_argument("--skip", choices=["lid", "encoding"], nargs="*", default=[])
    args = ap.parse_args(argv)

    ks = [k for k in args.ks if k < args.n]
    X, Y = make_data(args.n, args.features, args.voxels)
    devices = ["cpu", "cuda"] if args.device == "both" else [args.device]
    notes = []
    if "cuda" in devices and not torch.cuda.is_available():
        devices.remove("cuda")
        notes.append("CUDA rows skipped: torch.cuda.is_available() is False on this machine.")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-"
    print(f"# lidutils GPU benchmark | torch {torch.__version__} | CPU threads {torch.get_num_threads()} "
          f"({platform.processor() or platform.machine()}) | GPU {gpu}")
    print(f"# data: n={args.n}, features={args.features}, voxels={args.voxels}, ks={ks}")

    steps = []
    if "lid" not in args.skip:
        steps.append(("lid_profile", f"{args.n}x{args.features}, k<={max(ks)}",
                      lambda d: lid_profile(X, ks=ks, device=d, duplicates="ignore"),
                      lambda o: np.array([o[k].mean() for k in ks])))
    if "encoding" not in args.skip:
        steps.append(("encoding_alignment", f"{args.n}x{args.features} -> {args.voxels} vox",
                      lambda d: encoding_alignment(X, Y, n_pcs=min(300, args.features), device=d,
                                                   voxel_chunk=args.voxel_chunk),
                      lambda o: o.r2))

    # warm-up: library loading, CUDA context, cuBLAS/cuSOLVER handles (not timed)
    for d in devices:
        lid_profile(X[:300], ks=[5], device=d, duplicates="ignore")
        encoding_alignment(X[:200], Y[:200, :10], n_pcs=10, n_folds=2, inner_folds=2, device=d)

    rows = []
    for name, size, run, summarize in steps:
        outs = {}
        for d in devices:
            sec, out = timed(lambda: run(d), d)
            outs[d] = summarize(out)
            rows.append([name, size, d, f"{sec:.2f}", ""])
        if len(outs) == 2:
            rows[-1][4] = f"{np.nanmax(np.abs(outs['cpu'] - outs['cuda'])):.1e}"
            speed = float(rows[-2][3]) / max(float(rows[-1][3]), 1e-9)
            rows[-1][4] += f" (x{speed:.1f})"
        if name == "lid_profile":
            notes.append("mean LID at k=" + ", ".join(f"{k}: {v:.2f}" for k, v in zip(ks, next(iter(outs.values())))))
        else:
            r2 = next(iter(outs.values()))
            notes.append(f"encoding R² median {np.nanmedian(r2):.3f} (voxels planted with signal fraction U(0,1))")

    head = ["step", "size", "device", "seconds", "max |cpu-cuda| (speed-up)"]
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))
    for n in notes:
        print(f"# {n}")


if __name__ == "__main__":
    main()
