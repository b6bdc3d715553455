"""Results files and the claims table of the book.

Every claim notebook ends by writing one ``results/<claim>.json`` through
:func:`write_claim` (via :func:`lidutils.claims.write`); the claims page reads them
back with :func:`load_claims` / :func:`claims_table`. The paper's numbers come from
:mod:`lidutils.paper` only; claims that go beyond the paper (C8, the intervention)
are declared in :data:`BEYOND_PAPER`.

A results file holds

- ``claim``, ``statement``, ``paper_value``, ``paper_r``, ``paper_setting``,
  ``notebook``, ``section``, ``beyond_paper``, ``tier``, ``dry_run``;
- ``analyses``: correlation records (:func:`lidutils.claims.correlate`), the primary
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

from . import paper as _paper
from .cache import save_json
from .stats import VERDICTS, format_corr

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
    """The fixed fields of a claim's results file (from :mod:`lidutils.paper` or :data:`BEYOND_PAPER`)."""
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
               analyses=_plain(analyses), parameters=_plain(parameters or {}), extra=_plain(extra or {}))
    save_json(Path(out_dir) / f"{claim}.json", out)
    return out


def load_claims(results_dir="results"):
    """Read every ``C*.json`` results file of ``results_dir`` into a list of dicts."""
    files = sorted(Path(results_dir).glob("C*.json"))
    return [json.loads(f.read_text()) for f in files]


def claims_table(results_dir="results", all_analyses=False):
    """The claims table: paper value next to the reproduced value, CI, p, n, verdict, power.

    One row per claim (its primary analysis), or per analysis when
    ``all_analyses=True``. Claims without a results file are listed as "not run".
    """
    found = {c["claim"]: c for c in load_claims(results_dir)}
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
    holm = f", Holm p = {rec['p_holm']:.2g}" if rec.get("p_holm") is not None else ""
    unit = f" {rec['unit']}" if rec.get("unit") else ""
    design = ""
    if rec.get("design") == "within family":
        rb = rec.get("r_between")
        design = (f", within {rec.get('n_families')} families (between-family r of the family means = "
                  f"{rb:+.2f}, n = {rec.get('n_between', rec.get('n_families'))} families)" if rb is not None
                  else f", within {rec.get('n_families')} families")
    ci = f", {rec['ci_method']} CI" if str(rec.get("ci_method", "")).startswith("Fisher") else ""
    return (f"{rec['analysis']}: {format_corr(rec)}{unit}{design}{ci}{holm} → {rec['verdict']}{ex} (power {pw})")


def _plain(o):
    if isinstance(o, dict):
        return {str(k): _plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_plain(v) for v in o]
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
