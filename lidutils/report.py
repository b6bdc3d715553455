"""Results files and the claims table of the book.

Every claim notebook ends by writing one ``results/<claim>.json`` through
:func:`write_claim`; the claims page of the book reads them back with
:func:`claims_table`. The paper's own numbers live in one place only,
:data:`PAPER_CLAIMS`; where this project could not check a per-claim value in the
paper it says so ("not stated here") instead of inventing one.

A results file holds

- ``claim``, ``statement``, ``paper_value``: from :data:`PAPER_CLAIMS`;
- ``analyses``: a list of correlation records (see :func:`analysis`), each with the
  reproduced ``r``, its 95 % bootstrap CI (``ci_low``, ``ci_high``), permutation
  ``p``, ``n``, the ``verdict`` computed by :func:`lidutils.stats.verdict` (never typed
  in), and ``power``: the probability that the same decision rule, at this ``n``,
  would have returned "replicated" had the true correlation been the paper's
  (``power_r``), from :func:`lidutils.power.power_at`;
- ``primary``: the label of the analysis the claims table shows first;
- ``verdict``: the claim-level verdict (the primary analysis' verdict, or the rule of
  :func:`c4_verdict` / :func:`c7_verdict` for the comparative claims);
- ``parameters``: the notebook's parameters, so the number can be reproduced.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from . import power as _power
from .cache import save_json

VERDICTS = ("replicated", "opposite", "inconclusive")

#: The effect size quoted for the paper's LID correlations (the range over its
#: claims C1-C3, as given in this project's brief). Used as the alternative
#: hypothesis of every power figure.
PAPER_R_RANGE = (-0.84, -0.92)
POWER_R = PAPER_R_RANGE[0]  # the weakest quoted effect: the power figure is conservative

_RANGE_TEXT = "−0.84 … −0.92 (quoted range)"

#: claim id -> statement, the paper's value, expected sign of the correlation, notebook.
PAPER_CLAIMS = {
    "C1": dict(
        statement="Lower local ID goes with stronger model–model alignment.",
        paper_value=_RANGE_TEXT, expected_sign=-1, notebook="02_model_model"),
    "C2": dict(
        statement="Lower local ID goes with stronger model–brain alignment.",
        paper_value=_RANGE_TEXT, expected_sign=-1, notebook="03_model_brain"),
    "C3": dict(
        statement="Lower local ID goes with better generalization (ImageNet top-1).",
        paper_value=_RANGE_TEXT, expected_sign=-1, notebook="01_generalization"),
    "C4": dict(
        statement="Global dimension (large K, participation ratio, …) does not predict "
                  "alignment or generalization; local ID (small K) does.",
        paper_value="not stated here", expected_sign=-1, notebook="05_local_vs_global"),
    "C5": dict(
        statement="More capacity and more training data lower local ID.",
        paper_value="not stated here", expected_sign=-1, notebook="04_scaling"),
    "C6": dict(
        statement="The LID–alignment relation holds within and across architecture families.",
        paper_value="not stated here", expected_sign=-1, notebook="02_model_model"),
    "C7": dict(
        statement="The LID–brain relation holds across subjects and visual areas, "
                  "strongest in higher (ventral) areas.",
        paper_value="not stated here", expected_sign=-1, notebook="03_model_brain"),
}


def _verdict(result, expected_sign):
    from .stats import verdict

    return verdict(result, expected_sign=expected_sign)


def power_at(n, r=POWER_R):
    """Power of the notebooks' decision rule at ``n`` models for true correlation ``r``.

    The ``power`` of :func:`lidutils.power.power_at` (cached there per ``(n, r)``);
    ``None`` when ``n < 4`` (no meaningful test).
    """
    if n is None or n < 4:
        return None
    return float(_power.power_at(int(n), float(r))["power"])


def analysis(label, result, *, x, y, population, expected_sign=-1, power_r=POWER_R, note=""):
    """One correlation record for a results file.

    Parameters
    ----------
    label : str
        Short unique name of the analysis, e.g. ``"zoo: LID(k=10) vs test accuracy"``.
    result : dict
        Output of :func:`lidutils.stats.corr` / ``partial_corr`` (``r``, ``ci_low``,
        ``ci_high``, ``p``, ``n``, ...).
    x, y : str
        Names of the two variables.
    population : str
        Which models entered (e.g. ``"zoo, final epoch"``).
    expected_sign : {-1, +1}
        The paper's direction; the verdict is
        ``lidutils.stats.verdict(result, expected_sign)``.
    power_r : float
        True correlation under which the power at this ``n`` is computed.
    """
    rec = {k: _plain(v) for k, v in result.items() if np.isscalar(v) or v is None}
    n = int(result["n"])
    rec.update(
        analysis=label, x=x, y=y, population=population, expected_sign=int(expected_sign),
        verdict=_verdict(result, expected_sign), power=power_at(n, expected_sign * abs(power_r)),
        power_r=float(expected_sign * abs(power_r)), note=note,
    )
    return rec


def c4_verdict(local, globals_):
    """Claim-level verdict of C4 from a local record and global-measure records.

    "replicated" when the local record is replicated and no global record is
    (each global correlation's CI covers 0 or has the other sign); "opposite" when a
    global measure is replicated while the local one is not; "inconclusive" otherwise.
    """
    g_rep = any(g["verdict"] == "replicated" for g in globals_)
    if local["verdict"] == "replicated" and not g_rep:
        return "replicated"
    if local["verdict"] != "replicated" and g_rep:
        return "opposite"
    return "inconclusive"


def c7_verdict(per_roi, order=("EVC", "IT")):
    """Claim-level verdict of C7 from per-ROI records (lower area first in ``order``).

    "replicated" when the higher area's record is replicated and its r is more
    negative than the lower area's; "opposite" when the higher area's record has
    verdict "opposite"; "inconclusive" otherwise (the ordering of two correlations
    measured on the same models is only descriptive here: no test of the difference).
    """
    lo, hi = per_roi[order[0]], per_roi[order[1]]
    if hi["verdict"] == "replicated" and hi["r"] < lo["r"]:
        return "replicated"
    if hi["verdict"] == "opposite":
        return "opposite"
    return "inconclusive"


def write_claim(claim, analyses, *, out_dir="results", primary=None, verdict=None,
                parameters=None, extra=None):
    """Write ``<out_dir>/<claim>.json`` and return the written dict.

    ``analyses`` is a list of :func:`analysis` records; ``primary`` the label of the
    headline analysis (default: the first); ``verdict`` a claim-level verdict from
    :func:`c4_verdict`/:func:`c7_verdict` (default: the primary analysis' verdict).
    """
    if claim not in PAPER_CLAIMS:
        raise ValueError(f"unknown claim {claim!r}; known: {sorted(PAPER_CLAIMS)}.")
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
    info = PAPER_CLAIMS[claim]
    out = dict(claim=claim, statement=info["statement"], paper_value=info["paper_value"],
               notebook=info["notebook"], primary=primary, verdict=verdict,
               analyses=analyses, parameters=_plain(parameters or {}), extra=_plain(extra or {}))
    path = Path(out_dir) / f"{claim}.json"
    save_json(path, out)
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
    for cid, info in PAPER_CLAIMS.items():
        c = found.get(cid)
        if c is None:
            rows.append(dict(claim=cid, statement=info["statement"], paper=info["paper_value"],
                             analysis="not run", verdict="not run"))
            continue
        recs = c["analyses"] if all_analyses else [
            next(a for a in c["analyses"] if a["analysis"] == c["primary"])]
        for a in recs:
            rows.append(dict(
                claim=cid, statement=c["statement"], paper=c["paper_value"],
                analysis=a["analysis"], population=a.get("population", ""),
                n=a["n"], r=a["r"], ci=f"[{a['ci_low']:+.2f}, {a['ci_high']:+.2f}]",
                p=a["p"], verdict=a["verdict"] if all_analyses else c["verdict"],
                power=a.get("power"),
            ))
    return pd.DataFrame(rows)


def format_corr(result, name="r"):
    """``"r = −0.41 [−0.62, −0.15], p = 0.003, n = 48"`` for a :func:`lidutils.stats.corr` dict."""
    return (f"{name} = {result['r']:+.2f} [{result['ci_low']:+.2f}, {result['ci_high']:+.2f}], "
            f"p = {_fmt_p(result['p'])}, n = {int(result['n'])}")


def describe(rec):
    """One printed line per analysis record: correlation, verdict and power."""
    pw = rec.get("power")
    pw = "n/a (n < 4)" if pw is None else f"{pw:.2f} for r = {rec['power_r']:+.2f}"
    return f"{rec['analysis']}: {format_corr(rec)} → {rec['verdict']} (power {pw})"


def records_frame(records):
    """Analysis records as a compact DataFrame for display."""
    cols = ["analysis", "population", "n", "r", "ci_low", "ci_high", "p", "verdict", "power"]
    return pd.DataFrame(records)[cols]


def _fmt_p(p):
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


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


def correlate_sets(table, x, y, sets, *, expected_sign=-1, min_n=4, corr_kw=None, label=None):
    """Correlate ``table[x]`` with ``table[y]`` inside each named subset of models.

    Parameters
    ----------
    table : DataFrame
        One row per model (index = member names).
    x, y : str
        Columns; rows with NaN in either are dropped (e.g. controls without accuracy).
    sets : dict[str, list]
        Subsets from :func:`lidutils.population.analysis_sets` (priority order).
    min_n : int
        Subsets with fewer usable models are skipped (listed in the returned ``skipped``).
    corr_kw : dict
        ``method``, ``n_boot``, ``n_perm``, ``seed`` for :func:`lidutils.stats.corr`.
    label : str, optional
        Format of the analysis label, default ``"{set}: {x} vs {y}"``.

    Returns
    -------
    records : list of :func:`analysis` dicts; skipped : dict {set: n}.
    """
    from .stats import corr

    corr_kw = dict(corr_kw or {})
    records, skipped = [], {}
    for name, members in sets.items():
        sub = table.loc[[m for m in members if m in table.index], [x, y]].astype(float).dropna()
        if len(sub) < min_n:
            skipped[name] = len(sub)
            continue
        res = corr(sub[x].to_numpy(), sub[y].to_numpy(), **corr_kw)
        lab = (label or "{set}: {x} vs {y}").format(set=name, x=x, y=y)
        records.append(analysis(lab, res, x=x, y=y, population=name, expected_sign=expected_sign))
    return records, skipped


def c6_verdict(per_family, min_n=5):
    """Claim-level verdict of C6 from per-family records.

    "replicated" when every family with at least ``min_n`` models is replicated (and
    there are at least two such families); "opposite" when at least one is opposite
    and none is replicated; "inconclusive" otherwise.
    """
    big = [r for r in per_family if r["n"] >= min_n]
    v = [r["verdict"] for r in big]
    if len(big) >= 2 and all(x == "replicated" for x in v):
        return "replicated"
    if "opposite" in v and "replicated" not in v:
        return "opposite"
    return "inconclusive"


def glue_text(key, text):
    """Glue markdown ``text`` under ``key`` for ``{glue:md}`key``` in the notebook's narrative."""
    from IPython.display import Markdown
    from myst_nb import glue

    glue(key, Markdown(text), display=False)
    return text


def glue_claim(res):
    """Glue ``<claim>_result``: the claim-level verdict and its primary analysis, as markdown."""
    head = next(a for a in res["analyses"] if a["analysis"] == res["primary"])
    text = f"**{res['verdict']}** — primary analysis {describe(head)}; paper: {res['paper_value']}."
    return glue_text(f"{res['claim']}_result", text)
