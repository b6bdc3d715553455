"""When does lower dimension mean better? The factorial analysis (claim C9, beyond the paper).

The paper correlates local intrinsic dimension (LID) with quality across models that
differ in capacity and training data *together*; this book's controlled zoo finds the
opposite sign when data vary, and the paper's sign when label noise varies. This
module asks the question directly on one factorial grid
(:data:`lidutils.book.zoo.FACTORIAL`: label noise 0 / 0.2 / 0.4 / 0.6 x data scale x
capacity, in every family): **does the sign of "dimension vs test accuracy" depend on
which factor varies?** — for three dimension measures side by side
(:func:`measures`):

- local LID (Levina–Bickel MLE, K = 50, PCA-300; the paper: lower is better);
- TwoNN of the last hidden layer (Ansuini et al. 2019: lower is better);
- participation ratio / effective dimensionality (Elmoznino & Bonner: higher is
  better — for the encoding of visual cortex; carried here to accuracy).

The pre-declared analysis (:func:`factor_slopes`)
------------------------------------------------
Unit: a design cell (seed replicates averaged, :func:`lidutils.book.measures.cell_means`).
For a factor :math:`f`, a **stratum** is one family at one level of each *other*
factor (:func:`strata`): inside a stratum only :math:`f` varies. With
:math:`\\tilde v = v - \\bar v_{stratum}` (stratum fixed effects, which contain the
family fixed effects), the within-stratum slope and correlation of accuracy
:math:`y` on dimension :math:`x` are

.. math:: \\beta_f = \\frac{\\sum \\tilde x \\tilde y}{\\sum \\tilde x^2}, \\qquad
          r_f = \\frac{\\sum \\tilde x \\tilde y}{\\sqrt{\\sum \\tilde x^2 \\sum \\tilde y^2}}

(:func:`within_slope`; :math:`\\beta_f` is the OLS slope of
``accuracy ~ stratum + dimension``; :math:`r_f`, its standardised form, is the
record's r). 95 % CI: percentile bootstrap that resamples whole strata with
replacement **within each family** (stratified by family); p: two-sided permutation
of accuracy within strata. A record's label follows :func:`lidutils.stats.label`
(CI and permutation p agree, at least :data:`lidutils.stats.MIN_N_VERDICT` effective
units :math:`n - G + 1`, G strata). The three LID slopes are the primaries (Holm
across the three, ``p_holm_primary``); the TwoNN and participation-ratio slopes and
the family-fixed-effects-only correlations over all cells are secondaries (Holm).
The claim's verdict is :func:`c9_verdict`.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from lidutils import stats as S
from lidutils.book import measures as M, zoo as Z
from lidutils.book.records import power_fields
from lidutils.book.report import to_plain, write_claim

#: The factors of the grid: name -> (unit-table column of its level, readable name,
#: expected sign of its effect on test accuracy: the manipulation check).
FACTORS = {
    "label_noise": ("label_noise", "label noise", -1),
    "data": ("data_level", "training data", +1),
    "capacity": ("capacity_level", "capacity", +1),
}
#: Book zoo grids -> the factorial grid of :mod:`lidutils.book.zoo` that goes with them.
GRIDS = {"controlled": "factorial", "controlled-fmnist": "factorial", "factorial": "factorial",
         "smoke": "factorial-smoke", "controlled-smoke": "factorial-smoke", "factorial-smoke": "factorial-smoke"}
CLAIM = "C9"
NOTEBOOK = "07_factorial"
Y = "accuracy"


def measures(k=50):
    """The three dimension measures: name -> column, label (``short``: for axes), expected sign, source.

    ``expected_sign`` is the sign of "dimension vs quality" each literature reports
    (-1: lower is better).
    """
    return {
        "lid": dict(column=M.lid_col(k), label=f"local LID (MLE, K={k}, PCA-300)", short=f"local LID (K={k})",
                    expected_sign=-1,
                    source="Yu et al. 2026 (the paper): lower local LID, better generalization"),
        "twonn": dict(column="twonn", label="TwoNN ID (last hidden layer)", short="TwoNN ID",
                      expected_sign=-1,
                      source="Ansuini et al. 2019: lower last-layer ID, higher test accuracy"),
        "pr": dict(column="participation_ratio", label="participation ratio (effective dim.)",
                   short="participation ratio", expected_sign=+1,
                   source="Elmoznino & Bonner: higher effective dimensionality, better visual-cortex "
                          "encoding (carried here to test accuracy)"),
    }


# ----------------------------------------------------------------------------- networks
def grid_name(zoo_grid):
    """The factorial grid for a book ``zoo_grid`` (``"controlled"`` -> ``"factorial"``)."""
    if zoo_grid not in GRIDS:
        raise ValueError(f"no factorial grid for zoo_grid={zoo_grid!r}; use one of {sorted(GRIDS)}.")
    return GRIDS[zoo_grid]


def train(zoo_grid="controlled", cache_dir="data/cache", device="auto", num_workers=2, progress=False):
    """Train (or load) the factorial grid; one row per network at its final epoch.

    Networks go to ``cache_dir/zoo`` (cells shared with the controlled zoo are found
    there, not retrained). Index: ``"<grid>:<name>"``; columns of
    :func:`lidutils.book.zoo.train_zoo` plus ``family`` and ``accuracy`` (held-out test
    accuracy on the clean test labels).
    """
    grid = grid_name(zoo_grid)
    t = Z.train_zoo(grid=grid, cache_dir=Path(cache_dir) / "zoo", device=device, progress=progress,
                    num_workers=num_workers)
    t = t[t["final"]].copy()
    t.index = pd.Index([f"{grid}:{n}" for n in t["name"]], name="member")
    t["family"] = t["arch"]
    t["accuracy"] = t["test_acc"]
    t["log10_params"] = np.log10(t["n_params"].astype(float))
    t["log10_n_train"] = np.log10(t["n_train"].astype(float))
    return t


def measure(nets, k=50, n_pcs=300, seed=0, device="auto", cache_dir=None):
    """Dimension of every network's embedding of the evaluation images, as the claim chapters measure it.

    :func:`lidutils.book.measures.lid_table` (MLE at ``k`` and TwoNN, from one neighbour
    search) and :func:`lidutils.book.measures.global_table` (participation ratio, effective
    rank, PCA-n90, alpha), both in the PCA-300 space. Returns ``nets`` with those columns.
    """
    reps = {m: np.asarray(Z.load_embeddings(row, which="eval"), dtype=np.float32) for m, row in nets.iterrows()}
    lid = M.lid_table(reps, [k], space="pca300", n_pcs=n_pcs, seed=seed, device=device, cache_dir=cache_dir)
    glob = M.global_table(reps, space="pca300", n_pcs=n_pcs, seed=seed, device=device, cache_dir=cache_dir)
    return nets.join(lid).join(glob)


def units(table):
    """Design cells: seed replicates averaged (:func:`lidutils.book.measures.cell_means`)."""
    return M.cell_means(table, cell="design")


# ----------------------------------------------------------------------------- the analysis
def strata(table, factor):
    """Stratum of each unit for ``factor``: its family and the levels of the *other* factors.

    Inside a stratum only ``factor`` varies. E.g. for ``"label_noise"``:
    ``"mlp|data_level=0|capacity_level=1"``.
    """
    if factor not in FACTORS:
        raise ValueError(f"unknown factor {factor!r}; choose one of {list(FACTORS)}.")
    others = [FACTORS[f][0] for f in FACTORS if f != factor]
    missing = [c for c in ["family"] + others if c not in table]
    if missing:
        raise ValueError(f"the unit table lacks {missing}; pass the table of units() of a factorial grid.")
    lab = table["family"].astype(str)
    for c in others:
        lab = lab + f"|{c}=" + table[c].astype(str)
    return lab.rename("stratum")


def _sums(x, y, inv, G):
    """Per-stratum sums of the centred cross-products: (Sxy, Sxx, Syy), each (G,)."""
    cnt = np.bincount(inv, minlength=G)
    xc = x - (np.bincount(inv, weights=x, minlength=G) / cnt)[inv]
    yc = y - (np.bincount(inv, weights=y, minlength=G) / cnt)[inv]
    return (np.bincount(inv, weights=xc * yc, minlength=G), np.bincount(inv, weights=xc * xc, minlength=G),
            np.bincount(inv, weights=yc * yc, minlength=G), xc, yc)


def within_slope(x, y, strata, families, n_boot=2000, n_perm=10000, seed=0, ci=0.95):
    r"""Within-stratum slope and correlation of ``y`` on ``x``, family-stratified bootstrap, within-stratum permutation.

    With :math:`\tilde v = v - \bar v_s` (the mean of the unit's stratum :math:`s`
    removed: stratum fixed effects),

    .. math:: \beta = \frac{\sum_s \sum_{i \in s} \tilde x_i \tilde y_i}{\sum_s \sum_{i\in s} \tilde x_i^2},\qquad
              r = \frac{\sum \tilde x \tilde y}{\sqrt{\sum \tilde x^2 \sum \tilde y^2}} ,

    :math:`\beta` the OLS slope of ``y ~ stratum + x``, :math:`r` its standardised
    form (the repeated-measures correlation of Bakdash & Marusich 2017 with strata as
    groups). Strata with one unit carry no within information and are dropped.

    - ``ci_low``/``ci_high`` (of r) and ``slope_ci_low``/``slope_ci_high``: percentile
      bootstrap resampling whole strata with replacement *within each family* (each
      family keeps its number of strata);
    - ``p``: two-sided permutation p of r, ``y`` permuted within every stratum,
      :math:`p = (b+1)/(m+1)`;
    - ``n`` units, ``n_strata`` G, ``n_families``, ``n_eff`` = :math:`n - G + 1`
      (:func:`lidutils.stats.n_effective`), ``share_negative``: the fraction of strata
      whose own :math:`\sum_{i\in s}\tilde x_i\tilde y_i` is below 0 (in how many
      strata dimension and accuracy move in opposite directions along the factor).

    Parameters
    ----------
    x, y : array-like (n,)
    strata, families : array-like (n,)
        Stratum and family label of each unit; a stratum lies inside one family.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    st = pd.Series(np.asarray(strata)).astype(str).to_numpy()
    fam = pd.Series(np.asarray(families)).astype(str).to_numpy()
    if not (x.shape == y.shape == st.shape == fam.shape) or x.ndim != 1:
        raise ValueError(f"x, y, strata and families must be 1-D of one length, got {x.shape}, {y.shape}, "
                         f"{st.shape}, {fam.shape}.")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x and y must be finite; drop the units with a missing measurement first.")
    keep = pd.Series(st).map(pd.Series(st).value_counts()).to_numpy() >= 2
    x, y, st, fam = x[keep], y[keep], st[keep], fam[keep]
    labels, inv = np.unique(st, return_inverse=True)
    G, n = len(labels), len(x)
    if G < 2 or n - G < 2:
        raise ValueError(f"a within-stratum slope needs >= 2 strata of >= 2 units and 2 units beyond the stratum "
                         f"means, got {n} units in {G} strata; check that the factor varies inside the strata.")
    sfam = pd.Series(fam).groupby(inv).agg(lambda v: v.iloc[0] if v.nunique() == 1 else None)
    if sfam.isna().any():
        raise ValueError("a stratum spans several families; strata must lie inside one family (see strata()).")
    sfam = sfam.to_numpy()
    sxy, sxx, syy, xc, yc = _sums(x, y, inv, G)
    if sxx.sum() <= 0 or syy.sum() <= 0:
        raise ValueError("x or y is constant inside every stratum: the factor moves neither; no slope to estimate.")
    r = float(sxy.sum() / np.sqrt(sxx.sum() * syy.sum()))
    beta = float(sxy.sum() / sxx.sum())
    rng = np.random.default_rng(seed)
    # bootstrap: whole strata, resampled within each family -> counts (n_boot, G)
    counts = np.zeros((int(n_boot), G))
    for f in np.unique(sfam):
        idx = np.flatnonzero(sfam == f)
        draw = idx[rng.integers(0, len(idx), size=(int(n_boot), len(idx)))]
        for j in range(len(idx)):
            np.add.at(counts, (np.arange(int(n_boot)), draw[:, j]), 1)
    bxy, bxx, byy = counts @ sxy, counts @ sxx, counts @ syy
    with np.errstate(invalid="ignore", divide="ignore"):
        br, bb = bxy / np.sqrt(bxx * byy), bxy / bxx
    ok = np.isfinite(br) & np.isfinite(bb)
    q = [(1 - ci) / 2, 1 - (1 - ci) / 2]
    lo, hi = np.quantile(br[ok], q) if ok.any() else (np.nan, np.nan)
    blo, bhi = np.quantile(bb[ok], q) if ok.any() else (np.nan, np.nan)
    # permutation of y within strata: only sum(x~ y~_perm) changes
    p = np.nan
    if n_perm:
        members = [np.flatnonzero(inv == j) for j in range(G)]
        den = np.sqrt(sxx.sum() * syy.sum())
        tot = np.zeros(int(n_perm))
        for mm in members:
            perm = rng.permuted(np.broadcast_to(np.arange(len(mm)), (int(n_perm), len(mm))), axis=1)
            tot += yc[mm][perm] @ xc[mm]
        b = int((np.abs(tot / den) >= abs(r) - 1e-12 * max(1.0, abs(r))).sum())
        p = (b + 1) / (int(n_perm) + 1)
    return {"r": r, "ci_low": float(lo), "ci_high": float(hi), "p": float(p), "n": int(n),
            "slope": beta, "slope_ci_low": float(blo), "slope_ci_high": float(bhi),
            "n_strata": int(G), "n_families": int(len(np.unique(sfam))), "n_eff": S.n_effective(n, G),
            "share_negative": float(np.mean(sxy < 0)), "n_boot": int(n_boot), "n_boot_valid": int(ok.sum()),
            "n_perm": int(n_perm), "ci": float(ci), "method": "pearson (within strata)"}


def family_only(x, y, families, n_boot=2000, n_perm=10000, seed=0):
    r"""Family fixed effects only (every factor varies at once): :func:`lidutils.stats.corr_within` plus the slope.

    Units, not strata, are resampled within each family (a family is one stratum here,
    so resampling strata would resample nothing). Adds ``slope`` (OLS of ``y`` on
    ``x`` with family fixed effects; no interval), ``n_strata`` = families and
    ``share_negative`` (fraction of families whose own within-family sum
    :math:`\sum \tilde x \tilde y` is below 0).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    res = S.corr_within(x, y, families, n_boot=n_boot, n_perm=n_perm, seed=seed)
    labels, inv = np.unique(pd.Series(np.asarray(families)).astype(str).to_numpy(), return_inverse=True)
    sxy, sxx, _, _, _ = _sums(x, y, inv, len(labels))
    res.update(slope=float(sxy.sum() / sxx.sum()), slope_ci_low=None, slope_ci_high=None,
               n_strata=int(len(labels)), share_negative=float(np.mean(sxy < 0)),
               method="pearson (within family)")
    return res


def decomposition(table, x, y=Y):
    """How one correlation splits over the design: pooled, within family, between families.

    ``pooled``: Pearson r over all units (no fixed effects); ``within_family``: r of
    the family-centred values (family fixed effects only: every factor varies at
    once, as in the claim chapters' within-family analysis); ``between_families``: r
    of the family means — its n is the number of families (descriptive: no interval).
    """
    sub = table[[x, y, "family"]].dropna()
    fx = sub.groupby("family")[x].transform("mean")
    fy = sub.groupby("family")[y].transform("mean")
    means = sub.groupby("family")[[x, y]].mean()

    def r(a, b):
        a, b = np.asarray(a, float), np.asarray(b, float)
        a, b = a - a.mean(), b - b.mean()
        d = np.sqrt((a * a).sum() * (b * b).sum())
        return float((a * b).sum() / d) if d > 0 else np.nan

    return dict(x=x, y=y, pooled=r(sub[x], sub[y]), n=int(len(sub)),
                within_family=r(sub[x] - fx, sub[y] - fy), between_families=r(means[x], means[y]),
                n_families=int(len(means)))


def _record(res, *, label, x, y, population, members, expected_sign, role, k=None, estimator=None, note=""):
    rec = {k_: to_plain(v) for k_, v in res.items()}
    rec.update(claim=CLAIM, analysis=label, x=x, y=y, population=population, role=role, space="pca300", k=k,
               estimator=estimator, unit="design cells", members=[str(m) for m in members],
               expected_sign=int(expected_sign), paper_r=None, excludes_zero=bool(S.excludes(res, 0.0)),
               excludes_paper_value=None, power=None, power_r=None,
               power_at=power_fields(res["n_eff"], None, expected_sign)["power_at"],
               verdict=None, p_holm=None, note=note)
    return rec


def slope_label(measure, factor, meas=None):
    """Analysis label of one (measure, factor) slope."""
    meas = meas or measures()
    what = "all factors (family fixed effects only)" if factor == "all" else f"{FACTORS[factor][1]} varies"
    return f"{what}: {meas[measure]['label']} vs test accuracy (within strata)"


def factor_slopes(table, k=50, n_boot=2000, n_perm=10000, seed=0, population="factorial"):
    """The pre-declared records: for every measure x factor, :func:`within_slope` of accuracy on the measure.

    Also, per measure, the same statistic over all units with only family fixed
    effects (``factor="all"``: the family is the stratum, every factor varies at once).
    Records carry ``measure``, ``factor``, ``slope`` with its CI, ``share_negative``
    and the design decomposition (:func:`decomposition`: ``r_pooled``,
    ``r_between_families`` with ``n_families``). Roles and labels: :func:`finalize`.
    """
    meas = measures(k)
    out = []
    for mname, m in meas.items():
        col = m["column"]
        dec = decomposition(table, col)
        for factor in list(FACTORS) + ["all"]:
            st = table["family"].astype(str) if factor == "all" else strata(table, factor)
            sub = table[[col, Y, "family"]].assign(_s=st).dropna()
            try:
                if factor == "all":
                    res = family_only(sub[col], sub[Y], sub["family"], n_boot=n_boot, n_perm=n_perm, seed=seed)
                else:
                    res = within_slope(sub[col], sub[Y], sub["_s"], sub["family"], n_boot=n_boot, n_perm=n_perm,
                                       seed=seed)
            except ValueError as err:  # the factor has one level in this grid: nothing to estimate
                warnings.warn(f"{mname} / {factor}: {err}", stacklevel=2)
                continue
            pop = f"{population}: {'all cells' if factor == 'all' else FACTORS[factor][1] + ' varies'}"
            rec = _record(res, label=slope_label(mname, factor, meas), x=col, y=Y, population=pop,
                          members=sub.index, expected_sign=m["expected_sign"],
                          role="primary" if mname == "lid" and factor != "all" else "secondary",
                          k=k if mname == "lid" else (2 if mname == "twonn" else None),
                          estimator={"lid": "mle", "twonn": "twonn", "pr": "participation_ratio"}[mname],
                          note=("strata: family x levels of the other factors; " if factor != "all" else
                                "family fixed effects only; ") + m["source"])
            rec.update(measure=mname, factor=factor, r_pooled=dec["pooled"], r_within_family=dec["within_family"],
                       r_between_families=dec["between_families"], n_families_between=dec["n_families"])
            out.append(rec)
    return out


def finalize(records, alpha=S.ALPHA, min_n=S.MIN_N_VERDICT):
    """Roles, Holm-adjusted p-values and labels of the C9 records (primaries first).

    The primaries (the local-LID slope per factor) are adjusted by Holm among
    themselves (``p_holm_primary``); the secondaries among themselves (``p_holm``).
    Each record's ``verdict`` is :func:`lidutils.stats.label` with its adjusted p: CI
    and permutation p agree, at >= ``min_n`` effective units.
    """
    prim = [r for r in records if r["role"] == "primary"]
    sec = [r for r in records if r["role"] != "primary"]
    for r, p in zip(prim, S.holm([r["p"] for r in prim]) if prim else []):
        r["p_holm_primary"], r["p_holm"] = float(p), None
        r["verdict"] = S.label(r, r["expected_sign"], min_n=min_n, alpha=alpha, p_key="p_holm_primary")
    for r, p in zip(sec, S.holm([r["p"] for r in sec]) if sec else []):
        r["role"], r["p_holm"] = "secondary", float(p)
        r["verdict"] = S.label(r, r["expected_sign"], min_n=min_n, alpha=alpha, p_key="p_holm")
    return prim + sec


def c9_verdict(records):
    """C9's verdict: does "lower local LID, higher accuracy" hold whichever factor varies?

    From the labels of the three primary records (local LID vs accuracy within strata,
    one per factor; Holm among the three):

    - ``"replicated"``: the paper's sign for every factor;
    - ``"not replicated"``: the paper's sign for at least one factor and the opposite
      sign for at least one other — *the sign depends on which factor varies*;
    - ``"opposite"``: the opposite sign for at least one factor and the paper's for none;
    - ``"inconclusive"``: otherwise (no opposite, not every factor replicated).

    Returns ``(verdict, reason)``.
    """
    prim = [r for r in records if r["role"] == "primary"]
    if not prim:
        raise ValueError("no primary records (local LID slopes per factor); run factor_slopes and finalize first.")
    lab = {r["factor"]: r["verdict"] for r in prim}
    parts = "; ".join(f"{FACTORS[r['factor']][1]}: r = {r['r']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}], "
                      f"Holm p = {r['p_holm_primary']:.2g}, {r['n']} cells in {r['n_strata']} strata → "
                      f"{r['verdict']}" for r in prim)
    rep = [f for f, v in lab.items() if v == "replicated"]
    opp = [f for f, v in lab.items() if v == "opposite"]
    names = lambda fs: ", ".join(FACTORS[f][1] for f in fs)  # noqa: E731
    if len(rep) == len(lab):
        return "replicated", f"lower local LID goes with higher accuracy whichever factor varies ({parts})"
    if rep and opp:
        return "not replicated", (f"the sign depends on the factor: the paper's sign when {names(rep)} varies, "
                                  f"the opposite when {names(opp)} varies ({parts})")
    if opp:
        return "opposite", f"the opposite sign when {names(opp)} varies and the paper's for no factor ({parts})"
    return "inconclusive", f"no factor shows the opposite sign and not every factor the paper's ({parts})"


def manipulation_checks(table, n_boot=2000, n_perm=10000, seed=0):
    """Does each factor move accuracy the intended way? Within-stratum r of the factor's level vs accuracy.

    One row per factor: r [CI], p, n, strata, the expected sign (noise lowers
    accuracy; data and capacity raise it) and ``as_expected`` (the CI excludes 0 on
    the expected side). A factor that does not move accuracy cannot tell how
    dimension and accuracy co-vary along it.
    """
    rows = []
    for factor, (col, name, sign) in FACTORS.items():
        st = strata(table, factor)
        sub = table[[col, Y, "family"]].assign(_s=st).dropna()
        try:
            res = within_slope(sub[col].astype(float), sub[Y], sub["_s"], sub["family"], n_boot=n_boot,
                               n_perm=n_perm, seed=seed)
        except ValueError:
            continue
        rows.append(dict(factor=name, level=col, expected_sign=sign, r=res["r"], ci_low=res["ci_low"],
                         ci_high=res["ci_high"], p=res["p"], n=res["n"], n_strata=res["n_strata"],
                         as_expected=S.verdict(res, sign) == "replicated"))
    return pd.DataFrame(rows)


def slope_table(records):
    """Records as a measure x factor table: r [CI], Holm p, label, slope, share of strata with r < 0."""
    rows = []
    for r in records:
        p = r["p_holm_primary"] if r["role"] == "primary" else r["p_holm"]
        rows.append(dict(measure=r["measure"], factor="all (family FE)" if r["factor"] == "all"
                         else FACTORS[r["factor"]][1], role=r["role"], expected_sign=r["expected_sign"], r=r["r"],
                         ci_low=r["ci_low"], ci_high=r["ci_high"], p_holm=p, n=r["n"], n_strata=r["n_strata"],
                         n_eff=r["n_eff"], slope=r["slope"], share_negative=r["share_negative"],
                         verdict=r["verdict"]))
    return pd.DataFrame(rows)


def decomposition_table(table, k=50):
    """:func:`decomposition` of every measure vs accuracy: pooled, within-family and between-family r."""
    return pd.DataFrame([dict(measure=m, **decomposition(table, v["column"]))
                         for m, v in measures(k).items()]).set_index("measure")


def _sign_word(r):
    return "lower is better" if r["r"] < 0 else "higher is better"


def interpretation(records, verdict, k=50):
    """What the factorial says, per measure (markdown, every number read from the records)."""
    meas = measures(k)
    lines = []
    for mname, m in meas.items():
        recs = [r for r in records if r["measure"] == mname and r["factor"] != "all"]
        if not recs:
            continue
        conf = [r for r in recs if r["verdict"] in ("replicated", "opposite")]
        signs = {np.sign(r["r"]) for r in conf}
        bits = ", ".join(f"{FACTORS[r['factor']][1]} r = {r['r']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}] "
                         f"({r['verdict']})" for r in recs)
        named = ", ".join(FACTORS[r["factor"]][1] for r in conf)
        if len(signs) > 1:
            head = "**the sign depends on the factor**"
        elif len(conf) == len(recs):
            head = f"one sign for every factor ({_sign_word(conf[0])})"
        elif conf:
            head = (f"one sign where CI and permutation p agree ({named}: {_sign_word(conf[0])}); the other "
                    f"factor{'s are' if len(recs) - len(conf) > 1 else ' is'} inconclusive")
        else:
            head = "no factor gives a sign that CI and permutation p agree on"
        lines.append(f"- **{m['label']}** (literature: {'lower' if m['expected_sign'] < 0 else 'higher'} is "
                     f"better): {head} — {bits}.")
    allfe = [r for r in records if r["factor"] == "all"]
    if allfe:
        lines.append("- With every factor varying at once and only family fixed effects (the claim chapters' "
                     "within-family design): " + "; ".join(
                         f"{meas[r['measure']]['label']} r = {r['r']:+.2f} [{r['ci_low']:+.2f}, "
                         f"{r['ci_high']:+.2f}] ({r['verdict']})" for r in allfe) + ".")
    return "\n".join(lines)


def write_result(records, verdict, reason, parameters, out_dir="results", tier="offline", extra=None):
    """Write ``<out_dir>/C9.json`` (beyond the paper): the primaries first, every parameter recorded."""
    prim = [r for r in records if r["role"] == "primary"]
    if not prim:
        return None
    return write_claim(CLAIM, records, out_dir=out_dir, primary=prim[0]["analysis"], verdict=verdict, reason=reason,
                       parameters=parameters, extra=extra or {}, notebook=NOTEBOOK, section="c9-result", tier=tier)


#: The controlled grid whose cells a factorial grid shares.
CONTROLLED_OF = {"factorial": "controlled", "factorial-smoke": "controlled-smoke"}


def shared_keys(grid):
    """Keys of the networks of factorial ``grid`` that its controlled grid also trains (trained once)."""
    return {e.key for e in Z.GRIDS[grid]} & {e.key for e in Z.GRIDS.get(CONTROLLED_OF.get(grid, ""), [])}


def cost(nets, shared=()):
    """Training cost per family: networks, those new to this grid (key not in ``shared``), wall and CPU seconds.

    ``train_s`` / ``cpu_s``: the wall and process-CPU seconds each network's training
    recorded (wall includes waiting for a busy CPU; CPU is what an idle core would
    take); ``*_new``: totals over the networks not shared with the controlled zoo.
    """
    t = nets.assign(new=~nets["key"].isin(set(shared)))
    rows = {}
    for fam, g in list(t.groupby("family")) + [("all", t)]:
        n = g[g["new"]]
        rows[fam] = dict(networks=len(g), new_networks=len(n), train_s_per_net=g["train_seconds"].mean(),
                         cpu_s_per_net=g["cpu_seconds"].mean(), cpu_s_new=n["cpu_seconds"].sum(),
                         train_s_new=n["train_seconds"].sum())
    return pd.DataFrame.from_dict(rows, orient="index")
