"""Build the course kit from the master notebooks in ``course/`` (``make course``).

Each master notebook (otter-grader's assign format: questions, solutions, public and
hidden tests, manual questions with a model answer and a rubric) becomes, under
``_build/course/``:

- ``student/<name>.ipynb``: solutions stripped (stubs ``...``), public tests in the
  notebook, the ``parameters`` cell kept (papermill still works on it);
- ``autograder/<name>.zip``: every test, hidden ones included, for ``otter run``
  (offline, no Docker); ``solutions/<name>.ipynb``: the solved notebook;
- ``rubric.md``: the points of every question, the model answer and rubric of every
  question graded by hand; ``README.md``: how to hand out and grade.

Nothing here is kept by hand: the master notebooks are the only source. Functions used by
``tests/test_course.py`` and by the book (``book/_ext/lidcourse.py``) live here too:
:func:`declared_parameters` and :func:`parameter_uses` check that every parameter an
assignment tells a student to pass exists in the target notebook.

Usage: ``python course/build.py [--out _build/course] [--run-tests] [name ...]``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import yaml

from lidutils.book.params import notebook_parameter_defaults

COURSE = Path(__file__).resolve().parent
ROOT = COURSE.parent
OTTER = [sys.executable, "-m", "otter"]


def _env():
    """Environment of the otter processes: one BLAS/OpenMP thread each unless set (several run at once)."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.setdefault(var, "1")
    env.setdefault("MPLBACKEND", "Agg")
    return env


def masters(names=None, course=COURSE):
    """Master notebooks of the course (sorted), or those named."""
    found = sorted((p for p in Path(course).glob("*.ipynb") if not p.name.startswith(".")),
                   key=lambda p: (title(p), p.name))  # "Assignment 1 — ..." first
    if names:
        found = [p for p in found if p.stem in set(names)]
        missing = set(names) - {p.stem for p in found}
        if missing:
            raise SystemExit(f"no master notebook {sorted(missing)} in {course}")
    return found


# ----------------------------------------------------------------------------- otter
def assign(master, out, run_tests=False):
    """``otter assign`` one master notebook into ``out`` (``student/``, ``autograder/``); returns out."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    cmd = OTTER + ["assign", str(master), str(out)] + ([] if run_tests else ["--no-run-tests"])
    res = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    if res.returncode != 0:
        raise RuntimeError(f"otter assign {master.name} failed:\n{res.stdout}\n{res.stderr}")
    return out


def assign_all(paths, work, run_tests=False):
    """Run ``otter assign`` on several masters at once (one process each); {name: folder}."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    procs = {}
    for p in paths:
        out = work / p.stem
        if out.exists():
            shutil.rmtree(out)
        cmd = OTTER + ["assign", str(p), str(out)] + ([] if run_tests else ["--no-run-tests"])
        procs[p.stem] = (subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env()), out)
    done = {}
    for name, (proc, out) in procs.items():
        log, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"otter assign {name} failed:\n{log}")
        done[name] = out
    return done


def grade(autograder_zip, notebook, out_dir):
    """``otter run`` (offline, no Docker): returns {question: (score, max_score)} and the total."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = OTTER + ["run", "-a", str(autograder_zip), "-o", str(out_dir), str(notebook)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    path = out_dir / "results.json"
    if not path.exists():
        raise RuntimeError(f"otter run wrote no results for {notebook}:\n{res.stdout}\n{res.stderr}")
    tests = json.loads(path.read_text())["tests"]
    scores = {t["name"]: (t["score"], t["max_score"]) for t in tests if t.get("max_score") is not None}
    return scores, sum(s for s, _ in scores.values()), sum(m for _, m in scores.values())


# ----------------------------------------------------------------------------- master notebooks
def _raw(cell):
    return cell.cell_type == "raw" and cell.source.lstrip().startswith("#")


def questions(master):
    """Questions of a master notebook: name, points, manual, prompt (markdown), solution (markdown)."""
    nb = nbformat.read(str(master), as_version=4)
    out, q, where = [], None, None
    for cell in nb.cells:
        first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
        if _raw(cell) and first == "# BEGIN QUESTION":
            q = {**yaml.safe_load("\n".join(cell.source.splitlines()[1:])), "prompt": [], "solution": []}
            q.setdefault("manual", False)
            where = "prompt"
        elif _raw(cell) and first == "# END QUESTION":
            out.append(q)
            q, where = None, None
        elif q is not None and _raw(cell) and first in ("# BEGIN SOLUTION", "# BEGIN TESTS"):
            where = "solution" if first == "# BEGIN SOLUTION" else "tests"
        elif q is not None and _raw(cell) and first in ("# END SOLUTION", "# END TESTS"):
            where = "after"
        elif q is not None and cell.cell_type == "markdown" and where in ("prompt", "solution"):
            q[where].append(cell.source)
    return out


def title(master):
    nb = nbformat.read(str(master), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("# "):
            return cell.source.splitlines()[0][2:].strip()
    return Path(master).stem


def rubric(paths):
    """Markdown: per assignment, the points of each question; model answer and rubric of manual ones."""
    lines = ["# Rubric and points", "",
             "Generated by `make course` from the master notebooks in `course/` (do not edit).", ""]
    for p in paths:
        qs = questions(p)
        auto = sum(q["points"] for q in qs if not q["manual"])
        manual = sum(q["points"] for q in qs if q["manual"])
        lines += [f"## {title(p)} (`{p.stem}`)", "",
                  f"{auto + manual} points: {auto} autograded (`otter run`), {manual} graded by hand.", "",
                  "| question | points | graded |", "|---|---|---|"]
        lines += [f"| {q['name']} | {q['points']} | {'by hand' if q['manual'] else 'autograder'} |" for q in qs]
        lines.append("")
        for q in qs:
            if q["manual"]:
                lines += [f"### {q['name']} ({q['points']} points, by hand)", "", *q["prompt"], "",
                          *q["solution"], ""]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- parameters
def declared_parameters(notebook):
    """Names assigned in a notebook's ``parameters`` cell (papermill's declared parameters); none
    without such a cell. Parsed by :func:`lidutils.book.params.notebook_parameter_defaults`."""
    try:
        return set(notebook_parameter_defaults(notebook))
    except ValueError:  # no cell tagged 'parameters'
        return set()


_PM = re.compile(r"papermill\s+(?P<nb>\S+\.ipynb)(?P<rest>(?:[^\n`]|\\\n)*)")
_P = re.compile(r"(?:^|\s)-[py]\s+(?P<name>[A-Za-z_]\w*)")
_DOC = re.compile(r"\{doc\}`(?:[^`<]*<)?(?:\.\./)?notebooks/(?P<nb>[\w]+)>?`")
_INLINE = re.compile(r"`(?P<name>[A-Za-z_]\w*)\s*=[^`=]")


def parameter_uses(text, origin=""):
    """Every (notebook, parameter, where) a text tells a reader to pass.

    - ``papermill <path>.ipynb ... -p NAME VALUE`` (also ``-y``) command lines;
    - in a paragraph (or list item) that links a chapter (``{doc}`../notebooks/NAME```), every inline
      code ``NAME=value`` (the prose form: "rerun chapter 05 with ``space="raw"``").
    The notebook is the file name's stem (``05_local_vs_global``).
    """
    uses = []
    for m in _PM.finditer(text):
        nb = Path(m["nb"]).stem
        for p in _P.finditer(m["rest"].replace("\\\n", " ")):
            uses.append((nb, p["name"], f"{origin}: papermill {m['nb']}"))
    for para in re.split(r"\n\s*\n|\n(?=\s*(?:\d+\.|[-*])\s)", text):  # paragraphs and list items
        docs = [d["nb"] for d in _DOC.finditer(para)]
        if docs:
            for m in _INLINE.finditer(para):
                uses.append((tuple(docs), m["name"], f"{origin}: paragraph linking {docs}"))
    return uses


def notebook_text(path):
    nb = nbformat.read(str(path), as_version=4)
    return "\n\n".join(c.source for c in nb.cells)


def check_parameters(texts, notebooks_dir=ROOT / "notebooks", course_dir=COURSE):
    """Problems: parameters used in ``texts`` ({origin: text}) that the target notebook lacks."""
    known = {p.stem: p for p in list(Path(notebooks_dir).glob("*.ipynb")) + list(Path(course_dir).glob("*.ipynb"))}
    problems = []
    for origin, text in texts.items():
        for nb, name, where in parameter_uses(text, origin):
            targets = nb if isinstance(nb, tuple) else (nb,)
            unknown = [t for t in targets if t not in known]
            if unknown:
                problems.append(f"{where}: no notebook {unknown}")
                continue
            if not any(name in declared_parameters(known[t]) for t in targets):
                problems.append(f"{where}: {name!r} is not a parameter of {list(targets)}")
    return problems


# ----------------------------------------------------------------------------- the kit
README = """# Course kit of the LID book

Generated by `make course` from `course/*.ipynb` (the master notebooks). Hand out
`student/`; keep `autograder/`, `solutions/` and `rubric.md`.

| assignment | student notebook | autograder | points (auto + by hand) |
|---|---|---|---|
{rows}

Grade one submission offline, without Docker (scores in `graded/results.json`):

    otter run -a autograder/<name>.zip -o graded/ submission.ipynb

Many: loop over the submissions (`for f in submissions/*.ipynb; do ...; done`), or use
`otter grade` (Docker) if you have it. Questions graded by hand: `rubric.md`.
"""


def build(out=ROOT / "_build" / "course", names=None, run_tests=False):
    """Build the kit into ``out``; returns {name: {student, autograder, solution, points}}."""
    out = Path(out)
    paths = masters(names)
    if not paths:
        raise SystemExit(f"no master notebooks in {COURSE}")
    for sub in ("student", "autograder", "solutions"):
        shutil.rmtree(out / sub, ignore_errors=True)
        (out / sub).mkdir(parents=True)
    kit = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, folder in assign_all(paths, tmp, run_tests=run_tests).items():
            zips = sorted((folder / "autograder").glob("*.zip"))
            if len(zips) != 1:
                raise RuntimeError(f"{name}: expected one autograder zip, found {zips}")
            student = shutil.copy2(folder / "student" / f"{name}.ipynb", out / "student" / f"{name}.ipynb")
            zipped = shutil.copy2(zips[0], out / "autograder" / f"{name}.zip")
            solution = shutil.copy2(folder / "autograder" / f"{name}.ipynb", out / "solutions" / f"{name}.ipynb")
            qs = questions(COURSE / f"{name}.ipynb")
            kit[name] = dict(student=Path(student), autograder=Path(zipped), solution=Path(solution),
                             auto=sum(q["points"] for q in qs if not q["manual"]),
                             manual=sum(q["points"] for q in qs if q["manual"]))
    (out / "rubric.md").write_text(rubric(paths))
    rows = "\n".join(f"| {title(COURSE / f'{n}.ipynb')} | `student/{n}.ipynb` | `autograder/{n}.zip` | "
                     f"{k['auto']} + {k['manual']} |" for n, k in kit.items())
    (out / "README.md").write_text(README.format(rows=rows))
    return kit


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="assignments to build (default: all)")
    ap.add_argument("--out", default=str(ROOT / "_build" / "course"))
    ap.add_argument("--run-tests", action="store_true", help="let otter assign run the tests on the masters")
    args = ap.parse_args(argv)
    kit = build(args.out, args.names or None, args.run_tests)
    for name, k in kit.items():
        print(f"[course] {name}: {k['auto']} autograded + {k['manual']} by hand -> "
              f"{k['student']}")
    print(f"[course] rubric: {Path(args.out) / 'rubric.md'}")


if __name__ == "__main__":
    main()
