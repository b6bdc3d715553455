"""Local vs global dimension (C4): LID at the paper's K against global measures, and the C4
rule.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from lidutils import stats
from lidutils.book import measures
from lidutils.book.analyses import measured, target_measures
from lidutils.book.brain import brain_regions, brain_test, mark_uninformative
from lidutils.book.params import claim_k, k_global
from lidutils.book.records import descriptive_interval, unit_groups
from lidutils.dependent import compare_dependent
from lidutils.verdicts import check_sign, ci_bounds, excludes


def c4_targets(study, table):
    """C4's targets, each named (never picked by prefix): accuracy, ridge alignment and the primary brain region.

    Accuracy (C3's target, the primary), partner ridge alignment (C1's) and the
    subject-mean score in the region C2 tests (:func:`brain_regions`; ``brain_<roi>``),
    those present in ``table``.
    """
    names = ["accuracy", "ridge"]
    if study.pop.brain is not None or study.pop.brain_scores is not None:
        names.append(f"brain_{brain_regions(study)[1]}")
    return [y for y in names if y in table and measured(y)]

#: C4's global measures: LID at K = N/4 (added per population) and these columns of
#: :func:`lidutils.book.measures.global_table`, with the names the verdict's reason uses.
C4_GLOBALS = {"participation_ratio": "participation ratio", "effective_rank": "effective rank",
              "pca_n90": "PCA-n90", "alpha": "spectral alpha"}


def local_global(study, claim, name, y, table=None, estimator="mle", design=None, brain_test=None):
    """C4's records for one target: local LID at the paper's K, local estimators, global measures, contrasts.

    Local: LID (``estimator``) at :func:`claim_k`, MOM at the same K, TwoNN. Global:
    LID at K = N/4 and :data:`C4_GLOBALS`. Every record is :func:`correlate`'s, in the
    frame the primaries use (``design``: None = within family whenever the units span
    two or more families, :func:`within_design`). Each global measure :math:`g` is
    compared with local LID by :math:`\\Delta_g = |r_{local}| - |r_g|`
    (:func:`lidutils.stats.compare_dependent`, in the same frame: within-family
    centring and a family-stratified bootstrap when the records are within family),
    and the contrast becomes a record of its own (:func:`contrast_record`).

    A global measure's own record is never "replicated": one that predicts (its
    verdict would be "replicated" or "opposite") is evidence *against* C4 and gets
    ``"not replicated"`` with the reason "global predicts (against C4)".

    A brain target (``brain_<roi>``) with ``brain_test`` (:func:`brain_test`'s
    summary of this population) has every record annotated and, where the test
    cannot tell, marked "uninformative" (:func:`mark_uninformative`).

    Returns a dict with ``local``, ``local_others``, ``globals``, ``comparisons``
    (one dict per global measure) and ``contrasts`` (their records).
    """
    if not measured(y):
        raise ValueError(f"C4 target {y!r} is not a measured quantity; pass the measure, not its seed SD.")
    n = study.n_stimuli(name)
    k, kg = claim_k(claim, n), k_global(n)
    t = table if table is not None else study.table(name, ks=(k, kg), estimators=(estimator, "mom"),
                                                    global_dims=True, **target_measures(y))
    lcol = measures.lid_col(k, estimator)
    kw = dict(population=name, paper_r=None, design=design)
    how = study.params.get("method", "pearson")
    local = study.correlate(claim, t, lcol, y, k=k, estimator=estimator,
                            label=f"{name}: local LID (K={k}) vs {y} ({how})", **kw)
    others = [study.correlate(claim, t, c, y, k=kk, estimator=e, label=f"{name}: local {e} (K={kk}) vs {y} ({how})",
                              **kw)
              for c, e, kk in ((measures.lid_col(k, "mom"), "mom", k), ("twonn", "twonn", 2))]
    for rec, lab in zip([local] + others, (f"local LID (K={k})", f"local MOM (K={k})", "local TwoNN")):
        if rec is not None:
            rec["measure"] = lab
            _frame_label(rec)
    gcols = [(measures.lid_col(kg, estimator), f"LID at K=N/4={kg}")] + list(C4_GLOBALS.items())
    globals_, comps, contrasts = [], [], []
    for col, lab in gcols:
        rec = study.correlate(claim, t, col, y, expected_sign=-1, label=f"{name}: global {lab} vs {y} ({how})", **kw)
        if rec is None:
            continue
        rec["measure"] = lab
        globals_.append(_global_verdict(_frame_label(rec)))
        if local is None:
            continue
        sub = t.loc[[m for m in local["members"] if m in rec["members"]], [lcol, col, y]]
        sub = sub.apply(pd.to_numeric, errors="coerce").dropna()
        try:
            comp = compare_dependent(sub[y].to_numpy(), sub[lcol].to_numpy(), sub[col].to_numpy(),
                                       method=study.params.get("method", "pearson"),
                                       n_boot=study.params.get("n_boot", 2000), seed=study.params.get("seed", 0),
                                       groups=unit_groups(t, sub.index, design))
        except ValueError:  # too few units or a constant column in this frame
            continue
        comps.append(dict(measure=lab, column=col, analysis=rec["analysis"], **comp))
        contrasts.append(contrast_record(local, rec, comp, members=list(sub.index)))
    out = dict(local=local, local_others=[o for o in others if o is not None], globals=globals_,
               comparisons=comps, contrasts=contrasts)
    if brain_test is not None and y.startswith("brain_"):
        mark_uninformative([local] + out["local_others"] + globals_ + contrasts, brain_test)
    return out


def _frame_label(rec):
    """Say the record's frame in its label: ``(pearson)`` becomes ``(pearson, within family)`` when it is one."""
    if str(rec.get("design", "")).startswith("within") and "within family" not in rec["analysis"]:
        rec["analysis"] = rec["analysis"].replace(f"({rec['method']})", f"({rec['method']}, within family)")
    return rec


def _global_verdict(rec):
    """A global measure's record under C4: predicting is evidence against C4, never "replicated"."""
    if rec["verdict"] in ("replicated", "opposite"):
        rec["verdict"] = "not replicated"
        rec["reason"] = (f"global predicts (against C4): r = {rec['r']:+.2f} [{rec['ci_low']:+.2f}, "
                         f"{rec['ci_high']:+.2f}], p = {rec['p']:.2g}; C4 says global dimension does not predict")
    elif rec["verdict"] == "inconclusive":
        rec["reason"] = ("global does not predict here (what C4 expects of it; C4 also needs local LID to "
                         "predict significantly more strongly)")
    return rec


def contrast_record(local, glob, comp, members=None):
    """C4's contrast as a results record: :math:`\\Delta = |r_{local}| - |r_{global}|` in the ``r`` field.

    ``r``, ``ci_low``, ``ci_high``: the contrast and its bootstrap CI
    (:func:`lidutils.stats.compare_dependent`; below the minimum n for a verdict,
    :func:`lidutils.stats.too_few`, Zou's Fisher-z interval :func:`lidutils.stats.zou_ci`
    instead, the bootstrap one kept as ``ci_boot_*``); ``p``: Steiger's test; ``n_eff`` and
    ``design`` as the comparison's. ``expected_sign = +1`` (C4: local stronger), so
    the verdict (:func:`lidutils.stats.label`) reads "replicated" when local predicts
    significantly more strongly than this global measure, "opposite" when the global
    measure predicts significantly more strongly, "inconclusive" when the two cannot
    be told apart. ``statistic = "abs_r_difference"`` marks it for the claims page.
    """
    within = comp.get("design") == "within group"
    res = dict(r=float(comp["diff"]), ci_low=comp["ci_low"], ci_high=comp["ci_high"], p=comp["p"],
               n=int(comp["n"]), n_eff=int(comp.get("n_eff", comp["n"])),
               n_families=comp.get("n_groups") if within else None,
               ci_method="paired percentile bootstrap" + (", family-stratified" if within else ""))
    if "ci_zou_low" in comp:  # descriptive below the verdict's n: the interval valid at this n
        descriptive_interval(res, comp["ci_zou_low"], comp["ci_zou_high"],
                             f"Zou (2007), Fisher z at n_eff = {res['n_eff']}")
    rec = {key: local.get(key) for key in ("claim", "y", "population", "method", "space", "k", "estimator", "unit",
                                           "note")}
    rec.update(res, analysis=(f"{local['population']}: |r| of local LID (K={local['k']}) minus |r| of "
                              f"{glob['measure']}, vs {local['y']} ({local['method']}"
                              f"{', within family' if within else ''})"),
               statistic="abs_r_difference", x=local["x"], x_global=glob["x"], measure=glob["measure"],
               r_local=float(comp["r1"]), r_global=float(comp["r2"]), r_local_global=float(comp["r12"]),
               design="within family" if within else "pooled",
               members=[str(m) for m in (members if members is not None else local["members"])],
               role="secondary", expected_sign=1, paper_r=None, excludes_zero=bool(stats.excludes(res, 0.0)),
               excludes_paper_value=None, verdict=stats.label(res, expected_sign=1), p_holm=None,
               power=None, power_r=None, power_at={}, z=float(comp["z"]), n_boot=int(comp["n_boot"]))
    return rec


def local_global_frame(blocks):
    """One row per (target, measure) of :func:`local_global` blocks: r, CI, verdict and, for a global measure, Δ|r|.

    ``delta`` = :math:`|r_{local}| - |r_{global}|` with its CI (``delta_low``,
    ``delta_high``): positive when local LID predicts more strongly.
    """
    rows = []
    for y, b in blocks.items():
        deltas = {c["measure"]: c for c in b.get("comparisons", [])}
        for kind, recs in (("local", [b["local"]] + b["local_others"]), ("global", b["globals"])):
            for r in recs:
                if r is None:
                    continue
                c = deltas.get(r.get("measure")) if kind == "global" else None
                rows.append(dict(target=y, kind=kind, measure=r.get("measure") or
                                 r["analysis"].split(": ", 1)[1].rsplit(" vs ", 1)[0],
                                 r=r["r"], ci_low=r["ci_low"], ci_high=r["ci_high"], n=r["n"],
                                 predicts=r["verdict"] in ("replicated", "opposite", "not replicated"),
                                 verdict=r["verdict"],
                                 delta=None if c is None else c["diff"], delta_low=None if c is None else c["ci_low"],
                                 delta_high=None if c is None else c["ci_high"]))
    return pd.DataFrame(rows).round(3)


def k_trend(curve, y=None):
    """One sentence on how r changes with K: r at the smallest and the largest K, and where |r| peaks.

    The paper's C4: the correlation *decays* as K grows. ``curve`` is :func:`k_curve`'s
    (or :func:`k_curves`'s, then ``y`` picks the target).
    """
    c = curve if y is None or "target" not in curve else curve[curve["target"] == y]
    c = c.dropna(subset=["r"]).sort_values("k")
    if len(c) < 2:
        return "r against K: fewer than two K with a correlation"
    first, last = c.iloc[0], c.iloc[-1]
    peak = c.loc[c["r"].abs().idxmax()]
    change = abs(last["r"]) - abs(first["r"])
    how = ("|r| rises with K — the reverse of the paper's decay" if change > 0.05 else
           "|r| falls with K, as the paper reports" if change < -0.05 else "|r| about flat across K")
    return (f"r against K: {first['r']:+.2f} at K = {int(first['k'])} to {last['r']:+.2f} at K = {int(last['k'])}"
            f" (largest |r| at K = {int(peak['k'])}): {how}")


def c4_verdict(block, curve=None):
    """C4's verdict for one target's :func:`local_global` block: ``(verdict, reason, comparisons)``.

    :func:`c4_rule` on the block's records and contrasts; with
    ``curve`` (:func:`k_curve` / :func:`k_curves` of the same target) the reason
    also states the direction of r against K (:func:`k_trend`).
    """
    comps = pd.DataFrame(block["comparisons"])
    if block["local"] is None:
        return "inconclusive", "no local record: fewer than 4 units with both variables", comps
    v, why = c4_rule(block["local"], block["globals"], block["comparisons"])
    if curve is not None and len(curve):
        why = f"{why}; {k_trend(curve, block['local']['y'])}"
    return v, why, comps


def c4_records(blocks, primary):
    """All records of :func:`local_global` blocks, C4's primary record first.

    The primary is the contrast :math:`|r_{local}| - |r_{global}|` of the ``primary``
    target against the global measure local LID beats least clearly (lowest lower CI
    bound): C4 is replicated only if that one, and so every one, lies above 0. Without
    contrasts, the local record of the primary target leads.
    """
    order = [primary] + [y for y in blocks if y != primary]
    head = None
    cons = blocks[primary].get("contrasts", [])
    if cons:
        head = min(cons, key=lambda c: (np.nan_to_num(c["ci_low"], nan=np.inf), c["r"]))
    recs = [head]
    for y in order:
        b = blocks[y]
        recs += [b["local"]] + b["local_others"] + b["globals"] + [c for c in b.get("contrasts", []) if c is not head]
    recs = [r for r in recs if r is not None]
    bad = [(r["analysis"], c) for r in recs for c in (r.get("x"), r.get("x_global"), r.get("y"))
           if c is not None and not measured(c)]
    if bad:
        raise ValueError(f"C4 records on unmeasured columns: {bad}.")
    return recs


# --------------------------------------------------------------------------- the C4 rule
def _predicts(rec, alpha=0.05):
    """A record predicts when its CI excludes 0 and (if it has one) its permutation p is below ``alpha``."""
    p = rec.get("p")
    return excludes(rec, 0.0) and (p is None or not np.isfinite(float(p)) or float(p) < alpha)


def _measure_name(rec, i):
    return str(rec.get("measure") or rec.get("analysis") or f"global #{i}")


def c4_rule(local_rec, global_recs, comparisons=None, expected_sign=-1):
    """Claim-level verdict of C4 ("local ID predicts; global dimension does not").

    A record *predicts* when its CI excludes 0, either sign, and its permutation p
    (when it has one) is below 0.05. For every global measure :math:`g` the contrast
    :math:`\\Delta_g = |r_{local}| - |r_g|` comes from :func:`compare_dependent`
    (``absolute=True``) with its bootstrap CI; local predicts *significantly more
    strongly* than :math:`g` when that CI lies entirely above 0 (and the comparison's
    Steiger p, when given, is below 0.05; likewise "more strongly" for a CI below 0).

    - ``"descriptive"``: the local record carries no verdict (too few units);
    - ``"opposite"``: the local record predicts with the sign opposite to
      ``expected_sign``;
    - ``"replicated"``: the local record predicts with ``expected_sign`` **and**, for
      every global measure, the CI of :math:`\\Delta_g` lies above 0 (a global measure
      that does not predict must still be shown weaker: "not predicting" alone, a CI
      covering 0, is no evidence that local predicts better);
    - ``"not replicated"``: some global measure predicts and is not significantly
      weaker (no comparison given counts as not weaker), or predicts significantly
      *more* strongly (CI of :math:`\\Delta_g` below 0) — evidence against C4;
    - ``"inconclusive"``: otherwise (e.g. local and global measures indistinguishable
      and no global measure predicting, or no global measure at all).

    The reason names the measures that predict more strongly than local, as strongly,
    and less strongly, with :math:`\\Delta_g` and its CI.

    Parameters
    ----------
    local_rec : dict
        Correlation record (``ci_low``, ``ci_high``; ``r``, ``p``, ``verdict``) of the local measure.
    global_recs : sequence of dict
        Records of the global measures (named by ``measure``, else ``analysis``).
    comparisons : sequence of dict or dict, optional
        :func:`compare_dependent` results of local vs each global measure with
        ``absolute=True`` (``diff = |r_local| - |r_global|``), either aligned with
        ``global_recs`` or keyed by their ``analysis`` label.
    expected_sign : {-1, +1}

    Returns
    -------
    (verdict, reason) : (str, str)
    """
    s = check_sign(expected_sign)
    global_recs = list(global_recs)
    if isinstance(comparisons, dict):
        comps = [comparisons.get(g.get("analysis")) for g in global_recs]
    elif comparisons is None:
        comps = [None] * len(global_recs)
    else:
        comps = list(comparisons)
        if len(comps) != len(global_recs):
            raise ValueError(f"comparisons has {len(comps)} entries for {len(global_recs)} global records; "
                             "align them or pass a dict keyed by the records' 'analysis' label.")
    lo, hi = ci_bounds(local_rec)
    head = f"local r = {float(local_rec.get('r', np.nan)):+.2f} [{lo:+.2f}, {hi:+.2f}]"
    if local_rec.get("verdict") == "descriptive":
        return "descriptive", f"{head}: too few units for a verdict (descriptive only)"
    local_predicts = _predicts(local_rec)
    local_sign = 1 if lo > 0 else -1
    stronger, same, weaker, unknown, predicting = [], [], [], [], []
    for i, (g, c) in enumerate(zip(global_recs, comps)):
        name = _measure_name(g, i)
        txt = f"{name} (r = {float(g.get('r', np.nan)):+.2f}"
        if c is None:
            unknown.append(txt + ", not compared)")
            status = "unknown"
        else:
            txt += f"; Δ|r| = {float(c['diff']):+.2f} [{float(c['ci_low']):+.2f}, {float(c['ci_high']):+.2f}])"
            sig = c.get("p") is None or not np.isfinite(float(c["p"])) or float(c["p"]) < 0.05
            status = ("weaker" if sig and float(c["ci_low"]) > 0 else
                      "stronger" if sig and float(c["ci_high"]) < 0 else "same")
            {"weaker": weaker, "stronger": stronger, "same": same}[status].append(txt)
        if _predicts(g) and status != "weaker":
            predicting.append(name)
    parts = [head]
    if stronger:
        parts.append("global measures predicting MORE strongly than local (CI of |r_local| − |r_global| "
                     "below 0): " + ", ".join(stronger))
    if same:
        parts.append("as strongly (CI of |r_local| − |r_global| covers 0): " + ", ".join(same))
    if weaker:
        parts.append("less strongly (CI above 0): " + ", ".join(weaker))
    if unknown:
        parts.append("not compared: " + ", ".join(unknown))
    detail = "; ".join(parts)
    if local_predicts and local_sign != s:
        return "opposite", f"the local measure predicts with the opposite sign — {detail}"
    if not global_recs:
        return "inconclusive", f"no global measure to compare with — {detail}"
    if stronger or predicting:
        against = list(dict.fromkeys([_measure_name(g, i) for i, g in enumerate(global_recs)
                                      if any(t.startswith(_measure_name(g, i) + " (") for t in stronger)]
                                     + predicting))
        return "not replicated", (f"global measure(s) predict as well as or better than local LID "
                                  f"({', '.join(against)}): evidence against C4 — {detail}")
    if local_predicts and len(weaker) == len(global_recs):
        return "replicated", (f"the local measure predicts and predicts significantly more strongly than "
                              f"every global measure — {detail}")
    why = ("the local measure does not predict" if not local_predicts else
           "the local measure predicts but is not significantly stronger than every global measure")
    return "inconclusive", f"{why} — {detail}"
