"""Seaborn figures shared by the claim notebooks.

Each function takes plain DataFrames (and, where a correlation is shown, the
:func:`lidutils.stats.corr` dict, whose r, 95 % CI, p and n go into the title) and
returns the matplotlib ``Axes`` or ``FacetGrid``. Nothing here computes a statistic.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from lidutils.stats import format_corr
from lidutils.surface import to_fsaverage5

sns.set_theme(context="notebook", style="whitegrid")


def scatter_fit(df, x, y, hue=None, result=None, ax=None, logx=False, title=None,
                style=None, ci=95, label_points=None):
    """Scatter of ``y`` against ``x`` with a least-squares line and its bootstrap band.

    Parameters
    ----------
    df : DataFrame
    x, y : str
        Columns.
    hue, style : str, optional
        Columns for colour / marker (e.g. family, regime).
    result : dict, optional
        The correlation shown (its text goes into the title).
    logx : bool
        Log-scale x axis (e.g. parameter counts).
    label_points : str, optional
        Column whose values annotate each point (small populations only).
    """
    ax = ax or plt.subplots(figsize=(BOOK_WIDTH * 0.75, 4.2))[1]
    xs = np.log10(df[x]) if logx else df[x]
    d = df.assign(_x=xs)
    sns.regplot(data=d, x="_x", y=y, scatter=False, ci=ci, ax=ax, color="0.3",
                line_kws=dict(lw=1.2))
    pal = family_palette(d[hue]) if hue == "family" else None  # one colour per family in every figure
    sns.scatterplot(data=d, x="_x", y=y, hue=hue, style=style, ax=ax, s=45, alpha=0.85, palette=pal)
    if label_points:
        for _, row in d.iterrows():
            ax.annotate(str(row[label_points]), (row["_x"], row[y]), fontsize="x-small",
                        xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(f"log10 {x}" if logx else x)
    ax.set_ylabel(y)
    t = title or ""
    if result is not None:
        t = (t + "\n" if t else "") + format_corr(result)
    ax.set_title(t, fontsize="medium")
    if hue or style:
        ax.legend(fontsize="x-small", loc="best", frameon=True)
    return ax


def r_vs_k(df, x="k", y="r", hue="target", global_df=None, ax=None, title=None, mark_k=None):
    """Correlation of each target with mean LID as a function of the neighbourhood size K.

    ``df`` has one row per (target, k) with ``r``, ``ci_low``, ``ci_high``; the CI is
    drawn as a band; ``mark_k`` draws the primary K, a ``glob`` column shades K >= N/4.
    ``global_df`` (optional) has one row per (target, measure) with
    ``r``/``ci_low``/``ci_high`` of the global measures, drawn as points with error
    bars at the right of the axis.
    """
    ax = ax or plt.subplots(figsize=(7, 4.2))[1]
    palette = dict(zip(df[hue].unique(), sns.color_palette(n_colors=df[hue].nunique())))
    for name, g in df.groupby(hue, sort=False):
        g = g.sort_values(x)
        ax.plot(g[x], g[y], marker="o", color=palette[name], label=f"LID vs {name}")
        ax.fill_between(g[x], g["ci_low"], g["ci_high"], color=palette[name], alpha=0.15)
    ax.set_xscale("log")
    ax.axhline(0, color="k", lw=0.8)
    if mark_k is not None:
        ax.axvline(mark_k, color="0.3", ls=":", lw=1.2, label=f"primary K = {mark_k}")
    if "glob" in df and df["glob"].any():
        ax.axvspan(df.loc[df["glob"], x].min(), df[x].max() * 1.15, color="0.9", zorder=0,
                   label="global (K ≥ N/4)")
    ax.set_xlabel("K (neighbours)")
    ax.set_ylabel("correlation with mean LID (95 % CI)")
    if global_df is not None and len(global_df):
        ax2 = ax.inset_axes([1.04, 0, 0.45, 1])
        measures = list(global_df["measure"].unique())
        for j, (name, g) in enumerate(global_df.groupby(hue, sort=False)):
            pos = [measures.index(m) + 0.12 * (j - 1) for m in g["measure"]]
            ax2.errorbar(pos, g[y], yerr=[g[y] - g["ci_low"], g["ci_high"] - g[y]], fmt="s",
                         color=palette.get(name, "0.3"), ms=4, capsize=2)
        ax2.set_xticks(range(len(measures)))
        ax2.set_xticklabels(measures, rotation=60, ha="right", fontsize="x-small")
        ax2.set_ylim(ax.get_ylim())
        ax2.axhline(0, color="k", lw=0.8)
        ax2.set_title("global measures", fontsize="small")
        ax2.tick_params(labelleft=False)
    ax.legend(fontsize="x-small", loc="best")
    ax.set_title(title or "", fontsize="medium")
    return ax


def alignment_heatmap(mat, ax=None, title=None, annot=None, cmap="viridis"):
    """Heatmap of a model × model alignment matrix (DataFrame, rows/cols = models)."""
    n = len(mat)
    ax = ax or plt.subplots(figsize=(min(1.0 + 0.35 * n, 12), min(0.8 + 0.3 * n, 10)))[1]
    sns.heatmap(mat, ax=ax, cmap=cmap, square=True, annot=(n <= 10) if annot is None else annot,
                fmt=".2f", cbar_kws=dict(shrink=0.7), xticklabels=True, yticklabels=True)
    ax.tick_params(labelsize=6 if n > 15 else 8)
    ax.set_title(title or "", fontsize="medium")
    return ax


def brain_bars(df, x="score", y="model", hue="roi", ceiling=None, baseline=None, ax=None,
                 title=None):
    """Horizontal bars of model–brain scores per ROI, with noise ceiling and pixel baseline.

    ``df`` has one row per (model, roi[, subject]) with a ``score`` column (bars show the
    mean and 95 % CI over subjects when several rows share model and roi).
    ``ceiling``: {roi: (lower, upper)}; ``baseline``: {roi: score of the raw-pixel RDM}.
    """
    n = df[y].nunique()
    ax = ax or plt.subplots(figsize=(6.5, 1.2 + 0.32 * n * max(1, df[hue].nunique() / 2)))[1]
    rois = list(df[hue].unique())
    pal = dict(zip(rois, sns.color_palette(n_colors=len(rois))))
    sns.barplot(data=df, x=x, y=y, hue=hue, ax=ax, errorbar=("ci", 95), palette=pal)
    for roi in rois:
        if ceiling and roi in ceiling:
            lo, hi = ceiling[roi]
            ax.axvspan(lo, hi, color=pal[roi], alpha=0.15, label=f"noise ceiling {roi}")
        if baseline and roi in baseline:
            ax.axvline(baseline[roi], color=pal[roi], ls="--", lw=1.2, label=f"pixels {roi}")
    ax.legend(fontsize="x-small", loc="lower right")
    ax.set_title(title or "", fontsize="medium")
    return ax


def facet_scatter(df, x, y, col, hue=None, results=None, logx=False, col_wrap=3, height=3.0):
    """One :func:`scatter_fit`-style panel per value of ``col`` (e.g. per family or subject).

    ``results``: {col value: corr dict} shown in each panel's title.
    """
    d = df.assign(_x=np.log10(df[x]) if logx else df[x])
    g = sns.FacetGrid(d, col=col, col_wrap=col_wrap, height=height, sharex=False, sharey=False)
    g.map_dataframe(sns.regplot, x="_x", y=y, scatter=False, color="0.3", line_kws=dict(lw=1))
    g.map_dataframe(sns.scatterplot, x="_x", y=y, hue=hue, s=30,
                    palette=family_palette(df[hue]) if hue == "family" else None)
    for key, ax in g.axes_dict.items():
        t = f"{col} = {key}"
        if results and key in results:
            t += "\n" + format_corr(results[key])
        ax.set_title(t, fontsize="small")
        ax.set_xlabel(f"log10 {x}" if logx else x)
    return g


def record_panels(table, records, hue=None, style=None, logx=False, max_panels=4, ncols=2,
                  label_points=None):
    """One :func:`scatter_fit` panel per analysis record (the units it correlated).

    Each record (:func:`lidutils.book.claims.correlate`) names its ``x``, ``y`` and the
    ``members`` (units) that entered; ``table`` is the unit table they come from, or a
    dict {population: table} when columns depend on the population.
    """
    tables = table if isinstance(table, dict) else None
    recs = [r for r in records if r is not None][:max_panels]
    if not recs:
        return None
    nrows = int(np.ceil(len(recs) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(min(BOOK_WIDTH, 5.6 * ncols), 4.3 * nrows), squeeze=False)
    for ax, rec in zip(axes.flat, recs):
        t = tables[rec["population"]] if tables is not None else table
        sub = t.loc[[m for m in rec.get("members", t.index) if m in t.index]].dropna(subset=[rec["x"], rec["y"]])
        h = hue if hue in sub and sub[hue].nunique() > 1 else None
        s = style if style in sub and sub[style].nunique() > 1 else None
        scatter_fit(sub, rec["x"], rec["y"], hue=h, style=s, result=rec, ax=ax, logx=logx,
                    title=f"{rec['population']} — {rec['verdict']}", label_points=label_points)
    for ax in list(axes.flat)[len(recs):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------- book-wide style
#: One colour per model family, the same in every figure of the book (Okabe–Ito and
#: Tableau hues, colour-blind safe for the first eight). Keys are lower case; look a
#: name up with :func:`family_color`, build a seaborn ``palette=`` with
#: :func:`family_palette`.
FAMILY_COLORS = {
    # model zoo (Animal-MNIST)
    "mlp": "#0072B2", "cnn": "#E69F00", "resnet": "#009E73", "mixer": "#CC79A7",
    # offline ImageNet CNNs
    "efficientnet": "#D55E00", "mobilenet": "#56B4E9",
    # the paper's families
    "convnext": "#8C564B", "resmlp": "#F0E442", "vit": "#7F3C8D", "mae-vit": "#7F3C8D",
    "deit": "#9467BD", "swin": "#17BECF", "regnet": "#BCBD22",
    # controls
    "random": "#7F7F7F", "control": "#7F7F7F", "pixels": "#000000",
}
_FAMILY_ALIASES = {"mae": "mae-vit", "random-init": "random", "untrained": "random",
                   "offline": "efficientnet"}
#: Verdict colours of the claims page and any figure that shows a verdict.
VERDICT_COLORS = {
    "replicated": "#009E73", "not replicated": "#E69F00", "opposite": "#D55E00",
    "inconclusive": "#8C8C8C", "uninformative": "#56B4E9", "descriptive": "#CC79A7", "not run": "#D9D9D9",
}
_EXTRA = ["#1F77B4", "#FF7F0E", "#2CA02C", "#D62728", "#9467BD", "#8C564B", "#E377C2", "#BCBD22"]


def family_color(name):
    """The colour of a model family (or of a model name containing a family name).

    ``"MLP"``, ``"mlp"`` and ``"zoo:mlp-w128-d2"`` all map to ``FAMILY_COLORS["mlp"]``;
    the longest matching family name wins (``"resmlp"`` before ``"mlp"``). An unknown
    name gets a fixed colour chosen from its text (stable across figures and runs).
    """
    s = str(name).lower()
    if s in FAMILY_COLORS:
        return FAMILY_COLORS[s]
    if s in _FAMILY_ALIASES:
        return FAMILY_COLORS[_FAMILY_ALIASES[s]]
    hits = [f for f in FAMILY_COLORS if f in s] + [a for a in _FAMILY_ALIASES if a in s]
    if hits:
        best = max(hits, key=len)
        return FAMILY_COLORS.get(best) or FAMILY_COLORS[_FAMILY_ALIASES[best]]
    return _EXTRA[sum(s.encode()) % len(_EXTRA)]


def family_palette(names):
    """``{name: colour}`` for seaborn's ``palette=`` from family names (any iterable).

    Example: ``sns.scatterplot(..., hue="family", palette=family_palette(df["family"]))``.
    """
    return {n: family_color(n) for n in dict.fromkeys(names)}


#: Figure width that fills the book's content column at 100 dpi (about 720 px).
BOOK_WIDTH = 7.2


def book_style(font_scale=1.0):
    """Set the matplotlib/seaborn style of every figure in the book (call once per notebook).

    Figures default to :data:`BOOK_WIDTH` × 4.2 inches at 100 dpi (they fill the
    content column of the rendered page without being scaled down), fonts at 11 pt
    (titles 11.5, ticks and legends 10) times ``font_scale`` and the
    :data:`FAMILY_COLORS` hues as the colour cycle. Returns the dict of rc values set.
    """
    from cycler import cycler

    fs = 11 * font_scale
    rc = {
        "figure.figsize": (BOOK_WIDTH, 4.2), "figure.dpi": 100, "savefig.dpi": 100,
        "font.size": fs, "axes.titlesize": fs * 1.05, "axes.labelsize": fs,
        "xtick.labelsize": fs * 0.9, "ytick.labelsize": fs * 0.9,
        "legend.fontsize": fs * 0.9, "legend.title_fontsize": fs * 0.9,
        "figure.titlesize": fs * 1.1,
        "axes.prop_cycle": cycler(color=list(dict.fromkeys(FAMILY_COLORS.values()))[:10]),
    }
    sns.set_theme(context="notebook", style="whitegrid", rc=rc)
    return rc


def surface_maps(maps, fsaverage_index, title=None, cmap="RdBu_r", vmax=None, symmetric=True,
                 view="posterior", label="held-out R²"):
    """Per-vertex values on nilearn's packaged fsaverage5 surface, one panel per hemisphere.

    Parameters
    ----------
    maps : dict {hemi: array (n_challenge_vertices,)}
        Values per challenge-space vertex of ``"lh"`` / ``"rh"`` (NaN = no value),
        e.g. ``PaperRun.vertex_r2[subject][model]``.
    fsaverage_index : dict {hemi: array}
        fsaverage vertex of each value (vertices >= 10 242 are not on fsaverage5 and
        are not drawn; :func:`lidutils.surface.to_fsaverage5`).
    title : str, optional
    cmap : str
    vmax : float, optional
        Colour limit (default: the 99th percentile of the absolute values drawn, so a
        few extreme vertices do not wash out the map).
    symmetric : bool
        Colour scale symmetric around 0 (R², correlations).
    view : str
        nilearn view ("posterior", "lateral", "ventral", ...).
    label : str
        Colour-bar meaning, added to each panel's title.

    Returns
    -------
    matplotlib Figure
    """
    from nilearn import datasets, plotting


    fs = datasets.fetch_surf_fsaverage("fsaverage5")  # packaged with nilearn: no download
    hemis = [h for h in ("lh", "rh") if h in maps]
    if not hemis:
        raise ValueError(f"maps must hold 'lh' and/or 'rh' arrays, got keys {list(maps)}.")
    tex = {h: to_fsaverage5(maps[h], fsaverage_index[h]) for h in hemis}
    finite = np.concatenate([t[np.isfinite(t)] for t in tex.values()])
    if finite.size == 0:
        raise ValueError("no vertex with a value lies on fsaverage5 (fsaverage index < 10 242): nothing to draw.")
    vmax = float(vmax if vmax is not None else np.percentile(np.abs(finite), 99) or 1.0)
    fig, axes = plt.subplots(1, len(hemis), subplot_kw={"projection": "3d"},
                             figsize=(BOOK_WIDTH, 3.6))
    axes = np.atleast_1d(axes)
    for ax, h in zip(axes, hemis):
        side = "left" if h == "lh" else "right"
        data = np.where(np.isfinite(tex[h]), tex[h], 0.0)
        plotting.plot_surf_stat_map(
            fs[f"infl_{side}"], data, bg_map=fs[f"sulc_{side}"], hemi=side, view=view, cmap=cmap,
            colorbar=True, threshold=1e-12, vmax=vmax, vmin=-vmax if symmetric else None,
            symmetric_cbar=symmetric, axes=ax, figure=fig,
            title=f"{h} ({int(np.isfinite(tex[h]).sum())} vertices)")
    fig.suptitle(f"{title}: {label}" if title else label)
    return fig


def dose_response(table, x, ys, hue="family", logx=False, titles=None, ncols=None):
    """One panel per measure in ``ys`` against a controlled factor ``x`` (a dose–response series).

    ``table`` has one row per design cell (seed replicates averaged, with
    ``<y>_sd`` across seeds where there are replicates): points are cell means, error
    bars the across-seed standard deviation, one line per ``hue`` (family colours).
    Returns the figure, or None (nothing drawn) for an empty table.
    """
    if table is None or len(table) == 0:
        return None
    ys = list(ys)
    ncols = ncols or min(len(ys), 3)
    nrows = int(np.ceil(len(ys) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(BOOK_WIDTH, 2.9 * nrows), squeeze=False)
    groups = table.groupby(hue, sort=True) if hue in table else [("all", table)]
    for ax, y, title in zip(axes.flat, ys, titles or ys):
        for name, g in groups:
            g = g.sort_values(x)
            xs = np.log10(g[x].astype(float)) if logx else g[x].astype(float)
            err = g[f"{y}_sd"] if f"{y}_sd" in g else None
            color = family_color(name) if hue == "family" else None
            ax.errorbar(xs, g[y].astype(float), yerr=err, marker="o", ms=4, capsize=2, color=color,
                        label=str(name))
        ax.set_xlabel(f"log10 {x}" if logx else x)
        ax.set_title(title)
    for ax in list(axes.flat)[len(ys):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize="small")
    fig.tight_layout()
    return fig


def robustness_heatmap(grid, primary=None, title=None):
    """Heatmap of r per (estimator, K) x (space, method), primary cell outlined (paper App. G).

    ``grid``: :func:`lidutils.book.claims.robustness_grid` rows (``space``, ``estimator``,
    ``k``, ``method``, ``r``); ``primary``: dict with those keys of the cell to outline.
    """
    piv = grid.pivot_table(index=["estimator", "k"], columns=["space", "method"], values="r")
    fig, ax = plt.subplots(figsize=(BOOK_WIDTH, 0.9 + 0.28 * len(piv)))
    sns.heatmap(piv, ax=ax, cmap="RdBu_r", vmin=-1, vmax=1, center=0, annot=True, fmt=".2f",
                annot_kws=dict(fontsize="x-small"), cbar_kws=dict(label="r", shrink=0.6))
    if primary is not None:
        rows, cols = list(piv.index), list(piv.columns)
        key_r, key_c = (primary["estimator"], primary["k"]), (primary["space"], primary["method"])
        if key_r in rows and key_c in cols:
            ax.add_patch(plt.Rectangle((cols.index(key_c), rows.index(key_r)), 1, 1, fill=False,
                                       edgecolor="k", lw=2.5))
    ax.set_ylabel("estimator, K")
    ax.set_xlabel("space, correlation")
    ax.set_title(title or "")
    fig.tight_layout()
    return ax


def per_subject(records, ax=None, title="per-subject r (95 % CI)"):
    """Per-subject correlation records (``subject``, ``roi``, ``r``, CI) as points with error bars.

    Works for any number of regions (one is fine) and subjects; regions are offset
    side by side and coloured by :data:`VERDICT_COLORS`-independent region colours.
    """
    import pandas as pd

    ax = ax or plt.subplots(figsize=(BOOK_WIDTH, 3.4))[1]
    df = pd.DataFrame(records)
    if df.empty:
        ax.set_title("no per-subject records")
        return ax
    rois = list(dict.fromkeys(df["roi"]))
    width = 0.6 / max(1, len(rois))
    subjects = sorted(df["subject"].unique())
    pos = {s: i for i, s in enumerate(subjects)}
    for j, (roi, g) in enumerate(df.groupby("roi", sort=False)):
        x = np.array([pos[s] for s in g["subject"]]) + (j - (len(rois) - 1) / 2) * width
        ax.errorbar(x, g["r"], yerr=[g["r"] - g["ci_low"], g["ci_high"] - g["r"]], fmt="o", ms=4,
                    capsize=2, color=sns.color_palette(n_colors=len(rois))[j], label=str(roi))
    ax.set_xticks(range(len(subjects)))
    ax.set_xticklabels([str(s) for s in subjects])
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("subject")
    ax.set_ylabel("r")
    ax.legend(fontsize="small")
    ax.set_title(title)
    return ax


def training_curves(df, x, y, hue="family", units="model", ax=None, title=None):
    """One line per network (``units``) of ``y`` against ``x`` (e.g. LID over epochs), coloured by ``hue``.

    Returns the Axes, or None (nothing drawn) for an empty table.
    """
    if df is None or len(df) == 0:
        return None
    ax = ax or plt.subplots(figsize=(BOOK_WIDTH, 3.6))[1]
    sns.lineplot(data=df, x=x, y=y, units=units, estimator=None, hue=hue, alpha=0.5, ax=ax,
                 palette=family_palette(df[hue]) if hue in df else None)
    ax.set_title(title or f"{y} over {x}, one line per network")
    return ax


def power_curves(table, ax=None):
    """Power of the decision rule against the number of units, one line per true r (r = 0: false positives)."""
    ax = ax or plt.subplots(figsize=(BOOK_WIDTH, 3.8))[1]
    sns.lineplot(data=table, x="n_models", y="power", hue="r_true", marker="o", palette="viridis", ax=ax)
    ax.axhline(0.8, ls="--", color="grey", lw=0.8)
    ax.axhline(0.025, ls=":", color="red", lw=0.8)
    ax.set_xscale("log", base=2)
    ticks = sorted(table["n_models"].unique())
    ax.set_xticks(ticks, [str(n) for n in ticks])
    ax.set_xlabel("number of units")
    ax.set_ylabel('P(verdict = "replicated")')
    ax.set_title("Power of the claim decision rule (r = 0: false-positive rate)")
    return ax


def factor_paths(table, measures, factors, y="accuracy", strata=None):
    """Dimension against accuracy along each factor of a factorial design: one line per stratum.

    One row of panels per factor, one column per dimension measure. A line joins the
    units of one stratum (one family at fixed levels of the other factors) in the
    order of the factor's level; its open end marks the lowest level and the filled
    arrow head the highest, so the direction in which a factor moves dimension and
    accuracy can be read off (lines falling to the right: lower dimension, higher
    accuracy). Colours: families (:func:`family_color`).

    Parameters
    ----------
    table : DataFrame
        One row per unit with ``family``, the measure columns, ``y`` and the factor levels.
    measures : dict
        Column -> readable label (panel columns).
    factors : dict
        Level column -> readable factor name (panel rows).
    strata : callable, optional
        ``strata(table, level_column)`` -> stratum label per unit; default: family and
        every other factor's level.

    Returns
    -------
    matplotlib Figure
    """
    cols, rows = list(measures), list(factors)
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(BOOK_WIDTH, 2.35 * len(rows) + 0.4), squeeze=False,
                             sharey=True)
    for i, level in enumerate(rows):
        others = [c for c in rows if c != level]
        lab = strata(table, level) if strata is not None else \
            table["family"].astype(str) + "|" + table[others].astype(str).agg("|".join, axis=1)
        for j, col in enumerate(cols):
            ax = axes[i, j]
            for _, g in table.assign(_s=lab).groupby("_s"):
                g = g.sort_values(level)
                c = family_color(g["family"].iloc[0])
                ax.plot(g[col], g[y], "-", color=c, lw=1, alpha=0.8)
                ax.plot(g[col].iloc[0], g[y].iloc[0], "o", mfc="white", mec=c, ms=4)
                if len(g) > 1:
                    ax.annotate("", xy=(g[col].iloc[-1], g[y].iloc[-1]), xytext=(g[col].iloc[-2], g[y].iloc[-2]),
                                arrowprops=dict(arrowstyle="-|>", color=c, lw=1))
            if i == len(rows) - 1:
                ax.set_xlabel(measures[col], fontsize="small")
            if j == 0:
                ax.set_ylabel(f"{factors[level]} ↑\n{y}", fontsize="small")
    fams = sorted(table["family"].astype(str).unique())
    handles = [plt.Line2D([], [], color=family_color(f), label=f) for f in fams]
    fig.legend(handles=handles, loc="lower center", ncol=len(fams), frameon=False, fontsize="small")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def slope_forest(table, measure_labels=None, factor_order=None):
    """Within-stratum r (95 % CI) of each dimension measure with accuracy, per factor: one panel per measure.

    ``table``: :func:`lidutils.book.factorial.slope_table` (``measure``, ``factor``, ``r``,
    ``ci_low``, ``ci_high``, ``verdict``, ``expected_sign``). Points are coloured by
    the record's label (:data:`VERDICT_COLORS`); the shaded half of each panel is the
    sign its literature predicts ("lower is better": r < 0).

    Returns
    -------
    matplotlib Figure
    """
    ms = list(dict.fromkeys(table["measure"]))
    fo = factor_order or list(dict.fromkeys(table["factor"]))
    fig, axes = plt.subplots(1, len(ms), figsize=(BOOK_WIDTH, 0.45 * len(fo) + 1.6), sharey=True, squeeze=False)
    used = []
    for ax, m in zip(axes[0], ms):
        g = table[table["measure"] == m].set_index("factor").reindex(fo)
        sign = g["expected_sign"].dropna().iloc[0] if g["expected_sign"].notna().any() else -1
        ax.axvspan(-1.05 if sign < 0 else 0, 0 if sign < 0 else 1.05, color="0.93", zorder=0)
        for yi, (f, row) in enumerate(g.iterrows()):
            if not np.isfinite(row["r"]):
                continue
            c = VERDICT_COLORS.get(row["verdict"], VERDICT_COLORS["not run"])
            used.append(row["verdict"])
            ax.errorbar(row["r"], yi, xerr=[[row["r"] - row["ci_low"]], [row["ci_high"] - row["r"]]], fmt="o",
                        color=c, ecolor=c, capsize=3, ms=6)
        ax.axvline(0, color="0.3", lw=1)
        ax.set_xlim(-1.05, 1.05)
        ax.set_title((measure_labels or {}).get(m, m), fontsize="small")
        ax.set_xlabel("within-stratum r")
        ax.grid(axis="y", visible=False)
    axes[0, 0].set_yticks(range(len(fo)), fo)
    axes[0, 0].invert_yaxis()
    handles = [plt.Line2D([], [], marker="o", ls="", color=VERDICT_COLORS.get(v, VERDICT_COLORS["not run"]),
                          label=v) for v in dict.fromkeys(used)]
    from matplotlib.patches import Patch

    handles.append(Patch(color="0.93", label="the literature's sign"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize="small")
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return fig
