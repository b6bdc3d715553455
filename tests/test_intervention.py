"""The intervention experiment (lidutils.intervention) and its notebook."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lidutils import intervention as IV
from lidutils import zoo

ROOT = Path(__file__).resolve().parents[1]
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
            assert min(lams) < 0 < max(lams) and 0 in lams
        ent = IV.entries(exp, norm_ratio={f: 10.0 for f in exp.families})
        assert len(ent) == len(d)
        assert len({e.key for e in ent["entry"]}) == len(ent)
        for fam, g in ent.groupby("family"):
            shared = {(e.width, e.depth, e.embed_dim, e.n_train, e.epochs, e.lr, e.schedule) for e in g["entry"]}
            assert len(shared) == 1  # only lam, penalty kind, seed and label noise vary
        zero = ent[ent.lam == 0]["entry"]
        assert all(e.penalty == "none" and e.penalty_weight == 0 for e in zero)
        norm = ent[ent.condition == "norm"]
        assert all(e.penalty == "norm" and e.penalty_weight == pytest.approx(10 * r.lam)
                   for e, r in zip(norm["entry"], norm.itertuples()))
    exp = IV.experiment("default")
    assert len(exp.families) >= 2 and len(exp.seeds) >= 3
    assert all(len(exp.lambdas[f]) >= 5 for f in exp.families)
    with pytest.raises(ValueError, match="negative values, 0 and positive"):
        IV.Experiment(families=("mlp",), capacity={"mlp": (8, 1)}, lambdas={"mlp": (0.0, 0.1)}, seeds=(0,),
                      n_train=100, epochs=1, noise=0.4, noise_lambdas={}, norm_lambdas={}, lr={"mlp": 1e-3})
    assert IV.experiment("controlled") is IV.experiment("default")
    assert IV.experiment("controlled-smoke") is IV.experiment("smoke")
    with pytest.raises(ValueError, match="unknown intervention grid"):
        IV.experiment("huge")


def _table():
    """A synthetic measurement table: ΔLID = -10 lam, Δaccuracy = -2 ΔLID + seed noise."""
    rows = []
    rng = np.random.default_rng(0)
    for fam in ("a", "b"):
        for s in range(3):
            base_lid, base_acc = 5 + s, 0.8 + 0.01 * s
            for lam in (-0.03, -0.01, 0.0, 0.01, 0.03, 0.1):
                lid = base_lid - 10 * lam
                acc = base_acc + 2 * 10 * lam / 100 + rng.normal(0, 1e-4)
                rows.append(dict(family=fam, condition="lid" if lam else "none", lam=lam, label_noise=0.0,
                                 seed=s, penalty_weight=lam, lid=lid, accuracy=acc))
            rows.append(dict(family=fam, condition="norm", lam=0.1, label_noise=0.0, seed=s, penalty_weight=3.0,
                             lid=base_lid, accuracy=base_acc - 0.05))
    t = pd.DataFrame(rows)
    t.index = [f"{r.family}-{r.condition}{r.lam:+g}-s{r.seed}" for r in t.itertuples()]
    return t


def test_paired_differences_and_summary():
    t = _table()
    d = IV.paired(t)
    assert set(d.condition) == {"lid", "norm"}
    lid = d[d.condition == "lid"]
    np.testing.assert_allclose(lid["d_lid"], -10 * lid["lam"], atol=1e-12)
    s = IV.paired_summary(d)
    row = s[(s.family == "a") & (s.condition == "norm") & (s.metric == "accuracy")].iloc[0]
    assert row["n"] == 3 and row["mean"] == pytest.approx(-0.05, abs=1e-3) and row["excludes_zero"] in (True, False)
    g = d[(d.family == "a") & (d.condition == "lid") & (d.lam == 0.1)]["d_accuracy"].to_numpy()
    from scipy import stats as st

    lo, hi = st.t.interval(0.95, len(g) - 1, loc=g.mean(), scale=st.sem(g))
    row = s[(s.family == "a") & (s.condition == "lid") & (s.lam == 0.1) & (s.metric == "accuracy")].iloc[0]
    assert row["ci_low"] == pytest.approx(lo) and row["ci_high"] == pytest.approx(hi)
    nc = IV.norm_control(d)
    acc = nc[(nc.family == "a") & (nc.metric == "accuracy")].iloc[0]
    assert acc["norm_mean"] == pytest.approx(-0.05, abs=1e-3) and acc["n"] == 3
    with pytest.raises(ValueError, match="more than one unregularised"):
        IV.paired(pd.concat([t, t[t.condition == "none"]]))


def test_records_verdict_follows_the_data():
    d = IV.paired(_table())
    recs, checks = IV.records(d, n_boot=300, n_perm=300)
    head = next(r for r in recs if r["analysis"] == IV.PRIMARY)
    assert head["r"] < -0.9 and head["verdict"] == "replicated" and head["n"] == 30
    assert checks == {"a": "replicated", "b": "replicated"}
    v, reason = IV.claim_verdict(recs, checks)
    assert v == "replicated" and "primary" in reason
    # accuracy moving *with* LID: the opposite verdict
    d2 = d.assign(d_accuracy=-d["d_accuracy"])
    v2, _ = IV.claim_verdict(*IV.records(d2, n_boot=300, n_perm=300))
    assert v2 == "opposite"
    # a penalty that moves LID the wrong way cannot test the claim
    d3 = d.assign(d_lid=-d["d_lid"])
    v3, reason3 = IV.claim_verdict(*IV.records(d3, n_boot=300, n_perm=300))
    assert v3 == "uninformative" and "manipulation" in reason3
    assert "causal" in IV.interpretation(v, head)
    text = IV.interpretation(v, head, IV.norm_control(d), IV.paired_summary(d))
    assert "4 of 4 LID-raising doses and at 0 of 6 LID-lowering" in text and "norm penalty" in text


def test_validate_penalty_tracks_lid():
    rng = np.random.default_rng(0)
    reps = {f"d{d}": rng.normal(size=(384, d)) @ rng.normal(size=(d, 32)) for d in (2, 4, 8)}
    batches, models = IV.validate_penalty(reps, k=10, batch_size=128, k_full=20, n_pcs=32)
    assert len(batches) == 9
    np.testing.assert_allclose(batches["batch"], batches["same_points"], rtol=1e-4)
    assert models.loc["d2", "full"] < models.loc["d4", "full"] < models.loc["d8", "full"]
    assert models.loc["d2", "batch_mean"] < models.loc["d4", "batch_mean"] < models.loc["d8", "batch_mean"]


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
    assert res["primary"] == IV.PRIMARY and res["analyses"][0]["analysis"] == IV.PRIMARY
    assert res["verdict"] in ("replicated", "opposite", "inconclusive", "uninformative")
    for rec in res["analyses"]:
        assert rec["n"] >= 4 and rec["ci_low"] <= rec["r"] <= rec["ci_high"]
    assert res["parameters"]["zoo_grid"] == "smoke"
    assert res["extra"]["penalty_validation"]["max_rel_diff_same_points"] < 1e-3
