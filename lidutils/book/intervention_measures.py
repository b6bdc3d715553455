"""The intervention's measurements: LID, accuracy and alignment of every penalised network and
its unregularised twin, and the paired differences.
"""
from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd

from lidutils.book.measures import brain_long, lid_table, RIDGE, ridge_all_pairs
from lidutils.book.zoo import load_embeddings
from .intervention_design import METRICS, load_eval


def _references(runs):
    """For each network: the unregularised clean networks of its family with another seed."""
    ref = runs[(runs.condition == "none") & (runs.label_noise == 0)]
    return {n: list(ref[(ref.family == r.family) & (ref.seed != r.seed)].index) for n, r in runs.iterrows()}


@contextlib.contextmanager
def torch_threads(n):
    """Run torch with ``n`` CPU threads (``None``: unchanged); restored afterwards."""
    import torch

    prev = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def measure(runs, brain=None, k=50, n_pcs=300, seed=0, device="auto", cache_dir=None, num_threads=1):
    """Per-network measurements as the claim notebooks make them.

    Parameters
    ----------
    runs : DataFrame from :func:`run`
    brain : dict roi -> (n_subjects, 92, 92) RDMs, optional
        Brain RSA columns ``brain_<roi>`` (mean Spearman over subjects,
        :func:`lidutils.book.measures.brain_long`).
    k, n_pcs : LID neighbourhood (paper: 50) and PCA space (paper: 300).
    seed : PCA split / ridge folds.
    num_threads : torch CPU threads while measuring (1: fastest on a shared machine;
        measured: two threads under load were 9x slower for the ridge fits).

    Returns
    -------
    DataFrame indexed like ``runs``: ``lid`` (mean MLE at ``k`` in PCA-``n_pcs``,
    :func:`lidutils.book.measures.lid_table`), ``accuracy`` (clean test accuracy),
    ``train_acc`` and ``train_loss`` (evaluation mode, on the labels trained on),
    ``gap`` (``train_acc - accuracy``, the generalization gap),
    ``ridge_to_ref`` (held-out ridge R² of predicting the references from the
    network), ``ridge_from_ref`` (the references predicting the network), ``ridge``
    (their mean), ``n_refs``, and ``brain_<roi>``. The references of a network are
    the unregularised clean-label networks of its family with another seed; the
    ridge R² of every ordered pair comes from :func:`lidutils.book.measures.ridge_all_pairs`
    (cached), one per family for the dose and noise series and one for its norm
    controls with their references.
    """

    with torch_threads(num_threads):
        reps = {n: load_eval(r) for n, r in runs.iterrows()}
        lid = lid_table(reps, ks=[k], space="pca300", n_pcs=n_pcs, seed=seed, device=device, cache_dir=cache_dir)
        out = pd.DataFrame(index=runs.index)
        out["lid"] = lid[f"mle_k{k}"]
        out["accuracy"] = runs["test_acc"].astype(float)
        out["train_acc"] = runs["train_acc"].astype(float)
        out["train_loss"] = runs["train_loss"].astype(float)
        out["gap"] = out["train_acc"] - out["accuracy"]
        refs = _references(runs)
        rows = {}
        for (fam, is_norm), g in runs.groupby(["family", runs["condition"] == "norm"]):
            # one matrix per family for the dose and noise series, a small one for the norm
            # controls with their references (so a changed control recomputes only its own)
            names = list(dict.fromkeys(list(g.index) + [m for n in g.index for m in refs[n]]))
            M = ridge_all_pairs({n: reps[n] for n in names}, n_pcs=n_pcs, seed=seed, device=device,
                             cache_dir=cache_dir, **RIDGE)
            for n in g.index:
                r = refs[n]
                rows[n] = {"ridge_to_ref": float(M.loc[n, r].mean()) if r else np.nan,
                           "ridge_from_ref": float(M.loc[r, n].mean()) if r else np.nan, "n_refs": len(r)}
        out = out.join(pd.DataFrame.from_dict(rows, orient="index"))
        out["ridge"] = (out["ridge_to_ref"] + out["ridge_from_ref"]) / 2
        if brain is not None:

            probe = {n: load_embeddings(r, which="probe").astype(np.float64) for n, r in runs.iterrows()}
            b = brain_long(probe, brain, device=device)
            out = out.join(b.groupby(["model", "roi"])["score"].mean().unstack("roi").add_prefix("brain_"))
    return out


def test_at_fit(curve, train_loss):
    """A twin's test accuracy at a given training loss, interpolated along its training.

    ``curve`` holds the twin's checkpoints (``train_loss``, ``test_acc``; e.g. one
    name of :func:`twin_curves`). With the checkpoints ordered by training loss,
    :math:`A_t(L)` is the linear interpolation of their test accuracy at :math:`L`.

    - :math:`L` above the highest checkpoint loss (the network fits worse than the
      twin did at its first checkpoint): no comparison point, ``nan``, status
      ``"worse than first checkpoint"``;
    - :math:`L` below the lowest (it fits better than the twin ever did): the twin's
      test accuracy at its best fit, status ``"better than twin's best"`` (a
      conservative reference: the twin got no further);
    - otherwise status ``"interpolated"``.

    Returns
    -------
    (float, str)
    """
    c = pd.DataFrame(curve)[["train_loss", "test_acc"]].astype(float).dropna().sort_values("train_loss")
    if c.empty or not np.isfinite(train_loss):
        return np.nan, "no curve"
    xs, ys = c["train_loss"].to_numpy(), c["test_acc"].to_numpy()
    if train_loss > xs[-1]:
        return np.nan, "worse than first checkpoint"
    if train_loss < xs[0]:
        return float(ys[0]), "better than twin's best"
    return float(np.interp(train_loss, xs, ys)), "interpolated"


def paired(table, metrics=METRICS, curves=None):
    """Differences to the matched unregularised twin (same family, seed and label noise).

    ``table`` has the design columns and the metric columns. Returns one row per
    penalised network (``condition`` "lid" or "norm"): design columns,
    ``d_<metric> = metric(network) - metric(twin)``, and, with ``curves``
    (:func:`twin_curves`) and ``train_loss`` in ``table``, the primary outcome
    ``d_test_at_fit`` = :math:`A_p - A_t(L_p)` (:func:`test_at_fit`) with its
    ``fit_status`` and the twin's interpolated ``twin_test_at_fit``.
    """
    metrics = [m for m in metrics if m in table]
    nones = table[table.condition == "none"]
    base = nones.set_index(["family", "seed", "label_noise"])
    if base.index.duplicated().any():
        raise ValueError("more than one unregularised network per (family, seed, label_noise).")
    pen = table[table.condition != "none"]
    keys = pd.MultiIndex.from_frame(pen[["family", "seed", "label_noise"]])
    twin = base.reindex(keys)
    d = pd.DataFrame(pen[metrics].to_numpy(float) - twin[metrics].to_numpy(float),
                     index=pen.index, columns=[f"d_{m}" for m in metrics])
    cols = ["family", "condition", "lam", "label_noise", "seed"] + \
        (["penalty_weight"] if "penalty_weight" in pen else [])
    out = pen[cols].join(d)
    if curves is not None:
        if "train_loss" not in table:
            raise ValueError("the matched-fit outcome needs a 'train_loss' column in table; build the table "
                             "with lidutils.book.intervention.measure.")
        twin_name = pd.Series(nones.index, index=base.index).reindex(keys).to_numpy()
        by_twin = dict(tuple(curves.groupby("name")))
        vals = [test_at_fit(by_twin.get(t, pd.DataFrame(columns=["train_loss", "test_acc"])), float(L))
                for t, L in zip(twin_name, pen["train_loss"].to_numpy(float))]
        out["twin_test_at_fit"] = [v for v, _ in vals]
        out["fit_status"] = [s for _, s in vals]
        out["d_test_at_fit"] = pen["accuracy"].to_numpy(float) - out["twin_test_at_fit"].to_numpy(float)
    return out


def paired_summary(diffs, by=("family", "condition", "label_noise", "lam"), ci=0.95):
    """Mean paired difference per group with a t confidence interval over seeds.

    For the :math:`n` paired differences :math:`d_s` of a group,
    :math:`\\bar d \\pm t_{(1+c)/2,\\,n-1}\\, s_d/\\sqrt n`. Returns one row per
    (group, metric) with ``mean``, ``ci_low``, ``ci_high``, ``n``, ``excludes_zero``.
    """
    from scipy import stats as st

    rows = []
    dcols = [c for c in diffs.columns if c.startswith("d_")]
    for key, g in diffs.groupby(list(by), sort=True):
        for c in dcols:
            v = g[c].to_numpy(float)
            v = v[np.isfinite(v)]
            n = len(v)
            m = float(v.mean()) if n else np.nan
            half = float(st.t.ppf((1 + ci) / 2, n - 1) * v.std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan
            rows.append({**dict(zip(by, key)), "metric": c[2:], "mean": m, "ci_low": m - half,
                         "ci_high": m + half, "n": n,
                         "excludes_zero": bool(np.isfinite(half) and (m - half > 0 or m + half < 0))})
    return pd.DataFrame(rows)


def baseline(table):
    """Premise check: do the unregularised networks generalize imperfectly (a gap a penalty could close)?

    Per family and label noise, over the unregularised networks (seeds): mean
    training accuracy, test accuracy and generalization gap
    :math:`g = A_{train} - A_{test}`, the gap's smallest value and ``n``.
    """
    t = table[table.condition == "none"]
    g = t.groupby(["family", "label_noise"])
    return pd.DataFrame({"train_acc": g["train_acc"].mean(), "test_acc": g["accuracy"].mean(),
                         "gap": g["gap"].mean(), "gap_min": g["gap"].min(), "n": g.size()}).reset_index()


def baseline_text(base):
    """One markdown sentence from :func:`baseline`: each family's unregularised training and test accuracy and gap."""
    parts = [f"{r.family}{f' ({r.label_noise:.0%} label noise)' if r.label_noise else ''}: training accuracy "
             f"{r.train_acc:.3f}, test {r.test_acc:.3f}, gap {r.gap:+.3f} (smallest {r.gap_min:+.3f}, n = {r.n})"
             for r in base.itertuples()]
    return "; ".join(parts)
