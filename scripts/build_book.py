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
4. tags the cells of the executed copies for the pages (:func:`tag_cells`: papermill's
   injected cell removed, the parameters cell and long cells folded) and lists the
   warnings still printed in them;
5. runs ``jupyter-book build <staging> --path-output . -W`` so the site lands in
   ``_build/html``; a failing cell (papermill raises) or a warning (``-W``) fails it.

The kernels start with :data:`KERNEL_STARTUP` (the figure style of
:func:`lidutils.book.plotting.book_style`, warnings without machine paths). The notebooks
are the chapters ``notebooks/*`` of ``_toc.yml``; ``make check-book`` then opens the
site in headless Chromium (``scripts/check_book.py``).

Caches (zoo checkpoints, features, per-model measurements) go to ``--cache-dir``
(default ``data/cache``, gitignored), so a warm rebuild is fast. A notebook whose
source, parameters and ``lidutils`` sources are unchanged since its last execution
(and whose results files still exist) is not executed again (``--force`` does).

Usage::

    python scripts/build_book.py                       # everything, offline tier
    python scripts/build_book.py --only 01 03 --no-html
    python scripts/build_book.py -p zoo_grid smoke -p n_boot 200   # quick look
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lidutils import _progress

ROOT = Path(__file__).resolve().parents[1]


def toc_notebooks(toc=ROOT / "_toc.yml"):
    """Names of the ``notebooks/*`` chapters of ``_toc.yml``, in the book's order."""
    import yaml

    found = []

    def walk(node):
        if isinstance(node, dict):
            f = node.get("file")
            if isinstance(f, str) and f.startswith("notebooks/"):
                found.append(Path(f).with_suffix("").name if f.endswith(".ipynb") else Path(f).name)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(yaml.safe_load(Path(toc).read_text()))
    return list(dict.fromkeys(found))


NOTEBOOKS = toc_notebooks()
#: Code cells longer than this many lines are folded (tag ``hide-input``) in the pages.
LONG_CELL_LINES = 25
_SHOWN_TAGS = {"remove-cell", "remove-input", "hide-input", "hide-cell", "remove-output"}

#: Run by every kernel that executes a notebook of the book (an IPython startup file in
#: a private IPYTHONDIR): the book's figure style, warnings printed as one sentence
#: without the file path of the machine, library deprecation notices silenced.
KERNEL_STARTUP = '''\
# Written by scripts/build_book.py for the kernels that execute the book's notebooks.
import warnings as _w


def _one_line(message, category, filename, lineno, line=None):
    return f"{category.__name__}: {message}\\n"


_w.formatwarning = _one_line
for _c in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
    _w.filterwarnings("ignore", category=_c, module=r"(?!lidutils)")
_w.filterwarnings("ignore", message="IProgress not found")
# Tables show every label in full (pandas cuts cells at 50 characters: "zoo-fmnist: clean, conv...");
# wide tables scroll inside the content column (book/_ext/static/lidbook.css).
import pandas as _pd
_pd.set_option("display.max_colwidth", None)
try:
    from lidutils.book.plotting import book_style as _book_style
    _book_style()
except ImportError:
    pass
# Several notebooks execute at once on the book's 2-core machines: one math thread each, also for a
# chapter that runs alone, so that every result is the same whatever the schedule (float64 sums
# split over two threads differ in the last bits). (Measured: small float64 SVDs of the ridge
# alignment ran 47x slower with 2 threads on a busy machine.)
import torch as _torch
_torch.set_num_threads(1)
'''
#: What each chapter must wait for: the chapters that fill the caches it reads. ``population``
#: trains the zoo that every claim chapter measures (a chapter not listed waits for it);
#: these start at once: 00 and 06 share nothing with the others, and 07 trains a grid of its
#: own (the cells it shares with the zoo are trained once, by whichever chapter locks them first).
NEEDS = {"population": (), "00_validation": (), "06_intervention": (), "07_factorial": (),
         "prefetch-1": (), "prefetch-2": ()}
DEFAULT_NEEDS = ("population",)
#: Two worker processes of :func:`lidutils.book.prefetch.prefetch`, scheduled like chapters that need
#: nothing: they compute the ImageNet group's features and the degradation series, which chapters
#: 01-03 read but which do not depend on the zoo, while ``population`` trains and measures it (its
#: last, single-threaded stage left one core idle for five minutes of the cold build).
PREFETCH = ("prefetch-1", "prefetch-2")
#: The measured profile of a cold build (``benchmarks/bench_build.py``): the time-left estimate of
#: a first build, until the build has a profile of its own (``<stage>/build_profile.json``).
PROFILE = ROOT / "benchmarks" / "build_profile.json"
#: Seconds between two progress lines of a running build.
HEARTBEAT = 30


def _value(text):
    """Parse a ``-p`` value as JSON when possible (numbers, lists, null), else a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def source_key(src, params):
    """Content key of one execution: the notebook, its parameters, the kernels' start-up
    code and the lidutils sources.

    Every analysis is deterministic given these (seeds are parameters; caches hold
    only functions of their own content keys), so an executed copy carrying the
    same key, whose results files still exist, need not be executed again.
    """
    h = hashlib.sha256()
    h.update(Path(src).read_bytes())
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    h.update(KERNEL_STARTUP.encode())
    for f in sorted((ROOT / "lidutils").rglob("*")):
        if f.is_file() and f.suffix in (".py", ".txt", ".json", ".csv"):
            h.update(str(f.relative_to(ROOT)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def _up_to_date(dst, key):
    import nbformat

    if not dst.exists():
        return False
    meta = nbformat.read(str(dst), as_version=4).metadata.get("lidutils_build", {})
    return meta.get("key") == key and all(Path(f).exists() for f in meta.get("outputs", []))


def needs(name, todo):
    """The chapters of ``todo`` that ``name`` must wait for (:data:`NEEDS`)."""
    return [n for n in NEEDS.get(name, DEFAULT_NEEDS) if n in todo and n != name]


def expected_seconds(stage):
    """Per-chapter seconds of the last build (``<stage>/build_profile.json``, else :data:`PROFILE`)."""
    for f in (Path(stage) / "build_profile.json", PROFILE):
        if f.is_file():
            prof = json.loads(f.read_text())
            return {k: float(v) for k, v in prof.get("chapters", prof).items() if isinstance(v, (int, float))}
    return {}


def _clock(seconds):
    seconds = int(max(0, seconds))
    return f"{seconds // 60:d}:{seconds % 60:02d}"


def run_scheduled(todo, start, jobs=2, expected=None, heartbeat=HEARTBEAT, say=print):
    """Execute the chapters ``todo`` as the dependency graph :data:`NEEDS` allows, ``jobs`` at once.

    ``start(name)`` executes one chapter and returns its seconds (None when it was up
    to date). Ready chapters start longest first (``expected``: seconds per chapter from
    the last build), the :data:`PREFETCH` workers when no ready chapter is left. Every ``heartbeat``
    seconds ``say`` gets a line: elapsed time, chapters done, each running chapter with
    its elapsed time, its estimate and its latest status (``progress(name)``).
    Returns ``{name: seconds}``; the first failure is raised after the running chapters end.
    """
    from concurrent.futures import FIRST_COMPLETED, wait

    expected = expected or {}
    pending, running, timings, began = list(todo), {}, {}, {}
    t0 = time.perf_counter()
    failure = None
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        while (pending and failure is None) or running:
            if failure is None:
                ready = sorted((n for n in pending if not any(d in pending or d in running.values()
                                                              for d in needs(n, todo))),
                               key=lambda n: (n in PREFETCH, -expected.get(n, 0.0)))  # prefetch fills free slots
                while ready and len(running) < jobs:
                    name = ready.pop(0)
                    pending.remove(name)
                    say(f"[build_book] {'step' if name in PREFETCH else 'chapter'} "
                        f"{len(timings) + len(running) + 1}/{len(todo)}: {name}")
                    began[name] = time.perf_counter()
                    running[pool.submit(start, name)] = name
            finished, _ = wait(list(running), timeout=heartbeat, return_when=FIRST_COMPLETED)
            for fut in finished:
                name = running.pop(fut)
                try:
                    t = fut.result()
                except BaseException as exc:  # noqa: BLE001 - reported after the others end
                    failure = failure or exc
                    say(f"[build_book]   {name}: FAILED ({type(exc).__name__})")
                    continue
                timings[name] = t or 0.0
                say(f"[build_book]   {name}: " + ("unchanged, not re-executed" if t is None else f"{t:.1f} s"))
            if running and not finished:
                say(status_line(time.perf_counter() - t0, timings, running.values(), began, expected, pending,
                                jobs))
    if failure is not None:
        raise failure
    return {n: timings[n] for n in todo if n in timings}


def status_line(elapsed, done, running, began, expected, pending, jobs):
    """One heartbeat line: elapsed, chapters done, each running chapter's time, estimate and status."""
    now = time.perf_counter()
    parts = []
    left = [expected.get(n, 0.0) for n in pending]
    for name in running:
        took = now - began[name]
        est = expected.get(name)
        left.append(max(0.0, (est or 0.0) - took))
        status = _progress.last_line(progress_file(name)) if progress_file(name) else ""
        parts.append(f"{name} {_clock(took)}" + (f"/~{_clock(est)}" if est else "") + (f" [{status[:70]}]" if status else ""))
    eta = max(max(left, default=0.0), sum(left) / max(1, jobs))
    return (f"[build_book] {_clock(elapsed)} elapsed, {len(done)} done"
            + (f", ~{_clock(eta)} left (last build's profile)" if expected else "") + " | " + " | ".join(parts))


_PROGRESS_DIR = None


def progress_file(name):
    """The status file a chapter's kernel writes (``$LIDUTILS_PROGRESS_FILE``), or None."""
    return _PROGRESS_DIR / f"{name}.txt" if _PROGRESS_DIR is not None else None


def _child_env(progress=None):
    """The environment of a child process, writing its status lines to an emptied ``progress`` file."""
    env = dict(os.environ)
    if progress is not None:
        Path(progress).write_text("")
        env["LIDUTILS_PROGRESS_FILE"] = str(progress)
    return env


def execute_isolated(src, dst, params, force=False, progress=None):
    """:func:`execute` in a child process, with its own progress file.

    Environment variables reach a kernel only through the process that starts it, so
    chapters executed side by side each get a process of their own.
    """
    env = _child_env(progress)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--execute-one", str(src), str(dst),
           json.dumps(params, default=str)] + (["--force"] if force else [])
    out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
    sys.stdout.write("".join(line + "\n" for line in out.stdout.splitlines() if not line.startswith("RESULT ")))
    if out.returncode != 0:
        raise RuntimeError(f"{Path(src).name} failed (exit {out.returncode}); its error is printed above.")
    result = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(result[-1][7:]) if result else None


def prefetch_params(chapters, params, stage, force=False):
    """The distinct parameter sets (defaults of the chapter's parameters cell, then ``params``)
    with which the offline-tier ``chapters`` that build the ImageNet group and are not up to
    date in ``stage`` set themselves up."""
    from lidutils.book.params import notebook_parameter_defaults

    out = []
    for name in chapters:
        src = ROOT / "notebooks" / f"{name}.ipynb"
        declared = notebook_parameter_defaults(src) if src.exists() else {}
        if "models" not in declared:
            continue
        use = {k: v for k, v in params.items() if k in declared}
        if not force and _up_to_date(Path(stage) / "notebooks" / f"{name}.ipynb", source_key(src, use)):
            continue
        eff = {**declared, **use}
        if eff.get("tier") == "offline" and eff not in out:
            out.append(eff)
    return out


def run_prefetch(param_sets, progress=None):
    """:func:`lidutils.book.prefetch.prefetch` of each parameter set in a child process (one math
    thread, as the kernels: the same bits); its seconds."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--prefetch", json.dumps(param_sets, default=str)],
                   env=_child_env(progress), cwd=ROOT, check=True)
    return time.perf_counter() - t0


def execute(src, dst, params, kernel="python3", force=False):
    """Run one notebook with papermill, passing only the parameters it declares.

    Skipped (returns None) when ``dst`` was executed from the same :func:`source_key`
    and the files it wrote are still there, unless ``force``.
    """
    import nbformat
    import papermill as pm

    declared = pm.inspect_notebook(str(src))
    use = {k: v for k, v in params.items() if k in declared}
    key = source_key(src, use)
    if not force and _up_to_date(dst, key):
        return None
    out_dir = ROOT / use.get("out_dir", "results")  # kernels run in ROOT
    before = {p: p.stat().st_mtime_ns for p in out_dir.glob("*")} if out_dir.is_dir() else {}
    t0 = time.perf_counter()
    pm.execute_notebook(str(src), str(dst), parameters=use, cwd=str(ROOT), kernel_name=kernel,
                        progress_bar=False, log_output=False)
    wrote = [str(p) for p in out_dir.glob("*") if p.is_file() and before.get(p) != p.stat().st_mtime_ns]
    nb = nbformat.read(str(dst), as_version=4)
    nb.metadata["lidutils_build"] = {"key": key, "outputs": sorted(wrote)}
    nbformat.write(nb, str(dst))
    return time.perf_counter() - t0


def tag_cells(nb, long_lines=LONG_CELL_LINES):
    """Cell tags for the rendered page (in place; idempotent); returns ``nb``.

    - papermill's ``injected-parameters`` cell: ``remove-cell`` (the values used are in
      the results files' ``parameters``);
    - the ``parameters`` cell: ``hide-input`` (folded, one click to open);
    - code cells longer than ``long_lines`` lines: ``hide-input``.

    Cells that already carry a remove-/hide- tag keep theirs.
    """
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags:
            if "remove-cell" not in tags:
                tags.append("remove-cell")
            continue
        if _SHOWN_TAGS & set(tags):
            continue
        if "parameters" in tags or len(cell.source.splitlines()) > long_lines:
            tags.append("hide-input")
    return nb


def warnings_in(nb):
    """Warning lines printed in the outputs of an executed notebook (for the build log)."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            text = out.get("text", "") if out.get("output_type") == "stream" else ""
            for line in str(text).splitlines():
                if "Warning" in line.split(":")[0]:
                    found.append(f"cell {i}: {line.strip()[:200]}")
    return found


def kernel_setup(stage):
    """Point IPython at a private profile whose startup file is :data:`KERNEL_STARTUP`."""
    ipdir = Path(stage) / ".ipython"
    start = ipdir / "profile_default" / "startup"
    start.mkdir(parents=True, exist_ok=True)
    (start / "00-lidbook.py").write_text(KERNEL_STARTUP)
    os.environ["IPYTHONDIR"] = str(ipdir)


def _from_root(path):
    """``path`` relative to the repository root (the kernels' working directory) when it
    lies inside it, so the published pages show no machine-specific absolute paths."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def write_archive(results, downloads, params):
    """``<downloads>/lid_results_archive.zip`` of the results in ``results`` (scripts/results_archive.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("results_archive", ROOT / "scripts" / "results_archive.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    path = mod.write(results, Path(downloads) / mod.NAME, params=params)
    print(f"[build_book] results archive: {_from_root(path)}", flush=True)
    return path


def _write_toc(path, chapters):
    """Rewrite a staged ``_toc.yml`` keeping only the ``notebooks/*`` chapters named in ``chapters``."""
    import yaml

    def keep(node):
        if isinstance(node, dict):
            f = node.get("file")
            if isinstance(f, str) and f.startswith("notebooks/") and Path(f).with_suffix("").name not in chapters:
                return None
            return {k: [c for c in (keep(x) for x in v) if c is not None] if isinstance(v, list) else v
                    for k, v in node.items()}
        return node

    Path(path).write_text(yaml.safe_dump(keep(yaml.safe_load(Path(path).read_text())), sort_keys=False))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stage", default=None, help="staging folder (default _build/book_src)")
    ap.add_argument("--results", default=None, help="results folder (default results/)")
    ap.add_argument("--cache-dir", default=str(ROOT / "data" / "cache"))
    ap.add_argument("--only", nargs="*", help="notebook prefixes to execute (default: all)")
    ap.add_argument("--no-html", action="store_true", help="execute only, skip jupyter-book")
    ap.add_argument("--jobs", type=int, default=3,
                    help="chapters executed at once, as their dependencies allow (default 3 on the book's 2 cores: "
                         "a chapter waiting for a cache entry another one computes, or for its training workers, "
                         "leaves its core to the third)")
    ap.add_argument("--force", action="store_true",
                    help="re-execute every notebook even if its sources and parameters are unchanged")
    ap.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="parameter passed to every notebook that declares it")
    ap.add_argument("--output", default=None, help="the site goes to OUTPUT/_build/html (default: the repository)")
    ap.add_argument("--dryrun", action="store_true",
                    help="the paper tier's code path on stand-ins (tier=paper-dryrun): the claim chapters "
                         "01-05 and the claims page, into _build/dryrun (results never mix with the book's)")
    ap.add_argument("--execute-one", nargs=3, metavar=("SRC", "DST", "PARAMS"), help=argparse.SUPPRESS)
    ap.add_argument("--prefetch", metavar="PARAM_SETS", help=argparse.SUPPRESS)
    ap.add_argument("--no-prefetch", action="store_true",
                    help="do not compute the chapters' zoo-independent inputs ahead of them (lidutils.book.prefetch)")
    args = ap.parse_args(argv)
    if args.prefetch:  # a child of run_prefetch
        import torch

        from lidutils import _progress
        from lidutils.book.prefetch import prefetch

        torch.set_num_threads(1)  # as the kernels (KERNEL_STARTUP): the same features, bit for bit
        for p in json.loads(args.prefetch):
            prefetch(p, say=_progress.note)
        return
    if args.execute_one:  # a child of execute_isolated: one chapter, its seconds on the last line
        src, dst, par = args.execute_one
        print("RESULT " + json.dumps(execute(Path(src), Path(dst), json.loads(par), force=args.force)), flush=True)
        return
    chapters = list(NOTEBOOKS)
    base = ROOT / "_build" / "dryrun" if args.dryrun else ROOT
    args.stage = args.stage or str(base / "_build" / "book_src" if not args.dryrun else base / "book_src")
    args.results = args.results or str(base / "results")
    args.output = args.output or str(base)
    if args.dryrun:
        args.p = [["tier", "paper-dryrun"], ["models", "null"], ["controls", "[]"], ["n_images", "200"]] + args.p
        chapters = [n for n in NOTEBOOKS if n[:2] in ("01", "02", "03", "04", "05")]

    stage = Path(args.stage)
    # The Makefile exports MPLBACKEND=Agg (headless); the kernels need the inline backend
    # or figures would not be embedded in the executed notebooks.
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    # Progress bars are noise in a static page (and tqdm.auto warns without ipywidgets).
    os.environ["TQDM_DISABLE"] = "1"  # lidutils' own bars write to the chapter's progress file
    os.environ["PYTHONWARNINGS"] = "ignore:IProgress not found:Warning"
    kernel_setup(stage)
    params = dict(out_dir=_from_root(args.results), cache_dir=_from_root(args.cache_dir),
                  results_dir=_from_root(args.results),
                  download_dir=_from_root(stage / "book" / "downloads"))
    params.update({k: _value(v) for k, v in args.p})

    # 1. sources
    stage.mkdir(parents=True, exist_ok=True)
    for f in ("_config.yml", "_toc.yml"):
        shutil.copy2(ROOT / f, stage / f)
    if chapters != NOTEBOOKS:  # a book of the chosen chapters only
        _write_toc(stage / "_toc.yml", chapters)
    for d in ("book", "docs", "course"):  # course/: master notebooks (book/_ext/lidcourse.py)
        if (ROOT / d).is_dir():
            shutil.copytree(ROOT / d, stage / d, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    (stage / "notebooks").mkdir(exist_ok=True)

    # 2.-3. execute
    timings = {}
    todo = [n for n in chapters if not args.only or any(n.startswith(o) for o in args.only)]
    for name in todo:
        if not (ROOT / "notebooks" / f"{name}.ipynb").exists():
            raise SystemExit(f"missing notebook {ROOT / 'notebooks' / name}.ipynb")

    global _PROGRESS_DIR
    _PROGRESS_DIR = stage / ".progress"
    _PROGRESS_DIR.mkdir(parents=True, exist_ok=True)

    # (one chapter at a time leaves no free slot for them: the chapters compute their inputs themselves)
    prefetch_sets = [] if args.no_prefetch or args.jobs < 2 else prefetch_params(todo, params, stage, args.force)
    if prefetch_sets:
        todo = list(PREFETCH) + todo

    def start(name):
        if name in PREFETCH:
            return run_prefetch(prefetch_sets, progress=progress_file(name))
        return execute_isolated(ROOT / "notebooks" / f"{name}.ipynb", stage / "notebooks" / f"{name}.ipynb",
                                params, force=args.force, progress=progress_file(name))

    # The chapters as a dependency graph (NEEDS), args.jobs at a time; caches shared by chapters
    # running side by side are computed once (lidutils.cache.computing).
    t_build = time.perf_counter()
    expected = expected_seconds(stage)
    timings = run_scheduled(todo, start, jobs=args.jobs, expected=expected,
                            say=lambda line: print(line, flush=True))
    # One archive of every results record with its parameters, the commit and the package versions
    # (scripts/results_archive.py), written where the claims page's download link points.
    write_archive(args.results, stage / "book" / "downloads", params)
    timings["claims"] = execute_isolated(ROOT / "book" / "claims.ipynb", stage / "book" / "claims.ipynb",
                                         params, force=True) or 0.0
    timings["chapters_wall"] = time.perf_counter() - t_build
    # Tags for the pages (also on copies executed by an earlier build), and the warnings
    # left in them for whoever maintains the notebooks.
    import nbformat

    for f in [stage / "notebooks" / f"{n}.ipynb" for n in chapters] + [stage / "book" / "claims.ipynb"]:
        if f.exists():
            nb = tag_cells(nbformat.read(str(f), as_version=4))
            nbformat.write(nb, str(f))
            for w in warnings_in(nb):
                print(f"[build_book] warning shown in {f.stem}: {w}", flush=True)
    # 4. render
    if not args.no_html:
        for name in chapters:  # pages not executed this time keep their last executed copy
            if not (stage / "notebooks" / f"{name}.ipynb").exists():
                raise SystemExit(f"{name} has never been executed into {stage}; run without --only.")
        t0 = time.perf_counter()
        # -W: every warning fails the book; a book of some chapters only (the dry run) keeps links to
        # the chapters it leaves out, so there the missing-document warnings are expected.
        strict = ["-W"] if chapters == NOTEBOOKS else []
        cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(stage),
               "--path-output", str(args.output), *strict, "--all"]
        print("[build_book]", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        timings["jupyter-book"] = time.perf_counter() - t0
        print(f"[build_book] site: {Path(args.output) / '_build' / 'html' / 'index.html'}")
    print("[build_book] timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    # the next build's time-left estimate (only chapters actually executed this time)
    prof = expected_seconds(stage) if (stage / "build_profile.json").is_file() else {}
    prof.update({k: v for k, v in timings.items() if v})
    (stage / "build_profile.json").write_text(json.dumps({"chapters": prof}, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
