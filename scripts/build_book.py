#!/usr/bin/env python
"""Execute every claim notebook with papermill, then render the book with ``jupyter-book -W``.

The committed notebooks carry no outputs. This script

1. copies the book sources (``_config.yml``, ``_toc.yml``, ``book/``, ``docs/``) into a
   staging folder (default ``_build/book_src``);
2. executes ``notebooks/00_validation`` … ``05_local_vs_global`` in that order with
   papermill (working directory = repository root, offline tier by default), writing
   the executed copies into the staging folder and the results JSONs into
   ``--results`` (default ``results/``);
3. executes ``book/claims.ipynb`` last (it reads those JSONs);
4. runs ``jupyter-book build <staging> --path-output . -W`` so the site lands in
   ``_build/html``; a failing cell (papermill raises) or a warning (``-W``) fails it.

Caches (zoo checkpoints, features, per-model measurements) go to ``--cache-dir``
(default ``data/cache``, gitignored), so a warm rebuild is fast.

Usage::

    python scripts/build_book.py                       # everything, offline tier
    python scripts/build_book.py --only 01 03 --no-html
    python scripts/build_book.py -p zoo_grid smoke -p n_boot 200   # quick look
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ["00_validation", "01_generalization", "02_model_model", "03_model_brain",
             "04_scaling", "05_local_vs_global"]


def _value(text):
    """Parse a ``-p`` value as JSON when possible (numbers, lists, null), else a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def execute(src, dst, params, kernel="python3"):
    """Run one notebook with papermill, passing only the parameters it declares."""
    import papermill as pm

    declared = pm.inspect_notebook(str(src))
    use = {k: v for k, v in params.items() if k in declared}
    t0 = time.perf_counter()
    pm.execute_notebook(str(src), str(dst), parameters=use, cwd=str(ROOT), kernel_name=kernel,
                        progress_bar=False, log_output=False)
    return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stage", default=str(ROOT / "_build" / "book_src"))
    ap.add_argument("--results", default=str(ROOT / "results"))
    ap.add_argument("--cache-dir", default=str(ROOT / "data" / "cache"))
    ap.add_argument("--only", nargs="*", help="notebook prefixes to execute (default: all)")
    ap.add_argument("--no-html", action="store_true", help="execute only, skip jupyter-book")
    ap.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="parameter passed to every notebook that declares it")
    args = ap.parse_args(argv)

    stage = Path(args.stage)
    os.environ.setdefault("MPLBACKEND", "Agg")
    params = dict(out_dir=str(Path(args.results).resolve()),
                  cache_dir=str(Path(args.cache_dir).resolve()),
                  results_dir=str(Path(args.results).resolve()))
    params.update({k: _value(v) for k, v in args.p})

    # 1. sources
    stage.mkdir(parents=True, exist_ok=True)
    for f in ("_config.yml", "_toc.yml"):
        shutil.copy2(ROOT / f, stage / f)
    for d in ("book", "docs"):
        if (ROOT / d).is_dir():
            shutil.copytree(ROOT / d, stage / d, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    (stage / "notebooks").mkdir(exist_ok=True)

    # 2.-3. execute
    timings = {}
    todo = [n for n in NOTEBOOKS if not args.only or any(n.startswith(o) for o in args.only)]
    for name in todo:
        src = ROOT / "notebooks" / f"{name}.ipynb"
        if not src.exists():
            raise SystemExit(f"missing notebook {src}")
        print(f"[build_book] executing {name} ...", flush=True)
        timings[name] = execute(src, stage / "notebooks" / f"{name}.ipynb", params)
        print(f"[build_book]   {name}: {timings[name]:.1f} s", flush=True)
    timings["claims"] = execute(ROOT / "book" / "claims.ipynb", stage / "book" / "claims.ipynb",
                                params)
    # 4. render
    if not args.no_html:
        for name in NOTEBOOKS:  # pages not executed this time keep their last executed copy
            if not (stage / "notebooks" / f"{name}.ipynb").exists():
                raise SystemExit(f"{name} has never been executed into {stage}; run without --only.")
        t0 = time.perf_counter()
        cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(stage),
               "--path-output", str(ROOT), "-W", "--all"]
        print("[build_book]", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        timings["jupyter-book"] = time.perf_counter() - t0
        print(f"[build_book] site: {ROOT / '_build' / 'html' / 'index.html'}")
    print("[build_book] timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))


if __name__ == "__main__":
    main()
