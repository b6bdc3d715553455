"""The intervention's checks and verdict: the penalty's validation, the records of both arms,
the claim's verdict and its interpretation.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from lidutils.book.records import correlate, finalize, holm_records
from lidutils.book.measures import lid_table
from lidutils.book.report import write_claim
from lidutils.lid import lid_mle
from lidutils.penalty import batch_penalty
from lidutils.rsatools import noise_ceiling, pixel_rdm, rsa_many
from lidutils.stats import corr
from .intervention_design import ARMS, PRIMARIES, UNIT, ARM_TEXT
from .intervention_measures import torch_threads


def validate_penalty(reps, k=10, batch_size=128, k_full=50, n_pcs=300, seed=0, device="auto", num_threads=1):
    """Does the training-time batch estimate track the full-set LID?

    For each representation (e.g. every network's evaluation embeddings), disjoint
    random batches of ``batch_size`` rows:

    - ``batch``: :func:`lidutils.penalty.batch_penalty` (``kind="lid"``, ``k``) on
      the batch in float32, as in training;
    - ``same_points``: :func:`lidutils.lid_mle` (float64) on the same rows, same ``k``
      (its mean over the batch): the batch penalty must equal it up to its
      smoothing :math:`\\varepsilon` and float32 rounding.

    Per representation, also ``full``: the mean MLE at ``k_full`` in the PCA-``n_pcs``
    space over all rows (the measurement of the chapter) and ``batch_mean`` (mean of
    the batch estimates).

    Returns
    -------
    batches : DataFrame (one row per batch: ``model``, ``batch``, ``same_points``)
    models : DataFrame (one row per representation: ``batch_mean``, ``full``)
    """
    rng = np.random.default_rng(seed)
    with torch_threads(num_threads):
        batches, models = _validate(reps, k, batch_size, k_full, n_pcs, rng, seed, device)
    return batches, models


def _validate(reps, k, batch_size, k_full, n_pcs, rng, seed, device):
    import torch


    rows = []
    for name, X in reps.items():
        X = np.asarray(X)
        order = rng.permutation(len(X))
        for i in range(0, len(X) - batch_size + 1, batch_size):
            b = X[order[i:i + batch_size]]
            with torch.no_grad():
                v = float(batch_penalty(torch.as_tensor(b, dtype=torch.float32), "lid", k))
            ref = float(lid_mle(b.astype(np.float64), k, device=device, duplicates="ignore").mean())
            rows.append(dict(model=name, batch=v, same_points=ref))
    batches = pd.DataFrame(rows)
    full = lid_table({n: np.asarray(X, dtype=np.float64) for n, X in reps.items()}, ks=[k_full],
                     space="pca300", n_pcs=n_pcs, seed=seed, device=device)[f"mle_k{k_full}"]
    models = batches.groupby("model")["batch"].mean().rename("batch_mean").to_frame().join(full.rename("full"))
    return batches, models


def penalty_validation(batches, models, n_boot=2000, n_perm=10000, seed=0):
    """The two checks of :func:`validate_penalty` as numbers.

    - ``max_rel_diff_same_points``: :math:`\\max_b |P_b - M_b| / M_b` over batches,
      :math:`P_b` the batch penalty and :math:`M_b` :func:`lidutils.lid_mle` on the
      same points (must be rounding-sized);
    - ``tracks``: Pearson r (bootstrap CI, permutation p, n) across representations
      between the mean batch estimate and the full-set LID
      (:func:`lidutils.stats.corr`);
    - ``bias``: mean of (batch mean − full-set LID) over representations.

    Returns
    -------
    dict with ``n_batches``, ``max_rel_diff_same_points``, ``tracks`` (r, ci_low,
    ci_high, p, n) and ``bias``.
    """

    rel = (batches["batch"] - batches["same_points"]) / batches["same_points"]
    tr = corr(models["batch_mean"].to_numpy(float), models["full"].to_numpy(float), method="pearson",
              n_boot=n_boot, n_perm=n_perm, seed=seed)
    return dict(n_batches=int(len(batches)), max_rel_diff_same_points=float(rel.abs().max()),
                tracks={k: (int(tr[k]) if k == "n" else float(tr[k])) for k in ("r", "ci_low", "ci_high", "p", "n")},
                bias=float((models["batch_mean"] - models["full"]).mean()))


def validation_text(summary):
    """Two markdown snippets from :func:`penalty_validation`: ``(same points, across networks)``."""
    t = summary["tracks"]
    same = f"{summary['n_batches']} batches: max |relative difference| {summary['max_rel_diff_same_points']:.1e}"
    track = (f"Pearson r = {t['r']:+.3f} [{t['ci_low']:+.3f}, {t['ci_high']:+.3f}], n = {t['n']} networks; "
             f"mean bias (batch − full) {summary['bias']:+.2f}")
    return same, track


def arm(diffs, name, label_noise=0.0, condition="lid"):
    """The penalised networks of one arm: ``"lowering"`` (``lam > 0``) or ``"raising"`` (``lam < 0``).

    ``label_noise``: 0 (clean labels) or the noise series' fraction (``None``: any > 0).
    """
    if name not in ARMS:
        raise ValueError(f"arm must be one of {list(ARMS)}, got {name!r}.")
    d = diffs[diffs.condition == condition]
    d = d[d.label_noise > 0] if label_noise is None else d[np.isclose(d.label_noise, label_noise)]
    return d[np.sign(d["lam"]) == ARMS[name]]


def _correlate(label, t, x, y, sign, *, population, method="pearson", note="", k=50, n_boot=2000, n_perm=10000,
               seed=0):
    """One C8 record by the claims' builder (:func:`lidutils.book.claims.correlate`): within family when the
    units span two or more families (family means removed, family-stratified bootstrap,
    permutation within family), a label only at enough units and when CI and p agree."""

    rec = correlate("C8", t, x, y, population=population, method=method, expected_sign=sign, paper_r=None,
                    space="pca300", k=k, estimator="mle", label=label, n_boot=n_boot, n_perm=n_perm, seed=seed,
                    note=note)
    if rec is not None:
        rec["unit"] = UNIT
    return rec


def records(diffs, k=50, n_boot=2000, n_perm=10000, seed=0):
    """The C8 correlation records from the paired differences (:func:`paired` with ``curves``).

    Per arm (:data:`ARMS`), across its LID-penalised networks on clean labels:

    - **primary** (:data:`PRIMARIES`): Pearson r between ΔLID and Δtest accuracy
      at matched training loss (``d_test_at_fit``), within family; the causal
      reading predicts r < 0 in both arms (LID down → better generalization at the
      same fit; LID up → worse);
    - the same with Spearman; ΔLID vs Δgeneralization gap (expected r > 0); ΔLID vs
      Δtest accuracy (raw: generalization and fit together); ΔLID vs Δridge
      alignment and vs Δbrain RSA per region;
    - the **manipulation check** per family: dose λ vs ΔLID (Spearman, expected
      r < 0: a larger |λ| must move LID further the intended way).

    And the label-noise series (LID-lowering doses): ΔLID vs Δtest accuracy at matched
    training loss.

    Returns
    -------
    records : list of dict
    checks : dict ``"<family>, <arm>"`` -> the manipulation check's verdict
        ("replicated" = passed; "wrong direction" when the arm's mean ΔLID has the
        wrong sign; "too few networks" when no record could be made).
    """
    kw = dict(k=k, n_boot=n_boot, n_perm=n_perm, seed=seed)
    out, checks = [], {}
    for name, s in ARMS.items():
        a = arm(diffs, name)
        if a.empty:
            continue
        txt = ARM_TEXT[name]
        pop = f"{txt}, clean labels"
        out.append(_correlate(PRIMARIES[name], a, "d_lid", "d_test_at_fit", -1, population=pop, **kw))
        out.append(_correlate(f"{txt}: ΔLID vs Δtest accuracy at matched training loss (Spearman)", a, "d_lid",
                              "d_test_at_fit", -1, population=pop, method="spearman", **kw))
        out.append(_correlate(f"{txt}: ΔLID vs Δgeneralization gap (Pearson)", a, "d_lid", "d_gap", 1,
                              population=pop, note="gap = training − test accuracy; the causal reading predicts "
                              "r > 0; a penalty that only underfits also shrinks the gap", **kw))
        out.append(_correlate(f"{txt}: ΔLID vs Δtest accuracy (Pearson)", a, "d_lid", "d_accuracy", -1,
                              population=pop, note="raw test accuracy: generalization and fit together", **kw))
        out.append(_correlate(f"{txt}: ΔLID vs Δridge alignment with the unregularised networks (Pearson)", a,
                              "d_lid", "d_ridge", -1, population=pop, **kw))
        for roi in sorted(c[len("d_brain_"):] for c in a.columns if c.startswith("d_brain_")):
            out.append(_correlate(f"{txt}: ΔLID vs Δbrain RSA ({roi}) (Pearson)", a, "d_lid", f"d_brain_{roi}", -1,
                                  population=pop, **kw))
        for fam, g in a.groupby("family"):
            r = _correlate(f"manipulation check, {fam}, {txt}: λ vs ΔLID (Spearman)", g, "lam", "d_lid", -1,
                           population=f"{fam}, {pop}", method="spearman",
                           note="a larger |λ| must move LID further: down for λ > 0, up for λ < 0", **kw)
            out.append(r)
            right_way = bool(np.sign(g["d_lid"].mean()) == -s)
            checks[f"{fam}, {name}"] = ("wrong direction" if not right_way else
                                        r["verdict"] if r is not None else "too few networks")
        noisy = arm(diffs, name, label_noise=None)
        if len(noisy):
            out.append(_correlate(f"label-noise series, {txt}: ΔLID vs Δtest accuracy at matched training loss "
                                  "(Pearson)", noisy, "d_lid", "d_test_at_fit", -1,
                                  population=f"{txt}, noisy training labels (clean test labels)", **kw))
    return [r for r in out if r is not None], checks


def _arm_verdicts(recs, checks):
    """Per arm: its primary record (p Holm-adjusted between the two primaries, as
    :func:`lidutils.book.claims.finalize` does) and its verdict ("uninformative" when a
    family's manipulation check failed, "descriptive" when there is no primary record)."""

    prim = {a: next((dict(r) for r in recs if r["analysis"] == PRIMARIES[a]), None) for a in ARMS}
    present = [a for a in ARMS if prim[a] is not None]
    if len(present) > 1:
        holm_records([prim[a] for a in present])
    v = {}
    for a in ARMS:
        failed = [k.rsplit(", ", 1)[0] for k, c in checks.items() if k.endswith(f", {a}") and c != "replicated"]
        v[a] = ("descriptive" if prim[a] is None else "uninformative" if failed or not any(
            k.endswith(f", {a}") for k in checks) else prim[a]["verdict"])
    return prim, v


def _say(rec, verdict):
    if rec is None:
        return "no primary record (too few networks)"
    fam = f", within {rec['n_families']} families" if rec.get("design") == "within family" else ""
    return (f"r = {rec['r']:+.2f} [{rec['ci_low']:+.2f}, {rec['ci_high']:+.2f}], n = {rec['n']}{fam} → {verdict}")


def claim_verdict(recs, checks):
    """C8's verdict and its reason, by a rule fixed before the data (both arms' primaries).

    Each arm's verdict is its primary's label (p Holm-adjusted between the two arms),
    or "uninformative" when the manipulation check failed in one of its families.
    With L the LID-lowering arm's verdict and R the LID-raising arm's:

    ==================  ======================  ==================
    L                   R                       C8
    ==================  ======================  ==================
    uninformative       any                     uninformative
    replicated          opposite                inconclusive (every push on LID helped)
    replicated          anything else           replicated
    opposite            opposite                opposite (higher LID generalizes better)
    opposite            anything else           not replicated (lowering LID did not help)
    inconclusive        any                     inconclusive
    descriptive         any                     descriptive
    ==================  ======================  ==================

    Returns ``(verdict, reason)``.
    """
    prim, v = _arm_verdicts(recs, checks)
    L, R = v["lowering"], v["raising"]
    why = "; ".join(f"{ARM_TEXT[a]}: {_say(prim[a], v[a])}" for a in ARMS)
    if L == "uninformative":
        bad = ", ".join(f"{k.rsplit(', ', 1)[0]}: {c}" for k, c in checks.items()
                        if k.endswith(", lowering") and c != "replicated")
        return "uninformative", (f"the manipulation check of the λ > 0 arm (λ vs ΔLID) did not pass "
                                 f"({bad or 'no family checked'}), so the test cannot tell ({why})")
    if L == "descriptive":
        return "descriptive", f"too few networks in the λ > 0 arm for a verdict ({why})"
    if L == "replicated":
        if R == "opposite":
            return "inconclusive", ("at matched training loss both lowering and raising LID raised test accuracy: "
                                    f"the effect does not follow the direction of LID ({why})")
        return "replicated", f"lowering LID raised test accuracy at matched training loss ({why})"
    if L == "opposite":
        if R == "opposite":
            return "opposite", ("at matched training loss lowering LID cost test accuracy and raising it "
                                f"bought some ({why})")
        return "not replicated", (f"lowering LID cost test accuracy at matched training loss and raising it did "
                                  f"not buy any ({why})")
    return "inconclusive", f"the λ > 0 arm's interval covers 0 or its CI and p disagree ({why})"


def write_result(recs, verdict, reason, parameters, out_dir="results", tier="offline", extra=None):
    """Write ``<out_dir>/C8.json``: the two arms' primaries first (Holm-adjusted between
    them), the secondaries Holm-adjusted (:func:`lidutils.book.claims.finalize`).

    Returns the written dict, or ``None`` (nothing written) when neither primary record exists.
    """

    prims = [PRIMARIES[a] for a in ARMS if any(r["analysis"] == PRIMARIES[a] for r in recs)]
    if not prims:
        return None
    extra = dict(extra or {}, primaries=prims)
    return write_claim("C8", finalize(recs, prims), out_dir=out_dir, primary=prims[0], verdict=verdict,
                       reason=reason, parameters=parameters, extra=extra, notebook="06_intervention",
                       section="c8-result", tier=tier)


def norm_control(diffs):
    """LID penalty vs the norm control at the matched ``lam``, within seeds.

    Returns one row per (family, lam, metric) with the mean paired difference of each
    condition against the unregularised twin (``lid_mean``, ``norm_mean``) and the
    within-seed contrast ``lid - norm`` with its t interval (``n`` seeds).
    """
    from scipy import stats as st

    clean = diffs[diffs.label_noise == 0]
    norm = clean[clean.condition == "norm"]
    rows = []
    for (fam, lam), g in norm.groupby(["family", "lam"]):
        twin = clean[(clean.condition == "lid") & (clean.family == fam) & np.isclose(clean.lam, lam)]
        both = g.set_index("seed").join(twin.set_index("seed"), lsuffix="_norm", rsuffix="_lid", how="inner")
        for c in [c for c in diffs.columns if c.startswith("d_")]:
            a, b = both[f"{c}_lid"].to_numpy(float), both[f"{c}_norm"].to_numpy(float)
            d = a - b
            ok = np.isfinite(d)
            n = int(ok.sum())
            half = float(st.t.ppf(0.975, n - 1) * d[ok].std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan
            m = float(d[ok].mean()) if n else np.nan
            rows.append(dict(family=fam, lam=lam, metric=c[2:], lid_mean=float(np.nanmean(a)) if n else np.nan,
                             norm_mean=float(np.nanmean(b)) if n else np.nan, contrast=m, ci_low=m - half,
                             ci_high=m + half, n=n))
    return pd.DataFrame(rows)


def _meaning(verdict, raising):
    """The verdict's meaning, given the λ < 0 arm's own label (:func:`claim_verdict`'s rule)."""
    up = {"replicated": "pushing LID up lowered it", "opposite": "pushing LID up raised it",
          "uninformative": "the λ < 0 arm could not be tested (its manipulation check did not pass)",
          }.get(raising, "pushing LID up changed it by no detectable amount")
    if verdict == "replicated":
        return (f"At matched training loss, the networks whose LID the penalty lowered tested better than their "
                f"twins, and {up}: in this setting lowering local dimension improved generalization, not only fit.")
    if verdict == "opposite":
        return ("At matched training loss, lowering LID cost test accuracy and raising it bought some: in this "
                "setting higher local dimension went with better generalization — the reverse of the paper's "
                "direction.")
    if verdict == "not replicated":
        tail = {"replicated": ": every push on LID, either way, cost generalization at matched fit — an optimum "
                              "near the unregularised network, not a monotone effect of local dimension",
                "uninformative": ""}.get(raising, ": no monotone effect of local dimension on generalization in "
                                                  "the paper's direction")
        return (f"Pushing LID down lowered test accuracy at matched training loss, and {up}{tail}. Lowering "
                "local dimension did not improve generalization in this setting.")
    if verdict == "inconclusive":
        if raising == "opposite":
            return ("At matched training loss, both lowering and raising LID raised test accuracy: the effect does "
                    "not follow the direction of LID, so the intervention does not support a causal role of local "
                    "dimension.")
        return ("The intervention neither supports nor refutes a causal role of local dimension in "
                "generalization at this size.")
    if verdict == "uninformative":
        return ("The penalty did not move LID in the intended direction in every family, so the experiment "
                "cannot test the causal reading.")
    return "Too few networks per arm for a verdict."


def interpretation(verdict, recs, diffs, checks=None, norm=None):
    """What the result means for the paper's causal reading (markdown, every number from the data).

    Per arm, over its LID-penalised networks on clean labels: the mean ΔLID, Δtest
    accuracy, Δtraining accuracy and Δtest accuracy at matched training loss, and the
    primary record; then the verdict's meaning (:func:`claim_verdict`'s rule; with
    ``checks`` the λ < 0 arm's label is read from the records as the rule reads it) and,
    with ``norm`` (:func:`norm_control`), the norm control at matched fit.
    """
    parts = []
    for name in ARMS:
        a = arm(diffs, name)
        if a.empty:
            continue
        rec = next((r for r in recs if r["analysis"] == PRIMARIES[name]), None)
        m = {c: float(a[c].mean()) for c in ("d_lid", "d_accuracy", "d_train_acc", "d_test_at_fit") if c in a}
        bits = [f"ΔLID {m['d_lid']:+.2f}"] + [f"{lab} {m[c]:+.3f}" for c, lab in (
            ("d_accuracy", "Δtest accuracy"), ("d_train_acc", "Δtraining accuracy"),
            ("d_test_at_fit", "Δtest accuracy at matched training loss")) if c in m and np.isfinite(m[c])]
        unmatched = int((a.get("fit_status", pd.Series(dtype=str)) == "worse than first checkpoint").sum())
        parts.append(f"*{ARM_TEXT[name]}* ({len(a)} networks; means {', '.join(bits)}"
                     + (f"; {unmatched} fit worse than their twin's first checkpoint, no matched value" if unmatched
                        else "") + f"): primary {_say(rec, rec['verdict'] if rec else '—')}.")
    raising = _arm_verdicts(recs, checks)[1]["raising"] if checks is not None else "inconclusive"
    text = " ".join(parts) + " " + _meaning(verdict, raising)
    if norm is not None and len(norm):
        rows = norm[norm.metric == "test_at_fit"]
        if rows.empty:
            rows = norm[norm.metric == "accuracy"]
        what = "Δtest accuracy at matched training loss" if (norm.metric == "test_at_fit").any() else "Δtest accuracy"
        txt = [f"{r.family} at λ = {r.lam:g}: LID penalty {r.lid_mean:+.3f}, norm penalty {r.norm_mean:+.3f} "
               f"(difference {r.contrast:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}], n = {r.n} seeds)"
               for r in rows.itertuples()]
        text += (f" Control — a penalty of the same gradient size on the spread of the embedding norms, {what}: "
                 + "; ".join(txt) + ".")
    return text


def brain_context(brain, images, method="spearman", table=None):
    """Per region: leave-one-subject-out noise ceiling (lower, upper) and the raw-pixel
    RDM's mean RSA over subjects (:func:`lidutils.rsatools.noise_ceiling`,
    :func:`~lidutils.rsatools.pixel_rdm`, :func:`~lidutils.rsatools.rsa_many`); with the
    measurement ``table``, the networks' mean and best brain score per region in front."""

    pix = pixel_rdm(images)
    rows = {}
    for roi, rdms in brain.items():
        nc = noise_ceiling(rdms, method=method)
        rows[roi] = dict(ceiling_low=float(nc["lower"]), ceiling_high=float(nc["upper"]),
                         pixels=float(rsa_many(pix, rdms, method=method).mean()))
    ctx = pd.DataFrame.from_dict(rows, orient="index")
    if table is not None:
        ctx.insert(0, "networks (max)", [table[f"brain_{r}"].max() for r in ctx.index])
        ctx.insert(0, "networks (mean)", [table[f"brain_{r}"].mean() for r in ctx.index])
    return ctx


def result_extra(runs, diffs, checks, validation, base, summary, norm, context):
    """The ``extra`` block of C8's results file: checks, validation, baseline, summaries, brain context."""
    return dict(manipulation_checks=checks, penalty_validation=validation, baseline=base.to_dict("records"),
                paired_summary=summary.to_dict("records"), norm_control=norm.to_dict("records"),
                fit_status=diffs["fit_status"].value_counts().to_dict(),
                norm_ratio=runs.groupby("family")["norm_ratio"].first().to_dict(), brain_context=context.to_dict())
