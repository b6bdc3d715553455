"""Results files and the claims table of the book.

Every claim notebook ends by writing one ``results/<claim>.json`` through
:func:`write_claim` (via :func:`lidutils.book.claims.write`); the claims page reads them
back with :func:`read_claims` / :func:`claims_table`. The paper's numbers come from
:mod:`lidutils.book.paper` only; claims that go beyond the paper (C8, the intervention)
are declared in :data:`BEYOND_PAPER`.

A results file holds

- ``claim``, ``statement``, ``paper_value``, ``paper_r``, ``paper_setting``,
  ``notebook``, ``section``, ``beyond_paper``, ``tier``, ``dry_run``;
- ``analyses``: correlation records (:func:`lidutils.book.claims.correlate`), the primary
  first, each with r, CI, p (secondaries also Holm-adjusted ``p_holm``), n and its
  unit, ``excludes_zero``, ``excludes_paper_value``, power at the paper's value and at
  r = −0.3 / −0.5, and a ``verdict`` that agrees with its CI;
- ``primary``, ``verdict`` (one of :data:`lidutils.stats.VERDICTS`) and
  ``verdict_reason``;
- ``parameters``: every notebook parameter, so the number can be reproduced.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from lidutils.book import paper as _paper
from lidutils.cache import save_json
from lidutils.stats import format_corr, VERDICTS

#: Claims beyond the paper: id -> statement and notebook (no paper value).
BEYOND_PAPER = {
    "C8": dict(statement="Lowering local ID by a training penalty, at fixed architecture, data and "
                         "schedule, improves generalization: higher test accuracy at the same training "
                         "loss (an intervention; the paper's evidence is correlational).",
               notebook="06_intervention"),
    "C9": dict(statement="Lower local ID goes with higher test accuracy whichever factor — label noise, "
                         "training-data scale or capacity — varies, within a family (a factorial; the "
                         "paper's models differ in capacity and data together).",
               notebook="07_factorial"),
}
#: Every claim the book tests, in the claims table's order: the paper's, then those beyond it.
ALL_CLAIMS = tuple(_paper.PAPER) + tuple(BEYOND_PAPER)
#: Tiers of a results file; "paper-dryrun" results come from stand-in models and data.
TIERS = ("offline", "paper", "paper-dryrun")


def claim_fields(claim):
    """The fixed fields of a claim's results file (from :mod:`lidutils.book.paper` or :data:`BEYOND_PAPER`)."""
    if claim in BEYOND_PAPER:
        b = BEYOND_PAPER[claim]
        return dict(claim=claim, statement=b["statement"], paper_value="beyond the paper", paper_r=None,
                    paper_setting="", notebook=b["notebook"], beyond_paper=True)
    info = _paper.claim_info(claim)
    return dict(claim=info["claim"], statement=info["statement"], paper_value=info["paper_value"],
                paper_r=info["paper_r"], paper_setting=info["paper_setting"], notebook=info["notebook"],
                beyond_paper=False)


def write_claim(claim, analyses, *, out_dir="results", primary=None, verdict=None, reason=None,
                parameters=None, extra=None, notebook=None, section=None, tier="offline"):
    """Write ``<out_dir>/<claim>.json`` and return the written dict.

    ``analyses``: records (the primary one labelled ``primary``, default the first);
    ``verdict``: a claim-level verdict from a comparative rule (default: the primary
    record's), with its one-sentence ``reason``. A ``tier`` of ``"paper-dryrun"``
    marks every field as a dry run on stand-ins.
    """
    known = set(_paper.PAPER) | set(BEYOND_PAPER)
    if claim not in known:
        raise ValueError(f"unknown claim {claim!r}; known: {sorted(known)}.")
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {TIERS}, got {tier!r}.")
    if not analyses:
        raise ValueError(f"{claim}: no analyses to write.")
    labels = [a["analysis"] for a in analyses]
    if len(set(labels)) != len(labels):
        raise ValueError(f"{claim}: analysis labels must be unique, got {labels}.")
    primary = primary or labels[0]
    if primary not in labels:
        raise ValueError(f"{claim}: primary {primary!r} is not one of {labels}.")
    head = analyses[labels.index(primary)]
    verdict = verdict or head["verdict"]
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}.")
    out = claim_fields(claim)
    if notebook:
        out["notebook"] = notebook
    out.update(section=section or f"{claim.lower()}-result", tier=tier, dry_run=tier == "paper-dryrun",
               primary=primary, verdict=verdict,
               verdict_reason=reason or f"the primary analysis' verdict ({head['verdict']})",
               analyses=to_plain(analyses), parameters=to_plain(parameters or {}), extra=to_plain(extra or {}))
    save_json(Path(out_dir) / f"{claim}.json", out)
    return out


def claim_order(cid):
    """Sort key of claim ids: C1 < C2 < … < C10, then anything else alphabetically."""
    s = str(cid)
    return (0, int(s[1:]), s) if s[:1] == "C" and s[1:].isdigit() else (1, 0, s)


def read_claims(results_dirs="results"):
    """Read every ``C*.json`` of one or several results folders.

    Parameters
    ----------
    results_dirs : str, Path or list of them
        Folders holding ``<claim>.json`` files (e.g. the offline and the paper tier).

    Returns
    -------
    list of dict
        The claim dicts, sorted by claim id then tier. A folder that does not exist
        contributes nothing; a file that is not valid JSON raises ``ValueError``
        naming it.
    """
    dirs = [results_dirs] if isinstance(results_dirs, (str, Path)) else list(results_dirs)
    claims = []
    for d in dirs:
        for f in sorted(Path(d).glob("C*.json")):
            try:
                c = json.loads(f.read_text())
            except json.JSONDecodeError as exc:
                raise ValueError(f"{f.name} in {d} is not valid JSON ({exc}); re-run the notebook "
                                 "that writes it or delete the file.") from exc
            if not isinstance(c, dict) or "claim" not in c:
                raise ValueError(f"{f.name} in {d} has no 'claim' field: not a claim results file.")
            claims.append(c)
    return sorted(claims, key=lambda c: (claim_order(c["claim"]), str(c.get("tier") or "")))


def claims_table(results_dir="results", all_analyses=False):
    """The claims table: paper value next to the reproduced value, CI, p, n, verdict, power.

    One row per claim (its primary analysis), or per analysis when
    ``all_analyses=True``. Claims without a results file are listed as "not run".
    """
    found = {c["claim"]: c for c in read_claims(results_dir)}
    rows = []
    for cid in ALL_CLAIMS:
        c = found.get(cid)
        if c is None:
            rows.append(dict(claim=cid, statement=claim_fields(cid)["statement"],
                             paper=claim_fields(cid)["paper_value"], analysis="not run", verdict="not run"))
            continue
        recs = c["analyses"] if all_analyses else [
            next(a for a in c["analyses"] if a["analysis"] == c["primary"])]
        for a in recs:
            rows.append(dict(
                claim=cid, statement=c["statement"], paper=c["paper_value"], analysis=a["analysis"],
                population=a.get("population", ""), n=a["n"], unit=a.get("unit", ""), r=a["r"],
                ci=f"[{a['ci_low']:+.2f}, {a['ci_high']:+.2f}]", p=a["p"], p_holm=a.get("p_holm"),
                verdict=a["verdict"] if all_analyses else c["verdict"], power=a.get("power"),
            ))
    return pd.DataFrame(rows)


def describe(rec):
    """One printed line per analysis record: correlation, verdict, paper value and power."""
    pw = rec.get("power")
    pw = "n/a" if pw is None else f"{pw:.2f} at the paper's r = {rec['power_r']:+.2f}"
    ex = rec.get("excludes_paper_value")
    ex = "" if ex is None else ("; CI excludes the paper's value" if ex else "; CI includes the paper's value")
    holm = f", Holm p = {fmt_p(rec['p_holm'])}" if rec.get("p_holm") is not None else ""
    unit = f" {rec['unit']}" if rec.get("unit") else ""
    design = ""
    if rec.get("design") == "within family":
        rb = rec.get("r_between")
        design = (f", within {rec.get('n_families')} families (between-family r of the family means = "
                  f"{rb:+.2f}, n = {rec.get('n_between', rec.get('n_families'))} families)" if rb is not None
                  else f", within {rec.get('n_families')} families")
    ci = f", {rec['ci_method']} CI" if str(rec.get("ci_method", "")).startswith("Fisher") else ""
    return (f"{rec['analysis']}: {format_corr(rec)}{unit}{design}{ci}{holm} → {rec['verdict']}{ex} (power {pw})")


def to_plain(o):
    if isinstance(o, dict):
        return {str(k): to_plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [to_plain(v) for v in o]
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, Path):
        return str(o)
    return o


def glue_text(key, text):
    """Glue markdown ``text`` under ``key`` for ``{glue:md}`key``` in the notebook's narrative."""
    from IPython.display import Markdown
    from myst_nb import glue

    glue(key, Markdown(text), display=False)
    return text


def glue_claim(res, claim=None):
    """Glue ``<claim>_result``: the claim-level verdict, its reason and the primary analysis.

    ``res`` None (the claim could not be tested here): glues that sentence for ``claim``.
    """
    if res is None:
        return glue_text(f"{claim}_result", "not tested: the pre-declared primary analysis has fewer than "
                                            "4 units with both variables in this population.")
    head = next(a for a in res["analyses"] if a["analysis"] == res["primary"])
    prims = (res.get("extra") or {}).get("primaries") or [res["primary"]]
    heads = [a for lab in prims for a in res["analyses"] if a["analysis"] == lab] or [head]
    what = "primary analysis " if len(heads) == 1 else f"{len(heads)} pre-declared primaries: "
    text = (f"**{res['verdict']}** ({res.get('verdict_reason', '')}) — {what}"
            f"{'; '.join(describe(h) for h in heads)}; paper: {res['paper_value']}.")
    if res.get("dry_run"):
        text = "**DRY RUN on stand-ins — not a result.** " + text
    return glue_text(f"{res['claim']}_result", text)


# ----------------------------------------------------------------------------- tables for a reader
# What a page shows of a record: r and CIs to two decimals, p in the usual form, counts as
# integers, flags as words, a dash for a value that is not there. The records themselves
# (results/*.json) keep every digit; these functions only format copies for display.

#: Shown for a value that is not there (None, NaN).
MISSING = "—"
#: A reader's header for each record field :func:`readable` formats.
READABLE_NAMES = {
    "k": "K", "ci": "95 % CI", "p_holm": "Holm p", "r_between": "r of family means",
    "n_families": "families", "excludes_paper_value": "CI excludes paper's r",
    "power": "power at paper's r", "delta": "Δ|r| (local − global)", "delta_ci": "Δ|r| 95 % CI",
    "diff": "Δ|r|", "ci_zou_ci": "Zou 95 % CI",
    "p_selection_corrected": "p (corrected for the choice of K)",
}


def _missing(v):
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    try:
        return bool(isinstance(v, (float, np.floating)) and not math.isfinite(v))
    except TypeError:
        return False


def fmt_r(v, digits=2, sign=True):
    """A correlation (or any signed effect) to ``digits`` decimals with its sign: ``+0.75``, ``−0.07``
    (``sign=False``: no ``+``, e.g. a power ``0.87``)."""
    return MISSING if _missing(v) else f"{float(v):{'+' if sign else ''}.{digits}f}".replace("-", "−")


def fmt_ci(low, high, digits=2):
    """``[+0.49, +0.90]``; a dash when either bound is missing."""
    if _missing(low) or _missing(high):
        return MISSING
    return f"[{fmt_r(low, digits)}, {fmt_r(high, digits)}]"


def fmt_p(p, n_perm=None):
    """A p-value in the usual form: ``0.57``, ``0.003``, ``< 0.001``.

    With ``n_perm`` (a permutation test's number of permutations) a p at the test's floor
    :math:`1/(m+1)` is shown as that bound (``< 0.001``, or ``≤ 0.002`` for a coarser test).
    """
    if _missing(p):
        return MISSING
    p = float(p)
    floor = None if _missing(n_perm) or not n_perm else 1.0 / (float(n_perm) + 1.0)
    if floor is not None and p <= floor * (1 + 1e-9) and floor >= 0.001:
        return f"≤ {floor:.3f}"
    if p < 0.001:
        return "< 0.001"
    if p < 0.01:
        return f"{p:.3f}"
    return f"{p:.2f}"


def fmt_int(v):
    """A count as an integer (``24``, not ``24.0``)."""
    return MISSING if _missing(v) else str(int(round(float(v))))


def fmt_flag(v):
    """``yes`` / ``no`` / a dash."""
    return MISSING if _missing(v) else ("yes" if bool(v) else "no")


def fmt_num(v, digits=3):
    """Any other number: ``digits`` significant digits, integers as integers."""
    if _missing(v):
        return MISSING
    if isinstance(v, (bool, np.bool_)):
        return fmt_flag(v)
    if isinstance(v, (int, np.integer)) or (isinstance(v, (float, np.floating)) and float(v).is_integer()
                                            and abs(v) < 1e15):
        return str(int(v)).replace("-", "−")
    return f"{float(v):.{digits}g}".replace("-", "−")


def _kind(col):
    """How :func:`readable` formats a column, from its name."""
    c = str(col)
    if c in ("p", "p_holm", "p_selection_corrected") or c.startswith("p_") and "power" not in c:
        return "p"
    if c in ("k", "n", "df", "n_perm", "n_boot") or c.startswith("n_"):
        return "int"
    if c in ("r", "diff", "delta", "contrast", "slope") or c.startswith(("r_", "ci_", "delta_")) or c.endswith("_r"):
        return "r"
    if c.startswith(("excludes_", "is_", "as_expected", "predicts")):
        return "flag"
    if c in ("power",) or c.startswith("power"):
        return "power"
    return None


def _cell(v, kind, n_perm=None):
    """One value of a :func:`readable` table: text kept, a dash for missing, numbers by ``kind``."""
    if isinstance(v, str):
        return v
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_cell(w, None)}" for k, w in v.items())
    if isinstance(v, (list, tuple, np.ndarray)):
        return ", ".join(_cell(w, kind) for w in v)
    if _missing(v):
        return MISSING
    if not isinstance(v, (int, float, np.number, bool, np.bool_)):
        return str(v)
    if kind == "p":
        return fmt_p(v, n_perm)
    if kind == "int":
        return fmt_int(v)
    if kind == "r":
        return fmt_r(v)
    if kind == "flag":
        return fmt_flag(v)
    if kind == "power":
        return f"{float(v):.2f}"
    return fmt_num(v)


def readable(df, rename=True):
    """A copy of a records-like DataFrame formatted for a reader (strings, nothing numeric).

    r, its CI and other signed effects to two decimals (the CI merged into one ``95 % CI``
    column when ``ci_low``/``ci_high`` are both there), p in the usual form (with the
    permutation floor when an ``n_perm`` column says it), counts as integers, flags as
    ``yes``/``no``, power to two decimals, any other number to three significant digits,
    a dash where a value is missing. Text columns are kept. ``rename`` gives the fields
    the headers of :data:`READABLE_NAMES`.
    """
    if df is None or not len(df.columns):
        return df
    src = df.copy()
    out = pd.DataFrame(index=src.index)
    n_perm = src["n_perm"] if "n_perm" in src else None
    for col in src.columns:
        if col == "n_perm":
            continue
        stem = col[:-4] if isinstance(col, str) and col.endswith(("_low", "_high")) else None
        if isinstance(col, str) and col.endswith("_high") and f"{col[:-5]}_low" in src:
            continue
        if stem is not None and col.endswith("_low") and f"{stem}_high" in src:  # one interval column
            out["ci" if stem == "ci" else stem if stem.endswith("_ci") else f"{stem}_ci"] = [fmt_ci(lo, hi) for lo, hi in zip(src[col], src[f"{stem}_high"])]
            continue
        kind, vals = _kind(col), src[col]
        perms = n_perm if n_perm is not None and col == "p" else [None] * len(vals)
        out[col] = [_cell(v, kind, m) for v, m in zip(vals, perms)]
    if rename:
        out = out.rename(columns=READABLE_NAMES)
    return out


def best_k_frame(best):
    """:func:`lidutils.book.claims.k_curve`'s ``best`` (the K of largest |r|) as a one-row table for a page."""
    if not best:
        return pd.DataFrame({"best K": [MISSING]}, index=[""])
    row = {"target": best.get("target", MISSING), "best K": fmt_int(best.get("k")), "r": fmt_r(best.get("r")),
           READABLE_NAMES["p_selection_corrected"]: fmt_p(best.get("p_selection_corrected"))}
    return pd.DataFrame([row], index=["largest |r| over K"])


def facts_frame(facts, name="value"):
    """A (nested) dict of numbers as a two-column table for a page, instead of its repr.

    Nested keys are joined with " / "; numbers are formatted by :func:`fmt_num`
    (correlations, keys starting with ``r``, by :func:`fmt_r`).
    """
    rows = {}

    def walk(prefix, v):
        if isinstance(v, dict):
            for k, w in v.items():
                walk(f"{prefix} / {k}" if prefix else str(k), w)
        elif isinstance(v, (list, tuple)):
            rows[prefix] = ", ".join(fmt_num(w) if not isinstance(w, str) else w for w in v)
        elif isinstance(v, str):
            rows[prefix] = v
        else:
            parts = prefix.split(" / ")
            r_like = any(q.startswith(("r_", "mean_r")) or q == "r" for q in parts)
            rows[prefix] = fmt_r(v) if r_like and isinstance(v, float) else fmt_num(v)

    walk("", facts)
    return pd.DataFrame({name: list(rows.values())}, index=pd.Index(list(rows), name="quantity"))


def contrast_text(comp):
    """One line for a contrast of two dependent correlations (:func:`lidutils.stats.compare_dependent`)."""
    if not comp:
        return "not computed (one region only)"
    zou = (f", Zou CI {fmt_ci(comp['ci_zou_low'], comp['ci_zou_high'])}"
           if not _missing(comp.get("ci_zou_low")) else "")
    z = comp.get("z")
    steiger = f", Steiger z = {fmt_r(z)}, p = {fmt_p(comp.get('p'))}" if not _missing(z) else ""
    return (f"Δ = {fmt_r(comp.get('diff'))} {fmt_ci(comp.get('ci_low'), comp.get('ci_high'))} (bootstrap){zou}"
            f"{steiger}, n = {fmt_int(comp.get('n'))}" + (f" ({comp['design']})" if comp.get("design") else ""))
