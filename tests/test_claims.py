"""The claim logic (lidutils.claims, lidutils.measures) on small synthetic populations."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lidutils import claims as C
from lidutils import measures as M
from lidutils import stats as S
from lidutils.population import Population
from lidutils.simulate import make_world, world_population

ROOT = Path(__file__).resolve().parents[1]
FAST = dict(n_boot=200, n_perm=200)


def _zoo_members(n_cells=6, seeds=2, families=("mlp", "convnet")):
    rows = []
    for f in families:
        for c in range(n_cells):
            for s in range(seeds):
                rows.append(dict(member=f"{f}-c{c}-s{s}", group="zoo-x", family=f, model=f"{f}{c}{s}", epoch=5,
                                 final=True, converged=True, label_noise=0.0, design=f"{f}-c{c}", seed=s,
                                 pretrained=True, n_params=1000 * (c + 1), accuracy=0.5 + 0.05 * c + 0.01 * s,
                                 n_train=500 * (c + 1), in_capacity=c < 3, in_data=c >= 2, in_noise=False))
    return pd.DataFrame(rows).set_index("member")


def _population(members, n=120, d=16, seed=0):
    rng = np.random.default_rng(seed)
    reps = {m: rng.standard_normal((n, d)) * (1 + i % 3) for i, m in enumerate(members.index)}
    return Population(members, reps, {m: X[:20] for m, X in reps.items()}, {"zoo-x": "random"})


# ----------------------------------------------------------------------------- parameters
def test_parameters_recorded_from_the_namespace():
    ns = dict(C.SHARED_DEFAULTS, k_align=7, unrelated=1)
    p = C.parameters(ns, "02_model_model")
    assert p["k_align"] == 7 and "unrelated" not in p and set(C.SHARED_DEFAULTS) <= set(p)
    with pytest.raises(ValueError, match="lacks"):
        C.parameters({"tier": "offline"}, "01_generalization")
    with pytest.raises(ValueError, match="unknown notebook"):
        C.parameters(ns, "99_nothing")


@pytest.mark.parametrize("nb", sorted(n for n in C.NOTEBOOK_DEFAULTS if n != "population") + sorted(C.OWN_PARAMETERS))
def test_notebook_parameter_defaults_agree(nb):
    declared = C.notebook_parameter_defaults(ROOT / "notebooks" / f"{nb}.ipynb")
    expected = C.OWN_PARAMETERS.get(nb) or {**C.SHARED_DEFAULTS, **C.NOTEBOOK_DEFAULTS[nb]}
    assert set(declared) == set(expected), set(declared) ^ set(expected)
    for k, v in expected.items():
        assert declared[k] == v, (nb, k, declared[k], v)
        if k in C.SHARED_DEFAULTS:  # a name shared by several chapters means the same default everywhere
            assert v == C.SHARED_DEFAULTS[k], (nb, k)


# ----------------------------------------------------------------------------- populations, K
def test_analysis_populations_use_design_cells_and_converged_networks():
    m = _zoo_members()
    m.loc[m.index[0], "converged"] = False
    m2 = pd.concat([m, m.assign(final=False, epoch=1).rename(index=lambda s: s + "@1")])
    pops = C.analysis_populations(m2)
    assert list(pops)[:2] == ["zoo-x: clean, converged", "zoo-x: clean, final epoch"]
    assert len(pops["zoo-x: clean, converged"]) == len(m) - 1
    assert C.primary_population(pops) == "zoo-x: clean, converged"
    assert all(x.endswith("@1") for x in pops["zoo-x: under-trained"])


def test_paper_k_and_k_grid():
    assert C.paper_k("C3", 1000) == 50 and C.paper_k("C2", 1000) == 200  # 1000 is not below N/4
    assert C.paper_k("C3", 150) == 20
    assert C.k_grid(1000) == [5, 10, 20, 50, 100, 200, 250]
    with pytest.raises(ValueError, match="too few"):
        C.paper_k("C3", 12)


# ----------------------------------------------------------------------------- measures
def test_cell_means_average_seeds():
    m = _zoo_members(n_cells=2, seeds=3, families=("mlp",))
    t = M.cell_means(m)
    assert len(t) == 2 and (t["n_seeds"] == 3).all()
    assert t.loc["mlp-c0", "accuracy"] == pytest.approx(m[m.design == "mlp-c0"]["accuracy"].mean())
    assert t.loc["mlp-c0", "accuracy_sd"] == pytest.approx(m[m.design == "mlp-c0"]["accuracy"].std())
    assert sorted(t.loc["mlp-c1", "members"]) == sorted(m.index[m.design == "mlp-c1"])


def test_partner_scores_exclude_seed_replicates_and_balance_families():
    names = ["a0", "a1", "b0", "c0"]
    mem = pd.DataFrame(dict(design=["a", "a", "b", "c"], family=["f", "f", "f", "g"]), index=names)
    mat = pd.DataFrame(np.arange(16.0).reshape(4, 4), index=names, columns=names)
    sc = M.partner_scores(mat, mem)
    S_ = (mat.to_numpy() + mat.to_numpy().T) / 2
    assert sc.loc["a0", "mean_partner"] == pytest.approx((S_[0, 2] + S_[0, 3]) / 2)  # not a1
    assert sc.loc["a0", "family_balanced"] == pytest.approx(S_[0, 3])  # other family only
    assert sc.loc["c0", "family_balanced"] == pytest.approx(S_[3, :3].mean())


def test_ridge_matrix_equals_pairwise_ridge():
    from lidutils.alignment import alignment_matrix

    rng = np.random.default_rng(1)
    Z = rng.standard_normal((60, 4))
    reps = {f"m{i}": np.tanh(Z @ rng.standard_normal((4, 6 + i))) + 0.3 * rng.standard_normal((60, 6 + i))
            for i in range(3)}
    fast = M.ridge_matrix(reps, n_pcs=5)
    slow = alignment_matrix(reps, metric="ridge", n_pcs=5)
    np.testing.assert_allclose(fast.to_numpy(), slow.to_numpy(), atol=1e-10)


def test_measure_cache_is_keyed_by_code_version(tmp_path, monkeypatch):
    reps = {"a": np.random.default_rng(0).standard_normal((40, 5))}
    M.lid_table(reps, [5], cache_dir=tmp_path)
    calls = []
    real = M.project
    monkeypatch.setattr(M, "project", lambda *a, **k: calls.append(1) or real(*a, **k))
    M.lid_table(reps, [5], cache_dir=tmp_path)
    assert not calls  # served from the cache
    monkeypatch.setitem(M.MEASURE_VERSIONS, "lid", M.MEASURE_VERSIONS["lid"] + 1)
    M.lid_table(reps, [5], cache_dir=tmp_path)
    assert calls  # a new code version recomputes


def test_project_pca300_is_fitted_on_a_training_split():
    X = np.random.default_rng(0).standard_normal((50, 8))
    Z = M.project(X, "pca300", n_pcs=3)
    assert Z.shape == (50, 3)
    assert np.array_equal(M.project(X, "raw"), X)
    with pytest.raises(ValueError, match="space"):
        M.project(X, "umap")


# ----------------------------------------------------------------------------- records
def test_correlate_record_fields_and_verdict_agrees_with_ci():
    t = pd.DataFrame(dict(x=np.arange(10.0), y=-np.arange(10.0) + np.sin(np.arange(10.0))))
    rec = C.correlate("C3", t, "x", "y", population="p", **FAST)
    for key in ("r", "ci_low", "ci_high", "p", "n", "unit", "members", "paper_r", "excludes_zero",
                "excludes_paper_value", "power", "power_at", "verdict", "role", "method"):
        assert key in rec
    assert rec["verdict"] == "replicated" and rec["excludes_zero"] and rec["paper_r"] == -0.916
    assert rec["verdict"] == S.verdict(rec, expected_sign=-1)
    assert C.correlate("C3", t.iloc[:3], "x", "y", population="p", **FAST) is None  # n < 4


def test_finalize_marks_primary_and_holm_adjusts_secondaries():
    t = pd.DataFrame(dict(x=np.arange(12.0), y=np.random.default_rng(0).standard_normal(12), z=-np.arange(12.0)))
    recs = [C.correlate("C3", t, "x", y, population="p", label=y, **FAST) for y in ("y", "z")]
    out = C.finalize(recs, "z")
    assert out[0]["analysis"] == "z" and out[0]["role"] == "primary" and out[0]["p_holm"] is None
    assert out[1]["role"] == "secondary" and out[1]["p_holm"] >= out[1]["p"]
    with pytest.raises(ValueError, match="unique"):
        C.finalize(recs + recs[:1], "z")
    with pytest.raises(ValueError, match="primary"):
        C.finalize(recs, "w")


def test_max_over_k_p_corrects_for_the_choice():
    rng = np.random.default_rng(0)
    y = rng.standard_normal(30)
    X = rng.standard_normal((30, 6))
    p_null, _, _ = C.max_over_k_p(X, y, n_perm=2000)
    X[:, 2] = y + 0.3 * rng.standard_normal(30)
    p_sig, j, r = C.max_over_k_p(X, y, n_perm=2000)
    assert j == 2 and r > 0.8 and p_sig < 0.01 and p_null > 0.01


def test_study_table_is_one_row_per_design_cell():
    m = _zoo_members()
    st = C.from_population(_population(m), **FAST)
    name = C.primary_population(st.populations)
    t = st.table(name, ks=[5, 10])
    assert len(t) == m["design"].nunique() and (t["n_seeds"] == 2).all()
    assert {"mle_k5", "mle_k10", "twonn", "log10_params"} <= set(t.columns)
    P = C.primary_analysis(st, "C3", "accuracy")
    assert P["records"][0]["unit"] == "design cells" and P["records"][0]["n"] == len(t)
    assert P["k"] == C.paper_k("C3", 120)
    cap = C.series_table(st, name, "capacity", ks=[5])
    assert set(cap.index) == {f"{f}-c{c}" for f in ("mlp", "convnet") for c in range(3)}
    fam = C.family_records(st, "C3", t, "mle_k10", "accuracy", name)
    assert {r["family"] for r in fam} == {"mlp", "convnet"}


# ----------------------------------------------------------------------------- claim rules
def _rec(r, lo, hi, n=8, verdict="inconclusive", **kw):
    return dict(r=r, ci_low=lo, ci_high=hi, n=n, verdict=verdict, **kw)


def test_c6_and_c7_rules():
    rep, opp = _rec(-0.7, -0.9, -0.3, verdict="replicated"), _rec(0.7, 0.3, 0.9, verdict="opposite")
    assert C.c6_verdict([rep, rep, dict(opp, n=3)])[0] == "replicated"
    assert C.c6_verdict([opp, _rec(0, -0.5, 0.5)])[0] == "opposite"
    subj = [dict(_rec(-0.5, -0.8, -0.1), roi="IT", subject=s) for s in range(4)]
    lo = _rec(-0.1, -0.5, 0.3)
    assert C.c7_verdict({"EVC": lo, "IT": rep}, dict(ci_low=0.1), subj, ["EVC", "IT"])[0] == "replicated"
    assert C.c7_verdict({"EVC": lo, "IT": rep}, dict(ci_low=-0.1), subj, ["EVC", "IT"])[0] == "inconclusive"
    un = dict(rep, verdict="uninformative", reason="ranking not reliable")
    assert C.c7_verdict({"EVC": lo, "IT": un}, None, subj, ["EVC", "IT"])[0] == "uninformative"


def _pixel_world_population(n_models=8, n=60, seed=0):
    """Brain RDMs that are the pixel RDM of the probe images plus noise; models see the pixels too."""
    from lidutils.rsatools import pixel_rdm

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 255, size=(n, 12, 12), dtype=np.uint8)
    pix = images.reshape(n, -1).astype(float)
    base = pixel_rdm(images)
    brain = np.stack([np.clip(base + 0.02 * (e + e.T), 0, None) * (1 - np.eye(n))
                      for e in rng.standard_normal((6, n, n))])
    names = [f"m{i}" for i in range(n_models)]
    reps = {m: pix + rng.standard_normal(pix.shape) * 5 * (i + 1) for i, m in enumerate(names)}
    mem = pd.DataFrame(dict(group="world", family="sim", pretrained=True, n_params=np.nan,
                            accuracy=np.linspace(0.5, 0.9, n_models), design=names), index=names)
    return Population(mem, reps, reps, {}, brain={"brain": brain}, probe_images=images)


def test_pixel_world_brain_test_is_uninformative():
    st = C.from_population(_pixel_world_population(), **FAST)
    summary, partial = C.brain_test(st, next(iter(st.populations)))
    assert not summary.loc["brain", "informative"], summary.loc["brain", "reason"]
    recs = C.mark_uninformative([dict(_rec(-0.7, -0.9, -0.3, verdict="replicated"), y="brain_brain",
                                      expected_sign=-1)], summary)
    assert recs[0]["verdict"] == "uninformative" and recs[0]["reason"]


@pytest.mark.slow
def test_positive_world_replicates_through_the_chapters_functions(monkeypatch):
    called = []
    for fn in ("primary_analysis", "local_global", "correlate"):
        real = getattr(C, fn)
        monkeypatch.setattr(C, fn, lambda *a, _f=real, _n=fn, **k: called.append(_n) or _f(*a, **k))
    out = C.world_claims(make_world("positive", seed=0), **FAST)
    assert {"primary_analysis", "local_global", "correlate"} <= set(called)
    assert {r["claim"]: r["verdict"] for r in out["records"]} == {"C1": "replicated", "C2": "replicated",
                                                                   "C3": "replicated"}
    st = C.from_population(world_population(make_world("positive", seed=0)), **FAST)
    summary, _ = C.brain_test(st, next(iter(st.populations)))
    assert summary["informative"].all()


def test_results_files_verdicts_agree_with_their_cis():
    """Every record of every results file in results/ (if built) has a verdict its CI supports."""
    files = sorted((ROOT / "results").glob("C*.json"))
    for f in files:
        d = json.loads(f.read_text())
        assert d["verdict"] in S.VERDICTS
        for a in d["analyses"]:
            _check_record(a)


def _check_record(a):
    lo, hi, sign = a["ci_low"], a["ci_high"], a.get("expected_sign", -1)
    v = a["verdict"]
    if v == "replicated":
        assert (hi < 0) if sign < 0 else (lo > 0), a["analysis"]
    elif v == "opposite":
        assert (lo > 0) if sign < 0 else (hi < 0), a["analysis"]
    elif v == "inconclusive":
        assert lo <= 0 <= hi, a["analysis"]
    else:
        assert v == "uninformative" and a.get("reason"), a["analysis"]
