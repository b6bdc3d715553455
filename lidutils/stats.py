"""Correlation statistics with bootstrap confidence intervals and permutation p-values.

Every correlation reported by the claim notebooks goes through :func:`corr` or
:func:`partial_corr`, so it carries its sample size ``n``, a percentile-bootstrap
confidence interval and a permutation p-value. :func:`verdict` turns such a
result into "replicated" / "opposite" / "inconclusive" by one rule on its
confidence interval (:data:`VERDICTS` names every verdict of the project once).
:func:`corr_batch` / :func:`verdict_batch` are the same statistics for many datasets
at once; :func:`compare_dependent` and :func:`holm` serve comparative questions.

This module holds the correlations and their intervals; the resampling machinery is in
:mod:`lidutils.resampling` and the verdict rule, Holm and the design constants in
:mod:`lidutils.verdicts`, whose names are re-exported here (``lidutils.stats.holm`` works).
Everything is vectorised with numpy; ``n_perm=10000`` takes milliseconds for the
tens of models the notebooks compare.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats as _sstats

from lidutils.resampling import (
    analytic_p, bootstrap_rows, centre_within, check_pair, check_vector, CHUNK_ELEMS, corr_result,
    corr_statistic, design_matrix, group_index, METHODS, pearson_rows, permutation_p, rank_rows,
    rank_within, resample_ranks, residualise_rows, strata_index, within_rows,
)
from lidutils.verdicts import (
    ALPHA, check_sign, ci_bounds, excludes, format_corr, holm, label, MIN_N_VERDICT, MIN_PER_FAMILY,
    too_few, verdict, verdict_batch, VERDICTS,
)


def corr(x, y, method="pearson", n_boot=2000, n_perm=10000, seed=0, ci=0.95):
    """Correlation with a bootstrap confidence interval and a permutation p-value.

    - ``r``: Pearson :math:`r = \\frac{\\sum (x_i-\\bar x)(y_i-\\bar y)}{\\sqrt{\\sum (x_i-\\bar x)^2 \\sum (y_i-\\bar y)^2}}`,
      or Spearman :math:`\\rho` = Pearson r of the (average) ranks; equal to
      ``scipy.stats.pearsonr`` / ``spearmanr``.
    - ``ci_low``, ``ci_high``: percentile bootstrap interval at level ``ci``: the
      ``n`` (x, y) pairs are resampled with replacement ``n_boot`` times and r is
      recomputed on each resample (re-ranked for Spearman). Resamples in which a
      variable is constant have no r and are dropped (count in ``n_boot_valid``; a
      warning is raised when more than 1% are dropped).
    - ``p``: two-sided permutation p-value :math:`p = (b+1)/(m+1)`, where ``b`` of
      the ``m = n_perm`` random permutations of ``y`` give
      :math:`|r_{perm}| \\ge |r|`; never 0, smallest value ``1/(m+1)``.
      ``n_perm=0`` uses scipy's analytic p-value instead.

    Parameters
    ----------
    x, y : array-like (n,)
        Paired observations (n >= 3, finite, not constant).
    method : {"pearson", "spearman"}
    n_boot : int
        Bootstrap resamples (0: no CI, NaN bounds).
    n_perm : int
        Permutations for the p-value (0: analytic p).
    seed : int
        Seed of the resampling; results are deterministic for a given seed.
    ci : float
        Confidence level of the interval.

    Returns
    -------
    dict
        ``r, ci_low, ci_high, p, n, method, n_boot, n_perm`` plus ``n_boot_valid``, ``ci``.
    """
    x, y = check_pair(x, y, method, n_boot, n_perm, ci)
    rng = np.random.default_rng(seed)
    r = float(corr_statistic(x, y, None, method))
    rx, ry = (rank_rows(x), rank_rows(y)) if method == "spearman" else (x, y)
    if n_perm:
        p = permutation_p(rx, ry, r, n_perm, rng)
    else:
        p = (_sstats.pearsonr if method == "pearson" else _sstats.spearmanr)(x, y)[1]
    boots = bootstrap_rows(x, y, None, method, n_boot, rng)
    return corr_result(r, boots, x.shape[0], method, n_boot, n_perm, p, ci)


def partial_corr(x, y, z, method="pearson", n_boot=2000, n_perm=10000, seed=0, ci=0.95):
    """Partial correlation of x and y controlling for covariate(s) z.

    x and y are each regressed (ordinary least squares, with intercept) on the
    covariates and the residuals are correlated:

    .. math:: r_{xy\\cdot z} = \\mathrm{corr}(x - Z\\hat\\beta_x,\\; y - Z\\hat\\beta_y),\\quad Z = [1, z].

    For ``method="spearman"`` x, y and every covariate are first converted to
    ranks (rank partial correlation). The bootstrap resamples (x, y, z) triples and
    repeats ranking and residualisation on every resample. The permutation
    p-value permutes the residuals of y against those of x (Kennedy 1995), with
    the same :math:`(b+1)/(m+1)` rule as :func:`corr`; ``n_perm=0`` uses the
    analytic t-test with ``n - 2 - q`` degrees of freedom (``q`` covariates).

    Parameters
    ----------
    x, y : array-like (n,)
    z : array-like (n,) or (n, q)
        Covariates; needs ``n >= q + 3``.
    method, n_boot, n_perm, seed, ci
        As in :func:`corr`.

    Returns
    -------
    dict
        Same keys as :func:`corr`, plus ``n_covariates``.
    """
    x, y = check_pair(x, y, method, n_boot, n_perm, ci)
    n = x.shape[0]
    Z = np.asarray(z)
    if Z.dtype.kind not in "fiub":
        raise ValueError(f"z must be numeric, got dtype {Z.dtype}.")
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim == 1:
        Z = Z[:, None]
    if Z.ndim != 2 or Z.shape[0] != n:
        raise ValueError(f"z must have shape (n,) or (n, q) with n={n} rows, got {Z.shape}.")
    if not np.isfinite(Z).all():
        raise ValueError("z has NaN/inf values; drop those observations from every variable first.")
    q = Z.shape[1]
    if n < q + 3:
        raise ValueError(f"Partial correlation with {q} covariate(s) needs n >= {q + 3}, got {n}.")
    rng = np.random.default_rng(seed)
    r = float(corr_statistic(x, y, Z, method))
    if not np.isfinite(r):
        raise ValueError(
            "The partial correlation is undefined: x or y is fully explained by the covariates "
            "(zero residual variance)."
        )
    if method == "spearman":
        rx, ry, Zt = rank_rows(x), rank_rows(y), rank_rows(Z.T).T
    else:
        rx, ry, Zt = x, y, Z
    D = design_matrix(Zt)
    ex, ey = residualise_rows(rx, D), residualise_rows(ry, D)
    if n_perm:
        p = permutation_p(ex, ey, r, n_perm, rng)
    else:
        df = n - 2 - q
        t = r * np.sqrt(df / max(1e-300, 1 - r * r))
        p = float(2 * _sstats.t.sf(abs(t), df)) if df > 0 else float("nan")
    boots = bootstrap_rows(x, y, Z, method, n_boot, rng)
    out = corr_result(r, boots, n, method, n_boot, n_perm, p, ci)
    out["n_covariates"] = q
    return out


def corr_batch(x, y, method="pearson", n_boot=400, n_perm=0, seed=0, ci=0.95):
    """:func:`corr` on many independent datasets at once (rows of ``x`` and ``y``).

    The same point estimate, percentile bootstrap and permutation p-value
    :math:`(b+1)/(m+1)` as :func:`corr`, vectorised over datasets (different random
    draws, so not bit-identical to looping :func:`corr`). Spearman bootstrap ranks are
    computed by counting (``_resample_ranks``), which assumes continuous data (no
    ties within a row); Pearson has no such restriction. For Spearman the permutation
    null depends only on ``n``, so one set of ``n_perm`` permutations serves every row.
    ``n_perm=0`` gives the analytic t-test p (as ``corr(..., n_perm=0)``).

    Parameters
    ----------
    x, y : ndarray (n_sim, n)
        ``n_sim`` datasets of ``n >= 3`` paired observations.
    method : {"pearson", "spearman"}
    n_boot : int >= 1
    n_perm : int >= 0
    seed : int
    ci : float

    Returns
    -------
    dict of ndarray (n_sim,)
        ``r``, ``ci_low``, ``ci_high``, ``p``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"x and y must be (n_sim, n) arrays of the same shape, got {x.shape}, {y.shape}.")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    n_sim, n = x.shape
    if n < 3:
        raise ValueError(f"a correlation needs n >= 3 observations, got {n}.")
    if n_boot < 1 or n_perm < 0:
        raise ValueError("n_boot must be >= 1 and n_perm >= 0.")
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), e.g. 0.95, got {ci!r}.")
    rng = np.random.default_rng(seed)
    r = corr_statistic(x, y, None, method)
    if n_perm == 0:
        p = analytic_p(r, n)
    else:
        tol = 1e-12 * np.maximum(1.0, np.abs(r))
        if method == "spearman":
            base = np.arange(1, n + 1, dtype=np.float64)
            perm = rng.permuted(np.broadcast_to(base, (n_perm, n)), axis=1)
            null = np.sort(np.abs(pearson_rows(np.broadcast_to(base, (n_perm, n)), perm)))
            b = n_perm - np.searchsorted(null, np.abs(r) - tol, side="left")
        else:
            b = np.zeros(n_sim, dtype=np.int64)
            step = max(1, CHUNK_ELEMS // (n * n_perm))
            for s in range(0, n_sim, step):
                sl = slice(s, s + step)
                perm = rng.permuted(np.broadcast_to(np.arange(n), (len(x[sl]), n_perm, n)), axis=2)
                r_perm = pearson_rows(np.broadcast_to(x[sl, None, :], perm.shape),
                                       np.take_along_axis(np.broadcast_to(y[sl, None, :], perm.shape), perm, 2))
                b[sl] = (np.abs(r_perm) >= (np.abs(r[sl]) - tol[sl])[:, None]).sum(1)
        p = (b + 1) / (n_perm + 1)
    lo = np.empty(n_sim)
    hi = np.empty(n_sim)
    step = max(1, CHUNK_ELEMS // (n * n_boot))
    q = [(1 - ci) / 2, 1 - (1 - ci) / 2]
    if method == "spearman":
        ix = np.argsort(np.argsort(x, axis=1), axis=1)
        iy = np.argsort(np.argsort(y, axis=1), axis=1)
    for s in range(0, n_sim, step):
        m = min(step, n_sim - s)
        idx = rng.integers(0, n, size=(m, n_boot, n))
        if method == "spearman":  # same numbers as _stat's rankdata, by counting
            boots = pearson_rows(resample_ranks(ix[s:s + m], idx), resample_ranks(iy[s:s + m], idx))
        else:
            rows = np.arange(s, s + m)[:, None, None]
            boots = corr_statistic(x[rows, idx], y[rows, idx], None, method)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows stay NaN
            lo[s:s + m], hi[s:s + m] = np.nanquantile(boots, q, axis=1)
    return dict(r=r, ci_low=lo, ci_high=hi, p=p)


def rmcorr(x, y, groups, n_boot=2000, n_perm=10000, seed=0, ci=0.95):
    r"""Repeated-measures correlation: the common within-group association of x and y.

    For paired series (several levels of one manipulation applied to the same
    model), the groups are not independent samples of a population of models.
    Each group's mean is removed from x and y,
    :math:`\tilde x_{gi} = x_{gi} - \bar x_g`, and

    .. math:: r_{rm} = \frac{\sum_{g,i} \tilde x_{gi}\tilde y_{gi}}
              {\sqrt{\sum \tilde x_{gi}^2 \sum \tilde y_{gi}^2}}

    (Bakdash & Marusich 2017; degrees of freedom :math:`N - G - 1`). The 95 % CI
    resamples whole **groups** with replacement (cluster bootstrap); the two-sided
    p permutes y **within** groups, :math:`p = (b + 1)/(m + 1)`.

    Parameters
    ----------
    x, y : array-like (N,)
    groups : array-like (N,)
        Group label of each observation (e.g. ``"model/kind"``); >= 2 groups.

    Returns
    -------
    dict
        ``r``, ``ci_low``, ``ci_high``, ``p``, ``n`` (observations), ``n_groups``,
        ``df``, ``method="rmcorr"``, ``n_boot``, ``n_perm``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    g = pd.Series(groups).astype(str).to_numpy()
    if not (x.shape == y.shape == g.shape) or x.ndim != 1:
        raise ValueError(f"x, y and groups must be 1-D of one length, got {x.shape}, {y.shape}, {g.shape}.")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x and y must be finite; drop the missing observations first.")
    labels, inv = np.unique(g, return_inverse=True)
    G = len(labels)
    if G < 2 or len(x) < G + 3:
        raise ValueError(f"rmcorr needs >= 2 groups and more than groups + 2 observations, got {G} groups, "
                         f"{len(x)} observations.")

    def centred(v, inv_):
        means = np.bincount(inv_, weights=v) / np.bincount(inv_)
        return v - means[inv_]

    def r_of(xc, yc):
        den = np.sqrt((xc * xc).sum() * (yc * yc).sum())
        return float((xc * yc).sum() / den) if den > 0 else np.nan

    xc, yc = centred(x, inv), centred(y, inv)
    r = r_of(xc, yc)
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(inv == j) for j in range(G)]
    boots = []
    for _ in range(int(n_boot)):
        pick = rng.integers(0, G, size=G)
        idx = np.concatenate([members[j] for j in pick])
        newinv = np.concatenate([np.full(len(members[j]), k) for k, j in enumerate(pick)])
        boots.append(r_of(centred(x[idx], newinv), centred(y[idx], newinv)))
    boots = np.asarray(boots)
    boots = boots[np.isfinite(boots)]
    lo, hi = (np.quantile(boots, [(1 - ci) / 2, 1 - (1 - ci) / 2]) if boots.size else (np.nan, np.nan))
    b = 0
    for _ in range(int(n_perm)):
        yp = yc.copy()
        for m in members:
            yp[m] = yc[rng.permutation(m)]
        b += abs(r_of(xc, yp)) >= abs(r) - 1e-12
    p = (b + 1) / (int(n_perm) + 1) if n_perm else np.nan
    return {"r": r, "ci_low": float(lo), "ci_high": float(hi), "p": float(p), "n": int(len(x)),
            "n_groups": int(G), "df": int(len(x) - G - 1), "method": "rmcorr", "n_boot": int(n_boot),
            "n_perm": int(n_perm)}


def n_effective(n, n_groups=1):
    """Units left after removing each group's mean: :math:`n_{eff} = n - G + 1`.

    One group: ``n``. With family fixed effects, every family mean costs one degree
    of freedom, so the within-family correlation of ``n`` units in ``G`` families
    rests on :math:`n - G + 1` "units" (degrees of freedom :math:`n_{eff} - 2 = n - G - 1`,
    as in the repeated-measures correlation of Bakdash & Marusich 2017).
    """
    return int(n) - max(int(n_groups), 1) + 1


def fisher_ci(r, n_eff, ci=0.95):
    r"""Fisher-z interval of a correlation: :math:`\tanh(\operatorname{atanh} r \pm z_{1-\alpha/2} / \sqrt{n_{eff} - 3})`.

    ``n_eff`` is :func:`n_effective` (``n`` for a plain correlation). At
    :math:`n_{eff} \le 3` the interval is uninformative: ``(-1, 1)``. Valid for
    (near-)bivariate-normal data at every n above 3, where the percentile bootstrap is
    not (see :data:`MIN_N_VERDICT`).

    Returns
    -------
    (low, high) : floats
    """
    r = float(np.clip(r, -1 + 1e-12, 1 - 1e-12))
    if not np.isfinite(r) or n_eff <= 3:
        return -1.0, 1.0
    h = _sstats.norm.ppf(1 - (1 - ci) / 2) / np.sqrt(n_eff - 3)
    z = np.arctanh(r)
    return float(np.tanh(z - h)), float(np.tanh(z + h))


def corr_within(x, y, groups, method="pearson", n_boot=2000, n_perm=10000, seed=0, ci=0.95):
    r"""Correlation *within* groups (families), with a group-stratified bootstrap and a within-group permutation p.

    The design's families differ in both variables, so a pooled correlation mixes a
    within-family association with one carried by a handful of family means. This is
    the within-family part alone (family fixed effects):

    .. math:: r_w = \frac{\sum_{g,i} \tilde x_{gi}\tilde y_{gi}}{\sqrt{\sum \tilde x_{gi}^2 \sum \tilde y_{gi}^2}},
              \qquad \tilde v_{gi} = v_{gi} - \bar v_g ,

    (Spearman: ranks *within* each family first). Groups with one unit carry no
    within information and are dropped.

    - ``ci_low``, ``ci_high``: **family-stratified** percentile bootstrap: inside
      each family its units are resampled with replacement (the family keeps its
      size), centred again, and :math:`r_w` recomputed;
    - ``p``: two-sided permutation p, y permuted **within** each family,
      :math:`p = (b+1)/(m+1)`;
    - ``ci_fisher_low``, ``ci_fisher_high``: :func:`fisher_ci` at
      ``n_eff`` = :func:`n_effective` (``n - G + 1``);
    - ``r_between``, ``n_families``: the Pearson r of the family means (its n is the
      number of families: descriptive, no interval when it is below 4).

    Returns
    -------
    dict
        :func:`corr`'s keys (``n`` = units used) plus ``n_eff``, ``n_families``,
        ``df = n - G - 1``, ``ci_fisher_low``, ``ci_fisher_high``, ``r_between``,
        ``design="within family"``.
    """
    x = check_vector(x, "x")
    y = check_vector(y, "y", n=x.shape[0])
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    labels, inv = group_index(groups, x.shape[0])
    sizes = np.bincount(inv)
    keep = sizes[inv] >= 2
    fam_means_x = np.bincount(inv, weights=x) / sizes
    fam_means_y = np.bincount(inv, weights=y) / sizes
    x, y = x[keep], y[keep]
    labels, inv = group_index(labels[inv[keep]], x.shape[0])
    G, n = len(labels), x.shape[0]
    if G < 1 or n - G < 2:
        raise ValueError(f"a within-family correlation needs at least 2 units beyond the {G} family means "
                         f"(got {n} units in families of >= 2); use corr() on one family.")
    if method == "spearman":
        x, y = rank_within(x, inv, G), rank_within(y, inv, G)
    xc, yc = centre_within(x, inv), centre_within(y, inv)
    for v, nm in ((xc, "x"), (yc, "y")):
        if not np.any(np.abs(v) > 1e-12 * max(1.0, np.abs(x if nm == "x" else y).max())):
            raise ValueError(f"{nm} is constant within every family; its within-family correlation is undefined.")
    r = float(pearson_rows(xc, yc))
    rng = np.random.default_rng(seed)
    order, blocks = strata_index(labels[inv], n)  # each family one contiguous block (all have >= 2 units)
    members = [order[a:a + m] for a, m in blocks]
    # permutation within families
    b = 0
    if n_perm:
        xs = xc[order]
        step = max(1, CHUNK_ELEMS // n)
        tol = 1e-12 * max(1.0, abs(r))
        for s in range(0, int(n_perm), step):
            m_ = min(step, int(n_perm) - s)
            yp = np.concatenate([rng.permuted(np.broadcast_to(yc[mm], (m_, len(mm))), axis=1)
                                 for mm in members], axis=1)
            b += int((np.abs(pearson_rows(np.broadcast_to(xs, yp.shape), yp)) >= abs(r) - tol).sum())
        p = (b + 1) / (int(n_perm) + 1)
    else:
        df = n - G - 1
        t = r * np.sqrt(df / max(1e-300, 1 - r * r))
        p = float(2 * _sstats.t.sf(abs(t), df)) if df > 0 else float("nan")
    # family-stratified bootstrap
    boots = []
    step = max(1, CHUNK_ELEMS // n)
    for s in range(0, int(n_boot), step):
        m_ = min(step, int(n_boot) - s)
        idx = np.concatenate([mm[rng.integers(0, len(mm), size=(m_, len(mm)))] for mm in members], axis=1)
        rank = method == "spearman"
        boots.append(pearson_rows(within_rows(x[idx], blocks, rank), within_rows(y[idx], blocks, rank)))
    boots = np.concatenate(boots) if boots else np.empty(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = corr_result(r, boots, n, method, n_boot, n_perm, p, ci)
    n_eff = n_effective(n, G)
    lo_f, hi_f = fisher_ci(r, n_eff, ci)
    ok = sizes >= 1
    rb = (float(pearson_rows(fam_means_x[ok], fam_means_y[ok])) if ok.sum() >= 3 else float("nan"))
    out.update(n_eff=int(n_eff), n_families=int(G), df=int(n - G - 1), ci_fisher_low=lo_f,
               ci_fisher_high=hi_f, r_between=rb, n_between=int(ok.sum()), design="within family")
    return out


def corr_table(df, x, ys, method="spearman", expected_sign=None, covariates=None, **kwargs):
    """Correlate column ``x`` of ``df`` with each column in ``ys``; one row per y.

    Rows with NaN in ``x``, the y column or the covariates are dropped per y (so
    ``n`` may differ between rows). With ``covariates`` (list of column names)
    :func:`partial_corr` is used instead of :func:`corr`. With ``expected_sign``
    a ``verdict`` column is added. Extra kwargs go to :func:`corr`.

    Returns
    -------
    pandas.DataFrame indexed by y, columns ``r, ci_low, ci_high, p, n, ...``
    """
    if isinstance(ys, str):
        ys = [ys]
    cov = list(covariates or [])
    missing = [c for c in [x, *ys, *cov] if c not in df.columns]
    if missing:
        raise ValueError(f"Column(s) {missing} not in the DataFrame (has {list(df.columns)}).")
    rows = {}
    for y in ys:
        sub = df[[x, y, *cov]].dropna()
        if cov:
            res = partial_corr(sub[x], sub[y], sub[cov].to_numpy(), method=method, **kwargs)
        else:
            res = corr(sub[x], sub[y], method=method, **kwargs)
        if expected_sign is not None:
            res["verdict"] = verdict(res, expected_sign)
        rows[y] = res
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "y"
    out.insert(0, "x", x)
    return out


__all__ = ["corr", "partial_corr", "corr_batch", "verdict", "verdict_batch", "excludes", "holm", "label",
           "corr_within", "centre_within", "fisher_ci", "n_effective", "too_few", "MIN_N_VERDICT",
           "MIN_PER_FAMILY", "ALPHA",
           "rmcorr", "corr_table", "VERDICTS", "METHODS"]
