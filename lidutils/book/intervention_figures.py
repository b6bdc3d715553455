"""Figures of the intervention chapter (C8).

The penalty's two checks, the paired dose-response, the matched-loss fits and the arm scatter.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from lidutils.book.plotting import BOOK_WIDTH, family_color


def penalty_check(batches, models, hue=None, k=10, k_full=50, n_pcs=300):
    """The two checks of the training penalty (:func:`lidutils.book.intervention.validate_penalty`).

    Left: per batch, the batch penalty (float32) against :func:`lidutils.lid_mle` on
    the same points; right: per network, the mean batch estimate against the full-set
    LID the chapter measures (``hue``: a Series of family labels indexed like ``models``).
    Returns the figure.
    """
    fig, ax = plt.subplots(1, 2, figsize=(BOOK_WIDTH, 3.4))
    ax[0].scatter(batches["same_points"], batches["batch"], s=6, color="0.3")
    ax[0].set(xlabel="lid_mle on the batch (float64)", ylabel="batch penalty (float32)", title="same points")
    fams = hue.reindex(models.index) if hue is not None else None
    for fam in (dict.fromkeys(fams) if fams is not None else [None]):
        m = models if fam is None else models[fams == fam]
        ax[1].scatter(m["full"], m["batch_mean"], s=18, label=fam,
                      color=family_color(fam) if fam is not None else "0.3")
    if fams is not None:
        ax[1].legend(fontsize="small")
    ax[1].set(xlabel=f"full-set LID (K={k_full}, PCA-{n_pcs})", ylabel=f"mean batch LID (k={k})",
              title="across networks")
    fig.tight_layout()
    return fig


def paired_dose_response(summary, metrics, labels=None, label_noise=0.0):
    """Mean paired difference (network − its unregularised twin) against the dose λ, with its t interval.

    ``summary``: :func:`lidutils.book.intervention.paired_summary` (rows: family,
    condition, label_noise, lam, metric, mean, ci_low, ci_high). One panel per
    metric; one line per family for the LID penalty (circles), the norm control at
    its matched λ as squares. The x axis is symmetric-log (both arms of the dose).
    Returns the figure, or None without rows.
    """
    s = summary[np.isclose(summary["label_noise"], label_noise)]
    if s.empty:
        return None
    metrics = list(metrics)
    fig, axes = plt.subplots(1, len(metrics), figsize=(BOOK_WIDTH, 3.3), squeeze=False)
    for ax, metric, lab in zip(axes[0], metrics, labels or metrics):
        for (fam, cond), g in s[s["metric"] == metric].groupby(["family", "condition"]):
            g = g.sort_values("lam")
            ax.errorbar(g["lam"], g["mean"], yerr=[g["mean"] - g["ci_low"], g["ci_high"] - g["mean"]],
                        marker="o" if cond == "lid" else "s", ls="-" if cond == "lid" else "none", ms=4,
                        capsize=2, color=family_color(fam), mfc="white" if cond == "norm" else None,
                        label=f"{fam}, {'LID penalty' if cond == 'lid' else 'norm control'}")
        ax.axhline(0, color="k", lw=0.8)
        ax.axvline(0, color="0.6", lw=0.6)
        ax.set_xscale("symlog", linthresh=1e-2)
        lams = sorted(set(s["lam"]) | {0.0})
        ax.set_xticks(lams, [f"{v:g}" for v in lams], rotation=90, fontsize="x-small")
        ax.minorticks_off()
        ax.set(xlabel="λ", title=lab)
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 4), frameon=False, fontsize="small")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def matched_fit(curves, table, label_noise=0.0):
    """What "test accuracy at matched training loss" compares, one panel per family.

    Lines: each unregularised twin's test accuracy against its training loss along
    training (``curves``: :func:`lidutils.book.intervention.twin_curves`); points: the
    LID-penalised networks' final (training loss, test accuracy), coloured by λ
    (diverging: blue λ < 0 raises LID, red λ > 0 lowers it). A point above its
    family's lines generalizes better than the twins did at the same fit.
    ``table``: one row per network (family, condition, lam, label_noise,
    train_loss, accuracy), indexed by name. Returns the figure.
    """
    t = table[np.isclose(table["label_noise"], label_noise)]
    fams = list(dict.fromkeys(t["family"]))
    fig, axes = plt.subplots(1, len(fams), figsize=(BOOK_WIDTH, 3.4), squeeze=False, sharey=True,
                             layout="constrained")
    pen = t[t["condition"] == "lid"]
    lim = float(np.abs(pen["lam"]).max()) if len(pen) else 1.0
    norm = plt.matplotlib.colors.SymLogNorm(linthresh=1e-2, vmin=-lim, vmax=lim)
    sc = None
    for ax, fam in zip(axes[0], fams):
        twins = t[(t["family"] == fam) & (t["condition"] == "none")].index
        for i, (name, c) in enumerate(curves[curves["name"].isin(twins)].groupby("name")):
            ax.plot(c["train_loss"], c["test_acc"], color="0.5", lw=1, marker=".", ms=4,
                    label="unregularised (along training)" if i == 0 else None)
        p = pen[pen["family"] == fam]
        sc = ax.scatter(p["train_loss"], p["accuracy"], c=p["lam"], cmap="RdBu_r", norm=norm, s=22,
                        edgecolor="k", linewidth=0.4, zorder=3)
        ax.set(xlabel="training loss", title=str(fam))
        ax.invert_xaxis()
    axes[0, 0].set_ylabel("test accuracy")
    axes[0, 0].legend(fontsize="x-small", loc="lower right")
    if sc is not None:
        fig.colorbar(sc, ax=axes[0].tolist(), label="λ", shrink=0.9)
    return fig


def arm_scatter(diffs, ys, labels=None):
    """ΔLID against paired differences, one panel per column of ``ys``.

    ``diffs``: :func:`lidutils.book.intervention.paired` (clean labels are shown). Colour:
    family; filled circles the λ > 0 arm (LID pushed down), open circles the λ < 0
    arm, crosses the norm control. Returns the figure.
    """
    d = diffs[diffs["label_noise"] == 0]
    ys = [y for y in ys if y in d]
    fig, axes = plt.subplots(1, len(ys), figsize=(BOOK_WIDTH, 3.3), squeeze=False)
    for ax, y, lab in zip(axes[0], ys, labels or ys):
        for fam, g in d.groupby("family"):
            col = family_color(fam)
            lo = g[(g["condition"] == "lid") & (g["lam"] > 0)]
            hi = g[(g["condition"] == "lid") & (g["lam"] < 0)]
            nm = g[g["condition"] == "norm"]
            ax.scatter(lo["d_lid"], lo[y], color=col, s=16, label=f"{fam}, λ > 0")
            ax.scatter(hi["d_lid"], hi[y], facecolor="white", edgecolor=col, s=16, label=f"{fam}, λ < 0")
            ax.scatter(nm["d_lid"], nm[y], color=col, marker="x", s=18, label=f"{fam}, norm control")
        ax.axhline(0, color="k", lw=0.8)
        ax.axvline(0, color="k", lw=0.8)
        ax.set(xlabel="ΔLID (penalised − twin)", title=lab)
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 3), frameon=False, fontsize="small")
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    return fig
