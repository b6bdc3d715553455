"""The factorial chapter's analysis (lidutils.factorial) on constructed data, and the smoke grid end to end."""
from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lidutils.book import factorial as F
from lidutils import stats as S
from lidutils.book import zoo as Z

FAST = dict(n_boot=500, n_perm=2000, seed=0)
ROOT = Path(__file__).resolve().parents[2]
DATA = os.environ.get("LIDUTILS_DATA_DIR") or (
    str(ROOT.parent / "shared" / "data") if (ROOT.parent / "shared" / "data").is_dir() else None)


def _design(families=("mlp", "convnet", "mixer"), noise=(0.0, 0.2, 0.4, 0.6), data=(0, 1), cap=(0, 1, 2)):
    rows = [dict(family=f, label_noise=n, data_level=d, capacity_level=c)
            for f, n, d, c in itertools.product(families, noise, data, cap)]
    t = pd.DataFrame(rows)
    t.index = [f"{r.family}-c{r.capacity_level}-d{r.data_level}-n{r.label_noise:g}" for r in t.itertuples()]
    return t


def _world(dim_effects, acc_effects, family_dim=None, family_acc=None, noise_sd=0.02, seed=0):
    """A unit table whose dimension and accuracy are linear in the factor levels, plus family offsets.

    ``dim_effects`` / ``acc_effects``: factor -> change per level step (noise step 0.2 counts as 1).
    """
    t = _design()
    rng = np.random.default_rng(seed)
    steps = dict(label_noise=t["label_noise"] / 0.2, data=t["data_level"], capacity=t["capacity_level"])
    fd = t["family"].map(family_dim or {}).fillna(0.0)
    fa = t["family"].map(family_acc or {}).fillna(0.0)
    dim = fd + sum(dim_effects.get(f, 0.0) * s for f, s in steps.items()) + rng.normal(0, noise_sd, len(t))
    acc = fa + sum(acc_effects.get(f, 0.0) * s for f, s in steps.items()) + rng.normal(0, noise_sd, len(t))
    t["mle_k50"] = 10 + dim
    t["twonn"] = 8 + dim
    t["participation_ratio"] = 20 - dim  # the same information with the other sign
    t["accuracy"] = 0.8 + acc
    return t


def _by(records, measure, factor):
    return next(r for r in records if r["measure"] == measure and r["factor"] == factor)


# ----------------------------------------------------------------------------- the statistic
def test_within_slope_matches_rmcorr_and_dummy_ols():
    t = _world({"label_noise": 1.0}, {"label_noise": -0.05}, noise_sd=0.05, seed=3)
    st = F.strata(t, "label_noise")
    res = F.within_slope(t["mle_k50"], t["accuracy"], st, t["family"], **FAST)
    ref = S.rmcorr(t["mle_k50"], t["accuracy"], st, n_boot=0, n_perm=0)
    assert res["r"] == pytest.approx(ref["r"], abs=1e-12)
    # slope: OLS of accuracy on dimension with one dummy per stratum
    D = pd.get_dummies(st).to_numpy(float)
    X = np.column_stack([t["mle_k50"].to_numpy(), D])
    beta = np.linalg.lstsq(X, t["accuracy"].to_numpy(), rcond=None)[0][0]
    assert res["slope"] == pytest.approx(beta, rel=1e-9)
    assert res["ci_low"] <= res["r"] <= res["ci_high"] and res["slope_ci_low"] <= res["slope"] <= res["slope_ci_high"]
    assert res["n"] == 72 and res["n_strata"] == 18 and res["n_eff"] == 72 - 18 + 1 and res["n_families"] == 3
    assert res["r"] < -0.3 and res["p"] < 0.01


def test_within_slope_null_has_calibrated_p_and_rejects_bad_strata():
    t = _world({}, {}, noise_sd=1.0, seed=1)
    ps = [F.within_slope(t["mle_k50"], _world({}, {}, noise_sd=1.0, seed=s)["accuracy"], F.strata(t, "data"),
                         t["family"], n_boot=50, n_perm=200, seed=s)["p"] for s in range(40)]
    assert np.mean(np.array(ps) < 0.05) <= 0.15  # about 0.05 expected (40 draws)
    with pytest.raises(ValueError, match="spans several families"):
        F.within_slope(t["mle_k50"], t["accuracy"], ["a", "b"] * (len(t) // 2), t["family"])
    with pytest.raises(ValueError, match="constant inside every stratum"):
        F.within_slope(np.zeros(len(t)), t["accuracy"], F.strata(t, "data"), t["family"])
    with pytest.raises(ValueError, match="unknown factor"):
        F.strata(t, "epochs")


# ----------------------------------------------------------------------------- the design's questions
def test_planted_sign_flip_between_factors_is_recovered():
    """Noise and capacity: lower LID, higher accuracy; data: LID and accuracy rise together."""
    t = _world(dim_effects={"label_noise": 1.0, "data": 2.0, "capacity": -1.0},
               acc_effects={"label_noise": -0.05, "data": 0.05, "capacity": 0.04},
               family_dim={"mlp": 3, "convnet": 0, "mixer": -2}, family_acc={"mlp": -0.1, "mixer": 0.05})
    recs = F.finalize(F.factor_slopes(t, **FAST))
    assert [r["role"] for r in recs[:3]] == ["primary"] * 3 and {r["factor"] for r in recs[:3]} == set(F.FACTORS)
    assert _by(recs, "lid", "label_noise")["verdict"] == "replicated"
    assert _by(recs, "lid", "capacity")["verdict"] == "replicated"
    assert _by(recs, "lid", "data")["verdict"] == "opposite"
    # participation ratio carries the same information with the other sign, and its literature's sign is +1
    assert _by(recs, "pr", "data")["r"] < 0 and _by(recs, "pr", "data")["verdict"] == "opposite"
    assert _by(recs, "pr", "label_noise")["verdict"] == "replicated"
    v, why = F.c9_verdict(recs)
    assert v == "not replicated" and "training data" in why and "depends on the factor" in why
    text = F.interpretation(recs, v)
    assert "the sign depends on the factor" in text
    tab = F.slope_table(recs)
    assert set(tab["measure"]) == {"lid", "twonn", "pr"} and len(tab) == 12


def test_between_family_only_effect_gives_no_within_slope():
    """Families differ in mean dimension and accuracy (lower dimension, better family); nothing within."""
    fam_dim, fam_acc = {"mlp": 4.0, "convnet": 0.0, "mixer": -4.0}, {"mlp": -0.2, "convnet": 0.0, "mixer": 0.2}
    for seed in range(3):
        t = _world({}, {}, family_dim=fam_dim, family_acc=fam_acc, noise_sd=0.05, seed=seed)
        dec = F.decomposition(t, "mle_k50")
        assert dec["pooled"] < -0.9 and dec["between_families"] < -0.99 and dec["n_families"] == 3
        recs = F.finalize(F.factor_slopes(t, **FAST))
        assert all(r["verdict"] not in ("replicated", "opposite") for r in recs), \
            [(r["analysis"], r["r"], r["verdict"]) for r in recs if r["verdict"] in ("replicated", "opposite")]
        assert all(r["r_between_families"] < -0.99 for r in recs if r["measure"] == "lid")
        assert F.c9_verdict(recs)[0] == "inconclusive"


def test_factor_confined_to_one_level_varies_nothing():
    t = _world({"data": 1.0}, {"data": 0.1})
    t = t[t["capacity_level"] == 0]
    with pytest.warns(UserWarning, match="capacity"):
        recs = F.factor_slopes(t, n_boot=50, n_perm=50)
    assert {r["factor"] for r in recs} == {"label_noise", "data", "all"}


def test_c9_verdict_rule():
    def recs(*verdicts):
        return [dict(role="primary", factor=f, verdict=v, r=-0.5 if v == "replicated" else 0.5, ci_low=-0.9,
                     ci_high=0.9, p_holm_primary=0.01, n=24, n_strata=6) for f, v in zip(F.FACTORS, verdicts)]

    assert F.c9_verdict(recs("replicated", "replicated", "replicated"))[0] == "replicated"
    assert F.c9_verdict(recs("replicated", "opposite", "inconclusive"))[0] == "not replicated"
    assert F.c9_verdict(recs("opposite", "inconclusive", "inconclusive"))[0] == "opposite"
    assert F.c9_verdict(recs("replicated", "inconclusive", "replicated"))[0] == "inconclusive"
    assert F.c9_verdict(recs("inconclusive", "inconclusive", "inconclusive"))[0] == "inconclusive"
    with pytest.raises(ValueError, match="no primary"):
        F.c9_verdict([])


def test_holm_and_labels_follow_the_p_values():
    t = _world({"label_noise": 1.0, "data": 2.0, "capacity": -1.0}, {"label_noise": -0.05, "data": 0.05,
                                                                      "capacity": 0.04})
    recs = F.finalize(F.factor_slopes(t, **FAST))
    prim = [r for r in recs if r["role"] == "primary"]
    assert all(r["p_holm"] is None and r["p_holm_primary"] >= r["p"] for r in prim)
    assert all(r["p_holm"] >= r["p"] for r in recs if r["role"] == "secondary")
    for r in recs:  # a label needs the CI and the adjusted p to agree
        p = r["p_holm_primary"] if r["role"] == "primary" else r["p_holm"]
        if r["verdict"] in ("replicated", "opposite"):
            assert p < S.ALPHA and S.excludes(r, 0.0)


# ----------------------------------------------------------------------------- the grid
def test_factorial_grid_crosses_every_level_and_shares_controlled_keys():
    cells = Z.design_table("factorial")
    assert len(cells) == 3 * 4 * 2 * 3 and set(cells["label_noise"]) == {0.0, 0.2, 0.4, 0.6}
    assert cells.groupby("family").size().eq(24).all()
    assert not cells.duplicated(["family", "label_noise", "data_level", "capacity_level"]).any()
    controlled = {e.key: e for e in Z.GRIDS["controlled"]}
    fact = Z.GRIDS["factorial"]
    shared = [e for e in fact if e.key in controlled]
    # the capacity and data series through the reference cell and its noise series (6 cells per family)
    assert len(shared) == 3 * 6 * len(Z.FACTORIAL.seeds)
    for e in shared:
        assert e.fields() == controlled[e.key].fields()
    assert len({e.key for e in fact}) == len(fact) == 144
    assert len(Z.GRIDS["factorial-smoke"]) == 24 and Z.GRID_DATA["factorial"] == "fashion-mnist"
    with pytest.raises(ValueError, match="capacity_levels"):
        Z.FactorialDesign(data="fashion-mnist", capacity=Z.FACTORIAL.capacity, n_train=(500,), ref_capacity=0,
                          ref_data=0, capacity_levels=(0, 9), data_levels=(0,))
    assert F.grid_name("controlled") == "factorial" and F.grid_name("smoke") == "factorial-smoke"
    with pytest.raises(ValueError, match="no factorial grid"):
        F.grid_name("default")


needs_data = pytest.mark.skipif(DATA is None, reason="needs the data mirror (LIDUTILS_DATA_DIR)")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke factorial trained once into a temporary cache: (cache, networks, seconds)."""
    cache = tmp_path_factory.mktemp("factorial-cache")
    old = os.environ.get("LIDUTILS_DATA_DIR")
    os.environ["LIDUTILS_DATA_DIR"] = DATA
    try:
        t0 = time.perf_counter()
        nets = F.train("smoke", cache_dir=cache, device="cpu", num_workers=1)
        return cache, nets, time.perf_counter() - t0
    finally:
        if old is None:
            os.environ.pop("LIDUTILS_DATA_DIR", None)
        else:
            os.environ["LIDUTILS_DATA_DIR"] = old


@pytest.mark.slow
@needs_data
def test_smoke_grid_end_to_end(smoke, tmp_path):
    from lidutils.book import claims_page as cp

    cache, nets, seconds = smoke
    t0 = time.perf_counter()
    assert len(nets) == 24 and nets["accuracy"].between(0, 1).all()
    u = F.units(F.measure(nets, cache_dir=cache, device="cpu"))
    assert len(u) == 24 and u[["mle_k50", "twonn", "participation_ratio"]].notna().all().all()
    checks = F.manipulation_checks(u, n_boot=200, n_perm=200)
    assert set(checks["factor"]) == {"label noise", "training data", "capacity"}
    recs = F.finalize(F.factor_slopes(u, n_boot=200, n_perm=200))
    verdict, reason = F.c9_verdict(recs)
    assert verdict in S.VERDICTS and reason
    out = F.write_result(recs, verdict, reason, {"zoo_grid": "smoke"}, out_dir=tmp_path / "results")
    assert out["beyond_paper"] and out["claim"] == "C9" and out["notebook"] == "07_factorial"
    rows = cp.records_table(cp.read_claims(tmp_path / "results"))
    assert rows["beyond_paper"].all() and rows["is_primary"].sum() == 3
    assert "C9 †" in cp.claims_html(rows)
    assert seconds + time.perf_counter() - t0 < 60


@pytest.mark.slow
@needs_data
def test_notebook_writes_c9(smoke, tmp_path):
    pm = pytest.importorskip("papermill")
    cache, _, _ = smoke
    out = tmp_path / "results"
    pm.execute_notebook(str(ROOT / "notebooks" / "07_factorial.ipynb"), str(tmp_path / "07.ipynb"),
                        parameters=dict(zoo_grid="smoke", cache_dir=str(cache), out_dir=str(out), data_dir=DATA,
                                        n_boot=200, n_perm=300, device="cpu", num_workers=1),
                        cwd=str(ROOT), kernel_name="python3", progress_bar=False)
    import json

    d = json.loads((out / "C9.json").read_text())
    assert d["beyond_paper"] and d["verdict"] in S.VERDICTS and d["parameters"]["n_boot"] == 200
    prim = [a for a in d["analyses"] if a["role"] == "primary"]
    assert len(prim) == 3 and d["primary"] == prim[0]["analysis"] == d["analyses"][0]["analysis"]
    assert all(len(a["members"]) == a["n"] for a in d["analyses"])
