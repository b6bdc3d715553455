"""The course kit (course/*.ipynb, course/build.py): built, graded offline, parameters that exist.

One module fixture runs ``make course``'s build into a temporary folder (``otter assign``
on every master notebook), then grades, with ``otter run`` (no Docker), every solved
notebook, every student notebook and one plausible wrong answer, two at a time. The
assignments run from synthetic worlds, generated manifolds, the data mirror's 92-image
set and power simulations: no cache of the book is needed (in CI the tests run before the
book is built).
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("otter")
pm = pytest.importorskip("papermill")

ROOT = Path(__file__).resolve().parents[2]
DATA = os.environ.get("LIDUTILS_DATA_DIR") or (
    str(ROOT.parent / "shared" / "data") if (ROOT.parent / "shared" / "data").is_dir() else None)
spec = importlib.util.spec_from_file_location("course_build", ROOT / "course" / "build.py")
cb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cb)

NAMES = [p.stem for p in cb.masters()]
needs_data = pytest.mark.skipif(DATA is None, reason="own_rdms needs the data mirror (LIDUTILS_DATA_DIR)")
#: A classic slip in the estimator: averaging log(T_K/T_j) over all K columns (the j = K term is 0),
#: i.e. dividing by K instead of K - 1. Passes the public format checks, not the hidden ones.
WRONG = ("return 1.0 / np.log(dist[:, -1:] / dist[:, :-1]).mean(axis=1)",
         "return 1.0 / np.log(dist[:, -1:] / dist).mean(axis=1)")


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    out = tmp_path_factory.mktemp("course")
    if DATA:
        os.environ.setdefault("LIDUTILS_DATA_DIR", DATA)
    return out, cb.build(out)


@pytest.fixture(scope="module")
def graded(kit, tmp_path_factory):
    out, built = kit
    work = tmp_path_factory.mktemp("graded")
    wrong = work / "estimator_wrong.ipynb"
    text = built["estimator"]["solution"].read_text()
    assert WRONG[0] in text, "the estimator's solution line changed: update WRONG"
    wrong.write_text(text.replace(WRONG[0], WRONG[1]))
    jobs = {(n, kind): (built[n]["autograder"], built[n][kind]) for n in built for kind in ("solution", "student")}
    jobs[("estimator", "wrong")] = (built["estimator"]["autograder"], wrong)
    with ThreadPoolExecutor(2) as pool:
        futures = {key: pool.submit(cb.grade, z, nb, work / f"{key[0]}_{key[1]}") for key, (z, nb) in jobs.items()}
        return {key: f.result() for key, f in futures.items()}


def _skip_without_data(name):
    if name == "own_rdms" and DATA is None:
        pytest.skip("own_rdms needs the data mirror (LIDUTILS_DATA_DIR)")


def test_course_has_assignments():
    assert len(NAMES) >= 3, NAMES


def test_make_course_builds_the_kit(kit):
    out, built = kit
    assert set(built) == set(NAMES)
    for name, k in built.items():
        assert k["student"].is_file() and k["solution"].is_file() and zipfile.is_zipfile(k["autograder"])
        assert k["auto"] > 0 and k["manual"] > 0, f"{name}: autograded and hand-graded questions"
    rubric = (out / "rubric.md").read_text()
    for name in NAMES:
        for q in cb.questions(ROOT / "course" / f"{name}.ipynb"):
            assert q["name"] in rubric
            if q["manual"]:
                assert q["solution"] and "Rubric" in "".join(q["solution"]), f"{name}/{q['name']}: no rubric"
    assert "otter run -a" in (out / "README.md").read_text()


@pytest.mark.parametrize("name", NAMES)
def test_master_scores_full_marks(graded, name):
    _skip_without_data(name)
    scores, total, maximum = graded[(name, "solution")]
    assert maximum > 0 and total == maximum, scores


@pytest.mark.parametrize("name", NAMES)
def test_student_notebook_runs_and_scores_zero(graded, name):
    _skip_without_data(name)
    scores, total, maximum = graded[(name, "student")]
    assert maximum > 0 and set(scores) == set(graded[(name, "solution")][0])  # every question graded
    assert total == 0, scores


def test_wrong_answer_passing_the_public_checks_scores_zero(graded):
    scores, _, _ = graded[("estimator", "wrong")]
    assert scores["q1_mle"][0] == 0, scores
    assert scores["q2_truth"][0] == 0, "q2 uses the student's estimator too"


@pytest.mark.parametrize("name", NAMES)
def test_hidden_tests_carry_the_points_and_stay_out_of_the_student_copy(kit, name):
    _, built = kit
    student = nbformat.read(str(built[name]["student"]), as_version=4)
    public = student.metadata["otter"]["tests"]
    with zipfile.ZipFile(built[name]["autograder"]) as z:
        full = {Path(f).stem: z.read(f).decode() for f in z.namelist() if f.startswith("tests/")}
    for q, src in full.items():
        if "hidden=True" not in src:
            pytest.fail(f"{name}/{q}: no hidden test")
        for m in re.finditer(r"@test_case\(points=([\d.]+), hidden=(True|False)", src):
            if m[2] == "False":
                assert float(m[1]) == 0, f"{name}/{q}: public tests are format checks worth 0 points"
        assert "hidden=True" not in public.get(q, ""), f"{name}/{q}: hidden test in the student notebook"


@pytest.mark.parametrize("name", NAMES)
def test_parameters_cell_survives_into_the_student_copy(kit, name):
    _, built = kit
    master = ROOT / "course" / f"{name}.ipynb"

    def cell(path):
        nb = nbformat.read(str(path), as_version=4)
        return [c.source for c in nb.cells if "parameters" in c.metadata.get("tags", [])]

    assert cell(master) and cell(built[name]["student"]) == cell(master)
    declared = set(pm.inspect_notebook(str(built[name]["student"])))
    assert declared == cb.declared_parameters(master) and declared


def _texts():
    texts = {str(p.relative_to(ROOT)): cb.notebook_text(p) for p in (ROOT / "course").glob("*.ipynb")}
    for md in ("book/assignments.md", "book/teaching.md"):
        if (ROOT / md).exists():
            texts[md] = (ROOT / md).read_text()
    return texts


def test_every_parameter_an_assignment_uses_exists():
    texts = _texts()
    assert "book/assignments.md" in texts
    uses = [u for origin, t in texts.items() for u in cb.parameter_uses(t, origin)]
    assert len(uses) >= 5, uses  # the parser finds the commands
    assert cb.check_parameters(texts) == []


def test_the_parameter_check_catches_the_old_prose():
    old = ("1. **How local is \"local\"?** Rerun {doc}`../notebooks/05_local_vs_global` with\n"
           "   `ks=[3, 5, 10, 20, 50, 100, 200, 500]`. At which $K$ ...\n\n"
           "4. **Alignment metric.** Rerun {doc}`../notebooks/02_model_model` with\n"
           "   `metric=\"cka\"` and `metric=\"ridge\"`.\n\n"
           "```bash\npapermill notebooks/01_generalization.ipynb out.ipynb -p epochs 3 -p space raw\n```\n")
    problems = cb.check_parameters({"old": old})
    assert any("'ks'" in p for p in problems) and any("'metric'" in p for p in problems)
    assert any("'epochs'" in p for p in problems) and not any("'space'" in p for p in problems)
    assert len(problems) == 4, problems


def test_declared_parameters_agree_with_papermill():
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert cb.declared_parameters(nb) == set(pm.inspect_notebook(str(nb))), nb.name
