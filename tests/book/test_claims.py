"""The claim logic (lidutils.claims, lidutils.measures) on small synthetic populations."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lidutils.book import claims as C, local_global as LG
from lidutils.book import measures as M
from lidutils.book import study as STUDY, validation as VAL
from lidutils import stats as S
from lidutils.book.population import Population
from lidutils.book.simulate import make_world, world_population

ROOT = Path(__file__).resolve().parents[2]
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
    assert C.claim_k("C3", 1000) == 50 and C.claim_k("C2", 1000) == 200  # 1000 is not below N/4
    assert C.claim_k("C3", 150) == 20
    assert C.k_grid(1000) == [5, 10, 20, 50, 100, 200, 250]
    with pytest.raises(ValueError, match="too few"):
        C.claim_k("C3", 12)


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
    fast = M.ridge_all_pairs(reps, n_pcs=5)
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


def _family_table(within, between, per=6, fams=("mlp", "convnet", "mixer"), seed=0):
    rng = np.random.default_rng(seed)
    G = len(fams)
    off = np.repeat(np.arange(G) * 4.0, per)
    e = rng.standard_normal((2, G * per))
    return pd.DataFrame(dict(family=np.repeat(fams, per), x=off + e[0],
                             y=between * off + within * e[0] + np.sqrt(1 - within ** 2) * e[1]),
                        index=[f"u{i}" for i in range(G * per)])


def test_correlate_is_within_family_when_the_units_span_families():
    t = _family_table(0.0, -2.0, seed=2)  # the only effect is between the three families
    rec = C.correlate("C1", t, "x", "y", population="p", **FAST)
    assert rec["design"] == "within family" and rec["n_families"] == 3 and rec["r_between"] < -0.99
    assert rec["r_pooled"] < -0.8 and rec["verdict"] != "replicated"
    pooled = C.correlate("C1", t, "x", "y", population="p", design="pooled", **FAST)
    assert pooled["verdict"] == "replicated" and pooled["design"] == "pooled"  # what the old analysis said
    one = C.correlate("C1", t[t["family"] == "mlp"].assign(y=lambda d: -d["x"]), "x", "y", population="p", **FAST)
    assert one["design"] == "pooled" and one["n"] == 6 and one["verdict"] == "descriptive"
    assert one["ci_method"] == "Fisher z" and (one["ci_low"], one["ci_high"]) == S.fisher_ci(one["r"], 6)


def test_finalize_gates_secondary_labels_by_holm_and_takes_several_primaries():
    rng = np.random.default_rng(1)
    x = np.arange(20.0)
    t = pd.DataFrame(dict(x=x, a=-x + rng.standard_normal(20), b=-x + 6 * rng.standard_normal(20),
                          c=rng.standard_normal(20), d=rng.standard_normal(20), e=rng.standard_normal(20)))
    recs = [C.correlate("C3", t, "x", y, population="p", label=y, **FAST) for y in "abcde"]
    weak = recs[1]
    assert weak["verdict"] == "replicated" and weak["p"] < 0.05
    out = C.finalize([dict(r) for r in recs], ["a", "b"])
    assert [r["role"] for r in out[:2]] == ["primary", "primary"] and out[0]["p_holm"] is not None
    for r in out:
        if r["verdict"] in ("replicated", "opposite"):
            assert r["p_holm"] < 0.05
    gated = dict(weak, p_holm=0.2)
    assert C.holm_gate(gated)["verdict"] == "inconclusive" and "Holm" in gated["note"]


def test_c5_rule_needs_both_series():
    rep = dict(_rec(-0.7, -0.9, -0.4, n=12, verdict="replicated"), p=0.001, n_families=3, design="within family")
    opp = dict(_rec(0.86, 0.72, 0.96, n=15, verdict="opposite"), p=0.001)
    inc = dict(_rec(-0.2, -0.6, 0.3, n=12), p=0.4)
    desc = dict(_rec(0.99, 0.95, 1.0, n=4, verdict="descriptive"), p=0.08)
    assert C.c5_verdict(rep, rep)[0] == "replicated"
    v, why = C.c5_verdict(inc, opp)
    assert v == "opposite" and "data" in why
    assert C.c5_verdict(rep, opp)[0] == "inconclusive"  # a split is no verdict
    assert C.c5_verdict(desc, None)[0] == "descriptive"
    assert C.c5_verdict(rep, desc)[0] == "inconclusive"
    weak = dict(rep, p=0.04)  # Holm over the two primaries: 2 x 0.04 >= 0.05
    assert C.c5_verdict(weak, dict(rep, p=0.03))[0] == "inconclusive"


def test_degradation_series_are_manipulation_checks_without_verdicts():
    rng = np.random.default_rng(0)
    rows = []
    for ser in ("a / weight_noise", "a / blur", "b / weight_noise"):
        for d in range(6):
            rows.append(dict(series=ser, dose=d, lid=10 + d + rng.standard_normal(), acc=1 - 0.1 * d,
                             brain_IT=0.3 - 0.02 * d + 0.01 * rng.standard_normal(),
                             brain_EVC=0.2 + 0.01 * rng.standard_normal()))
    tab = pd.DataFrame(rows, index=[f"m{i}" for i in range(len(rows))])
    recs = C.degradation_records("C2", tab, "lid", ["brain_EVC", "brain_IT"], **FAST)
    assert len({r["analysis"] for r in recs}) == len(recs)  # unique labels, one dose check per series
    assert sum(r["x"] == "dose" for r in recs) == 3
    assert all(r["role"] == "manipulation check" and r["verdict"] == "descriptive" for r in recs)
    per_series = [r for r in recs if "series" in r]
    assert all(r["n"] == 6 and r["ci_method"] == "Fisher z" for r in per_series)
    out = C.finalize([C.correlate("C2", tab, "lid", "acc", population="p", label="prim", **FAST)] + recs, "prim")
    assert all(r["p_holm"] is None and r["role"] == "manipulation check" for r in out[1:])


def test_natural_k_table_states_k_over_n_and_classes_per_photo():
    m = _zoo_members(n_cells=5, seeds=1, families=("mlp",))
    pop = _population(m)
    pop.stimuli["zoo-x"] = "120 photos of 120 classes, one photo each"
    st = C.from_population(pop, **FAST)
    tab = C.natural_k_table(st, "C3", next(iter(st.populations)), "accuracy")
    assert set(tab["measure"]) >= {"LID K=5", "TwoNN"} and (tab["verdict"] == "descriptive").all()
    row = tab[tab["k"] == 20].iloc[0]
    assert row["k_over_n"] == pytest.approx(20 / 120) and row["classes_per_photo"] == 1.0
    assert row["classes_in_neighbourhood"] == 20 and row["n"] == 5


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
    assert P["k"] == C.claim_k("C3", 120)
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
    # patched where world_claims and Study look them up (the book modules, not the claims namespace)
    for mod, fn in ((VAL, "primary_analysis"), (VAL, "local_global"), (STUDY, "correlate")):
        real = getattr(mod, fn)
        monkeypatch.setattr(mod, fn, lambda *a, _f=real, _n=fn, **k: called.append(_n) or _f(*a, **k))
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
    """A record's verdict is one its CI, its p (Holm-adjusted for a secondary) and its n support."""
    lo, hi, sign = a["ci_low"], a["ci_high"], a.get("expected_sign", -1)
    v = a["verdict"]
    p = a["p_holm"] if a.get("p_holm") is not None else a.get("p")
    if v in ("replicated", "opposite"):
        assert not S.too_few(a), a["analysis"]  # never a label below the minimum n
        assert p is not None and p < S.ALPHA, a["analysis"]  # CI and p agree
    if v == "replicated":
        assert (hi < 0) if sign < 0 else (lo > 0), a["analysis"]
    elif v == "opposite":
        assert (lo > 0) if sign < 0 else (hi < 0), a["analysis"]
    elif v == "inconclusive":
        assert lo <= 0 <= hi or p is None or p >= S.ALPHA, a["analysis"]
    elif v == "descriptive":
        assert S.too_few(a) or a.get("role") == "manipulation check", a["analysis"]
    elif v == "not replicated":  # C4: a global measure that predicts is evidence against C4
        assert "against C4" in (a.get("reason") or "") and not (lo <= 0 <= hi), a["analysis"]
        assert not S.too_few(a) and p is not None and p < S.ALPHA, a["analysis"]
    else:
        assert v == "uninformative" and a.get("reason"), a["analysis"]


# ----------------------------------------------------------------------------- C4 (issue 20)
def _c4_blocks():
    st = C.from_population(_population(_zoo_members()), **FAST)
    name = next(iter(st.populations))
    n = st.n_stimuli(name)
    t = st.table(name, ks=sorted(set(C.k_grid(n)) | {C.k_global(n)}), estimators=("mle", "mom"), global_dims=True)
    return st, name, t, {y: C.local_global(st, "C4", name, y, table=t) for y in C.c4_targets(st, t)}


def test_c4_records_are_measured_quantities_and_globals_never_replicated():
    st, name, t, blocks = _c4_blocks()
    assert list(blocks) == ["accuracy"] and "accuracy_sd" in t  # named targets, never the seed SD
    recs = C.c4_records(blocks, primary="accuracy")
    assert recs[0]["statistic"] == "abs_r_difference"  # the primary is the local-global contrast
    for r in recs:
        for col in (r["x"], r.get("x_global"), r["y"]):
            assert col is None or (C.measured(col) and not col.endswith("_sd") and col in t), (r["analysis"], col)
    for g in blocks["accuracy"]["globals"]:
        assert g["verdict"] != "replicated" and g["reason"]
        assert (g["verdict"] == "not replicated") == ("against C4" in g["reason"])
    # the contrast is computed in the records' own frame (two families: within family)
    assert all(c["design"] == recs[1]["design"] == "within family" for c in blocks["accuracy"]["contrasts"])
    with pytest.raises(ValueError, match="measured"):
        C.local_global(st, "C4", name, "accuracy_sd", table=t)
    with pytest.raises(ValueError, match="measured"):
        C.target_measures("brain_IT_sd")


def test_c4_global_record_that_predicts_is_against_c4():
    rec = dict(_rec(-0.6, -0.8, -0.3, verdict="replicated"), p=0.001)
    out = LG._global_verdict(rec)
    assert out["verdict"] == "not replicated" and "global predicts (against C4)" in out["reason"]
    assert LG._global_verdict(dict(_rec(0.1, -0.3, 0.5), p=0.6))["verdict"] == "inconclusive"


def test_c4_reason_states_r_against_k():
    curve = pd.DataFrame(dict(target="accuracy", k=[5, 20, 50, 250], r=[0.54, 0.7, 0.8, 0.89]))
    assert "rises with K" in C.k_trend(curve, "accuracy") and "K = 250" in C.k_trend(curve)
    assert "falls with K" in C.k_trend(curve.assign(r=[-0.8, -0.6, -0.4, -0.1]))


def test_results_files_records_are_measured_quantities():
    """No record of a built results/ file correlates a seed-SD or bookkeeping column (C4 once used brain_IT_sd)."""
    for f in sorted((ROOT / "results").glob("C*.json")):
        for a in json.loads(f.read_text())["analyses"]:
            for col in (a.get("x"), a.get("x_global"), a.get("y")):
                assert col is None or C.measured(col), (f.name, a["analysis"], col)


# ----------------------------------------------------------------------------- brain rule (issue 20)
def test_brain_rule_needs_scores_above_the_low_level_baseline():
    from lidutils.rsatools import brain_test_informative

    rel = dict(mean=0.975, ci_low=0.93)
    ok, why = brain_test_informative(rel, [0.2, 0.1], score=0.066, baseline=0.146)
    assert not ok and "baseline" in why and "0.146" in why
    assert brain_test_informative(rel, [0.2, 0.1], score=0.2, baseline=0.146)[0]


def test_brain_records_carry_reliability_and_partialled_score():
    from lidutils.book.report import describe

    st = C.from_population(_pixel_world_population(), **FAST)
    name = next(iter(st.populations))
    summary, partial = C.brain_test(st, name)
    assert {"mean_score", "baseline", "baseline_name", "reliability"} <= set(summary.columns)
    assert {"partial_brain", "partial_brain_s1"} <= set(partial.columns)
    t = st.table(name, ks=[10], brain=True).join(C.cell_partial(st, name, partial))
    rec = st.correlate("C2", t, "mle_k10", "brain_brain", population=name, k=10)
    subj = C.per_subject_records(st, "C7", name, t, 10)
    out = C.mark_uninformative([dict(rec, excludes_paper_value=True)] + subj, summary, study=st, table=t)
    for r in out:
        assert r["reliability"] is not None and r["r_partial"] is not None and "mean_score" in r, r["analysis"]
        assert r["verdict"] == "uninformative" and r["excludes_paper_value"] is None
        assert "excludes the paper" not in describe(r)


def test_claims_page_c4_row_shows_the_local_global_contrast(tmp_path):
    """The claims page's C4 row is C4's own contrast, not C3's correlation."""
    from lidutils.book import claims_page as CP
    from lidutils.book.report import write_claim

    st, name, t, blocks = _c4_blocks()
    recs = C.finalize(C.c4_records(blocks, primary="accuracy"), C.c4_records(blocks, "accuracy")[0]["analysis"])
    for r in recs:
        _check_record(r)
    write_claim("C4", recs, out_dir=tmp_path, verdict="inconclusive", reason="test")
    table = CP.records_table(CP.read_claims(tmp_path))
    row = table[table["is_primary"]].iloc[0]
    assert row["statistic"] == "abs_r_difference" and row["x"] != row["y"]
    page = CP.claims_html(table)
    assert "Δ|r| local − global" in page and row["measure"] in page
    assert row["r"] == pytest.approx(abs(recs[0]["r_local"]) - abs(recs[0]["r_global"]))
