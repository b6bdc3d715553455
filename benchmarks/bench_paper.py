"""Cost of the paper tier at NSD's shape, and voxelwise encoding vs himalaya's RidgeCV.

    python benchmarks/bench_paper.py                 # CPU (and CUDA when visible), writes the table
    python benchmarks/bench_paper.py --quick         # smaller fractions (a laptop, a few minutes)
    python benchmarks/bench_paper.py --device cuda   # the GPU column only

Every step runs in a fresh subprocess so its peak resident memory (``ru_maxrss``,
the whole process: Python, torch, the data) is measured alone. CPU steps run on
**one thread** and are timed in process CPU seconds (core-seconds): on a shared
machine that is the work done, not the waiting (with several threads, OpenMP's
spin-waiting inflates CPU time under load). On ``c`` idle cores expect about
core-seconds / ``c`` of wall time (the GEMM-bound steps scale well); CUDA steps are
timed in wall seconds.

1. **Extraction** (:func:`lidutils.features.extract`, timm eval preprocessing from
   425 px stand-in images, batch 32): a subset of the paper's architectures with
   untrained weights at their pretrained input size is timed per image. The
   forward FLOPs of **every** model of :data:`lidutils.models.PAPER_MODELS` are
   counted on the meta device (``torch.utils.flop_counter``, no weights allocated),
   and seconds per image are predicted from FLOPs by the fitted power law
   ``t = c * GFLOPs^b`` (exact for the timed models up to their residual).
2. **LID profile** (:func:`lidutils.lid.lid_profile`, exact kNN + MLE at K = 50 and
   1000, 300 dimensions): timed at ``n`` = fractions of 10 000 points, extrapolated
   to one NSD subject (``n`` = 10 000) with the fitted growth exponent ``t ∝ n^a``.
3. **Voxelwise encoding** (:func:`lidutils.encoding.encoding_alignment`: 5 outer
   folds, PCA-300 on the training fold, per-voxel alpha from 19 by 5-fold inner CV):
   timed on a grid of (images, voxels), fitted ``t = c * n^a * V^b`` (least squares
   in logs), extrapolated to one subject (10 000 images x 39 548 vertices, subject 1's
   both hemispheres; also 15 000, the paper's ROIs).
4. **himalaya**: the same outer folds and PCs; ridge per voxel with
   ``himalaya.ridge.RidgeCV`` (same absolute alpha grid, same inner folds, R² scoring,
   per-target alphas, intercept). Reports the largest |ΔR²| per voxel and the share of
   voxels with the same alpha, and the time ratio of the ridge step alone.

The total of the full run is ``sum over PAPER_MODELS of (extraction of 75 086
images [the 8 subjects' training images] + 8 x (LID + encoding))``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

NSD_IMAGES = 10_000          # one subject (subject 1: 9 841)
NSD_ALL_IMAGES = 75_086      # training images of the 8 subjects (9841, 9841, 9082, 8779, 9841, 9082, 9841, 8779)
NSD_VERTICES = 39_548        # subject 1, lh + rh challenge-space vertices
ROI_VERTICES = 15_000
N_SUBJECTS = 8
TIMED_MODELS = ("convnext_atto.d2_in1k", "convnext_tiny.fb_in1k", "resnet18.tv_in1k", "resnet50.a1_in1k",
                "resmlp_12_224.fb_in1k", "vit_base_patch16_224.mae")


# --------------------------------------------------------------------------- single steps (subprocess)
def _peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step_extract(model, n_images, device):
    from lidutils.features import extract
    from lidutils.book.paper_tier import paper_model
    from lidutils.standins import render_latent_images

    imgs = render_latent_images(np.random.default_rng(0).standard_normal((n_images, 8)), 425)
    m, info = paper_model(model, "random", device=device)
    extract((m, info), imgs[:4], device=device, cache_dir=False, progress=False)  # warm-up
    _sync(device)
    t0 = _clock()
    X = extract((m, info), imgs, device=device, cache_dir=False, progress=False, batch_size=32)
    _sync(device)
    return {**_since(t0), "n": n_images, "dim": int(X.shape[1]), "input": int(info.input_size[-1])}


def step_lid(n, device):
    from lidutils.lid import lid_profile

    X = _features(n, 300)
    t0 = _clock()
    lid_profile(X, ks=[50, 1000] if n > 1000 else [50], device=device)
    _sync(device)
    return _since(t0)


def step_encoding(n, v, device):
    from lidutils.encoding import encoding_alignment

    X, Y = _features(n, 768), _voxels(n, v)
    t0 = _clock()
    encoding_alignment(X, Y, n_pcs=300, device=device)
    _sync(device)
    return _since(t0)


def step_himalaya(n, v, device):
    """Same outer folds, PCs, inner folds and alpha grid; lidutils ridge vs himalaya RidgeCV."""
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV
    from himalaya.scoring import r2_score
    from sklearn.model_selection import KFold

    from lidutils.encoding import encoding_alignment
    from lidutils.ridge import pca_fit_transform, r2_columns, ridge_cv_predict

    X, Y = _features(n, 768), _voxels(n, v).astype(np.float64)
    set_backend("torch_cuda" if device == "cuda" else "numpy")
    ref = encoding_alignment(X, Y, n_pcs=300, device=device)
    t_ours = t_him = 0.0
    key = _basis(device)
    r2_h, same_alpha = np.empty((5, v)), []
    for f, (tr, te) in enumerate(KFold(5, shuffle=True, random_state=0).split(X)):
        Ztr, Zte = pca_fit_transform(X[tr], X[te], 300, device=device)
        t0 = _clock()
        _, info = ridge_cv_predict(Ztr, Y[tr], Zte, alpha_per_target=True, device=device, return_info=True)
        _sync(device)
        t_ours += _since(t0)[key]
        perm = np.random.default_rng(0).permutation(len(tr))
        cv = [(np.setdiff1d(perm, val), val) for val in np.array_split(perm, 5)]
        t0 = _clock()
        model = RidgeCV(alphas=info["alphas"], fit_intercept=True, cv=cv,
                        solver_params={"score_func": r2_score, "local_alpha": True})
        model.fit(Ztr, Y[tr])
        P = _np(model.predict(Zte))
        _sync(device)
        t_him += _since(t0)[key]
        r2_h[f] = r2_columns(Y[te], P)
        best = _np(model.best_alphas_)
        same_alpha.append(np.isclose(best, ref.alpha[f], rtol=1e-6))
    d = np.abs(r2_h.mean(0) - ref.r2)
    return {"max_abs_dr2": float(d.max()), "median_abs_dr2": float(np.median(d)),
            "same_alpha": float(np.mean(same_alpha)), "seconds_lidutils_ridge": t_ours,
            "seconds_himalaya_ridge": t_him, "median_r2": float(np.median(ref.r2))}


def _clock():
    return time.perf_counter(), time.process_time()


def _since(t0):
    """Wall seconds and process CPU seconds (all threads) since ``_clock()``."""
    return {"seconds": time.perf_counter() - t0[0], "cpu_seconds": time.process_time() - t0[1]}


def _basis(device):
    """CPU: process CPU seconds (core-seconds, robust to other jobs on the machine); CUDA: wall seconds."""
    return "cpu_seconds" if device == "cpu" else "seconds"


def _np(a):
    return np.asarray(a.cpu() if hasattr(a, "cpu") else a)


def flops_table():
    """Forward GFLOPs per image of every PAPER_MODELS model at its pretrained input size (meta device)."""
    import timm
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from lidutils.models import PAPER_MODELS

    rows = []
    for name in PAPER_MODELS["name"]:
        with torch.device("meta"):
            m = timm.create_model(name, pretrained=False).eval()
            size = m.pretrained_cfg.get("input_size", (3, 224, 224))
            x = torch.empty((1, *size))
            with FlopCounterMode(display=False) as fc, torch.no_grad():
                m.forward_head(m.forward_features(x), pre_logits=True)
        rows.append({"name": name, "gflops": fc.get_total_flops() / 1e9, "input": int(size[-1]),
                     "params_m": sum(p.numel() for p in m.parameters()) / 1e6})
    return rows


def _features(n, d, seed=0):
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, 20))
    return (np.tanh(Z @ rng.standard_normal((20, d)) / np.sqrt(20))
            + 0.1 * rng.standard_normal((n, d))).astype(np.float32)


def _voxels(n, v, seed=1, block=1024):
    """float32 (n, v) voxels = linear readout of _features' latent + noise, made block by block
    (no float64 (n, v) temporaries: the peak memory is the encoding's, not the generator's)."""
    rng = np.random.default_rng(seed)
    Z = np.random.default_rng(0).standard_normal((n, 20))  # the latent of _features
    s = rng.uniform(0, 0.6, v)
    Y = np.empty((n, v), np.float32)
    for j in range(0, v, block):
        sl = slice(j, min(v, j + block))
        Y[:, sl] = (np.sqrt(s[sl]) * (Z @ rng.standard_normal((20, sl.stop - j)) / np.sqrt(20))
                    + np.sqrt(1 - s[sl]) * rng.standard_normal((n, sl.stop - j)))
    return Y


def _sync(device):
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


STEPS = {"extract": step_extract, "lid": step_lid, "encoding": step_encoding, "himalaya": step_himalaya,
         "flops": lambda: {"rows": flops_table()}}


_DONE = {}  # measurements reused with --resume: "<step>|<kwargs json>" -> result


def run_step(name, **kw):
    """Run one step in a fresh interpreter; return its dict plus peak_mb (reused when resumed)."""
    key = f"{name}|{json.dumps(kw, sort_keys=True)}"
    if key in _DONE:
        return _DONE[key]
    code = ("import json,sys,time; sys.path.insert(0, %r); import bench_paper as b; c0 = time.process_time(); "
            "r = b.STEPS[%r](**json.loads(sys.argv[1])); r['process_cpu_s'] = time.process_time() - c0; "
            "r['peak_mb'] = b._peak_mb(); print('RESULT' + json.dumps(r))"
            % (str(Path(__file__).parent), name))
    env = dict(os.environ)
    if kw.get("device", "cpu") == "cpu":  # one thread: CPU time = work, not spin-waiting on a shared machine
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(kw)], capture_output=True, text=True, env=env)
    line = [s for s in out.stdout.splitlines() if s.startswith("RESULT")]
    if out.returncode or not line:
        raise RuntimeError(f"step {name} {kw} failed:\n{out.stderr[-3000:]}")
    _DONE[key] = json.loads(line[-1][6:])
    _DONE[key]["load_average"] = os.getloadavg()[0]
    return _DONE[key]


# --------------------------------------------------------------------------- fits
def power_fit(x, t):
    """Least squares of log t = log c + b log x; returns (c, b)."""
    b, logc = np.polyfit(np.log(x), np.log(t), 1)
    return float(np.exp(logc)), float(b)


class _Model:
    def __init__(self, f, params, resid):
        self.f, self.params, self.max_rel_residual = f, params, resid

    def __call__(self, n, v):
        return float(self.f(np.asarray(n, float), np.asarray(v, float), *self.params.values()))


def encoding_fit(n, v, t):
    """Fit ``t = n^a * (alpha + beta * V)`` (least squares in logs).

    The per-image work is a fixed part (PCA of the features, SVDs of the outer and inner
    training folds: independent of the voxels) plus a per-voxel part (projections and
    19 alphas' predictions and R² in every inner fold); both grow with the images as
    ``n^a`` (``a`` fitted: the growth exponent). A pure power law in ``V`` would fit
    the fixed part as a small exponent and under-predict 40 000 voxels.
    """
    from scipy.optimize import least_squares

    def f(n, v, a, la, lb):
        return n ** a * (np.exp(la) + np.exp(lb) * v)

    x0 = [1.0, np.log(t.min() / n.min()), np.log(t.min() / n.min() / v.max())]
    sol = least_squares(lambda p: np.log(f(n, v, *p)) - np.log(t), x0)
    a, la, lb = sol.x
    params = {"a": float(a), "log_alpha": float(la), "log_beta": float(lb)}
    return _Model(f, params, float(np.max(np.abs(np.expm1(sol.fun)))))


def memory_bound(n, v, base_mb, chunk=4096, features=768):
    """Upper bound of the encoding's peak MB from its allocations (not a fit).

    ``base_mb`` (Python, torch, small data: the smallest measured peak) + the fMRI,
    float32 ``4 n V`` bytes + the features, float32 and a float64 copy ``12 n D`` + one
    voxel chunk's working set, at most ``32 n chunk`` bytes (float32 rows, float64 copy,
    inner-fold copies, held-out predictions) + the block of held-out predictions for
    several alphas, capped at 256 MiB by :mod:`lidutils.ridge`.
    """
    return float(base_mb + (4 * n * v + 12 * n * features + 32 * n * min(v, chunk)) / 2**20 + 256)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=["cpu", "cuda", "both"], default="both")
    ap.add_argument("--quick", action="store_true", help="smaller fractions")
    ap.add_argument("--extract-images", type=int, default=64)
    ap.add_argument("--out", default="benchmarks/bench_paper.json", help="JSON of every measurement")
    ap.add_argument("--resume", action="store_true", help="reuse the measurements already in --out")
    args = ap.parse_args(argv)
    if args.resume and Path(args.out).exists():
        _DONE.update(json.loads(Path(args.out).read_text()).get("steps", {}))

    import torch

    devices = ["cpu", "cuda"] if args.device == "both" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        devices.remove("cuda")
        print("# CUDA column skipped: torch.cuda.is_available() is False on this machine.")
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch "
               f"{torch.__version__} (CPU steps on 1 thread), load average "
               f"{os.getloadavg()[0]:.1f}" + (f", GPU {torch.cuda.get_device_name(0)}" if "cuda" in devices else ""))
    print(f"# lidutils paper-tier benchmark | {machine}")
    q = args.quick
    lid_ns = [1250, 2500, 5000] if q else [2500, 5000, 10000]
    # the last point (largest n * V) also checks the extrapolation: predicted from the others
    enc_grid = ([(500, 250), (1000, 250), (2000, 250), (1000, 1000), (1000, 2000), (2000, 1000), (4000, 4096)]
                if q else [(1000, 500), (2000, 500), (4000, 500), (2000, 2000), (2000, 8000), (4000, 2000),
                           (8000, 8192)])
    rep = {"machine": machine, "devices": devices, "quick": q}

    flops = run_step("flops")["rows"]
    rep["flops"] = flops
    gf = {r["name"]: r["gflops"] for r in flops}
    for dev in devices:
        res = rep[dev] = {"extract": {}, "lid": [], "encoding": []}
        for m in TIMED_MODELS:
            r = run_step("extract", model=m, n_images=args.extract_images, device=dev)
            res["extract"][m] = r
            print(f"[{dev}] extract {m:32s} wall {r['seconds'] / r['n'] * 1e3:8.1f} ms/image, CPU "
                  f"{r['cpu_seconds'] / r['n'] * 1e3:8.1f} ms/image  {gf[m]:6.2f} GFLOPs  peak {r['peak_mb']:7.0f} MB")
        c, b = power_fit([gf[m] for m in TIMED_MODELS],
                         [res["extract"][m][_basis(dev)] / res["extract"][m]["n"] for m in TIMED_MODELS])
        res["extract_fit"] = {"c": c, "b": b}
        for n in lid_ns:
            r = run_step("lid", n=n, device=dev)
            res["lid"].append({"n": n, **r})
            print(f"[{dev}] lid_profile n={n:6d} wall {r['seconds']:8.2f} s, CPU {r['cpu_seconds']:8.2f} s  "
                  f"peak {r['peak_mb']:7.0f} MB")
        for n, v in enc_grid:
            r = run_step("encoding", n=n, v=v, device=dev)
            res["encoding"].append({"n": n, "v": v, **r})
            print(f"[{dev}] encoding n={n:6d} V={v:6d} wall {r['seconds']:8.2f} s, CPU {r['cpu_seconds']:8.2f} s  "
                  f"peak {r['peak_mb']:7.0f} MB")
        n_h, v_h = (1000, 500) if q else (2000, 1000)
        res["himalaya"] = h = run_step("himalaya", n=n_h, v=v_h, device=dev)
        h.update(n=n_h, v=v_h)
        print(f"[{dev}] himalaya n={n_h} V={v_h}: max |dR2| {h['max_abs_dr2']:.2e}, same alpha "
              f"{h['same_alpha']:.3f}, ridge time lidutils {h['seconds_lidutils_ridge']:.2f} s / himalaya "
              f"{h['seconds_himalaya_ridge']:.2f} s")
        res["basis"] = _basis(dev)
        res["summary"] = summarize(res, gf)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    rep["steps"] = _DONE
    Path(args.out).write_text(json.dumps(rep, indent=2))
    print(markdown(rep))
    return rep


def summarize(res, gf):
    key = res["basis"]
    lid_c, lid_a = power_fit([r["n"] for r in res["lid"]], [r[key] for r in res["lid"]])
    lid_mem = power_fit([r["n"] for r in res["lid"]], [r["peak_mb"] for r in res["lid"]])
    e = res["encoding"]
    n_e, v_e = np.array([r["n"] for r in e], float), np.array([r["v"] for r in e], float)
    t_e = np.array([r[key] for r in e])
    enc_model = encoding_fit(n_e, v_e, t_e)
    big = int(np.argmax(n_e * v_e))
    rest = np.arange(len(e)) != big
    check = {"n": int(n_e[big]), "v": int(v_e[big]), "measured": float(t_e[big]),
             "predicted_from_others": encoding_fit(n_e[rest], v_e[rest], t_e[rest])(n_e[big], v_e[big])}
    base_mb = min(r["peak_mb"] for r in e)
    c, b = res["extract_fit"]["c"], res["extract_fit"]["b"]
    lid_s = lid_c * NSD_IMAGES ** lid_a
    enc_s = enc_model(NSD_IMAGES, NSD_VERTICES)
    enc_roi = enc_model(NSD_IMAGES, ROI_VERTICES)
    per_model = {m: c * g ** b for m, g in gf.items()}  # seconds per image
    total = sum(per_model[m] * NSD_ALL_IMAGES + N_SUBJECTS * (lid_s + enc_s) for m in gf)
    return {"lid_exponent": lid_a, "lid_seconds_subject": lid_s, "lid_peak_mb_subject": lid_mem[0] * NSD_IMAGES ** lid_mem[1],
            "encoding_fit": enc_model.params, "encoding_seconds_subject": enc_s, "encoding_seconds_rois": enc_roi,
            "encoding_fit_max_rel_residual": enc_model.max_rel_residual,
            "encoding_extrapolation_check": check,
            "encoding_peak_mb_subject": memory_bound(NSD_IMAGES, NSD_VERTICES, base_mb),
            "encoding_peak_mb_measured": {f"{int(a)}x{int(b)}": r["peak_mb"] for a, b, r in zip(n_e, v_e, e)},
            "fmri_mb_subject": NSD_IMAGES * NSD_VERTICES * 4 / 2**20,
            "extract_exponent": b, "extract_seconds_per_image": per_model,
            "total_hours": total / 3600, "n_models": len(gf)}


def markdown(rep):
    lines = []
    for dev in rep["devices"]:
        res, s = rep[dev], rep[dev]["summary"]
        unit = "CPU core-seconds (process CPU time)" if res["basis"] == "cpu_seconds" else "wall seconds"
        key = res["basis"]
        lines += [f"\n### {dev.upper()}: {rep['machine']}\n", f"Times are {unit}.\n",
                  "| model | GFLOPs | input | measured ms/image | peak MB | h / subject (10 000 images) |",
                  "|---|---|---|---|---|---|"]
        for m, r in res["extract"].items():
            g = next(f for f in rep["flops"] if f["name"] == m)
            lines.append(f"| {m} | {g['gflops']:.2f} | {r['input']} | {r[key] / r['n'] * 1e3:.1f} | "
                         f"{r['peak_mb']:.0f} | {r[key] / r['n'] * NSD_IMAGES / 3600:.2f} |")
        grid = ", ".join(f"({r['n']}, {r['v']})" for r in res["encoding"])
        lid_ns = ", ".join(str(r["n"]) for r in res["lid"])
        lines += ["", "| step at one NSD subject | measured at | growth exponent | extrapolated time | peak memory |",
                  "|---|---|---|---|---|",
                  f"| LID profile (K = 50, 1000; 10 000 x 300) | n = {lid_ns} | "
                  f"n^{s['lid_exponent']:.2f} | {s['lid_seconds_subject']:.0f} s | {s['lid_peak_mb_subject']:.0f} MB |",
                  f"| voxelwise encoding (10 000 x 300 PCs x 39 548 vertices) | (n, V) = {grid} | "
                  f"n^{s['encoding_fit']['a']:.2f} (α + β V), max residual "
                  f"{100 * s['encoding_fit_max_rel_residual']:.0f} % | {s['encoding_seconds_subject'] / 3600:.2f} h "
                  f"(15 000 ROI vertices: {s['encoding_seconds_rois'] / 3600:.2f} h) | "
                  f"≤ {s['encoding_peak_mb_subject']:.0f} MB (bound; fMRI alone {s['fmri_mb_subject']:.0f} MB; "
                  f"measured {max(s['encoding_peak_mb_measured'].values()):.0f} MB at the largest point) |",
                  f"| **full run**: {s['n_models']} PAPER_MODELS x 8 subjects | extraction of 75 086 images per model "
                  f"from GFLOPs (t ∝ GFLOPs^{s['extract_exponent']:.2f}) + 8 x (LID + encoding) | | "
                  f"**{s['total_hours']:.0f} h** | |"]
        c = s["encoding_extrapolation_check"]
        lines += ["", f"Extrapolation check: the encoding fit without the largest point ({c['n']} x {c['v']}) "
                  f"predicts {c['predicted_from_others']:.1f} s there; measured {c['measured']:.1f} s."]
        h = res["himalaya"]
        lines += ["", f"himalaya RidgeCV (n = {h['n']}, V = {h['v']}, same folds, PCs, alpha grid, R² scoring): "
                  f"max |ΔR²| = {h['max_abs_dr2']:.1e} (median {h['median_abs_dr2']:.1e}), same alpha for "
                  f"{100 * h['same_alpha']:.1f} % of voxel-folds; ridge step lidutils {h['seconds_lidutils_ridge']:.1f} s, "
                  f"himalaya {h['seconds_himalaya_ridge']:.1f} s (ratio "
                  f"{h['seconds_himalaya_ridge'] / h['seconds_lidutils_ridge']:.2f})."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
