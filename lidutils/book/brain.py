"""The brain test: can the brain data rank the models (reliability, low-level baselines), per-
subject and per-region records (C7), reference ceilings and surface maps.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from lidutils import rsatools, stats
from lidutils.book import measures, paper_tier as PT
from lidutils.book.analyses import cell_partial, primary_analysis
from lidutils.book.measures import lid_col
from lidutils.book.paper_tier import PAPER_ROIS
from lidutils.book.params import MIN_N
from lidutils.book.plotting import surface_maps as draw
from lidutils.book.records import member_units, unit_groups, write
from lidutils.book.report import to_plain
from lidutils.book.study import primary_population, replication_populations
from lidutils.dependent import compare_dependent


def model_rdms(study, name, metric="correlation"):
    """Each member's RDM of the brain probe images (stacked in member order)."""

    return np.stack([rsatools.rdm(study.pop.probe_reps[m], metric, device=study.device) for m in study.populations[name]])


def brain_test(study, name, method="spearman"):
    """Can this population's brain test tell? One row per region.

    Per region: the split-half reliability of the ranking of the population's units
    across subjects (:func:`lidutils.rsatools.ranking_reliability`, Spearman–Brown);
    the population's mean score (``mean_score``: mean over units of the subject-mean
    score) beside the stronger low-level baseline (``baseline``: the pixel or
    Gabor-energy RDM's mean score with the same subjects, named in ``baseline_name``);
    and each model's RSA with the pixel and Gabor-energy RDMs of the probe images
    partialled out (:func:`lidutils.rsatools.partial_rsa`). ``informative`` and its
    ``reason`` by :func:`lidutils.rsatools.brain_test_informative`: a reliable
    ranking, scores above the low-level baseline, and scores that survive partialling.
    Paper tier (encoding scores, no RDMs): reliability only.

    Returns
    -------
    (summary DataFrame indexed by region, partial DataFrame (members x ``partial_<roi>``,
    the mean over subjects, and ``partial_<roi>_s<subject>`` per subject, 1-based))
    """

    members = study.members(name)
    long = study.brain(name)
    units = member_units(members)
    rows, partial = [], pd.DataFrame(index=members.index)
    base = None
    if study.pop.brain is not None and study.pop.brain_scores is None and study.pop.probe_images is not None:
        base = np.stack([rsatools.pixel_rdm(study.pop.probe_images), rsatools.gabor_rdm(study.pop.probe_images)])
        mrdms = model_rdms(study, name)
    for roi, g in long.groupby("roi", sort=False):
        S_ = g.pivot_table(index="model", columns="subject", values="score").reindex(members.index)
        cell = S_.groupby(units.reindex(S_.index).to_numpy()).mean()
        rel = rsatools.ranking_reliability(cell.to_numpy()) if cell.shape[1] >= 2 and len(cell) >= 3 else None
        mean_score = float(cell.mean(axis=1).mean())
        part = bl = bl_name = None
        if base is not None:
            pr = rsatools.partial_rsa(mrdms, study.pop.brain[roi], base, method=method)
            partial[f"partial_{roi}"] = pr["partial"].mean(1)
            for j in range(pr["partial"].shape[1]):
                partial[f"partial_{roi}_s{j + 1}"] = pr["partial"][:, j]
            part = partial[f"partial_{roi}"].groupby(units.to_numpy()).mean().to_numpy()
            bls = {b: float(rsatools.rsa_many(B, study.pop.brain[roi], method=method).mean())
                   for b, B in zip(("pixels", "Gabor energy"), base)}
            bl_name = max(bls, key=bls.get)
            bl = bls[bl_name]
        if rel is None:
            ok, why = False, "fewer than 2 subjects or 3 units: no ranking reliability"
        else:
            ok, why = rsatools.brain_test_informative(rel, part, score=mean_score, baseline=bl)
        rows.append(dict(roi=roi, n_units=len(cell), n_subjects=cell.shape[1],
                         reliability=None if rel is None else rel["mean"],
                         reliability_low=None if rel is None else rel["ci_low"],
                         mean_score=mean_score, baseline=bl, baseline_name=bl_name,
                         mean_partial=None if part is None else float(np.nanmean(part)),
                         best_partial=None if part is None else float(np.nanmax(part)),
                         informative=ok, reason=why))
    return pd.DataFrame(rows).set_index("roi"), partial


def _record_roi(rec):
    return rec.get("roi") or rec["y"].removeprefix("partial_").removeprefix("brain_")


def mark_uninformative(records, test, study=None, table=None):
    """Annotate model–brain records with their region's brain test; "uninformative" where it cannot tell.

    ``test`` is :func:`brain_test`'s summary; a record's region is read from its
    ``roi`` field or its ``y`` (``brain_<roi>``, ``partial_<roi>``). Every record of a
    tested region gets the test beside its r: ``reliability`` (and
    ``reliability_low``), ``mean_score``, ``baseline`` (``baseline_name``),
    ``mean_partial`` and ``brain_test_informative``. With ``study`` and ``table``
    (the units with :func:`cell_partial`'s columns) it also gets the **low-level-
    partialled score** of the same analysis: ``r_partial`` [``r_partial_ci_low``,
    ``r_partial_ci_high``], ``p_partial``, the correlation of its x with the
    partialled score (``partial_<roi>``; a per-subject record: that subject's,
    ``partial_<roi>_s<subject>``), in the record's own frame.

    Where the test cannot tell, the verdict becomes "uninformative" with the test's
    reason, and ``excludes_paper_value`` is cleared (None): an uninformative record
    says nothing about the paper's value either way.
    """
    for rec in records:
        if rec is None:
            continue
        roi = _record_roi(rec)
        if roi not in test.index:
            continue
        row = test.loc[roi]
        info = {key: to_plain(row[key]) if key in row else None
                for key in ("reliability", "reliability_low", "mean_score", "baseline", "baseline_name",
                            "mean_partial")}
        rec.update(info, brain_test_informative=bool(row["informative"]))
        if study is not None and table is not None and not str(rec["y"]).startswith("partial_"):
            pcol = f"partial_{roi}" + (f"_s{rec['subject']}" if rec.get("subject") is not None else "")
            pr = study.correlate(rec["claim"], table, rec["x"], pcol, population=rec["population"],
                                 method=rec.get("method"), k=rec.get("k"), estimator=rec.get("estimator"),
                                 expected_sign=rec["expected_sign"], paper_r=None,
                                 design="within" if str(rec.get("design", "")).startswith("within") else "pooled",
                                 label=f"{rec['analysis']} | partialled") if pcol in table else None
            rec.update(r_partial=None if pr is None else pr["r"], r_partial_ci_low=None if pr is None else pr["ci_low"],
                       r_partial_ci_high=None if pr is None else pr["ci_high"],
                       p_partial=None if pr is None else pr["p"])
        if not bool(row["informative"]):
            rec["verdict"] = stats.verdict(rec, expected_sign=rec["expected_sign"], informative=False)
            rec["reason"] = str(row["reason"])
            rec["excludes_paper_value"] = None
    return records


def per_subject_records(study, claim, name, table, k, estimator="mle"):
    """C7: LID vs each subject's score, per region (one record each, units of ``table``)."""
    long = study.brain(name)
    units = member_units(study.members(name))
    recs = []
    for (roi, s), g in long.groupby(["roi", "subject"], sort=False):
        sc = g.set_index("model")["score"].groupby(units.reindex(g["model"]).to_numpy()).mean()
        t = table.join(sc.rename("score_subject"))
        rec = study.correlate(claim, t, measures.lid_col(k, estimator), "score_subject", population=name, k=k,
                              estimator=estimator, label=f"{name}: LID (K={k}) vs {roi}, subject {s} (pearson)")
        if rec is not None:
            rec.update(roi=str(roi), subject=int(s))
            recs.append(rec)
    return recs


def c7_verdict(per_roi, comparison, per_subject, order):
    """C7 from per-region records, the dependent-correlation test between regions, and per-subject records.

    "replicated": the higher region's record replicates, its relation is significantly
    stronger than the lower region's (CI of :math:`r_{low} - r_{high}` above 0 with
    expected negative sign, i.e. :func:`lidutils.stats.compare_dependent` of ``|r|``
    with its CI above 0), and most subjects show the paper's sign; "uninformative"
    when the higher region's test cannot tell; "opposite" when the higher region's
    record is opposite; otherwise "inconclusive". The reason gives the higher region's
    ranking reliability where the record carries it (:func:`mark_uninformative`).
    Returns ``(verdict, reason)``.
    """
    hi = per_roi[order[-1]]
    rel = (f" (ranking reliability {hi['reliability']:.2f})" if isinstance(hi.get("reliability"), (int, float))
           else "")
    if hi["verdict"] == "uninformative":
        return "uninformative", f"{order[-1]}: {hi.get('reason', 'the brain test cannot tell')}"
    if hi["verdict"] == "opposite":
        return "opposite", f"{order[-1]}{rel} shows the opposite sign"
    subj = [r for r in per_subject if r["roi"] == order[-1]]
    neg = sum(r["r"] < 0 for r in subj)
    stronger = comparison is not None and comparison["ci_low"] > 0
    if hi["verdict"] == "replicated" and stronger and neg > len(subj) / 2:
        return "replicated", (f"{order[-1]}{rel} replicates, is significantly stronger than {order[0]}, "
                              f"and {neg} of {len(subj)} subjects show the paper's sign")
    return "inconclusive", (f"{order[-1]}{rel}: {hi['verdict']}; stronger than {order[0]}: "
                            f"{'yes' if stronger else 'not significantly'}; {neg} of {len(subj)} subjects negative")


def compare_regions(study, table, x, y_low, y_high, design=None):
    """:func:`lidutils.stats.compare_dependent` of |r(x, high region)| vs |r(x, low region)| across units.

    In the frame of :func:`correlate` (``design``; None: within family whenever the
    units span two or more families): within-family centring and a family-stratified
    bootstrap.
    """
    sub = table[[x, y_low, y_high]].apply(pd.to_numeric, errors="coerce").dropna()
    if len(sub) < MIN_N:
        return None
    try:
        return compare_dependent(sub[x].to_numpy(), sub[y_high].to_numpy(), sub[y_low].to_numpy(),
                                   method=study.params.get("method", "pearson"),
                                   n_boot=study.params.get("n_boot", 2000), seed=study.params.get("seed", 0),
                                   groups=unit_groups(table, sub.index, design))
    except ValueError:  # too few units in this frame
        return None


def reference_records(study, claim, name, k, matrix, estimator="mle"):
    """Alignment with a reference outside the correlated set (one record per reference family).

    For each family F, the reference is F's most accurate network (chosen by accuracy,
    not by the alignment being correlated); every network of the *other* families is
    scored by its ridge alignment with it, both directions averaged,
    :math:`(M_{a,ref} + M_{ref,a})/2`, read off the all-pairs ``matrix``; units are
    then seed-averaged and correlated with LID. The reference's own LID is recorded.
    """
    members = study.members(name)
    lids = study.lid(name, [k], (estimator,))[lid_col(k, estimator)]
    recs = []
    for fam, g in members.groupby("family"):
        acc = g["accuracy"].astype(float).dropna()
        if acc.empty:  # no accuracy to choose a reference by (e.g. MAE encoders)
            continue
        ref = acc.idxmax()
        others = members.index[members["family"] != fam]
        score = (matrix.loc[others, ref] + matrix.loc[ref, others]) / 2
        t = measures.cell_means(members.loc[others].join(lids).assign(ref_alignment=score))
        rec = study.correlate(claim, t, lid_col(k, estimator), "ref_alignment", population=f"{name} without {fam}",
                              k=k, estimator=estimator,
                              label=f"{name}: LID vs alignment with the best {fam} (reference outside the set, pearson)")
        if rec is not None:
            rec.update(reference=str(ref), reference_lid=float(lids[ref]))
            recs.append(rec)
    return recs


def brain_references(study):
    """Per region: noise ceiling (lower, upper; needs 2+ subjects) and the pixel / Gabor baselines' mean RSA."""

    run = study.pop.paper_run
    if run is not None:  # encoding R²: the ceiling is the median per-vertex noise ceiling (R² units)
        c = run.ceilings.groupby("roi")["noise_ceiling"].median()
        return pd.DataFrame({"ceiling_low": c, "ceiling_high": c})
    if study.pop.brain is None:
        return pd.DataFrame()
    method = study.params.get("rsa_method", "spearman")
    imgs = study.pop.probe_images
    base = {"pixels": rsatools.pixel_rdm(imgs), "gabor": rsatools.gabor_rdm(imgs)} if imgs is not None else {}
    rows = {}
    for roi, rdms in study.pop.brain.items():
        row = {}
        if rdms.shape[0] >= 2:
            nc = rsatools.noise_ceiling(rdms, method=method)
            row.update(ceiling_low=nc["lower"], ceiling_high=nc["upper"])
        for b, B in base.items():
            row[b] = float(rsatools.rsa_many(B, rdms, method=method).mean())
        rows[roi] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def brain_showcase(study, long, n=6):
    """Members to show in the brain-score figure: every non-zoo model, the best and worst zoo ones."""
    members = study.pop.members
    top = long["roi"].iloc[-1] if len(long) else None
    show = [m for m in long["model"].unique() if not str(members.loc[m, "group"]).startswith("zoo")]
    prim = primary_population(study.populations)
    if prim.startswith("zoo") and top is not None:
        s = long[(long["roi"] == top) & long["model"].isin(study.populations[prim])].groupby("model")["score"].mean()
        s = s.sort_values()
        show += list(s.index[: n // 2]) + list(s.index[-(n // 2):])
    return list(dict.fromkeys(show))


def brain_test_frame(tests, reasons=True):
    """:func:`brain_test` summaries of several populations, one row per (population, region).

    ``reasons=False`` leaves out the sentence column (a compact table for the page).
    """
    frames = [s.assign(population=n) for n, (s, _) in tests.items() if len(s)]
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames).reset_index().set_index(["population", "roi"])
    return out if reasons else out.drop(columns="reason").round(2)


def ceiling_and_baseline(refs):
    """``({roi: (lower, upper)}, {roi: pixel score})`` from :func:`brain_references` (empty dicts if absent)."""
    ceil = {r: (row["ceiling_low"], row["ceiling_high"]) for r, row in refs.iterrows()
            if "ceiling_low" in refs and np.isfinite(row["ceiling_low"])}
    base = refs["pixels"].dropna().to_dict() if "pixels" in refs else {}
    return ceil, base


def cortical_maps(study, table, k, estimator="mle", subject=None):
    """Paper tier: per-vertex held-out R² of the lowest-LID model, and the per-vertex r(LID, R²) across models.

    C7 as a map, not two bars, drawn on nilearn's fsaverage5 for both hemispheres
    (:func:`lidutils.book.plotting.surface_maps`). Returns the figures ([] outside the
    paper tier, or when the layout has no fsaverage indices).
    """

    run = study.pop.paper_run
    if run is None:
        return []
    subject = subject or run.meta["eval_subject"]
    if not run.fsaverage_index.get(subject):
        return []
    lid = table[lid_col(k, estimator)].dropna()
    best = lid.idxmin()
    tag = " (dry run on stand-ins)" if run.dry_run else ""
    return [draw(run.vertex_r2[subject][best], run.fsaverage_index[subject],
                 title=f"subject {subject}: held-out R², {best}{tag}"),
            draw(PT.lid_r2_map(run, lid, subject), run.fsaverage_index[subject],
                 title=f"subject {subject}: r(LID, R²) across {len(lid)} models{tag}", label="r", vmax=1.0)]


def brain_regions(study):
    """``(regions lower area first, the primary region)`` of the population's brain data.

    Offline: the RDM set's regions in their order, the last (highest) primary. Paper
    tier: the paper's ROIs in :data:`lidutils.book.paper_tier.PAPER_ROIS` order, with EBA
    (the paper's C2 region) primary when scored.
    """
    if study.pop.brain is not None and study.pop.brain_scores is None:
        rois = list(study.pop.brain)
        return rois, rois[-1]

    scored = list(pd.unique(study.pop.brain_scores["roi"]))
    rois = [r for r in PAPER_ROIS if r in scored] + [r for r in scored if r not in PAPER_ROIS]
    return rois, ("EBA" if "EBA" in rois else rois[-1])


# --------------------------------------------------------------------------- chapter 03's blocks
def c2_records(study, primary, tests, rois):
    """C2's records: the primary analysis and LID vs each region's *partial* brain score.

    The partial score removes the low-level baselines of the brain test
    (:func:`lidutils.book.analyses.cell_partial`); every record is marked uninformative
    where the brain test cannot rank the models (:func:`mark_uninformative`).
    ``primary`` is :func:`~lidutils.book.analyses.primary_analysis`'s result, ``tests``
    :func:`brain_test` per population. Returns ``(table, records)``.
    """
    summary, partial = tests[primary["name"]]
    t = primary["table"].join(cell_partial(study, primary["name"], partial))
    lid = lid_col(primary["k"])
    sec = [study.correlate("C2", t, lid, f"partial_{roi}", population=primary["name"], k=primary["k"],
                           label=f"{primary['name']}: LID vs partial_{roi} (pearson)")
           for roi in rois if f"partial_{roi}" in t]
    return t, mark_uninformative(primary["records"] + sec, summary, study=study, table=t)


def c2_replications(study, primary, tests, top,
                    natural=("ImageNet models", "ImageNet models + random controls")):
    """C2's primary analysis (as secondaries) in the replication populations, marked like :func:`c2_records`."""
    others = []
    for n in replication_populations(study, primary["name"], natural=natural):
        o = primary_analysis(study, "C2", f"brain_{top}", name=n, brain=True, role="secondary")
        others += mark_uninformative(o["records"], tests[n][0], study=study,
                                     table=o["table"].join(cell_partial(study, n, tests[n][1])))
    return others


def c7_records(study, primary, table, summary, rois, top):
    """C7's records: LID vs each region's brain score, per subject, and the higher-minus-lower contrast.

    Returns ``(per_roi, per_subject, comparison)``; ``comparison`` is None with one region.
    """
    lid = lid_col(primary["k"])
    per_roi = {roi: study.correlate("C7", table, lid, f"brain_{roi}", population=primary["name"],
                                    k=primary["k"], label=f"{primary['name']}: LID vs RSA {roi} (pearson)")
               for roi in rois}
    per_roi = {roi: mark_uninformative([rec], summary, study=study, table=table)[0]
               for roi, rec in per_roi.items() if rec is not None}
    subj = mark_uninformative(per_subject_records(study, "C7", primary["name"], table, primary["k"]), summary,
                              study=study, table=table)
    comp = compare_regions(study, table, lid, f"brain_{rois[0]}", f"brain_{top}") if top != rois[0] else None
    return per_roi, subj, comp


def write_c7(study, per_roi, subj, comp, rois, top, notebook="03_model_brain"):
    """Write C7's results file when it can be tested (two regions or more, the top one scored).

    C7 compares regions: with one region (or none scored) it is not tested and nothing is
    written (returns None). The verdict is :func:`c7_verdict`'s.
    """
    if len(per_roi) < 2 or top not in per_roi:
        return None
    v7, why7 = c7_verdict(per_roi, comp, subj, [rois[0], top])
    return write(study, "C7", [per_roi[top]] + [per_roi[r] for r in rois if r != top] + subj,
                 per_roi[top]["analysis"], notebook=notebook, verdict=v7, reason=why7, extra=dict(comparison=comp))
