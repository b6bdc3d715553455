"""The intervention experiment (lidutils.intervention) and its notebook."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lidutils.book import intervention as IV
from lidutils.book import zoo

ROOT = Path(__file__).resolve().parents[2]
DATA = os.environ.get("LIDUTILS_DATA_DIR") or (
    str(ROOT.parent / "shared" / "data") if (ROOT.parent / "shared" / "data").is_dir() else None)


def _tiny_data(n=240, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), n // 10)
    proto = rng.integers(0, 256, size=(10, 28, 28))
    images = np.clip(proto[labels] + rng.normal(0, 60, size=(n, 28, 28)), 0, 255).astype(np.uint8)
    return images, labels


def test_lambda_zero_reproduces_the_unregularised_network_bit_for_bit(tmp_path):
    images, labels = _tiny_data()
    probe = images[:5]
    base = dict(arch="mlp", width=16, depth=1, epochs=(2,), seed=3, embed_dim=16, batch_size=32,
                schedule="cosine", augment=1)
    e_none = zoo.ZooEntry(**base)
    e_zero = zoo.ZooEntry(**base, penalty="lid", penalty_weight=0.0)
    e_pen = zoo.ZooEntry(**base, penalty="lid", penalty_weight=0.05)
    assert len({e_none.key, e_zero.key, e_pen.key}) == 3  # trained separately, not read from one cache entry
    t = zoo.train_zoo([e_none, e_zero, e_pen], images=images, labels=labels, cache_dir=tmp_path,
                      device="cpu", probe_images=probe, progress=False)
    ck = {k: torch.load(p, weights_only=True) for k, p in zip(t["key"], t["ckpt_path"])}
    a, b, c = ck[e_none.key], ck[e_zero.key], ck[e_pen.key]
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert not all(torch.equal(a[n], c[n]) for n in a)  # the test can fail: a real penalty changes weights
    ea, eb = (zoo.load_embeddings(t[t.key == e.key].iloc[-1]) for e in (e_none, e_zero))
    np.testing.assert_array_equal(ea, eb)


def test_designs():
    for name in ("default", "smoke"):
        exp = IV.experiment(name)
        d = IV.design(exp)
        for fam in exp.families:
            lams = sorted(set(d[(d.family == fam) & (d.condition != "norm") & (d.label_noise == 0)]["lam"]))
            assert 0 in lams and sorted(v for v in lams if v > 0) == sorted(-v for v in lams if v < 0)  # symmetric
        ent = IV.entries(exp, norm_ratio={f: 10.0 for f in exp.families})
        assert len(ent) == len(d)
        assert len({e.key for e in ent["entry"]}) == len(ent)
        for fam, g in ent.groupby("family"):
            shared = {(e.width, e.depth, e.embed_dim, e.n_train, e.epochs[-1], e.lr, e.schedule, e.augment)
                      for e in g["entry"]}
            assert len(shared) == 1  # only lam, penalty kind, seed and label noise vary
        zero = ent[ent.lam == 0]["entry"]
        assert all(e.penalty == "none" and e.penalty_weight == 0 for e in zero)
        assert all(e.epochs == exp.twin_epochs() and len(e.epochs) > 1 for e in zero)  # the twins' curves
        assert all(e.epochs == (exp.epochs,) for e in ent[ent.lam != 0]["entry"])
        norm = ent[ent.condition == "norm"]
        assert all(e.penalty == "norm" and e.penalty_weight == pytest.approx(10 * r.lam)
                   for e, r in zip(norm["entry"], norm.itertuples()))
        assert f"{len(d)} networks" in IV.design_text(exp)
    exp = IV.experiment("default")
    assert len(exp.families) >= 2 and len(exp.seeds) >= 3
    assert all(sum(v > 0 for v in exp.lambdas[f]) >= 3 for f in exp.families)  # 3 doses per arm
    # per family and arm: doses x seeds reach the minimum n of a verdict (the manipulation check)
    from lidutils.stats import MIN_N_VERDICT
    assert all(sum(v > 0 for v in exp.lambdas[f]) * len(exp.seeds) >= MIN_N_VERDICT for f in exp.families)
    assert exp.twin_epochs() == (1, 2, 3, 4, 8, 12, 16, 20, 24)
    kw = dict(families=("mlp",), capacity={"mlp": (8, 1)}, seeds=(0,), n_train=100, epochs=1, noise=0.4,
              noise_lambdas={}, norm_lambdas={}, lr={"mlp": 1e-3})
    with pytest.raises(ValueError, match="negative values, 0 and positive"):
        IV.Experiment(lambdas={"mlp": (0.0, 0.1)}, **kw)
    with pytest.raises(ValueError, match="symmetric about 0"):
        IV.Experiment(lambdas={"mlp": (-0.03, 0.0, 0.1)}, **kw)
    assert IV.experiment("controlled") is IV.experiment("default")
    assert IV.experiment("controlled-smoke") is IV.experiment("smoke")
    with pytest.raises(ValueError, match="unknown intervention grid"):
        IV.experiment("huge")


def _curve_acc(L):
    """Test accuracy along an unregularised network's training, as a function of its training loss."""
    return 0.9 - 0.2 * L


def _table(effect=lambda lam, d_lid: -0.02 * d_lid, lid_sign=-1, noise_sd=1e-3, seed=0):
    """A synthetic experiment: ΔLID = lid_sign * 10 |..| lam, training loss up by 3 |lam| (the penalty
    underfits), test accuracy = the twin's curve at that loss + ``effect(lam, ΔLID)`` + noise.

    Returns (table, curves); the true Δtest accuracy at matched training loss is ``effect``.
    """
    rows, curves = [], []
    rng = np.random.default_rng(seed)
    for fam, lid0 in (("a", 5.0), ("b", 9.0)):
        for s in range(3):
            base_lid = lid0 + s
            twin = f"{fam}-none+0-s{s}"
            for ep, L in enumerate((2.0, 1.5, 1.0, 0.7, 0.5), start=1):
                curves.append(dict(name=twin, epoch=ep, train_loss=L, train_acc=_curve_acc(L) + 0.1,
                                   test_acc=_curve_acc(L)))
            for lam in (-0.1, -0.03, -0.01, 0.0, 0.01, 0.03, 0.1):
                d_lid = lid_sign * 10 * lam * (1 + 0.1 * s)
                L = 0.5 + 3 * abs(lam)
                eff = effect(lam, d_lid) + rng.normal(0, noise_sd) if lam else 0.0
                acc = _curve_acc(L) + eff
                rows.append(dict(family=fam, condition="lid" if lam else "none", lam=lam, label_noise=0.0,
                                 seed=s, penalty_weight=lam, lid=base_lid + d_lid, accuracy=acc, train_loss=L,
                                 train_acc=_curve_acc(L) + 0.1, true_effect=eff))
            rows.append(dict(family=fam, condition="norm", lam=0.1, label_noise=0.0, seed=s, penalty_weight=3.0,
                             lid=base_lid, accuracy=_curve_acc(0.6) - 0.05, train_loss=0.6,
                             train_acc=_curve_acc(0.6) + 0.1, true_effect=-0.05))
    t = pd.DataFrame(rows)
    t["gap"] = t["train_acc"] - t["accuracy"]
    t.index = [f"{r.family}-{r.condition}{r.lam:+g}-s{r.seed}" for r in t.itertuples()]
    return t, pd.DataFrame(curves)


def test_test_at_fit_interpolates_along_the_twin():
    c = pd.DataFrame(dict(train_loss=[2.0, 1.0, 0.5], test_acc=[0.5, 0.7, 0.8]))
    assert IV.test_at_fit(c, 0.75) == (pytest.approx(0.75), "interpolated")
    assert IV.test_at_fit(c, 0.4) == (0.8, "better than twin's best")
    v, status = IV.test_at_fit(c, 2.5)
    assert np.isnan(v) and status == "worse than first checkpoint"
    assert IV.test_at_fit(c.iloc[::-1], 1.5)[0] == pytest.approx(0.6)  # order of the checkpoints does not matter


def test_paired_differences_and_summary():
    t, curves = _table()
    d = IV.paired(t, curves=curves)
    assert set(d.condition) == {"lid", "norm"}
    lid = d[d.condition == "lid"]
    # the matched-fit outcome recovers the planted effect although raw accuracy also falls with the fit
    np.testing.assert_allclose(d["d_test_at_fit"], t.loc[d.index, "true_effect"], atol=1e-12)
    assert (lid["fit_status"] == "interpolated").all()
    assert (lid["d_accuracy"] < lid["d_test_at_fit"]).all()
    s = IV.paired_summary(d)
    row = s[(s.family == "a") & (s.condition == "norm") & (s.metric == "test_at_fit")].iloc[0]
    assert row["n"] == 3 and row["mean"] == pytest.approx(-0.05, abs=1e-9)
    g = d[(d.family == "a") & (d.condition == "lid") & (d.lam == 0.1)]["d_accuracy"].to_numpy()
    from scipy import stats as st

    lo, hi = st.t.interval(0.95, len(g) - 1, loc=g.mean(), scale=st.sem(g))
    row = s[(s.family == "a") & (s.condition == "lid") & (s.lam == 0.1) & (s.metric == "accuracy")].iloc[0]
    assert row["ci_low"] == pytest.approx(lo) and row["ci_high"] == pytest.approx(hi)
    nc = IV.norm_control(d)
    acc = nc[(nc.family == "a") & (nc.metric == "test_at_fit")].iloc[0]
    assert acc["norm_mean"] == pytest.approx(-0.05, abs=1e-9) and acc["n"] == 3
    b = IV.baseline(t)
    assert len(b) == 2 and b["gap"].to_numpy() == pytest.approx(0.1) and (b["n"] == 3).all()
    with pytest.raises(ValueError, match="more than one unregularised"):
        IV.paired(pd.concat([t, t[t.condition == "none"]]))
    with pytest.raises(ValueError, match="train_loss"):
        IV.paired(t.drop(columns="train_loss"), curves=curves)


def _verdict(**kw):
    t, curves = _table(**kw)
    recs, checks = IV.records(IV.paired(t, curves=curves), n_boot=100, n_perm=100)
    return (*IV.claim_verdict(recs, checks), recs, checks)


def test_records_verdict_follows_the_design():
    # lower LID, better generalization at matched fit, in both arms
    v, reason, recs, checks = _verdict()
    heads = {a: next(r for r in recs if r["analysis"] == IV.PRIMARIES[a]) for a in IV.ARMS}
    for a, h in heads.items():
        assert h["n"] == 18 and h["r"] < -0.9 and h["design"] == "within family" and h["n_families"] == 2
        assert h["x"] == "d_lid" and h["y"] == "d_test_at_fit"
    assert set(checks) == {"a, lowering", "b, lowering", "a, raising", "b, raising"}
    assert set(checks.values()) == {"replicated"}
    assert v == "replicated" and "matched training loss" in reason
    # every push on LID costs generalization (an inverted U): not a monotone effect
    v, reason, *_ = _verdict(effect=lambda lam, d_lid: -0.2 * abs(lam))
    assert v == "not replicated"
    # higher LID generalizes better in both arms
    assert _verdict(effect=lambda lam, d_lid: 0.02 * d_lid)[0] == "opposite"
    # every push helps
    assert _verdict(effect=lambda lam, d_lid: 0.2 * abs(lam))[0] == "inconclusive"
    # no effect at matched fit: raw accuracy still falls with the underfitting penalty, the primary does not
    v, reason, recs, _ = _verdict(effect=lambda lam, d_lid: 0.0, noise_sd=5e-3)
    assert v == "inconclusive"
    raw = next(r for r in recs if r["analysis"].startswith("λ > 0") and r["y"] == "d_accuracy")
    assert raw["r"] > 0.9  # lowering LID "costs" raw accuracy only through the fit
    # a penalty that moves LID the wrong way cannot test the claim
    v, reason, _, checks = _verdict(lid_sign=1)
    assert v == "uninformative" and "manipulation" in reason
    assert checks["a, lowering"] == "wrong direction"


def test_interpretation_states_only_what_was_measured():
    t, curves = _table()
    d = IV.paired(t, curves=curves)
    recs, checks = IV.records(d, n_boot=300, n_perm=300)
    v, _ = IV.claim_verdict(recs, checks)
    text = IV.interpretation(v, recs, d, checks, IV.norm_control(d))
    assert "matched training loss" in text and "norm" in text and "18 networks" in text
    assert "pushing LID up lowered it" in text  # the λ < 0 arm replicated too
    assert "by-product" not in text and "scale" not in text
    for verdict in ("opposite", "not replicated", "inconclusive", "uninformative", "descriptive"):
        assert "by-product" not in IV.interpretation(verdict, recs, d)
    # an inverted U: the meaning says both directions cost, from the raising arm's own label
    v2, _, recs2, checks2 = _verdict(effect=lambda lam, d_lid: -0.2 * abs(lam))
    t2, c2 = _table(effect=lambda lam, d_lid: -0.2 * abs(lam))
    assert "either way" in IV.interpretation(v2, recs2, IV.paired(t2, curves=c2), checks2)


def test_write_result_holds_both_primaries(tmp_path):
    t, curves = _table()
    recs, checks = IV.records(IV.paired(t, curves=curves), n_boot=200, n_perm=200)
    v, reason = IV.claim_verdict(recs, checks)
    res = IV.write_result(recs, v, reason, {"zoo_grid": "synthetic"}, out_dir=tmp_path)
    assert res["primary"] == IV.PRIMARIES["lowering"] and res["extra"]["primaries"] == list(IV.PRIMARIES.values())
    assert [a["role"] for a in res["analyses"][:2]] == ["primary", "primary"]
    assert all(a["p_holm"] is not None for a in res["analyses"])
    assert json.loads((tmp_path / "C8.json").read_text())["verdict"] == v
    assert IV.write_result([r for r in recs if r["analysis"] not in IV.PRIMARIES.values()], v, reason, {},
                           out_dir=tmp_path / "none") is None


def test_figures_draw_from_the_tables():
    import matplotlib

    matplotlib.use("Agg")
    from lidutils.book import intervention_figures as IVF

    t, curves = _table()
    d = IV.paired(t, curves=curves)
    s = IV.paired_summary(d)
    for fig in (IVF.paired_dose_response(s, ["lid", "test_at_fit"]), IVF.matched_fit(curves, t),
                IVF.arm_scatter(d, ["d_test_at_fit", "d_gap"])):
        assert len(fig.axes) >= 2
    assert IVF.paired_dose_response(s, ["lid"], label_noise=0.4) is None


def test_validate_penalty_tracks_lid():
    rng = np.random.default_rng(0)
    reps = {f"d{d}": rng.normal(size=(384, d)) @ rng.normal(size=(d, 32)) for d in (2, 4, 8)}
    batches, models = IV.validate_penalty(reps, k=10, batch_size=128, k_full=20, n_pcs=32)
    assert len(batches) == 9
    np.testing.assert_allclose(batches["batch"], batches["same_points"], rtol=1e-4)
    assert models.loc["d2", "full"] < models.loc["d4", "full"] < models.loc["d8", "full"]
    assert models.loc["d2", "batch_mean"] < models.loc["d4", "batch_mean"] < models.loc["d8", "batch_mean"]
    v = IV.penalty_validation(batches, models, n_boot=200, n_perm=200)
    assert v["n_batches"] == 9 and v["max_rel_diff_same_points"] < 1e-4 and v["tracks"]["n"] == 3
    same, track = IV.validation_text(v)
    assert "9 batches" in same and "n = 3 networks" in track


@pytest.mark.slow
@pytest.mark.skipif(DATA is None, reason="needs the data mirror (LIDUTILS_DATA_DIR)")
def test_smoke_grid_runs_through_the_notebook(tmp_path):
    pm = pytest.importorskip("papermill")
    out, cache = tmp_path / "results", tmp_path / "cache"
    out.mkdir()
    params = dict(zoo_grid="smoke", n_boot=200, n_perm=300, seed=0, device="cpu", num_workers=1,
                  cache_dir=str(cache), out_dir=str(out), data_dir=DATA)
    declared = pm.inspect_notebook(str(ROOT / "notebooks" / "06_intervention.ipynb"))
    assert set(params) <= set(declared)
    pm.execute_notebook(str(ROOT / "notebooks" / "06_intervention.ipynb"), str(tmp_path / "06.ipynb"),
                        parameters=params, cwd=str(ROOT), kernel_name="python3", progress_bar=False)
    res = json.loads((out / "C8.json").read_text())
    assert res["claim"] == "C8" and res["beyond_paper"] is True
    assert res["primary"] == IV.PRIMARIES["lowering"] and res["analyses"][0]["analysis"] == IV.PRIMARIES["lowering"]
    from lidutils.stats import VERDICTS
    assert res["verdict"] in VERDICTS
    for rec in res["analyses"]:
        assert rec["n"] >= 4 and rec["ci_low"] <= rec["r"] <= rec["ci_high"]
    assert res["parameters"]["zoo_grid"] == "smoke"
    assert res["extra"]["penalty_validation"]["max_rel_diff_same_points"] < 1e-3
