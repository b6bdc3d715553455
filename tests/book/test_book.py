"""The book's claims page (lidutils.claims_page), build_book's cell tags and the
headless-browser checker (scripts/check_book.py), on small fixtures.

The browser tests need Chromium and chromedriver (``make browser`` installs them). They
are skipped where the browser is missing, except in CI (``CI`` set), where they fail.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import time
from pathlib import Path

import matplotlib
import nbformat
import pytest

matplotlib.use("Agg")

from lidutils.book import claims_page as cp

ROOT = Path(__file__).resolve().parents[2]


def _load_script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


check_book = _load_script("check_book")
build_book = _load_script("build_book")


# ------------------------------------------------------------------------------ fixtures
def _old_record(label, r, lo, hi, n, verdict, population="zoo, final epoch"):
    """A record as the pre-schema notebooks wrote it (report.analysis)."""
    return dict(analysis=label, r=r, ci_low=lo, ci_high=hi, p=0.01, n=n, method="spearman",
                x="lid", y="accuracy", population=population, expected_sign=-1, verdict=verdict,
                power=0.7, power_r=-0.84, note="")


def old_results(d):
    """Results files in the format the notebooks write today (no section, paper_r, role, tier)."""
    d.mkdir(parents=True, exist_ok=True)
    files = {
        "C1": dict(claim="C1", statement="Lower local ID goes with stronger model–model alignment.",
                   paper_value="−0.84 … −0.92 (quoted range)", notebook="02_model_model",
                   primary="zoo: lid vs mknn",
                   verdict="replicated", parameters={"seed": 0}, extra={},
                   analyses=[_old_record("zoo: lid vs mknn", -0.61, -0.8, -0.3, 32, "replicated"),
                             _old_record("imagenet: lid vs mknn", -0.2, -0.9, 0.7, 4, "inconclusive",
                                         "imagenet")]),
        "C3": dict(claim="C3", statement="Lower local ID goes with better generalization.",
                   paper_value="−0.84 … −0.92 (quoted range)", notebook="01_generalization",
                   primary="zoo: lid vs accuracy", verdict="opposite", parameters={}, extra={},
                   analyses=[_old_record("zoo: lid vs accuracy", 0.4, 0.1, 0.65, 32, "opposite")]),
    }
    for c, v in files.items():
        (d / f"{c}.json").write_text(json.dumps(v))
    return files


def _new_record(label, r, lo, hi, n, verdict, role, population, paper_r=-0.916, **kw):
    rec = dict(analysis=label, x="lid", y="accuracy", population=population, space="pca300", k=50,
               estimator="mle", method="pearson", r=r, ci_low=lo, ci_high=hi, p=0.001,
               p_holm=None if role == "primary" else 0.03, n=n, unit="models", members=["a", "b"],
               role=role, paper_r=paper_r, excludes_zero=hi < 0 or lo > 0,
               excludes_paper_value=None if paper_r is None else not lo <= paper_r <= hi,
               power=0.93 if paper_r is not None else None, power_r=paper_r or -0.5,
               power_at={"-0.3": 0.2, "-0.5": 0.5}, verdict=verdict, reason="", note="")
    rec.update(kw)
    return rec


def new_results(d, tier="offline"):
    """Results files in the schema of notes/SCHEMA.md, with C8 beyond the paper."""
    d.mkdir(parents=True, exist_ok=True)
    base = dict(paper_setting="ConvNeXt, ImageNet-1k top-1", tier=tier, dry_run=tier == "paper-dryrun",
                parameters={"tier": tier})
    files = {
        "C3": dict(base, claim="C3", statement="Lower local ID goes with better generalization.",
                   notebook="01_generalization", section="c3-primary", paper_value="Pearson r = −0.916",
                   paper_r=-0.916, beyond_paper=False, primary="zoo: design cells",
                   verdict="replicated", verdict_reason="The CI excludes 0 with the paper's sign.",
                   analyses=[
                       _new_record("zoo: design cells", -0.7, -0.85, -0.45, 24, "replicated", "primary",
                                   "zoo-fmnist: design cells"),
                       _new_record("imagenet: models", -0.5, -0.9, 0.2, 6, "inconclusive", "primary",
                                   "imagenet"),
                       _new_record("zoo: mom estimator", -0.6, -0.8, -0.3, 24, "replicated", "secondary",
                                   "zoo-fmnist: design cells", estimator="mom"),
                   ]),
        "C8": dict(base, claim="C8", statement="Lowering LID by a penalty improves generalization.",
                   notebook="06_intervention", section="c8-primary", paper_value="beyond the paper",
                   paper_r=None, beyond_paper=True, primary="penalty vs accuracy",
                   verdict="inconclusive", verdict_reason="The CI covers 0.",
                   analyses=[_new_record("penalty vs accuracy", -0.1, -0.5, 0.3, 12, "inconclusive",
                                         "primary", "zoo: penalty series", paper_r=None)]),
    }
    for c, v in files.items():
        (d / f"{c}.json").write_text(json.dumps(v))
    return files


# --------------------------------------------------------------------- claims_page: data
def test_records_table_old_schema(tmp_path):
    old_results(tmp_path)
    claims = cp.read_claims(tmp_path)
    assert [c["claim"] for c in claims] == ["C1", "C3"]
    rec = cp.records_table(claims)
    assert len(rec) == 3
    prim = rec[rec["is_primary"]]
    assert list(prim["analysis"]) == ["zoo: lid vs mknn", "zoo: lid vs accuracy"]
    # fields the old files lack are None/NaN, not errors
    assert rec["section"].isna().all() and rec["paper_r"].isna().all()
    assert not rec["beyond_paper"].any()


def test_records_table_new_schema_roles_and_tiers(tmp_path):
    new_results(tmp_path / "offline")
    new_results(tmp_path / "dry", tier="paper-dryrun")
    claims = cp.read_claims([tmp_path / "offline", tmp_path / "dry", tmp_path / "missing"])
    assert [(c["claim"], c["tier"]) for c in claims] == [
        ("C3", "offline"), ("C3", "paper-dryrun"), ("C8", "offline"), ("C8", "paper-dryrun")]
    rec = cp.records_table(claims)
    prim = rec[rec["is_primary"]]
    # role decides: two primary populations for C3 per tier, secondaries excluded
    assert (prim["claim"] == "C3").sum() == 4 and (prim["claim"] == "C8").sum() == 2
    assert "zoo: mom estimator" not in set(prim["analysis"])
    assert prim.loc[prim["claim"] == "C3", "paper_r"].eq(-0.916).all()
    assert rec.loc[rec["tier"] == "paper-dryrun", "dry_run"].all()


def test_read_claims_rejects_broken_file(tmp_path):
    (tmp_path / "C1.json").write_text("{not json")
    with pytest.raises(ValueError, match="C1.json"):
        cp.read_claims(tmp_path)
    (tmp_path / "C1.json").write_text(json.dumps({"x": 1}))
    with pytest.raises(ValueError, match="no 'claim'"):
        cp.read_claims(tmp_path)


@pytest.fixture
def mixed(tmp_path):
    """Records of new-schema files (C3 with two primary populations, C8) and old ones (C1, C3)."""
    new_results(tmp_path)
    old_results(tmp_path / "old")
    return cp.records_table(cp.read_claims([tmp_path, tmp_path / "old"]))


def test_forest_plot_rows_colours_and_paper_marks(mixed):
    rec = mixed
    fig = cp.forest_plot(rec)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    # C1, C3 (old), C3 x2 (new), then C8 last, marked beyond the paper
    assert len(labels) == 5 and labels[-1].startswith("C8 †")
    assert labels[0].startswith("C1")
    texts = [t.get_text() for t in ax.texts]
    assert "n = 24, power 0.93" in texts and "n = 12" in texts
    # paper diamonds only where a paper_r exists (the two new C3 rows)
    diamonds = [ln for ln in ax.lines if ln.get_marker() == "D"]
    assert len(diamonds) == 2
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"replicated", "inconclusive", "opposite", "paper's r", "† beyond the paper"} <= set(legend)
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_forest_plot_without_results():
    import matplotlib.pyplot as plt

    fig = cp.forest_plot(cp.records_table([]))
    assert "no results files found" in [t.get_text() for t in fig.axes[0].texts]
    plt.close(fig)


def test_claims_html_links_tooltips_and_fit(mixed):
    rec = mixed
    h = cp.claims_html(rec)
    assert 'href="../notebooks/01_generalization.html#c3-primary"' in h
    assert 'href="../notebooks/02_model_model.html"' in h  # old files: page without anchor
    assert "table-layout:fixed" in h and "width:100%" in h
    assert 'title="zoo: design cells — lid vs accuracy — method pearson, estimator mle, space pca300, k 50' in h
    assert "C8 †" in h and "beyond the paper" in h
    assert "−0.70 [−0.85, −0.45]" in h and "−0.84 … −0.92 (quoted range)" in h
    assert "not run" not in h and h.count("not run") < cp.claims_html(rec, expected=["C1", "C2"]).count("not run")
    full = cp.analyses_html(rec)
    assert full.count("<tr>") == 1 + len(rec) and full.startswith(cp._CSS)
    assert "<details>" in full and "overflow-x:auto" in full and "Holm p" in full


def test_chapter_link():
    assert cp.chapter_link("01_generalization", "c3-primary") == "../notebooks/01_generalization.html#c3-primary"
    assert cp.chapter_link("notebooks/02_model_model.ipynb") == "../notebooks/02_model_model.html"
    assert cp.chapter_link(None) is None


def test_write_downloads_roundtrip(tmp_path):
    import pandas as pd

    files = new_results(tmp_path / "res")
    claims = cp.read_claims(tmp_path / "res")
    out = cp.write_downloads(claims, tmp_path / "dl")
    bundle = json.loads(out["json"].read_text())
    assert [c["claim"] for c in bundle["claims"]] == sorted(files)
    csv = pd.read_csv(out["csv"])
    assert len(csv) == 4 and {"claim", "analysis", "r", "ci_low", "verdict", "is_primary"} <= set(csv)
    assert "members" not in csv  # list fields stay in the JSON


# ------------------------------------------------------------------- build_book: tags
def test_tag_cells_hides_parameters_and_long_cells():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("a = 1", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("a = 2", metadata={"tags": ["injected-parameters"]}),
                nbformat.v4.new_code_cell("\n".join(f"x{i} = {i}" for i in range(40))),
                nbformat.v4.new_code_cell("short = 1"),
                nbformat.v4.new_code_cell("\n" * 40, metadata={"tags": ["remove-input"]})]
    build_book.tag_cells(nb)
    build_book.tag_cells(nb)  # idempotent
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    assert tags == [["parameters", "hide-input"], ["injected-parameters", "remove-cell"],
                    ["hide-input"], [], ["remove-input"]]


def test_warnings_in_lists_printed_warnings():
    nb = nbformat.v4.new_notebook()
    c = nbformat.v4.new_code_cell("x")
    c.outputs = [nbformat.v4.new_output("stream", name="stderr",
                                        text="UserWarning: 38 of 2000 bootstrap resamples were constant\n")]
    nb.cells = [c]
    assert build_book.warnings_in(nb) == ["cell 0: UserWarning: 38 of 2000 bootstrap resamples were constant"]


def test_toc_notebooks_reads_the_toc():
    names = build_book.toc_notebooks()
    assert "00_validation" in names and "01_generalization" in names
    assert all((ROOT / "notebooks" / f"{n}.ipynb").exists() for n in names)


# ------------------------------------------------------------- check_book: static checks
def test_machine_path_patterns():
    pats = check_book.machine_path_patterns(extra=["/srv/build/lid"])
    bad = ["see /home/alice/lid/x.py", "/root/.cache/x", "in /tmp/abc/f.json",
           "/usr/lib/python3/site-packages/lidutils/report.py:283", str(ROOT / "lidutils" / "x.py"),
           "/srv/build/lid/results"]
    ok = ["results/C1.json", "https://example.org/home/x", "lidutils/report.py:283", "a/b/c"]
    assert all(check_book.find_machine_paths(t, pats) for t in bad)
    assert not any(check_book.find_machine_paths(t, pats) for t in ok)


def test_check_links(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.html").write_text('<h2 id="there">x</h2>')
    page = tmp_path / "a.html"
    page.write_text('<a href="sub/b.html#there">ok</a><a href="sub/b.html#nowhere">x</a>'
                    '<a href="gone.html">x</a><img src="img.png"><a href="https://x.org/y">ext</a>'
                    '<a href="#self">s</a><p id="self"></p>')
    bad = check_book.check_links(tmp_path, page, {})
    assert len(bad) == 3
    assert any("nowhere" in b for b in bad) and any("gone.html" in b for b in bad)
    assert any("img.png" in b for b in bad)


# ------------------------------------------------------------ check_book: in a browser
def _browser_or_skip():
    try:
        check_book.find_browser()
        import selenium  # noqa: F401
    except (RuntimeError, ImportError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser checks: {exc}")
        pytest.skip(str(exc))


_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>
<main><div class="bd-article-container" style="width:700px"><article>{body}</article></div></main>
</body></html>"""


def _site(tmp_path, body):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "index.html").write_text(_PAGE.format(body=body))
    return tmp_path


@pytest.mark.slow
def test_browser_flags_overflow_raw_math_and_broken_things(tmp_path):
    _browser_or_skip()
    wide = "<table><tr>" + "".join(f"<td style='white-space:nowrap'>column {i} value</td>"
                                   for i in range(40)) + "</tr></table>"
    scrolled = f'<div style="overflow-x:auto">{wide}</div>'
    body = (f"<h1>Fixture</h1><p>Raw inline math \\(r\\) and $$x$$.</p>{wide}{scrolled}"
            "<pre>code keeps \\( \\) as typed</pre><img src='missing.png'>"
            "<script>notDefinedAnywhere();</script>")
    site = _site(tmp_path / "site", body)
    rep = check_book.check_site(site, screenshots=tmp_path / "shots")["index.html"]
    # the bare table (and so the page) overflows; the same table in a scroll box does not
    assert rep["overflow"][0].startswith("table 4") and rep["overflow"][1].startswith("page")
    assert len(rep["overflow"]) == 2
    assert len(rep["raw-math"]) == 1 and "\\(r\\)" in rep["raw-math"][0]
    assert rep["image"] and any("notDefinedAnywhere" in e for e in rep["js-error"])
    assert (tmp_path / "shots" / "index.png").stat().st_size > 1000
    assert check_book.main([str(site), "--screenshots", str(tmp_path / "shots")]) == 1


@pytest.mark.slow
def test_browser_passes_a_clean_page_and_the_claims_table(tmp_path, mixed):
    _browser_or_skip()
    rec = mixed
    site = tmp_path / "site"
    (site / "notebooks").mkdir(parents=True)
    (site / "book").mkdir()
    for nb, sec in [("01_generalization", "c3-primary"), ("02_model_model", "x"),
                    ("06_intervention", "c8-primary")]:
        (site / "notebooks" / f"{nb}.html").write_text(f'<h2 id="{sec}">x</h2>')
    (site / "book" / "claims.html").write_text(
        _PAGE.format(body="<p>Math that rendered: <span>r</span>.</p>"
                          + cp.claims_html(rec) + cp.analyses_html(rec)))
    rep = check_book.check_site(site, pages=["book/claims.html"])
    assert check_book.failures(rep) == []


@pytest.mark.slow
def test_tiny_book_with_the_projects_config_renders_offline(tmp_path):
    """The project's _config.yml and book/_ext on a two-page book: MathJax served from the
    site (math renders with every other host blocked), each inline script once (no
    THEBE_JS_URL redeclaration), the claims table fits; check_book finds nothing."""
    _browser_or_skip()
    import subprocess

    book = tmp_path / "book_src"
    (book / "book").mkdir(parents=True)
    shutil.copy(ROOT / "_config.yml", book / "_config.yml")
    shutil.copytree(ROOT / "book" / "_ext", book / "book" / "_ext")
    shutil.copy(ROOT / "book" / "references.bib", book / "book" / "references.bib")  # _config's bibtex_bibfiles
    (book / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/two\n")
    (book / "book" / "intro.md").write_text(
        "# Intro\n\nInline $r$ and display math:\n\n$$\\hat m_K = \\Big[\\frac{1}{K-1}\\sum_j "
        "\\log\\frac{T_K}{T_j}\\Big]^{-1}$$\n\nSee {doc}`two`.\n")
    new_results(tmp_path / "res")
    rec = cp.records_table(cp.read_claims(tmp_path / "res"))
    (book / "book" / "two.md").write_text("# Two\n\n```{raw} html\n" + cp.claims_html(rec) + "\n```\n")
    jb = Path(sys.executable).parent / "jupyter-book"
    subprocess.run([str(jb), "build", str(book), "-W", "--all"], check=True, capture_output=True)
    site = book / "_build" / "html"
    assert (site / "_static" / "mathjax" / "tex-chtml.js").exists()
    page = (site / "book" / "intro.html").read_text()
    assert page.count("const THEBE_JS_URL") <= 1
    rep = check_book.check_site(site, pages=["book/intro.html"])
    assert check_book.failures(rep) == []
    rep = check_book.check_site(site, pages=["book/two.html"])
    # the table links to chapters this two-page book lacks: only those links may fail
    assert {c for _, c, _ in check_book.failures(rep)} <= {"link"}


# ------------------------------------------------------------------- build_book: schedule
def test_schedule_respects_dependencies_and_runs_two_at_once():
    import threading

    order, live, peak, lock = [], [0], [0], threading.Lock()

    def start(name):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
            order.append(("start", name))
        time.sleep(0.05 if name != "population" else 0.15)
        with lock:
            live[0] -= 1
            order.append(("end", name))
        return 1.0

    todo = ["population", "00_validation", "01_generalization", "02_model_model", "06_intervention"]
    lines = []
    got = build_book.run_scheduled(todo, start, jobs=2, expected={"06_intervention": 100, "population": 900},
                                   heartbeat=0.02, say=lines.append)
    assert set(got) == set(todo)
    assert peak[0] == 2  # never more than jobs at once, and two did run side by side
    for chapter in ("01_generalization", "02_model_model"):  # need the zoo trained by population
        assert order.index(("start", chapter)) > order.index(("end", "population"))
    assert [n for e, n in order if e == "start"][0] == "population"  # longest ready chapter first
    assert any("elapsed" in line for line in lines)


def test_schedule_reports_failures_after_the_running_chapters():
    seen = []

    def start(name):
        seen.append(name)
        if name == "02_model_model":
            raise RuntimeError("boom")
        time.sleep(0.05)
        return None

    with pytest.raises(RuntimeError, match="boom"):
        build_book.run_scheduled(["population", "02_model_model", "03_model_brain"], start, jobs=1,
                                 heartbeat=0.01, say=lambda line: None)
    assert seen[:2] == ["population", "02_model_model"] and "03_model_brain" not in seen  # stops starting


def test_progress_file_feeds_the_heartbeat(tmp_path, monkeypatch):
    from lidutils import _progress

    f = tmp_path / "p.txt"
    monkeypatch.setenv(_progress.ENV, str(f))
    for _ in _progress.bar(range(5), enabled=False, desc="training networks", mininterval=0):
        pass
    _progress.note("computing lid-pca300")
    assert _progress.last_line(f).endswith("computing lid-pca300")
    assert "training networks" in f.read_text()
    assert _progress.last_line(tmp_path / "missing.txt") == ""


def test_computing_lock_computes_once_across_processes(tmp_path):
    import subprocess
    import sys

    target = tmp_path / "entry.npy"
    code = (f"import time, pathlib, numpy as np\nfrom lidutils.cache import computing\np = pathlib.Path({str(target)!r})\n"
            "with computing(p):\n    if not p.exists():\n        time.sleep(0.5)\n"
            "        open(str(p) + '.count', 'a').write('x')\n        np.save(p, np.ones(3))\n")
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(3)]
    assert all(p.wait() == 0 for p in procs)
    assert Path(str(target) + ".count").read_text() == "x"  # one computed, two waited and found it


# ------------------------------------------------------------ citations and CITATION.cff
_CITE = __import__("re").compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")


def _bib():
    from pybtex.database import parse_file

    return parse_file(str(ROOT / "book" / "references.bib"))


def _cited_keys():
    """Every key of a ``{cite}``/``{cite:t}``/``{cite:p}`` role in book/*.md and the notebooks' markdown."""
    texts = {str(f.relative_to(ROOT)): f.read_text() for f in sorted((ROOT / "book").glob("*.md"))}
    for f in sorted((ROOT / "notebooks").glob("*.ipynb")) + [ROOT / "book" / "claims.ipynb"]:
        nb = nbformat.read(str(f), as_version=4)
        texts[str(f.relative_to(ROOT))] = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return {name: {k.strip() for m in _CITE.findall(t) for k in m.split(",")} for name, t in texts.items()}


def test_every_citation_resolves_and_every_entry_is_complete():
    bib = _bib()
    cited = _cited_keys()
    missing = {name: sorted(keys - set(bib.entries)) for name, keys in cited.items() if keys - set(bib.entries)}
    assert not missing, f"cited keys not in book/references.bib: {missing}"
    every = set().union(*cited.values())
    assert "yu2026lid" in every, "the paper reproduced is never cited"
    assert not set(bib.entries) - every, f"entries cited nowhere: {sorted(set(bib.entries) - every)}"
    for key, e in bib.entries.items():
        assert e.persons.get("author"), f"{key}: no author"
        assert e.fields.get("title"), f"{key}: no title"
        assert str(e.fields.get("year", "")).isdigit(), f"{key}: no year"


def test_bibliography_is_configured_and_listed():
    import yaml

    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["bibtex_bibfiles"] == ["book/references.bib"]
    assert "book/references" in (ROOT / "_toc.yml").read_text()
    assert "{bibliography}" in (ROOT / "book" / "references.md").read_text()


def _citation_cff():
    import yaml

    return yaml.safe_load((ROOT / "CITATION.cff").read_text())


def test_citation_cff_is_valid_and_in_step_with_the_project():
    """CITATION.cff against the CFF 1.2.0 JSON schema (tests/data, from citation-file-format,
    CC-BY-4.0; the schema cffconvert validates with), its version against pyproject.toml,
    its repository against _config.yml, and the paper among its references."""
    import tomllib

    import jsonschema
    import yaml

    cff = _citation_cff()
    schema = json.loads((ROOT / "tests" / "data" / "cff-1.2.0.schema.json").read_text())
    jsonschema.Draft7Validator(schema).validate(cff)
    assert cff["cff-version"] == "1.2.0"
    assert str(cff["version"]) == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    url = (yaml.safe_load((ROOT / "_config.yml").read_text()).get("repository") or {}).get("url")
    if url:
        assert cff["repository-code"] == url
    assert any("2601.22722" in str(r.get("url", "")) for r in cff.get("references", []))
    bad = dict(cff, **{"cff-version": "1.2"})
    assert list(jsonschema.Draft7Validator(schema).iter_errors(bad))


def test_cffconvert_validates_citation_cff():
    """``cffconvert --validate`` where cffconvert is importable (it pins jsonschema < 4, which
    the book's Jupyter stack cannot take, so it is not in the project's extras)."""
    pytest.importorskip("cffconvert")
    import subprocess

    out = subprocess.run([sys.executable, "-c", "from cffconvert.cli.cli import cli; cli()", "--validate"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


# -------------------------------------------------------------------- tables for a reader
def test_formatters_give_the_usual_forms():
    from lidutils.book import report as R

    assert R.fmt_p(9.999000099990002e-05, n_perm=10000) == "< 0.001"
    assert R.fmt_p(1 / 501, n_perm=500) == "≤ 0.002"
    assert R.fmt_p(0.0031) == "0.003"
    assert R.fmt_p(0.5766) == "0.58"
    assert R.fmt_p(None) == R.fmt_p(float("nan")) == "—"
    assert R.fmt_r(0.576637) == "+0.58" and R.fmt_r(-0.0742) == "−0.07"
    assert R.fmt_ci(0.137728, 0.817404) == "[+0.14, +0.82]"
    assert R.fmt_flag(True) == "yes" and R.fmt_flag(False) == "no" and R.fmt_flag(None) == "—"
    assert R.fmt_int(24.0) == "24"


def test_records_frame_shows_words_not_reprs_and_leaves_records_alone():
    import copy

    from lidutils.book import claims as C

    rec = dict(analysis="zoo: LID vs accuracy (pearson)", method="pearson", k=50, n=24.0, unit="design cells",
               r=0.576637, ci_low=0.137728, ci_high=0.817404, p=0.0038, p_holm=None, r_between=float("nan"),
               n_families=3, excludes_paper_value=True, power=1.0, verdict="opposite", n_perm=10000)
    rec2 = dict(rec, k=None, p=9.999000099990002e-05, excludes_paper_value=None, verdict=None)
    before = copy.deepcopy([rec, rec2])
    df = C.records_frame([rec, rec2, None])
    assert [rec, rec2] == before  # nothing written back into the records
    text = df.to_string() + df.to_html()
    for bad in ("None", "NaN", "nan", "True", "False", "0.576637", "24.0"):
        assert bad not in text, bad
    row = df.iloc[0]
    assert (row["r"], row["95 % CI"], row["p"], row["n"], row["CI excludes paper's r"]) == \
        ("+0.58", "[+0.14, +0.82]", "0.004", "24", "yes")
    assert (df.iloc[1]["p"], df.iloc[1]["K"], df.iloc[1]["verdict"]) == ("< 0.001", "—", "—")
    raw = C.records_frame([rec], raw=True)
    assert raw["r"].iloc[0] == rec["r"]
    best = C.best_k_frame({"target": "accuracy", "k": 200, "r": 0.8475490304968959,
                           "p_selection_corrected": 9.999000099990002e-05})
    assert best.iloc[0].tolist() == ["accuracy", "200", "+0.85", "< 0.001"]
    facts = C.facts_frame({"factor": 1.0070532915360502, "r_n": {"generalization": -0.9264705882352942}})
    assert facts["value"].tolist() == ["1.01", "−0.93"]


def test_raw_citation_roles_are_found_outside_code():
    html = ("<p>As {cite:t}`levina2004mle` showed</p><p><code>{cite}`x`</code></p>"
            "<pre>{cite}`y`</pre><p>see <a href='references.html#id3'>LB04</a></p>")
    assert check_book.find_raw_citations(html) == ["unrendered citation: {cite:t}`levina2004mle`"]
    assert "citation" in check_book.CHECKS


def test_computing_without_wait_reports_a_busy_entry(tmp_path):
    import subprocess
    import sys

    from lidutils.cache import computing

    target = tmp_path / "features.npz"
    probe = ("import pathlib\nfrom lidutils.cache import computing\n"
             f"with computing(pathlib.Path({str(target)!r}), wait=False) as mine:\n    print(mine)\n")
    with computing(target) as mine:
        assert mine is True
        busy = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    free = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert busy.stdout.strip() == "False" and free.stdout.strip() == "True"



def test_other_tables_and_values_for_a_reader():
    import numpy as np
    import pandas as pd

    from lidutils.book import claims as C
    from lidutils.book import report as R

    idx = pd.MultiIndex.from_tuples([("zoo", "EVC"), ("zoo", "IT")], names=["population", "roi"])
    t = pd.DataFrame(dict(n_units=[24.0, 24.0], reliability=[0.6812, 0.78], informative=[False, True],
                          ceiling=[np.nan, 0.5], power_at=[{"-0.3": 0.261}, {"-0.5": 0.651}]), index=idx)
    out = C.readable(t)
    assert out.index.equals(idx)
    assert out.to_dict("list") == {"n_units": ["24", "24"], "reliability": ["0.681", "0.78"], "informative": ["no", "yes"],
                                   "ceiling": ["—", "0.5"], "power_at": ["-0.3: 0.261", "-0.5: 0.651"]}
    comp = dict(diff=-0.322885181548489, ci_low=-0.45355515701440285, ci_high=0.2874209229503403,
                z=-2.1788009903499335, p=0.02934645536193042, ci_zou_low=-0.6223416508826465,
                ci_zou_high=-0.03833676752682358, n=24, design="within group")
    assert R.contrast_text(comp) == ("Δ = −0.32 [−0.45, +0.29] (bootstrap), Zou CI [−0.62, −0.04], "
                                     "Steiger z = −2.18, p = 0.03, n = 24 (within group)")
    assert R.contrast_text(None).startswith("not computed")
