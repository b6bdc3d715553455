"""Execute every claim notebook with papermill on tiny parameters and check its results JSON.

Fast tests check the results-file helpers and the paper tier's refusal offline. One
module-scoped run (smoke zoo grid, 2 pretrained models + 1 control on 120 ImageNet
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

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "notebooks"
DATA = os.environ.get("LIDUTILS_DATA_DIR") or (
    str(ROOT.parent / "shared" / "data") if (ROOT.parent / "shared" / "data").is_dir() else None)

needs_data = pytest.mark.skipif(DATA is None, reason="needs the data mirror (LIDUTILS_DATA_DIR)")

TINY = dict(
    tier="offline", zoo_grid="smoke", models=["tf_efficientnet_lite0", "mobilenetv2_100"],
    controls=["random:mobilenetv2_100"], n_images=120, k_local=10, ks=[5, 10, 20, 50],
    n_boot=200, n_perm=500, seed=0, device="cpu", metric="mutual_knn", ridge_max_models=4,
    n_sim=40,
)
CLAIM_NOTEBOOKS = {
    "01_generalization": ["C3"], "02_model_model": ["C1"], "03_model_brain": ["C2", "C7"],
    "04_scaling": ["C5"], "05_local_vs_global": ["C4"],
}
VERDICTS = {"replicated", "opposite", "inconclusive"}


def _run(name, out, cache):
    src = NB / f"{name}.ipynb"
    declared = pm.inspect_notebook(str(src))
    params = {**TINY, "out_dir": str(out), "cache_dir": str(cache), "data_dir": DATA,
              "results_dir": str(out)}
    params = {k: v for k, v in params.items() if k in declared}
    pm.execute_notebook(str(src), str(out / f"{name}.ipynb"), parameters=params, cwd=str(ROOT),
                        kernel_name="python3", progress_bar=False)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    cache = tmp_path_factory.mktemp("cache")
    repo_results = ROOT / "results"
    before = {p.name: p.stat().st_mtime_ns for p in repo_results.glob("*.json")} if repo_results.exists() else {}
    errors = {}
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
    d = json.loads(path.read_text())
    for key in ("claim", "statement", "paper_value", "primary", "verdict", "analyses", "parameters"):
        assert key in d, f"{path.name} lacks {key!r}"
    assert d["claim"] == claim
    assert d["verdict"] in VERDICTS
    assert d["analyses"], "no analyses"
    labels = [a["analysis"] for a in d["analyses"]]
    assert d["primary"] in labels
    for a in d["analyses"]:
        for key in ("r", "ci_low", "ci_high", "p"):
            assert _finite(a[key]), f"{a['analysis']}: {key} = {a[key]!r}"
        assert -1 <= a["r"] <= 1 and 0 < a["p"] <= 1
        assert a["ci_low"] <= a["ci_high"]
        assert isinstance(a["n"], int) and a["n"] >= 4
        assert a["verdict"] in VERDICTS
        assert a["power"] is None or 0 <= a["power"] <= 1
        # the verdict is recomputed from the numbers, never typed in
        from lidutils.stats import verdict
        assert a["verdict"] == verdict(a, expected_sign=a["expected_sign"])
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
def test_primary_n_is_the_number_of_converged_clean_zoo_models(executed):
    out, cache, errors, _ = executed
    if "01_generalization" in errors:
        pytest.skip("01 failed (reported by its own test)")
    from lidutils.population import analysis_sets, build_population

    pop = build_population(zoo_grid="smoke", include=("zoo",), cache_dir=cache, data_dir=DATA,
                           device="cpu")
    sets = analysis_sets(pop.members)
    d = json.loads((out / "C3.json").read_text())
    head = next(a for a in d["analyses"] if a["analysis"] == d["primary"])
    assert head["n"] == len(sets[head["population"]])


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
    from lidutils.report import claims_table

    table = claims_table(out)
    assert list(table["claim"]) == [f"C{i}" for i in range(1, 8)]
    done = table[table["verdict"] != "not run"]
    assert set(done["claim"]) >= {"C1", "C2", "C3", "C4", "C5"} - {
        c for n, cs in CLAIM_NOTEBOOKS.items() if n in errors for c in cs}


# ----------------------------------------------------------------------------- fast tests
def _corr(r, lo, hi, p, n=10):
    return dict(r=r, ci_low=lo, ci_high=hi, p=p, n=n, method="spearman")


def test_write_claim_round_trip_and_verdicts_from_numbers(tmp_path, monkeypatch):
    from lidutils import report as R

    monkeypatch.setattr(R._power, "power_at", lambda n, r: {"power": 0.5})
    recs = [R.analysis("a", _corr(-0.7, -0.9, -0.3, 0.001), x="lid", y="acc", population="zoo"),
            R.analysis("b", _corr(0.6, 0.2, 0.8, 0.01), x="lid", y="acc", population="zoo"),
            R.analysis("c", _corr(-0.1, -0.5, 0.4, 0.6, n=3), x="lid", y="acc", population="zoo")]
    assert [r["verdict"] for r in recs] == ["replicated", "opposite", "inconclusive"]
    assert recs[0]["power"] == 0.5 and recs[2]["power"] is None  # n < 4: no power figure
    out = R.write_claim("C3", recs, out_dir=tmp_path, primary="b", parameters={"k": 10})
    assert out["verdict"] == "opposite"
    d = json.loads((tmp_path / "C3.json").read_text())
    assert d["paper_value"] == R.PAPER_CLAIMS["C3"]["paper_value"] and d["parameters"] == {"k": 10}
    table = R.claims_table(tmp_path)
    assert list(table["claim"]) == [f"C{i}" for i in range(1, 8)]
    row = table.set_index("claim").loc["C3"]
    assert row["verdict"] == "opposite" and row["r"] == 0.6 and row["n"] == 10
    assert (table.set_index("claim").drop(index="C3")["verdict"] == "not run").all()
    with pytest.raises(ValueError, match="unique"):
        R.write_claim("C3", recs + recs[:1], out_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown claim"):
        R.write_claim("C9", recs, out_dir=tmp_path)


def test_comparative_claim_rules():
    from lidutils import report as R

    rep = dict(verdict="replicated", r=-0.6, n=8)
    inc = dict(verdict="inconclusive", r=-0.1, n=8)
    opp = dict(verdict="opposite", r=0.6, n=8)
    assert R.c4_verdict(rep, [inc, opp]) == "replicated"
    assert R.c4_verdict(inc, [rep]) == "opposite"
    assert R.c4_verdict(rep, [rep]) == "inconclusive"
    assert R.c7_verdict({"EVC": inc, "IT": rep}) == "replicated"
    assert R.c7_verdict({"EVC": dict(rep, r=-0.8), "IT": rep}) == "inconclusive"
    assert R.c6_verdict([rep, rep, dict(opp, n=3)]) == "replicated"
    assert R.c6_verdict([opp, inc]) == "opposite"


def test_paper_tier_refuses_without_data(tmp_path):
    from lidutils.population import PaperTierUnavailable, build_population

    with pytest.raises(PaperTierUnavailable, match="nsd_root"):
        build_population(tier="paper", nsd_root=None, probe=_Probe(), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="tier"):
        build_population(tier="online", probe=_Probe(), cache_dir=tmp_path)


def test_model_lists_must_be_lists(tmp_path):
    from lidutils.population import build_population

    with pytest.raises(ValueError, match="-y"):
        build_population(models="[tf_efficientnet_lite0]", include=("imagenet",), probe=_Probe(),
                         cache_dir=tmp_path)


def test_analysis_sets_are_independent_and_deduplicated():
    import pandas as pd

    from lidutils.population import analysis_sets

    m = pd.DataFrame(dict(
        group="zoo", model=["a", "a", "b", "b", "c", "c", "d", "d"], epoch=[1, 3] * 4,
        final=[False, True] * 4, label_noise=0.0, pretrained=True),
        index=[f"{k}@{e}" for k in "abcd" for e in (1, 3)])
    sets = analysis_sets(m)
    assert list(sets) == ["zoo: final epoch, clean labels", "zoo: first epoch, clean labels"]
    for members in sets.values():  # one checkpoint per network
        assert len({x.split("@")[0] for x in members}) == len(members) == 4


class _Probe:
    images = __import__("numpy").zeros((5, 8, 8, 3), dtype="uint8")
