"""The book's "claims at a glance" page: forest plot, compact table, downloads.

Reads the ``results/<claim>.json`` files written by the claim notebooks (their
fields: :func:`lidutils.book.report.write_claim` and :func:`lidutils.book.records.correlate`)
and turns them into

- :func:`records_table`: one row per analysis record, claim fields merged in;
- :func:`forest_plot`: per claim, the primary analysis' r with its 95 % CI (one row
  per population / tier), the paper's r beside it, coloured by verdict, annotated with
  n and the power at the paper's value;
- :func:`claims_html` / :func:`analyses_html`: a compact table that fits the book's
  content column (primary analyses) and every analysis in a collapsed, scrollable
  section, each row linking to the chapter section that produced it;
- :func:`write_downloads`: a JSON bundle of the claim files and a CSV of every record.

Older results files (without ``section``, ``paper_r``, ``tier``, ``role``, …) are read
too: a missing field becomes ``None`` and the page shows "—" or leaves the element out.
Nothing here computes a statistic; every number is read from the results files.
"""
from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np
import pandas as pd

from lidutils.book.plotting import VERDICT_COLORS
from lidutils.book.report import claim_order, fmt_p, fmt_r, read_claims  # noqa: F401  (read_claims: CP.read_claims)
from lidutils.cache import atomic_path, save_json

#: Claim-level fields copied onto every record row (absent -> None).
CLAIM_FIELDS = ("claim", "statement", "notebook", "section", "paper_value", "paper_r",
                "paper_setting", "beyond_paper", "tier", "dry_run", "primary", "verdict",
                "verdict_reason")
#: Record fields kept in the table and the CSV, in this order (absent -> None).
RECORD_FIELDS = ("analysis", "role", "population", "x", "y", "space", "k", "estimator",
                 "method", "r", "ci_low", "ci_high", "p", "p_holm", "n", "unit", "paper_r",
                 "excludes_zero", "excludes_paper_value", "power", "power_r", "verdict",
                 "reason", "note", "statistic", "measure", "design", "n_families", "r_between", "ci_method")
#: A record whose ``statistic`` is one of these holds a contrast, not a correlation, in
#: ``r`` (C4: :func:`lidutils.book.claims.contrast_record`): the page names it.
CONTRASTS = {"abs_r_difference": "Δ|r| local − global"}


def _is_primary(claim, rec):
    """A record is primary when its ``role`` says so (new schema) or, in files without
    roles, when its label is the claim's ``primary``."""
    recs = claim.get("analyses") or []
    if any("role" in r for r in recs):
        return rec.get("role") == "primary"
    return rec.get("analysis") == claim.get("primary")


def _num(v):
    """Float or NaN (None, strings and non-finite values become NaN)."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def records_table(claims):
    """One row per analysis record, with the claim's fields alongside.

    Parameters
    ----------
    claims : list of dict
        From :func:`read_claims`.

    Returns
    -------
    DataFrame
        Columns: the claim fields (``claim_verdict`` for the claim-level verdict;
        ``claim_paper_r`` for the claim's paper value), ``is_primary``, then
        :data:`RECORD_FIELDS`. ``paper_r`` is the record's own value, else the claim's.
        A claim without analyses gives one row with ``analysis`` None.
    """
    rows = []
    for c in claims:
        base = {f: c.get(f) for f in CLAIM_FIELDS}
        base["claim_verdict"] = base.pop("verdict")
        base["claim_paper_r"] = base.pop("paper_r")
        base["beyond_paper"] = bool(base["beyond_paper"])
        base["dry_run"] = bool(base["dry_run"])
        recs = c.get("analyses") or [{}]
        for rec in recs:
            row = dict(base, is_primary=bool(rec) and _is_primary(c, rec))
            row.update({f: rec.get(f) for f in RECORD_FIELDS})
            if row["paper_r"] is None:
                row["paper_r"] = base["claim_paper_r"]
            rows.append(row)
    cols = list(CLAIM_FIELDS)
    cols[cols.index("verdict")] = "claim_verdict"
    cols[cols.index("paper_r")] = "claim_paper_r"
    cols += ["is_primary"] + list(RECORD_FIELDS)
    df = pd.DataFrame(rows, columns=cols)
    for f in ("r", "ci_low", "ci_high", "p", "p_holm", "power", "power_r", "paper_r", "claim_paper_r"):
        df[f] = pd.Series([_num(v) for v in df[f]], index=df.index, dtype=float)
    for f in ("is_primary", "beyond_paper", "dry_run"):
        df[f] = df[f].astype(bool)
    return df


def _contrast(row):
    """The contrast a row's ``r`` holds (C4's row: |r_local| − |r_global| vs the named global measure), or None."""
    name = CONTRASTS.get(row.get("statistic")) if isinstance(row.get("statistic"), str) else None
    if name and isinstance(row.get("measure"), str) and row["measure"]:
        name += f" ({row['measure']})"
    return name


def _row_label(row):
    """Forest-plot row label: claim, population, and the tier when it is not the offline one."""
    lab = f"{row['claim']}{' †' if row['beyond_paper'] else ''}"
    if _contrast(row):
        lab += " Δ|r|"
    if isinstance(row.get("population"), str) and row["population"]:
        lab += f" · {row['population']}"
    tier = row.get("tier")
    if isinstance(tier, str) and tier and tier != "offline":
        lab += f" [{tier}]"
    if row.get("dry_run"):
        lab += " (dry run)"
    return lab


def _annotation(row):
    n = row.get("n")
    n = "n = —" if n is None or (isinstance(n, float) and math.isnan(n)) else f"n = {int(n)}"
    pw = row.get("power")
    if isinstance(pw, float) and not math.isnan(pw):
        return f"{n}, power {pw:.2f}"
    return n


def forest_plot(records, ax=None, max_label=44):
    """Forest plot of the primary analyses: r with 95 % CI beside the paper's r.

    One row per primary record (a claim with several populations or tiers has several
    rows), top to bottom in claim order. The point and its CI bar are coloured by the
    record's verdict (:data:`lidutils.book.plotting.VERDICT_COLORS`); the paper's r, where
    the results give one (``paper_r``), is an open black diamond; the right margin
    carries n and the power at the paper's value. Claims beyond the paper (C8) are
    marked with † and set apart by a dashed line; dry-run rows are drawn hollow.

    Parameters
    ----------
    records : DataFrame
        From :func:`records_table` (rows with ``is_primary`` are drawn).
    ax : matplotlib Axes, optional
    max_label : int
        Longer row labels are cut with an ellipsis.

    Returns
    -------
    matplotlib Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    df = records.loc[records["is_primary"]].copy()
    df = df.assign(_o=[claim_order(c) for c in df["claim"]]).sort_values(["beyond_paper", "_o"],
                                                                          kind="stable")
    n = max(len(df), 1)
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.0, 0.42 * n + 1.4))  # the content column at 100 dpi
    fig = ax.figure
    ys = np.arange(n)[::-1]
    used = []
    for y, (_, row) in zip(ys, df.iterrows()):
        v = row["verdict"] if isinstance(row["verdict"], str) else row["claim_verdict"]
        col = VERDICT_COLORS.get(v, VERDICT_COLORS["not run"])
        used.append(v)
        if not math.isnan(row["r"]):
            lo = row["r"] - row["ci_low"] if not math.isnan(row["ci_low"]) else 0
            hi = row["ci_high"] - row["r"] if not math.isnan(row["ci_high"]) else 0
            ax.errorbar(row["r"], y, xerr=[[lo], [hi]], fmt="o", ms=7, color=col, ecolor=col,
                        elinewidth=2.2, capsize=3, mfc="white" if row["dry_run"] else col, zorder=3)
        if not math.isnan(row["paper_r"]):
            ax.plot(row["paper_r"], y, marker="D", ms=7, mfc="none", mec="black", mew=1.4, zorder=4)
        ax.text(1.02, y, _annotation(row), transform=ax.get_yaxis_transform(), va="center",
                fontsize="small", clip_on=False)
    labels = [_row_label(r) for _, r in df.iterrows()]
    labels = [lab if len(lab) <= max_label else lab[:max_label - 1] + "…" for lab in labels]
    ax.set_yticks(ys, labels)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlim(-1.05, 1.05)
    ax.axvline(0, color="0.35", lw=1)
    if df["beyond_paper"].any() and not df["beyond_paper"].all():
        ax.axhline(ys[int((~df["beyond_paper"]).sum()) - 1] - 0.5, color="0.5", ls="--", lw=1)
    ax.set_xlabel("r (95 % CI) of the primary analysis")
    ax.grid(axis="y", visible=False)
    handles = [Line2D([], [], marker="o", ls="", color=VERDICT_COLORS.get(v, VERDICT_COLORS["not run"]),
                      label=v) for v in dict.fromkeys(used) if isinstance(v, str)]
    if df["paper_r"].notna().any():
        handles.append(Line2D([], [], marker="D", ls="", mfc="none", mec="black", label="paper's r"))
    if df["beyond_paper"].any():
        handles.append(Line2D([], [], ls="", label="† beyond the paper"))
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), frameon=False,
                   fontsize="small")
    if len(df) == 0:
        ax.text(0, 0, "no results files found", ha="center", va="center")
    ax.set_xticks([-1, -0.5, 0, 0.5, 1])
    legend_h = (0.1 + 0.22 * math.ceil(len(handles) / 4)) / fig.get_figheight() if handles else 0
    fig.tight_layout(rect=(0, legend_h, 1, 1))  # makes room for the labels and the n / power notes
    return fig


def chapter_link(notebook, section=None, base="../"):
    """Relative address of a chapter section from the claims page (``book/claims.html``).

    ``notebook`` is a notebook name (``"01_generalization"``), optionally with its folder
    or suffix; ``section`` a MyST label / heading anchor. None when ``notebook`` is empty.
    """
    if not isinstance(notebook, str) or not notebook:
        return None
    nb = notebook[:-6] if notebook.endswith(".ipynb") else notebook
    if "/" not in nb:
        nb = f"notebooks/{nb}"
    href = f"{base}{nb}.html"
    if isinstance(section, str) and section:
        href += f"#{section}"
    return href


def _describe(row):
    """Tooltip text of a record: what was correlated with what, where, how."""
    bits = [str(row["analysis"])]
    xy = " vs ".join(str(row[k]) for k in ("x", "y") if isinstance(row[k], str))
    if xy:
        bits.append(xy)
    how = ", ".join(f"{k} {row[k]}" for k in ("method", "estimator", "space", "k")
                    if row[k] is not None and not (isinstance(row[k], float) and math.isnan(row[k])))
    if how:
        bits.append(how)
    if isinstance(row.get("unit"), str):
        bits.append(f"unit: {row['unit']}")
    if row.get("design") == "within family":
        rb = row.get("r_between")
        bits.append(f"within {row.get('n_families')} families (family means removed)"
                    + (f"; between-family r of the {row.get('n_families')} family means = {rb:+.2f}"
                       if isinstance(rb, float) and not math.isnan(rb) else ""))
    if isinstance(row.get("ci_method"), str) and row["ci_method"].startswith("Fisher"):
        bits.append(f"{row['ci_method']} interval: too few units for a verdict")
    if isinstance(row.get("verdict_reason"), str) and row["verdict_reason"]:
        bits.append(row["verdict_reason"])
    return " — ".join(bits)


def _ci_text(row):
    if math.isnan(row["r"]):
        return "—"
    text = f"{fmt_r(row['r'])} [{fmt_r(row['ci_low'])}, {fmt_r(row['ci_high'])}]"
    con = _contrast(row)
    return f"{html.escape(con)}: {text}" if con else text


def _paper_text(row):
    if not math.isnan(row["paper_r"]):
        return fmt_r(row["paper_r"])
    return row["paper_value"] if isinstance(row["paper_value"], str) and row["paper_value"] else "—"


def _badge(verdict):
    v = verdict if isinstance(verdict, str) else "not run"
    col = VERDICT_COLORS.get(v, VERDICT_COLORS["not run"])
    return (f'<span class="lid-verdict" style="border-left:0.6em solid {col};'
            f'padding-left:0.35em">{html.escape(v)}</span>')


_CSS = """<style>
table.lid-claims {width:100%; table-layout:fixed; border-collapse:collapse; font-size:0.9em}
table.lid-claims th, table.lid-claims td {padding:0.25em 0.4em; vertical-align:top;
  overflow-wrap:anywhere; word-break:normal; text-align:left; border-bottom:1px solid #ddd}
table.lid-claims td.num, table.lid-claims th.num {text-align:right; font-variant-numeric:tabular-nums}
div.lid-scroll {overflow-x:auto; max-width:100%}
div.lid-scroll table.lid-claims {table-layout:auto; min-width:100%}
table.lid-claims abbr {text-decoration:underline dotted; cursor:help}
</style>"""


def claims_html(records, link_base="../", expected=()):
    """Compact HTML table of the primary analyses that fits the book's content column.

    Columns: claim (linked to the chapter section; † for claims beyond the paper),
    paper value, r [95 % CI], n, verdict (the row's; below it, on a claim's first row, the
    claim-level verdict when the claim has several primaries or a rule of its own). The analysis description (label, variables,
    method, estimator, space, K, unit, the verdict's reason) is the row's tooltip
    (``title``); the claim statement is the claim cell's tooltip. Fixed table layout
    with wrapping cells: the table is never wider than its column.

    Parameters
    ----------
    records : DataFrame
        From :func:`records_table`; rows with ``is_primary`` are listed, and a claim
        whose file has no primary record gets one row with its claim-level verdict.
    link_base : str
        Prefix from the page to the book root (``"../"`` for ``book/claims.html``).
    expected : iterable of str
        Claim ids that should have a results file; those without one are listed as
        "not run".

    Returns
    -------
    str
        HTML (a ``<style>`` block and the ``<table>``).
    """
    out = [_CSS, '<table class="lid-claims"><colgroup><col style="width:16%"><col style="width:20%">'
           '<col style="width:28%"><col style="width:9%"><col style="width:27%"></colgroup>',
           '<thead><tr><th>claim</th><th>paper</th><th>this book: r [95 % CI]</th>'
           '<th class="num">n</th><th>verdict</th></tr></thead><tbody>']
    prim = records.loc[records["is_primary"]]
    missing = records.loc[~records["claim"].isin(prim["claim"])].drop_duplicates("claim")
    rows = pd.concat([prim, missing]) if len(missing) else prim
    rows = rows.assign(_o=[claim_order(c) for c in rows["claim"]]).sort_values(
        ["beyond_paper", "_o"], kind="stable")
    n_rows = rows["claim"].value_counts()
    shown_claim = set()
    for _, row in rows.iterrows():
        link = chapter_link(row["notebook"], row["section"], link_base)
        name = html.escape(str(row["claim"]) + (" †" if row["beyond_paper"] else ""))
        stmt = html.escape(str(row["statement"] or ""), quote=True)
        claim = f'<a href="{html.escape(link)}" title="{stmt}">{name}</a>' if link else \
            f'<span title="{stmt}">{name}</span>'
        if isinstance(row["tier"], str) and row["tier"] not in ("", "offline"):
            claim += f'<br><small>{html.escape(row["tier"])}</small>'
        if isinstance(row["population"], str) and row["population"]:
            claim += f'<br><small>{html.escape(row["population"])}</small>'
        n = "—" if row["n"] is None or (isinstance(row["n"], float) and math.isnan(row["n"])) else int(row["n"])
        desc = html.escape(_describe(row) if row["analysis"] is not None else "no analysis recorded",
                           quote=True)
        verdict = row["verdict"] if row["is_primary"] and isinstance(row["verdict"], str) \
            else row["claim_verdict"]
        if row["dry_run"]:
            verdict = f"{verdict} (dry run)"
        cell = _badge(verdict)
        # the claim's own verdict (its rule over several primaries, or C4's rule) where it is not this row's
        cv = row["claim_verdict"]
        if isinstance(cv, str) and row["claim"] not in shown_claim and (n_rows[row["claim"]] > 1 or cv != row["verdict"]):
            cell += f'<br><small>claim: </small>{_badge(cv + (" (dry run)" if row["dry_run"] else ""))}'
        shown_claim.add(row["claim"])
        out.append(f'<tr title="{desc}"><td>{claim}</td><td>{html.escape(_paper_text(row))}</td>'
                   f'<td><abbr title="{desc}">{_ci_text(row)}</abbr></td><td class="num">{n}</td>'
                   f'<td>{cell}</td></tr>')
    for cid in sorted(set(expected) - set(records["claim"]), key=claim_order):
        out.append(f'<tr><td>{html.escape(cid)}</td><td>—</td><td>—</td><td class="num">—</td>'
                   f'<td>{_badge("not run")}</td></tr>')
    out.append("</tbody></table>")
    if records["beyond_paper"].any():
        out.append("<p><small>† beyond the paper: an analysis this book adds; the paper "
                   "reports no value for it.</small></p>")
    return "\n".join(out)


def analyses_html(records, link_base="../", summary=None):
    """Every analysis record in a collapsed ``<details>`` section with a scrollable table.

    Columns: claim (linked), analysis (tooltip: description), population, n,
    r [95 % CI], p, Holm p (when any record has one), power at the paper's value, verdict.
    """
    df = records.loc[records["analysis"].notna()]
    df = df.assign(_o=[claim_order(c) for c in df["claim"]]).sort_values(
        ["beyond_paper", "_o"], kind="stable")
    holm = df["p_holm"].notna().any()
    head = ["claim", "analysis", "population", "n", "r [95 % CI]", "p"] + (["Holm p"] if holm else []) + \
        ["power", "verdict"]
    num = {"n", "p", "Holm p", "power"}
    out = [_CSS, f"<details><summary>{html.escape(summary or f'Every analysis ({len(df)} records)')}"
           "</summary>", '<div class="lid-scroll"><table class="lid-claims"><thead><tr>'
           + "".join(f'<th{" class=num" if h in num else ""}>{h}</th>' for h in head)
           + "</tr></thead><tbody>"]
    for _, row in df.iterrows():
        link = chapter_link(row["notebook"], row["section"], link_base)
        claim = html.escape(str(row["claim"]) + (" †" if row["beyond_paper"] else ""))
        claim = f'<a href="{html.escape(link)}">{claim}</a>' if link else claim
        label = html.escape(str(row["analysis"])) + (" <small>(primary)</small>" if row["is_primary"] else "")
        n = "—" if row["n"] is None or (isinstance(row["n"], float) and math.isnan(row["n"])) else int(row["n"])
        cells = [claim, f'<span title="{html.escape(_describe(row), quote=True)}">{label}</span>',
                 html.escape(str(row["population"] or "")), f"{n}", _ci_text(row),
                 html.escape(fmt_p(row["p"]))] + ([html.escape(fmt_p(row["p_holm"]))] if holm else []) + \
            [fmt_r(row["power"], sign=False), _badge(row["verdict"])]
        tds = "".join(f'<td{" class=num" if h in num else ""}>{c}</td>' for h, c in zip(head, cells))
        out.append(f"<tr>{tds}</tr>")
    out.append("</tbody></table></div></details>")
    return "\n".join(out)


def write_downloads(claims, out_dir, stem="lid_results"):
    """Write ``<stem>.json`` (every claim file, as read) and ``<stem>_analyses.csv``.

    The CSV has one row per analysis record (:func:`records_table`, list-valued fields
    left out). Both are written atomically. Returns ``{"json": path, "csv": path}``.
    """

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pj, pc = out_dir / f"{stem}.json", out_dir / f"{stem}_analyses.csv"
    save_json(pj, {"claims": claims})
    with atomic_path(pc) as tmp:
        records_table(claims).to_csv(tmp, index=False)
    return {"json": pj, "csv": pc}
