"""Execute every claim notebook with papermill on tiny parameters and check its results JSON.

Fast tests check the results-file helpers and the paper tier's refusal offline. One
module-scoped run (smoke zoo grid, 2 pretrained models + 1 control on 60 ImageNet
photos, few K, few bootstrap draws) writes into a temporary folder; the repository's
``results/`` must stay untouched. Marked slow (a few minutes on 2 CPU cores).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

pm = pytest.importorskip("papermill")

ROOT = Path(__file__).resolve().parents[2]
NB = ROOT / "notebooks"
DATA = os.environ.get("LIDUTILS_DATA_DIR") or (
    str(ROOT.parent / "shared" / "data") if (ROOT.parent / "shared" / "data").is_dir() else None)

needs_data = pytest.mark.skipif(DATA is None, reason="needs the data mirror (LIDUTILS_DATA_DIR)")

# mobilenetv2_100 is the one degradation-series model in it (lidutils.book.degradation.DEGRADATION):
# one series instead of two, the same code path
TINY = dict(
    tier="offline", zoo_grid="smoke", models=["mobilenetv2_100", "tf_efficientnet_lite1"],
    controls=["random:mobilenetv2_100"], n_images=60, n_boot=200, n_perm=300, seed=0, device="cpu",
    n_models=8, n_stimuli=160, seeds=1, n_sim=40, degrade_photos=24, degrade_kinds=["blur"],
)
CLAIM_NOTEBOOKS = {
    "population": [], "00_validation": [], "01_generalization": ["C3"], "02_model_model": ["C1"],  # C6 needs families of >= 4 units (not in the smoke zoo)
    "03_model_brain": ["C2", "C7"], "04_scaling": ["C5"], "05_local_vs_global": ["C4"],
}
VERDICTS = set(__import__("lidutils.stats", fromlist=["VERDICTS"]).VERDICTS)


def _run(name, out, cache):
    src = NB / f"{name}.ipynb"
    declared = pm.inspect_notebook(str(src))
    params = {**TINY, "out_dir": str(out), "cache_dir": str(cache), "data_dir": DATA,
              "results_dir": str(out)}
    params = {k: v for k, v in params.items() if k in declared}
    pm.execute_notebook(str(src), str(out / f"{name}.ipynb"), parameters=params, cwd=str(ROOT),
                        kernel_name="python3", progress_bar=False)


def _features(cache):
    return {p.relative_to(cache) for p in (cache / "features").rglob("*.npz")}


PREFETCHED = {}  # what the fixture's prefetch did: labels done, feature files present after it


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    from lidutils.book.params import notebook_parameter_defaults
    from lidutils.book.prefetch import prefetch

    out = tmp_path_factory.mktemp("results")
    cache = tmp_path_factory.mktemp("cache")
    repo_results = ROOT / "results"
    before = {p.name: p.stat().st_mtime_ns for p in repo_results.glob("*.json")} if repo_results.exists() else {}
    errors = {}
    # the book computes the chapters' zoo-independent inputs ahead of them (scripts/build_book.py)
    src = NB / "01_generalization.ipynb"
    declared = notebook_parameter_defaults(src)
    given = {**TINY, "cache_dir": str(cache), "data_dir": DATA}
    prefetched = prefetch({**declared, **{k: v for k, v in given.items() if k in declared}}, say=lambda _: None)
    PREFETCHED.update(done=prefetched, features=_features(cache))
    for name in CLAIM_NOTEBOOKS:
        try:
            _run(name, out, cache)
        except Exception as exc:  # keep going: each test reports its own notebook
            errors[name] = exc
    after = {p.name: p.stat().st_mtime_ns for p in repo_results.glob("*.json")} if repo_results.exists() else {}
    return out, cache, errors, before == after


def _finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x)


def _check_claim(path, claim):
    from test_claims import _check_record

    from lidutils.book.claims import NOTEBOOK_DEFAULTS, SHARED_DEFAULTS

    d = json.loads(path.read_text())
    for key in ("claim", "statement", "paper_value", "paper_r", "primary", "verdict", "verdict_reason",
                "analyses", "parameters", "notebook", "section", "tier", "dry_run"):
        assert key in d, f"{path.name} lacks {key!r}"
    assert d["claim"] == claim and d["verdict"] in VERDICTS
    labels = [a["analysis"] for a in d["analyses"]]
    assert d["primary"] == labels[0] and d["analyses"][0]["role"] == "primary"
    for a in d["analyses"]:
        for key in ("r", "ci_low", "ci_high", "p"):
            assert _finite(a[key]), f"{a['analysis']}: {key} = {a[key]!r}"
        assert -1 <= a["r"] <= 1 and 0 < a["p"] <= 1 and a["ci_low"] <= a["ci_high"]
        assert isinstance(a["n"], int) and a["n"] >= 4 and len(a["members"]) == a["n"]
        assert a["power"] is None or 0 <= a["power"] <= 1
        several = len((d.get("extra") or {}).get("primaries") or []) > 1  # C5: Holm between its primaries
        if a["role"] == "secondary" or (a["role"] == "primary" and several):
            assert a["p_holm"] is not None, a["analysis"]
        else:  # the one primary, or a manipulation check (outside the Holm family)
            assert a["p_holm"] is None and a["role"] in ("primary", "manipulation check"), a["analysis"]
        _check_record(a)  # the verdict agrees with the record's own CI
    # every notebook parameter is recorded, none typed by hand
    nb = d["notebook"]
    assert set(SHARED_DEFAULTS) | set(NOTEBOOK_DEFAULTS[nb]) <= set(d["parameters"])
    assert d["parameters"]["n_boot"] == TINY["n_boot"]
    return d


@pytest.mark.slow
@needs_data
@pytest.mark.parametrize("name", list(CLAIM_NOTEBOOKS))
def test_notebook_writes_its_claims(executed, name):
    out, _, errors, _ = executed
    if name in errors:
        raise errors[name]
    for claim in CLAIM_NOTEBOOKS[name]:
        path = out / f"{claim}.json"
        assert path.exists(), f"{name} did not write {claim}.json"
        _check_claim(path, claim)


@pytest.mark.slow
@needs_data
def test_prefetch_leaves_the_chapters_nothing_to_extract(executed):
    """lidutils.book.prefetch computes, with the chapters' parameters, every ImageNet-group and
    degradation-series feature the chapters then read: they extract nothing more."""
    done, features = PREFETCHED["done"], PREFETCHED["features"]
    assert any(d.startswith("features of") for d in done) and any(d.startswith("degradation") for d in done), done
    assert features and _features(executed[1]) == features


@pytest.mark.slow
@needs_data
def test_repository_results_untouched(executed):
    assert executed[3], "a tiny-parameter run wrote into the repository's results/"


@pytest.mark.slow
@needs_data
def test_claims_page_reads_the_results(executed, tmp_path):
    out, _, errors, _ = executed
    pm.execute_notebook(str(ROOT / "book" / "claims.ipynb"), str(tmp_path / "claims.ipynb"),
                        parameters=dict(results_dir=str(out)), cwd=str(ROOT), kernel_name="python3",
                        progress_bar=False)
    from lidutils.book.report import claims_table

    table = claims_table(out)
    assert list(table["claim"]) == [f"C{i}" for i in range(1, 10)]
    done = table[table["verdict"] != "not run"]
    assert set(done["claim"]) >= {"C1", "C2", "C3", "C4", "C5"} - {
        c for n, cs in CLAIM_NOTEBOOKS.items() if n in errors for c in cs}


# ----------------------------------------------------------------------------- fast tests
# A user's own RDM set through notebook 03 (1 region x 1 subject, 3 regions x 3 subjects, every
# image and RDM form): tests/book/test_own_data.py.


def test_paper_tier_refuses_without_data(tmp_path):
    from lidutils.book.population import PaperTierUnavailable, build_population

    with pytest.raises(PaperTierUnavailable, match="nsd_root"):
        build_population(tier="paper", nsd_root=None, probe=_Probe(), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="tier"):
        build_population(tier="online", probe=_Probe(), cache_dir=tmp_path)


def test_model_lists_must_be_lists(tmp_path):
    from lidutils.book.population import build_population

    with pytest.raises(ValueError, match="-y"):
        build_population(models="[tf_efficientnet_lite0]", include=("imagenet",), probe=_Probe(),
                         cache_dir=tmp_path)


class _Probe:
    images = __import__("numpy").zeros((5, 8, 8, 3), dtype="uint8")


@pytest.mark.slow
@needs_data
def test_paper_tier_dry_run_command(tmp_path):
    """`make dryrun` (build_book.py --dryrun): the paper tier's path through chapters 01-05 on stand-ins."""
    import subprocess
    import sys

    # 4 with a published top-1 (C3 needs 4 units); the MAE ViT-B (no top-1, 60 % of this run's cost) goes
    # through the same path in test_paper_tier's dry run, on small images
    models = ["convnext_atto.d2_in1k", "convnext_tiny.fb_in1k", "resnet18.tv_in1k", "resmlp_12_224.fb_in1k"]
    cmd = [sys.executable, "scripts/build_book.py", "--dryrun", "--no-html", "--stage", str(tmp_path / "stage"),
           "--results", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"),
           "-p", "n_images", "60", "-p", "models", json.dumps(models), "-p", "n_boot", "200", "-p", "n_perm", "300",
           "-p", "data_dir", json.dumps(DATA)]
    subprocess.run(cmd, cwd=ROOT, check=True)
    for claim in ("C1", "C2", "C3", "C4", "C5", "C7"):
        d = json.loads((tmp_path / "results" / f"{claim}.json").read_text())
        assert d["tier"] == "paper-dryrun" and d["dry_run"] is True, claim
        assert d["parameters"]["tier"] == "paper-dryrun"
        head = d["analyses"][0]
        assert head["population"].startswith("paper models") and head["n"] >= 4
    # marked in every output, never mixable with real results
    staged = (tmp_path / "stage" / "notebooks" / "03_model_brain.ipynb").read_text()
    assert "DRY RUN" in staged


@pytest.mark.slow
@needs_data
def test_population_layer_parameter(executed):
    """build_population(layer=...) reaches the zoo's checkpoints and the ImageNet models' modules."""
    from lidutils.book.population import build_population

    _, cache, _, _ = executed
    pop = build_population(zoo_grid="smoke", include=("zoo",), cache_dir=cache, data_dir=DATA, device="cpu",
                           layer="body.0")
    z = [m for m in pop.members.index if m.startswith("zoo")]
    assert z and all(pop.eval_reps[m].shape[0] == 1000 and pop.probe_reps[m].shape[0] == 92 for m in z)
    assert pop.eval_reps[z[0]].shape[1] != 128  # not the 128-unit embedding
    with pytest.raises(ValueError, match="no module"):
        build_population(zoo_grid="smoke", include=("zoo",), cache_dir=cache, data_dir=DATA, device="cpu",
                         layer="nonexistent")


#: What a chapter's code cell may not do itself: draw with matplotlib, compute with numpy/scipy,
#: call the statistics directly or mark records (it calls lidutils.book for those).
NOT_IN_A_NOTEBOOK = (r"\bplt\.", r"import matplotlib", r"\bnp\.", r"import numpy", r"\bscipy\b",
                     r"\bst(ats)?\.(corr|partial_corr|corr_within|holm|verdict|label)\(", r"mark_uninformative\(",
                     r"\bholm\(")


def test_notebook_code_cells_call_the_book_layer():
    """Notebooks read as the paper's sentences: no statistic, figure or record marking computed inline."""
    import json
    import re

    bad = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")) + [ROOT / "book" / "claims.ipynb"]:
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            if cell["cell_type"] == "code":
                src = "".join(cell["source"])
                bad += [f"{path.name} cell {i}: {pat}" for pat in NOT_IN_A_NOTEBOOK if re.search(pat, src)]
    assert bad == []
