"""Where the book's build time goes, and what a new user waits for.

Usage::

    python benchmarks/bench_build.py profile [STAGE]      # table of the last build (default _build/book_src)
    python benchmarks/bench_build.py ci [--keep DIR]       # fresh clone: make test, make book, make check-book
    python benchmarks/bench_build.py schedules             # same results with chapters serial and 2 at a time

``profile`` reads an executed build (seconds only, nothing is run): per chapter, the
build's wall time (``build_profile.json``) and the papermill duration of each code
cell above ``--min-seconds``, labelled by the cell's first line (a cell is one step of
the chapter: setup, the primary analysis, the K curve, the robustness grid, ...); and
for the zoo trained by the build, the summed CPU seconds of its networks per data set
and family (:func:`lidutils.book.zoo.zoo_summary`).

``ci`` is the measurement behind the README's figures: ``git clone`` of the current
commit into an empty folder (no ``.venv``, no caches; ``../shared/data`` linked beside it
as on CI), then the three steps of ``.ci/run`` one after another, each timed, then the
profile of that cold build. It writes ``benchmarks/build_profile.json`` (the per-chapter
seconds that ``make book`` uses for its time-left estimate) with ``--write-profile``.

``schedules`` builds the book twice on the smoke grid into empty caches, with
``--jobs 1`` and ``--jobs 3`` (the default), and compares every number of every
``results/*.json``: scheduling must not change a result.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _clock(s):
    s = int(round(s))
    return f"{s // 60:d} min {s % 60:02d} s"


def cell_profile(stage, min_seconds=5.0):
    """Rows (chapter, seconds, first line of the cell) of every executed code cell above ``min_seconds``."""
    import nbformat

    rows = []
    for nb_path in sorted(list((Path(stage) / "notebooks").glob("*.ipynb")) + [Path(stage) / "book" / "claims.ipynb"]):
        if not nb_path.exists():
            continue
        nb = nbformat.read(str(nb_path), as_version=4)
        for cell in nb.cells:
            dur = (cell.metadata.get("papermill") or {}).get("duration")
            if cell.cell_type != "code" or dur is None or dur < min_seconds:
                continue
            lines = [ln for ln in cell.source.splitlines() if ln.strip() and not ln.startswith(("%", "#", "from ", "import "))]
            rows.append((nb_path.stem, float(dur), (lines[0] if lines else cell.source.splitlines()[0])[:80]))
    return rows


def zoo_profile(cache_dir):
    """Summed training CPU and wall seconds of the zoo's networks, per data set and family."""
    import pandas as pd

    from lidutils.book.zoo import zoo_summary

    t = zoo_summary(Path(cache_dir) / "zoo")
    if not len(t):
        return pd.DataFrame()
    t = t[t["final"]] if "final" in t else t
    t = t.assign(penalised=t.get("penalty_weight", 0) != 0)
    return (t.groupby(["data_set", "arch", "penalised"])
             .agg(networks=("key", "nunique"), cpu_s=("cpu_seconds", "sum"), wall_s=("train_seconds", "sum"))
             .round(0).reset_index())


def print_profile(stage, cache_dir, min_seconds=5.0):
    prof_file = Path(stage) / "build_profile.json"
    chapters = json.loads(prof_file.read_text()).get("chapters", {}) if prof_file.exists() else {}
    print(f"## Build profile of {stage}\n")
    if chapters:
        print("| chapter | seconds |\n|---|---|")
        for k, v in sorted(chapters.items(), key=lambda kv: -kv[1]):
            print(f"| {k} | {v:.0f} |")
    rows = cell_profile(stage, min_seconds)
    if rows:
        print(f"\n| chapter | cell (first line) | seconds |\n|---|---|---|")
        for ch, dur, line in sorted(rows, key=lambda r: -r[1]):
            print(f"| {ch} | `{line}` | {dur:.0f} |")
    z = zoo_profile(cache_dir)
    if len(z):
        print("\nZoo training (summed over networks; training processes run 2 at a time):\n")
        print(z.to_markdown(index=False) if hasattr(z, "to_markdown") else z.to_string(index=False))
    return chapters, rows


def _timed(cmd, cwd, env, log):
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        rc = subprocess.run(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
    return rc, time.perf_counter() - t0


def ci(keep=None, write_profile=False):
    """Fresh clone, then make test / make book / make check-book, each timed."""
    base = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="lidbook-ci-"))
    clone = base / "repo"
    if clone.exists():
        shutil.rmtree(clone)
    base.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    shared = ROOT.parent / "shared"
    if shared.is_dir() and not (base / "shared").exists():
        (base / "shared").symlink_to(shared)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "LIDUTILS_"))}
    env["CI"] = "true"
    # an installer cache of its own, empty, as on a fresh CI machine (uv hard-links from a warm one)
    env["UV_CACHE_DIR"] = str(base / "uv-cache")
    shutil.rmtree(base / "uv-cache", ignore_errors=True)
    times, t_all = {}, time.perf_counter()
    for step in ("test", "book", "check-book"):
        rc, t = _timed(["make", step], clone, env, base / f"{step}.log")
        times[f"make {step}"] = t
        print(f"make {step}: {_clock(t)} (exit {rc}; log {base / f'{step}.log'})", flush=True)
        if rc != 0:  # keep measuring the other steps; .ci/run itself would stop here
            print(Path(base / f"{step}.log").read_text()[-3000:])
            times[f"make {step} FAILED"] = t
    times[".ci/run in all"] = time.perf_counter() - t_all
    print("\n| step | time |\n|---|---|")
    for k, v in times.items():
        print(f"| `{k}` | {_clock(v)} |")
    print(f"\nmachine: {os.cpu_count()} CPUs, load average now {os.getloadavg()[0]:.2f}\n")
    chapters, _ = print_profile(clone / "_build" / "book_src", clone / "data" / "cache")
    if write_profile and chapters:
        (ROOT / "benchmarks" / "build_profile.json").write_text(
            json.dumps({"chapters": {k: round(v, 1) for k, v in chapters.items()},
                        "ci": {k: round(v, 1) for k, v in times.items()}}, indent=1, sort_keys=True) + "\n")
    return times


def _numbers(obj, path=""):
    """Every number in a results JSON, by its path (parameters and paths excluded)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k not in ("parameters", "generated", "notebook_path", "build", "cost"):  # cost: measured seconds
                yield from _numbers(v, f"{path}/{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _numbers(v, f"{path}[{i}]")
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield path, obj


def compare_results(a, b, tol=0.0):
    """Paths whose numbers differ between two results folders (``[]`` when identical)."""
    diffs = []
    files = sorted({p.name for p in Path(a).glob("*.json")} | {p.name for p in Path(b).glob("*.json")})
    for name in files:
        fa, fb = Path(a) / name, Path(b) / name
        if not (fa.exists() and fb.exists()):
            diffs.append(f"{name}: only in one build")
            continue
        na, nb = dict(_numbers(json.loads(fa.read_text()))), dict(_numbers(json.loads(fb.read_text())))
        for key in sorted(set(na) | set(nb)):
            va, vb = na.get(key), nb.get(key)
            if va is None or vb is None or (va != vb and not (abs(va - vb) <= tol)):
                if not (va != va and vb != vb):  # NaN == NaN here
                    diffs.append(f"{name}{key}: {va} vs {vb}")
    return diffs


def schedules(params=("zoo_grid", "smoke", "n_boot", "200", "n_perm", "300")):
    """Build twice on empty caches (chapters serial, then 3 at a time); results must be identical."""
    base = Path(tempfile.mkdtemp(prefix="lidbook-sched-"))
    extra = [x for i in range(0, len(params), 2) for x in ("-p", params[i], params[i + 1])]
    out = {}
    for jobs in (1, 3):
        d = base / f"jobs{jobs}"
        cmd = [sys.executable, str(ROOT / "scripts" / "build_book.py"), "--no-html", "--jobs", str(jobs),
               "--stage", str(d / "stage"), "--results", str(d / "results"), "--cache-dir", str(d / "cache"), *extra]
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        out[jobs] = time.perf_counter() - t0
        print(f"--jobs {jobs}: {_clock(out[jobs])}", flush=True)
    diffs = compare_results(base / "jobs1" / "results", base / "jobs3" / "results")
    n = len(list((base / "jobs1" / "results").glob("*.json")))
    print(f"{n} results files; " + ("identical numbers" if not diffs else f"{len(diffs)} differences:"))
    for d in diffs[:30]:
        print("  ", d)
    return diffs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("profile")
    p.add_argument("stage", nargs="?", default=str(ROOT / "_build" / "book_src"))
    p.add_argument("--cache-dir", default=str(ROOT / "data" / "cache"))
    p.add_argument("--min-seconds", type=float, default=5.0)
    c = sub.add_parser("ci")
    c.add_argument("--keep", default=None, help="folder for the clone and logs (default: a new temporary one)")
    c.add_argument("--write-profile", action="store_true", help="update benchmarks/build_profile.json")
    sub.add_parser("schedules")
    args = ap.parse_args(argv)
    if args.cmd == "profile":
        print_profile(args.stage, args.cache_dir, args.min_seconds)
    elif args.cmd == "ci":
        ci(args.keep, args.write_profile)
    else:
        raise SystemExit(1 if schedules() else 0)


if __name__ == "__main__":
    main()
