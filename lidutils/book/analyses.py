"""The claim analyses a chapter calls: primary analysis, r-vs-K curves, robustness grid, C5/C6
rules, dose-response series.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from lidutils import stats
from lidutils.book import measures, paper
from lidutils.book.measures import lid_col
from lidutils.book.params import GLOBAL_FRACTION, k_grid, MIN_N, claim_k
from lidutils.book.records import both_methods, families_of, holm_records, member_units, within_design
from lidutils.book.study import primary_population


def target_measures(y):
    """The :meth:`Study.table` arguments that produce a target column ``y``.

    ``y`` must be a measured quantity (:func:`measured`): a seed-SD column such as
    ``brain_IT_sd`` is refused.
    """
    if not measured(y):
        raise ValueError(f"{y!r} is not a measured quantity (a seed-SD or bookkeeping column); name the "
                         f"measure itself, e.g. {y.removesuffix('_sd')!r}.")
    base = y.removesuffix("_balanced")
    if base in ("ridge", "mutual_knn", "cka"):
        return dict(align=(base,))
    if y.startswith("brain_"):
        return dict(brain=True)
    return {}


def measured(col):
    """Whether a unit-table column is a measured quantity a claim may correlate.

    :func:`lidutils.book.measures.cell_means` adds ``<col>_sd`` (the spread of a measure
    across seed replicates), ``n_seeds`` and ``members`` beside every measure: none of
    them is a measurement of the unit, so none may be a record's x or y.
    """
    return isinstance(col, str) and not col.endswith("_sd") and col not in ("n_seeds", "members")


def k_curve(study, claim, name, y, ks=None, estimator="mle", table=None, method=None):
    """Correlation of mean LID with ``y`` at every K of the sweep, and the max-over-K corrected p.

    Returns ``(curve, best)``: ``curve`` a DataFrame (one row per K: ``k``, ``r``,
    ``ci_low``, ``ci_high``, ``p``, ``n``, ``global`` = K >= N/4); ``best`` the K with
    the largest |r| among the local K and its p corrected for the selection by
    :func:`max_over_k_p`.
    """
    n_stim = study.n_stimuli(name)
    ks = list(ks or k_grid(n_stim))
    t = table if table is not None else study.table(name, ks=ks, estimators=(estimator,), **target_measures(y))
    rows = []
    for k in ks:
        rec = study.correlate(claim, t, measures.lid_col(k, estimator), y, population=name, method=method, k=k,
                              estimator=estimator)
        if rec is not None:
            rows.append(dict(target=y, k=k, r=rec["r"], ci_low=rec["ci_low"], ci_high=rec["ci_high"],
                             p=rec["p"], n=rec["n"], glob=k >= GLOBAL_FRACTION * n_stim))
    curve = pd.DataFrame(rows)
    local = [k for k in ks if k < GLOBAL_FRACTION * n_stim]
    sub = t[[measures.lid_col(k, estimator) for k in local] + [y]].apply(pd.to_numeric, errors="coerce").dropna()
    best = None
    if len(curve) and len(sub) >= MIN_N:
        fams = families_of(t, sub.index)
        if within_design(fams):  # as the records: family means removed (permutation of the centred y)
            sub = sub.apply(lambda c: pd.Series(stats.centre_within(c.to_numpy(float), fams.to_numpy()), c.index))
        p, kbest, r = max_over_k_p(sub.iloc[:, :-1].to_numpy(), sub[y].to_numpy(),
                                   method=method or study.params.get("method", "pearson"),
                                   n_perm=study.params.get("n_perm", 10000), seed=study.params.get("seed", 0))
        best = dict(target=y, k=local[kbest], r=r, p_selection_corrected=p)
    return curve, best


def max_over_k_p(X, y, method="pearson", n_perm=10000, seed=0):
    """Permutation p of the best K, corrected for choosing it: max |r| over the columns.

    With :math:`r_j` the correlation of column :math:`j` of ``X`` (one K each) with
    ``y``, the statistic is :math:`T = \\max_j |r_j|`; under the null, ``y`` is
    permuted jointly for all columns, so :math:`p = (1 + \\#\\{T^{(b)} \\ge T\\}) / (1 + B)`.

    Returns ``(p, j_best, r_best)``.
    """
    X = np.asarray(X, float)
    y = np.asarray(y, float)
    if method == "spearman":
        X = np.apply_along_axis(lambda c: pd.Series(c).rank().to_numpy(), 0, X)
        y = pd.Series(y).rank().to_numpy()
    Xz = (X - X.mean(0)) / X.std(0)
    Xz = np.nan_to_num(Xz)
    n = len(y)

    def rs(Y):  # Y: (b, n)
        Yz = (Y - Y.mean(1, keepdims=True)) / Y.std(1, keepdims=True)
        return Yz @ Xz / n  # (b, n_k)

    r = rs(y[None])[0]
    j = int(np.argmax(np.abs(r)))
    T = np.abs(r).max()
    rng = np.random.default_rng(seed)
    count, done = 0, 0
    while done < n_perm:
        b = min(2000, n_perm - done)
        Y = np.stack([rng.permutation(y) for _ in range(b)])
        count += int((np.abs(rs(Y)).max(1) >= T - 1e-12).sum())
        done += b
    return (count + 1) / (n_perm + 1), j, float(r[j])


def robustness_grid(study, claim, name, y, estimators=("mle", "mom", "mada"), spaces=("pca300", "raw"),
                    methods=("pearson", "spearman"), ks=None):
    """r of LID with ``y`` for every estimator x K x method x space (paper App. G), one row each.

    TwoNN (no K) enters as one column at ``k=2``.
    """
    n_stim = study.n_stimuli(name)
    ks = list(ks or k_grid(n_stim))
    rows = []
    for space in spaces:
        t = study.table(name, ks=ks, estimators=estimators, space=space, **target_measures(y))
        cols = [(est, k, measures.lid_col(k, est)) for est in estimators for k in ks] + [("twonn", 2, "twonn")]
        for est, k, col in cols:
            for method in methods:
                rec = study.correlate(claim, t, col, y, population=name, method=method, space=space, k=k,
                                      estimator=est)
                if rec is not None:
                    rows.append(dict(space=space, estimator=est, k=k, method=method, r=rec["r"],
                                     ci_low=rec["ci_low"], ci_high=rec["ci_high"], n=rec["n"]))
    return pd.DataFrame(rows)


def family_records(study, claim, table, x, y, name, min_n=MIN_N, **kw):
    """The same correlation inside each architecture family of a population (Pearson)."""
    recs = []
    for fam, g in table.groupby("family"):
        rec = study.correlate(claim, g, x, y, population=f"{name} / family {fam}",
                              label=f"{name} / family {fam}: {x} vs {y} (pearson)", **kw)
        if rec is not None:
            rec["family"] = str(fam)
            recs.append(rec)
    return recs

#: C5's two pre-declared primaries (the paper: "capacity and data lower LID"), each within family.
C5_SERIES = (("capacity", "log10_params"), ("data", "log10_n_train"))


def c5_primaries(study, name, tables, k, estimator="mle"):
    """C5's two pre-declared primary analyses: log10 capacity vs LID and log10 training images vs LID.

    ``tables``: ``{"capacity": units, "data": units}`` (:func:`series_table`). Each is
    Pearson across the units of its series, within family (family means removed,
    :func:`correlate`), Spearman beside it. Returns ``(records, primary labels)``.
    """
    recs, labels = [], []
    space = study.params.get("space", "pca300")
    for series, x in C5_SERIES:
        t = tables.get(series)
        if t is None or t.empty:
            continue
        out = both_methods(study, "C5", t, x, lid_col(k, estimator), population=f"{name} / {series} series",
                           role="primary", k=k, estimator=estimator,
                           label=f"{name} / {series} series: {lid_label(k, estimator, space)} vs {x} ({{method}})")
        if out:
            recs += out
            labels.append(out[0]["analysis"])
    return recs, labels


def c5_verdict(capacity, data):
    """C5's claim-level verdict from its two primaries (capacity, data), Holm-adjusted between them.

    The two p-values are Holm-adjusted together (:func:`holm_gate`, as :func:`finalize`
    does), then:

    - ``"replicated"``: both series replicate (LID falls with capacity *and* with data);
    - ``"opposite"``: at least one series is opposite and neither replicates;
    - ``"descriptive"``: neither series has enough units for a label;
    - ``"inconclusive"``: otherwise (one replicates and the other does not, a split, or
      neither excludes 0).

    Either record may be None (series missing): it counts as descriptive. Returns
    ``(verdict, reason)``.
    """
    recs = {"capacity": capacity, "data": data}
    present = {s: dict(r) for s, r in recs.items() if r is not None}
    if len(present) == 2:
        holm_records(list(present.values()))
    v = {s: (present[s]["verdict"] if s in present else "descriptive") for s in recs}

    def say(s):
        r = present.get(s)
        if r is None:
            return f"{s}: no series"
        fam = f", within {r['n_families']} families" if r.get("design") == "within family" else ""
        return f"{s}: r = {r['r']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}], n = {r['n']}{fam} → {v[s]}"

    why = "; ".join(say(s) for s in recs)
    vals = list(v.values())
    if all(x == "replicated" for x in vals):
        return "replicated", f"LID falls with both capacity and data ({why})"
    if "opposite" in vals and "replicated" not in vals:
        return "opposite", f"LID rises with {' and '.join(s for s in v if v[s] == 'opposite')} ({why})"
    if all(x == "descriptive" for x in vals):
        return "descriptive", f"too few units in either series for a verdict ({why})"
    return "inconclusive", f"the two series do not agree on the paper's sign ({why})"


def c6_verdict(per_family, min_n=stats.MIN_N_VERDICT):
    """C6: "replicated" when every family with >= ``min_n`` units is replicated (>= 2 such families).

    "opposite" when one is opposite and none replicated; "descriptive" when no family
    has ``min_n`` units (:data:`lidutils.stats.MIN_N_VERDICT`: no verdict below it);
    "inconclusive" otherwise. Returns ``(verdict, reason)``.
    """
    big = [r for r in per_family if r["n"] >= min_n]
    v = [r["verdict"] for r in big]
    if not big:
        return "descriptive", f"no family has the {min_n} units a verdict needs"
    if len(big) >= 2 and all(x == "replicated" for x in v):
        return "replicated", f"all {len(big)} families with >= {min_n} units replicate"
    if "opposite" in v and "replicated" not in v:
        return "opposite", "a family shows the opposite sign and none the paper's"
    return "inconclusive", f"{v.count('replicated')} of {len(big)} families with >= {min_n} units replicate"


def premise_records(study, name):
    """The anchors the paper's argument stands on, in one zoo population (the chapters' "premise checks").

    Accuracy vs log10 parameters across the capacity series (paper: r = +0.949),
    accuracy vs log10 training images across the data series, and mean ridge
    alignment with the partners vs accuracy across all units ("better models align
    more"); Pearson with CI, expected sign +1.
    """
    recs = []
    pr = paper.paper_r("C5", "accuracy_vs_log_params")
    for series, x, y, p in (("capacity", "log10_params", "accuracy", pr), ("data", "log10_n_train", "accuracy", None)):
        t = series_table(study, name, series, ks=())
        recs.append(study.correlate("C5", t, x, y, population=f"{name} / {series} series", expected_sign=1,
                                    paper_r=p, label=f"{name} / {series} series: {y} vs {x} (pearson)"))
    t = study.table(name, align=("ridge",))
    recs.append(study.correlate("C1", t, "accuracy", "ridge", population=name, expected_sign=1, paper_r=None,
                                label=f"{name}: ridge alignment vs accuracy (pearson)"))
    return [r for r in recs if r is not None]


def lid_label(k, estimator="mle", space=None):
    """Readable name of a LID column: ``"LID (MLE, K=50, pca300)"``."""
    return f"LID ({estimator.upper()}, K={k}{', ' + space if space else ''})"


def primary_analysis(study, claim, y, name=None, estimator="mle", align=(), brain=False, role="primary"):
    """A claim's pre-declared analysis in one population: LID at the paper's K vs ``y``, Pearson and Spearman.

    Measures the population over the whole K sweep (:func:`k_grid`, so the r-vs-K
    curve needs no second search). Returns a dict with ``name``, ``k``, ``table``
    (units), ``records`` (Pearson first) and ``label`` (the Pearson record's label,
    the primary analysis when ``role="primary"``).
    """
    name = name or primary_population(study.populations)
    n = study.n_stimuli(name)
    k = claim_k(claim, n)
    t = study.table(name, ks=k_grid(n), estimators=(estimator,), align=align, brain=brain)
    space = study.params.get("space", "pca300")
    recs = both_methods(study, claim, t, measures.lid_col(k, estimator), y, population=name, role=role, k=k,
                        estimator=estimator, label=f"{name}: {lid_label(k, estimator, space)} vs {y} ({{method}})")
    return dict(name=name, k=k, table=t, records=recs, label=recs[0]["analysis"] if recs else None)


def series_table(study, name, series, ks, estimator="mle", align=(), brain=False, whole_if_missing=False):
    """Units of one controlled series (``"capacity"``, ``"data"``, ``"noise"``) of a zoo population.

    Empty when ``name`` is None or the population has no such series, unless
    ``whole_if_missing``: then every unit (e.g. the paper tier's models, which differ
    in capacity without a controlled design).
    """
    if name is None:
        return pd.DataFrame()
    t = study.table(name, ks=ks, estimators=(estimator,), align=align, brain=brain)
    col = f"in_{series}"
    if col not in t or not t[col].notna().any():
        return t if whole_if_missing else t.iloc[:0]
    return t[t[col].fillna(False).astype(bool)]


def show_claim(claim):
    """The claim in the paper's words, its number and setting, as Markdown (from :mod:`lidutils.book.paper`)."""
    from IPython.display import Markdown

    info = paper.claim_info(claim)
    return Markdown(f"**Paper ({claim}).** {info['statement']}  \n**Paper's value:** {info['paper_value']}  \n"
                    f"**Paper's setting:** {info['paper_setting']}")


def k_curves(study, claim, name, targets, table=None):
    """:func:`k_curve` for several targets, one DataFrame (column ``target``)."""
    return pd.concat([k_curve(study, claim, name, y, table=table)[0] for y in targets], ignore_index=True)


def cell_partial(study, name, partial):
    """Seed-average :func:`brain_test`'s per-member partialled scores to the population's units."""
    if partial is None or partial.empty:
        return pd.DataFrame()
    units = member_units(study.members(name))
    return partial.groupby(units.reindex(partial.index).to_numpy()).mean()


def lite_series(study):
    """EfficientNet-Lite 0 → 1 → 2 (one family at three sizes): parameters, top-1 and LID at the paper's K."""
    names = [m for m in study.pop.members.index if str(m).startswith("tf_efficientnet_lite")]
    if not names:
        return pd.DataFrame()
    reps = {m: study.pop.eval_reps[m] for m in names}
    k = claim_k("C5", next(iter(reps.values())).shape[0])
    lids = measures.lid_table(reps, [k], space=study.params.get("space", "pca300"), n_pcs=study.params.get("n_pcs", 300),
                       seed=study.params.get("seed", 0), device=study.device, cache_dir=study.cache_dir)
    t = study.pop.members.loc[names, ["n_params", "accuracy"]].join(lids[[lid_col(k)]])
    return t.sort_values("n_params")


def natural_k_table(study, claim, name, y, estimator="mle", design="pooled"):
    """A natural-image population shown as r against K, with what K means on its photos; no label.

    The ImageNet population is a handful of models (six): every record is descriptive
    (:data:`lidutils.stats.MIN_N_VERDICT`). What K measures depends on the photos: with
    ``N`` photos of ``N`` different classes (one photo each), the K nearest neighbours of
    a photo are K *other classes*, so LID at K = 50 of 300 photos describes
    between-class structure, not the local neighbourhood of a class. One row per K (and
    TwoNN as K = 2): ``r`` with its Fisher-z interval, ``n``, ``k_over_n`` = K/N,
    ``classes_per_photo`` (distinct classes / photos) and ``classes_in_neighbourhood``
    (how many classes the K neighbours span at most), ``verdict`` ("descriptive" at
    this n). ``design``: pooled over the models by default (independently trained
    networks, not a designed family crossing; :func:`correlate`'s ``design``).
    """
    n_stim = study.n_stimuli(name)
    ks = k_grid(n_stim)
    t = study.table(name, ks=ks, estimators=(estimator,), **target_measures(y))
    desc = study.pop.stimuli.get(str(study.members(name)["group"].iloc[0]), "") if hasattr(study.pop, "stimuli") else ""
    per_photo = 1.0 if "one photo each" in str(desc) else np.nan
    rows = []
    for k, col in [(kk, measures.lid_col(kk, estimator)) for kk in ks] + [(2, "twonn")]:
        rec = study.correlate(claim, t, col, y, population=name, k=k, estimator=estimator if k != 2 else "twonn",
                              design=design)
        if rec is None:
            continue
        rows.append(dict(measure="TwoNN" if col == "twonn" else f"LID K={k}", k=k, n_photos=n_stim,
                         k_over_n=k / n_stim, classes_per_photo=per_photo,
                         classes_in_neighbourhood=min(k, n_stim - 1) * per_photo if per_photo == per_photo else np.nan,
                         r=rec["r"], ci_low=rec["ci_low"], ci_high=rec["ci_high"], ci_method=rec["ci_method"],
                         n=rec["n"], design=rec["design"], verdict=rec["verdict"]))
    return pd.DataFrame(rows)


def epoch_table(study, name, k, estimator="mle"):
    """LID at ``k`` of every saved checkpoint of the population's networks (one row per checkpoint)."""
    members = study.members(name)
    if "epoch" not in members or "model" not in members:  # pretrained models: one checkpoint each
        return pd.DataFrame()
    nets = set(members["model"])
    allm = study.pop.members
    rows = allm[(allm["group"] == members["group"].iloc[0]) & allm["model"].isin(nets)]
    if "label_noise" in rows:
        rows = rows[rows["label_noise"].fillna(0) == 0]
    reps = {m: study.pop.eval_reps[m] for m in rows.index}
    lids = measures.lid_table(reps, [k], (estimator,), space=study.params.get("space", "pca300"),
                       n_pcs=study.params.get("n_pcs", 300), seed=study.params.get("seed", 0),
                       device=study.device, cache_dir=study.cache_dir)
    return rows.join(lids)
