"""Vectorised resampling for correlations: input checks, ranks, batched Pearson, bootstrap and
permutation draws (stratified by group where asked), row-wise residualisation.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats as _sstats

METHODS = ("pearson", "spearman")

CHUNK_ELEMS = 2_000_000  # resamples x n processed at once


def check_vector(v, name, n=None):
    v = np.asarray(v)
    if v.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be numeric, got dtype {v.dtype}.")
    v = np.asarray(v, dtype=np.float64)
    if v.ndim == 2 and v.shape[1] == 1:
        v = v[:, 0]
    if v.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {v.shape}.")
    if n is not None and v.shape[0] != n:
        raise ValueError(f"{name} has {v.shape[0]} values but x has {n}: pass paired observations.")
    if not np.isfinite(v).all():
        bad = np.flatnonzero(~np.isfinite(v))
        raise ValueError(
            f"{name} has {bad.size} NaN/inf value(s) (first at {bad[:5].tolist()}); drop those "
            "observations from every variable first."
        )
    return v


def check_pair(x, y, method, n_boot, n_perm, ci, min_n=3):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    x = check_vector(x, "x")
    y = check_vector(y, "y", n=x.shape[0])
    if x.shape[0] < min_n:
        raise ValueError(f"A correlation needs at least {min_n} paired observations, got {x.shape[0]}.")
    for v, name in ((x, "x"), (y, "y")):
        if np.ptp(v) == 0:
            raise ValueError(f"{name} is constant; its correlation with anything is undefined.")
    for val, name in ((n_boot, "n_boot"), (n_perm, "n_perm")):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {val!r}.")
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), e.g. 0.95, got {ci!r}.")
    return x, y


def rank_rows(M):
    """Average ranks along the last axis (ties get the mean rank, as scipy does)."""
    return _sstats.rankdata(M, axis=-1)


def pearson_rows(X, Y):
    """Pearson r of every row pair of X and Y (..., n); NaN where a row is constant."""
    Xc = X - X.mean(-1, keepdims=True)
    Yc = Y - Y.mean(-1, keepdims=True)
    ssx, ssy = (Xc * Xc).sum(-1), (Yc * Yc).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (Xc * Yc).sum(-1) / np.sqrt(ssx * ssy)
    # a row is degenerate (constant) when its spread is at the rounding level of its values
    n = X.shape[-1]
    ok = (ssx > n * (1e-12 * np.abs(X).max(-1)) ** 2) & (ssy > n * (1e-12 * np.abs(Y).max(-1)) ** 2)
    return np.where(ok, np.clip(r, -1.0, 1.0), np.nan)


def residualise_rows(V, Z):
    """Residuals of each row of V (..., n) on design Z (..., n, q) by least squares."""
    beta = np.linalg.pinv(Z) @ V[..., None]
    return V - (Z @ beta)[..., 0]


def design_matrix(z_cols):
    return np.concatenate([np.ones(z_cols.shape[:-1] + (1,)), z_cols], axis=-1)


def corr_statistic(x, y, z, method):
    """Point estimate (rows of x, y, z are independent datasets; z is (..., n, q) or None)."""
    if method == "spearman":
        x, y = rank_rows(x), rank_rows(y)
        if z is not None:
            z = np.swapaxes(rank_rows(np.swapaxes(z, -1, -2)), -1, -2)
    if z is None:
        return pearson_rows(x, y)
    Z = design_matrix(z)
    ex, ey = residualise_rows(x, Z), residualise_rows(y, Z)
    r = pearson_rows(ex, ey)
    # undefined when the covariates explain x or y completely (residuals at rounding level)
    keep = np.ones(r.shape, dtype=bool)
    for v, e in ((x, ex), (y, ey)):
        ss = ((v - v.mean(-1, keepdims=True)) ** 2).sum(-1)
        keep &= (e * e).sum(-1) > 1e-20 * ss
    return np.where(keep, r, np.nan)


def bootstrap_rows(x, y, z, method, n_boot, rng):
    n = x.shape[0]
    step = max(1, CHUNK_ELEMS // (n * (1 if z is None else z.shape[1] + 1)))
    out = []
    for start in range(0, n_boot, step):
        b = min(step, n_boot - start)
        idx = rng.integers(0, n, size=(b, n))
        out.append(corr_statistic(x[idx], y[idx], None if z is None else z[idx], method))
    return np.concatenate(out) if out else np.empty(0)


def permutation_p(rx, ry, r_obs, n_perm, rng):
    """Two-sided permutation p = (b + 1) / (m + 1), ``b = #{|r_perm| >= |r_obs|}``.

    ``rx``, ``ry`` are already transformed (ranked and/or residualised), so each
    permutation costs one Pearson correlation.
    """
    n = rx.shape[0]
    xs = (rx - rx.mean()) / np.linalg.norm(rx - rx.mean())
    ys = (ry - ry.mean()) / np.linalg.norm(ry - ry.mean())
    step = max(1, CHUNK_ELEMS // n)
    b = 0
    tol = 1e-12 * max(1.0, abs(r_obs))  # count exact ties with the observed value
    for start in range(0, n_perm, step):
        m = min(step, n_perm - start)
        perm = rng.permuted(np.broadcast_to(np.arange(n), (m, n)), axis=1)
        r_perm = ys[perm] @ xs
        b += int((np.abs(r_perm) >= abs(r_obs) - tol).sum())
    return (b + 1) / (n_perm + 1)


def corr_result(r, boots, n, method, n_boot, n_perm, p, ci):
    valid = boots[np.isfinite(boots)]
    if n_boot and valid.size < n_boot:
        frac = 1 - valid.size / n_boot
        if frac > 0.01:
            warnings.warn(
                f"{n_boot - valid.size} of {n_boot} bootstrap resamples ({frac:.1%}) were degenerate "
                "(a resampled variable was constant) and were dropped; the CI may be unreliable "
                "at this sample size.", stacklevel=3)
    if valid.size:
        lo, hi = np.quantile(valid, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    else:
        lo = hi = np.nan
    return {"r": float(r), "ci_low": float(lo), "ci_high": float(hi), "p": float(p), "n": int(n),
            "method": method, "n_boot": int(n_boot), "n_perm": int(n_perm),
            "n_boot_valid": int(valid.size), "ci": float(ci)}


def analytic_p(r, n):
    """Two-sided t-test p of a correlation (scipy's pearsonr / spearmanr formula)."""
    df = n - 2
    with np.errstate(divide="ignore", invalid="ignore"):
        t = r * np.sqrt(df / np.maximum(1e-300, 1 - r * r))
    return 2 * _sstats.t.sf(np.abs(t), df)


def resample_ranks(ranks, idx):
    """Average ranks (1-based, ties averaged as ``scipy.stats.rankdata``) of resamples.

    ``ranks``: (m, n) integer ranks 0..n-1 of continuous data (a permutation per row);
    ``idx``: (m, b, n) resampling indices. Counting instead of sorting: with
    :math:`c_j` copies of the :math:`j`-th smallest value in a resample and
    :math:`C_j = \\sum_{l<j} c_l`, each copy gets rank :math:`C_j + (c_j + 1)/2`.
    """
    m, b, n = idx.shape
    r = np.take_along_axis(np.broadcast_to(ranks[:, None, :], idx.shape), idx, 2)  # (m, b, n)
    flat = (r + n * np.arange(m * b).reshape(m, b, 1)).ravel()
    counts = np.bincount(flat, minlength=m * b * n).reshape(m, b, n)
    below = np.cumsum(counts, axis=2) - counts
    avg = below + (counts + 1) / 2.0
    return np.take_along_axis(avg, r, 2)


def strata_index(groups, n):
    """Order of the cases that makes each group one contiguous block, and the blocks' (start, size).

    Groups with a single case carry no within-group information and are left out.
    """
    g = pd.Series(np.asarray(groups)).astype(str).to_numpy()
    if g.shape != (n,):
        raise ValueError(f"groups must have one label per case ({n}), got shape {g.shape}.")
    labels, inv, sizes = np.unique(g, return_inverse=True, return_counts=True)
    keep = sizes[inv] >= 2
    order = np.flatnonzero(keep)[np.argsort(inv[keep], kind="stable")]
    sizes = sizes[sizes >= 2]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
    return order, list(zip(starts.tolist(), sizes.tolist()))


def within_rows(V, blocks, rank):
    """Rank (Spearman) and centre every row of ``V`` (..., n) inside each contiguous block."""
    out = np.empty(V.shape, dtype=np.float64)
    for a, m in blocks:
        b = V[..., a:a + m]
        if rank:
            b = rank_rows(b)
        out[..., a:a + m] = b - b.mean(-1, keepdims=True)
    return out


def group_index(groups, n):
    g = pd.Series(np.asarray(groups)).astype(str).to_numpy()
    if g.shape != (n,):
        raise ValueError(f"groups must have one label per observation ({n}), got shape {g.shape}.")
    labels, inv = np.unique(g, return_inverse=True)
    return labels, inv


def centre_within(v, groups):
    r"""Each value minus its group's mean, :math:`\tilde v_{gi} = v_{gi} - \bar v_g` (family fixed effects)."""
    v = np.asarray(v, dtype=np.float64)
    _, inv = group_index(groups, v.shape[-1])
    means = np.bincount(inv, weights=v) / np.bincount(inv)
    return v - means[inv]


def rank_within(v, inv, G):
    out = np.empty_like(v)
    for j in range(G):
        m = inv == j
        out[m] = _sstats.rankdata(v[m])
    return out
