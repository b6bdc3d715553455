"""The record builder: one correlation record per analysis (r, CI, p, n, power, verdict), Holm
over secondaries, and writing a claim's results file.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from lidutils import stats
from lidutils.book import paper
from lidutils.book.params import MIN_N
from lidutils.book.power import power_at
from lidutils.book.report import readable, to_plain, write_claim


def _unit(table):
    return "design cells" if "n_seeds" in table and (table["n_seeds"] > 1).any() else "models"


def families_of(table, rows=None):
    """Family label of each unit of ``table`` (``rows``: a subset of its index), or None without families."""
    if "family" not in table:
        return None
    f = table["family"] if rows is None else table.loc[rows, "family"]
    return f.astype(str)


def within_design(families, min_units=2):
    """Whether a correlation across these units is a within-family one (the design's primary kind).

    True when at least two families have ``min_units`` or more units: then
    family means are removed (:func:`lidutils.stats.corr_within`) and the
    between-family r of the family means is reported beside it. One family (or a
    table without ``family``): a plain correlation.
    """
    if families is None:
        return False
    counts = pd.Series(families).value_counts()
    return int((counts >= min_units).sum()) >= 2


def correlate(claim, table, x, y, *, population, role="secondary", method="pearson", expected_sign=None,
              paper_r="claim", space=None, k=None, estimator=None, label=None, n_boot=2000, n_perm=10000,
              seed=0, note="", design=None):
    """One correlation record across the units of ``table`` (rows with finite x and y).

    ``design``: ``"within"`` (family fixed effects, :func:`lidutils.stats.corr_within`:
    family-stratified bootstrap CI, permutation p within family, the between-family r
    of the family means beside it with its n), ``"pooled"`` (:func:`lidutils.stats.corr`,
    units exchangeable), or None: within family whenever the units span two or more
    families with two or more units each (:func:`within_design`), else pooled.

    The verdict is :func:`lidutils.stats.label`: ``"descriptive"`` below
    :data:`lidutils.stats.MIN_N_VERDICT` units (then ``ci_low``/``ci_high`` are the
    Fisher-z interval, valid at that n, and the bootstrap one is kept as
    ``ci_boot_low``/``ci_boot_high``); otherwise a label only when the CI and the
    permutation p agree.

    Returns ``None`` when a column is missing or constant, or fewer than 4 units remain. The record holds the fields of
    the results files (see the module docstring); ``expected_sign`` defaults to the
    claim's, ``paper_r`` to the claim's paper value (``None``: no paper number).
    """
    if x not in table or y not in table:
        return None
    sub = table[[x, y]].apply(pd.to_numeric, errors="coerce").replace([np.inf, -np.inf], np.nan).dropna()
    if len(sub) < MIN_N or np.ptp(sub[x]) == 0 or np.ptp(sub[y]) == 0:  # no correlation to speak of
        return None
    info = paper.PAPER.get(claim, {"expected_sign": -1})  # a claim beyond the paper (C8): no paper value
    sign = int(expected_sign if expected_sign is not None else info["expected_sign"])
    pr = info.get("paper_r") if isinstance(paper_r, str) and paper_r == "claim" else paper_r
    fams = families_of(table, sub.index)
    if design not in (None, "within", "pooled"):
        raise ValueError(f"design must be 'within', 'pooled' or None (automatic), got {design!r}.")
    within = within_design(fams) if design is None else design == "within"
    if within and fams is None:
        raise ValueError("design='within' needs a 'family' column in the table.")
    xv, yv = sub[x].to_numpy(float), sub[y].to_numpy(float)
    with warnings.catch_warnings(record=True) as caught:  # said once, in the record's note
        warnings.simplefilter("always")
        if within:
            try:
                res = stats.corr_within(xv, yv, fams.to_numpy(), method=method, n_boot=n_boot, n_perm=n_perm,
                                    seed=seed)
            except ValueError:  # e.g. constant within every family: no within-family correlation
                return None
        else:
            res = stats.corr(xv, yv, method=method, n_boot=n_boot, n_perm=n_perm, seed=seed)
    note = "; ".join(dict.fromkeys([note] * bool(note) + [str(w.message) for w in caught]))
    rec = {k_: to_plain(v) for k_, v in res.items() if np.isscalar(v) or v is None}
    n = int(res["n"])
    if within:
        rec["r_pooled"] = float(np.corrcoef(xv, yv)[0, 1])
        members = [str(m) for m, f in zip(sub.index, fams) if (fams == f).sum() >= 2]
    else:
        rec.update(design="pooled", n_families=None if fams is None else int(fams.nunique()), r_between=None,
                   n_eff=n)
        members = [str(m) for m in sub.index]
    lo_f, hi_f = stats.fisher_ci(res["r"], rec["n_eff"])
    rec.update(ci_fisher_low=lo_f, ci_fisher_high=hi_f, ci_method="percentile bootstrap"
               + (", family-stratified" if within else ""))
    descriptive_interval(rec, lo_f, hi_f, "Fisher z" + (f" at n_eff = {rec['n_eff']}" if within else ""))
    unit = _unit(table.loc[sub.index])
    rec.update(
        claim=claim, analysis=label or f"{population}: {x} vs {y} ({method}{', within family' if within else ''})",
        x=x, y=y, population=population, role=role, method=method, space=space, k=k, estimator=estimator,
        unit=unit, members=members,
        expected_sign=sign, paper_r=pr, excludes_zero=bool(stats.excludes(rec, 0.0)),
        excludes_paper_value=None if pr is None else bool(stats.excludes(rec, pr)),
        verdict=stats.label(rec, expected_sign=sign), p_holm=None, note=note,
    )
    rec.update(power_fields(rec["n_eff"], pr, sign))
    return rec


def power_fields(n, pr, sign):
    """A record's power fields at ``n`` units: at the paper's r ``pr`` and at r = −0.3 / −0.5 signed like the claim.

    None below :data:`MIN_N` units (and ``power`` None without a paper value).
    """

    alts = [a * -sign for a in paper.POWER_ALTERNATIVES]  # -0.3/-0.5 in the claim's direction
    power_alt = {f"{a:+.1f}": (None if n < MIN_N else float(power_at(n, a)["power"])) for a in alts}
    power = None if pr is None or n < MIN_N else float(power_at(n, pr)["power"])
    return dict(power=power, power_r=pr, power_at=power_alt)


def descriptive_interval(rec, low, high, method):
    """Below :data:`lidutils.stats.MIN_N_VERDICT` units a record shows the interval valid at its n.

    ``(low, high)`` (an analytic interval: Fisher z, Zou) replaces the bootstrap CI, which
    is kept as ``ci_boot_low`` / ``ci_boot_high``; ``ci_method`` says which one is shown.
    At or above that n the record is left as it is. Returns ``rec`` (changed in place).
    """
    if stats.too_few(rec):
        rec.update(ci_boot_low=rec["ci_low"], ci_boot_high=rec["ci_high"], ci_low=low, ci_high=high,
                   ci_method=method)
    return rec


def both_methods(study, claim, table, x, y, *, population, role="secondary", label=None, **kw):
    """Pearson (the paper's statistic; carries ``role``) and Spearman (secondary) records.

    ``label`` may hold ``{method}``, filled in per record.
    """
    out = []
    for method in ("pearson", "spearman"):
        rec = study.correlate(claim, table, x, y, population=population, method=method,
                              role=role if method == "pearson" else "secondary",
                              label=label.format(method=method) if label else None, **kw)
        if rec is not None:
            out.append(rec)
    return out


def holm_gate(rec, alpha=stats.ALPHA):
    """A record's label after multiplicity: "replicated" / "opposite" stand only when ``p_holm < alpha``.

    Otherwise the verdict becomes "inconclusive" and the note says why. Records without
    ``p_holm``, and "uninformative" / "descriptive" ones, are left as they are.
    """
    ph = rec.get("p_holm")
    # "not replicated": C4's label of a global measure that predicts (against C4), a label like the others
    if ph is not None and rec.get("verdict") in ("replicated", "opposite", "not replicated") and not float(ph) < alpha:
        was = rec["verdict"]
        rec["verdict"] = "inconclusive"
        rec["note"] = "; ".join(filter(None, [rec.get("note"), f"{was} by its CI and p, but Holm p = "
                                              f"{float(ph):.2g} >= {alpha}"]))
    return rec


def finalize(records, primary):
    """Mark the primary record(s) and Holm-adjust the secondaries' p-values (within one claim).

    ``primary`` is the label of the pre-declared primary analysis, or a list of labels
    when a claim has several pre-declared primaries (C5: capacity and data); several
    primaries are Holm-adjusted among themselves. Returns the records with the
    primaries first; every other record gets ``role="secondary"`` and ``p_holm``, and
    keeps a "replicated" / "opposite" label only when ``p_holm < 0.05``
    (:func:`holm_gate`). Records with ``role="manipulation check"``
    (:func:`degradation_records`) keep their role, come last and enter no Holm family.
    """
    records = [r for r in records if r is not None]
    labels = [r["analysis"] for r in records]
    if len(set(labels)) != len(labels):
        dup = sorted({lab for lab in labels if labels.count(lab) > 1})
        raise ValueError(f"analysis labels must be unique within a claim; repeated: {dup}.")
    prims = [primary] if isinstance(primary, str) or primary is None else list(primary)
    missing = [p for p in prims if p not in labels]
    if missing or not prims:
        raise ValueError(f"primary analysis {missing or primary!r} is not among the records {labels}.")
    heads = [records[labels.index(p)] for p in prims]
    checks = [r for r in records if r.get("role") == "manipulation check" and all(r is not h for h in heads)]
    rest = [r for r in records if all(r is not h for h in heads) and all(r is not c for c in checks)]
    holm_records(heads, role="primary", adjust_one=False)
    holm_records(rest, role="secondary")
    return heads + rest + checks


def holm_records(recs, role=None, adjust_one=True):
    """Holm-adjust the p of ``recs`` together, in place, then :func:`holm_gate` each.

    Every record gets ``p_holm`` (and ``role`` when given). A single record is adjusted
    on its own (``p_holm = p``) unless ``adjust_one=False`` (then ``p_holm`` is None: one
    primary analysis has nothing to be adjusted against). Returns ``recs``.
    """
    adj = stats.holm([r["p"] for r in recs]) if len(recs) > (0 if adjust_one else 1) else [None] * len(recs)
    for r, p in zip(recs, adj):
        if role is not None:
            r["role"] = role
        r["p_holm"] = None if p is None else float(p)
        holm_gate(r)
    return recs


def records_frame(records, raw=False):
    """Records as a compact table for a page (:func:`lidutils.book.report.readable`).

    r and its CI to two decimals, p in the usual form (``< 0.001`` at the permutation
    floor), n and K as integers, flags as yes/no, a dash for a missing value; the
    records themselves are not changed. ``raw=True`` returns the same columns unformatted
    (numbers, None) for computing.
    """
    cols = ["analysis", "method", "k", "n", "unit", "r", "ci_low", "ci_high", "p", "p_holm",
            "r_between", "n_families", "excludes_paper_value", "power", "verdict"]
    df = pd.DataFrame([r for r in records if r is not None])
    if raw or df.empty:
        return df[[c for c in cols if c in df]]
    return readable(df[[c for c in cols + ["n_perm"] if c in df]])


def unit_groups(table, rows, design=None):
    """Family labels of ``rows`` when the comparison is within family (as :func:`correlate` decides), else None."""
    fams = families_of(table, rows)
    within = within_design(fams) if design is None else design == "within"
    return fams.to_numpy() if within and fams is not None else None


def write(study, claim, records, primary, *, notebook, verdict=None, reason=None, extra=None, section=None):
    """Finalize (primary, Holm) and write ``<out_dir>/<claim>.json`` with every parameter.

    ``primary``: the primary analysis' label, or a list of labels (C5's two primaries;
    the file's ``primary`` is the first, ``extra["primaries"]`` lists them all).

    Without a primary record (too few units for the pre-declared analysis) nothing is
    written and ``None`` is returned; :func:`lidutils.book.report.glue_claim` then says so.
    """
    if primary is None or not any(r is not None for r in records):
        return None
    recs = finalize(records, primary)
    prims = [primary] if isinstance(primary, str) else list(primary)
    extra = dict(extra or {})
    if len(prims) > 1:
        extra["primaries"] = prims
    if getattr(study.pop, "brain_source", None):  # which brain data, read by which policy
        extra.setdefault("brain_data", study.pop.brain_source)
    return write_claim(claim, recs, out_dir=study.params.get("out_dir", "results"), primary=prims[0],
                       verdict=verdict, reason=reason, parameters=study.params, extra=extra,
                       notebook=notebook, section=section, tier=study.params.get("tier", "offline"))


def member_units(members):
    """Each member's unit of analysis: its design cell, or itself."""
    own = members.index.to_series()
    return members["design"].where(members["design"].notna(), own) if "design" in members else own
