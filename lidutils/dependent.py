"""Comparing two dependent correlations that share a variable: is ``|r(x, y1)|`` larger than ``|r(x, y2)|``?

:func:`steiger_z` (Steiger 1980, eq. 14), :func:`zou_ci` (Zou 2007: an
interval for the difference built from the two Fisher-z intervals) and
:func:`compare_dependent` (paired bootstrap of the difference, optionally within groups).
"""
from __future__ import annotations


import numpy as np
from scipy import stats as _sstats

from lidutils.resampling import (
    check_pair, check_vector, CHUNK_ELEMS, corr_statistic, pearson_rows, strata_index, within_rows,
)
from lidutils.stats import fisher_ci


def steiger_z(r1, r2, r12, n):
    """Steiger's (1980) z-test of two dependent correlations sharing a variable.

    For :math:`r_1 = r(x, y_1)`, :math:`r_2 = r(x, y_2)` and :math:`r_{12} = r(y_1, y_2)`
    on the same ``n`` cases (Steiger 1980, eq. 14, pooled :math:`\\bar r`):

    .. math::
        \\bar r = \\tfrac12 (r_1 + r_2),\\quad
        \\psi = r_{12}(1 - 2\\bar r^2) - \\tfrac12 \\bar r^2 (1 - 2\\bar r^2 - r_{12}^2),\\quad
        c = \\psi / (1 - \\bar r^2)^2,

    .. math:: Z = \\frac{(\\operatorname{atanh} r_1 - \\operatorname{atanh} r_2)\\sqrt{n - 3}}{\\sqrt{2 - 2c}},
              \\qquad p = 2\\,\\Phi(-|Z|).

    Vectorised over array arguments.

    Returns
    -------
    z, p : float or ndarray
    """
    r1, r2, r12 = (np.clip(np.asarray(v, dtype=np.float64), -1 + 1e-15, 1 - 1e-15) for v in (r1, r2, r12))
    n = np.asarray(n, dtype=np.float64)
    if np.any(n < 4):
        raise ValueError(f"Steiger's test needs n >= 4 cases, got {n}.")
    rb = 0.5 * (r1 + r2)
    psi = r12 * (1 - 2 * rb ** 2) - 0.5 * rb ** 2 * (1 - 2 * rb ** 2 - r12 ** 2)
    c = psi / (1 - rb ** 2) ** 2
    z = (np.arctanh(r1) - np.arctanh(r2)) * np.sqrt(n - 3) / np.sqrt(np.maximum(2 - 2 * c, 1e-300))
    p = 2 * _sstats.norm.sf(np.abs(z))
    if z.ndim == 0:
        return float(z), float(p)
    return z, p


def zou_ci(r1, r2, r12, n, ci=0.95):
    """Zou's (2007) interval for :math:`r_1 - r_2`, two dependent correlations sharing a variable.

    From the Fisher-z intervals :math:`[l_j, u_j]` of each correlation at ``n``
    (:func:`fisher_ci`-style, :math:`\\tanh(\\operatorname{atanh} r \\pm z/\\sqrt{n-3})`) and
    the correlation of the two estimates,

    .. math::
        c = \\frac{(r_{12} - \\tfrac12 r_1 r_2)(1 - r_1^2 - r_2^2 - r_{12}^2) + r_{12}^3}{(1 - r_1^2)(1 - r_2^2)},

    .. math::
        L = r_1 - r_2 - \\sqrt{(r_1 - l_1)^2 + (u_2 - r_2)^2 - 2c(r_1 - l_1)(u_2 - r_2)},\\quad
        U = r_1 - r_2 + \\sqrt{(u_1 - r_1)^2 + (r_2 - l_2)^2 - 2c(u_1 - r_1)(r_2 - l_2)}.

    Returns ``(L, U)``; ``(-2, 2)`` at ``n <= 3``.
    """
    r1, r2, r12 = (float(np.clip(v, -1 + 1e-12, 1 - 1e-12)) for v in (r1, r2, r12))
    if n <= 3:
        return -2.0, 2.0
    (l1, u1), (l2, u2) = fisher_ci(r1, n, ci), fisher_ci(r2, n, ci)
    c = ((r12 - 0.5 * r1 * r2) * (1 - r1 ** 2 - r2 ** 2 - r12 ** 2) + r12 ** 3) / ((1 - r1 ** 2) * (1 - r2 ** 2))
    d = r1 - r2
    lo = d - np.sqrt(max(0.0, (r1 - l1) ** 2 + (u2 - r2) ** 2 - 2 * c * (r1 - l1) * (u2 - r2)))
    hi = d + np.sqrt(max(0.0, (u1 - r1) ** 2 + (r2 - l2) ** 2 - 2 * c * (u1 - r1) * (r2 - l2)))
    return float(lo), float(hi)


def compare_dependent(x, y1, y2, method="pearson", absolute=True, n_boot=2000, seed=0, ci=0.95, groups=None):
    """Difference of two dependent correlations, :math:`r(x, y_1) - r(x, y_2)`.

    Used to ask whether ``y1`` (say, local LID) predicts ``x`` (say, accuracy) more
    strongly than ``y2`` (say, participation ratio) on the same cases.

    - ``diff``: :math:`|r_1| - |r_2|` (``absolute=True``: strength regardless of
      sign) or :math:`r_1 - r_2`;
    - ``ci_low``, ``ci_high``: paired percentile bootstrap: the ``n`` cases
      (x, y1, y2 together) are resampled ``n_boot`` times and ``diff`` is recomputed
      (re-ranked for Spearman);
    - ``ci_zou_low``, ``ci_zou_high``: :func:`zou_ci` (Fisher-z based, valid at small
      n where the percentile bootstrap is not);
    - ``z``, ``p``: :func:`steiger_z` on :math:`(r_1, r_2, r_{12})`. With
      ``absolute=True`` it tests :math:`|r_1|` vs :math:`|r_2|` by first flipping the
      sign of ``y1`` / ``y2`` where its correlation with ``x`` is negative (which
      flips :math:`r_{12}` accordingly). For Spearman the ranks enter the formula
      (an approximation; the bootstrap CI needs none).

    With ``groups`` (one label per case, e.g. the architecture family) the comparison
    is made in the within-group frame of :func:`corr_within`: every variable is ranked
    (Spearman) and centred inside each group, :math:`\\tilde v_{gi} = v_{gi} - \\bar v_g`,
    before :math:`r_1, r_2, r_{12}` are computed; the bootstrap resamples cases
    *inside* each group (stratified; each group keeps its size) and centres again;
    Steiger's test uses :math:`n_{eff} = n - G + 1` (:func:`n_effective`). Groups with
    a single case are left out.

    Parameters
    ----------
    x, y1, y2 : array-like (n,)
    method : {"pearson", "spearman"}
    absolute : bool
    n_boot : int
    seed : int
    ci : float
    groups : array-like (n,), optional
        Group label of every case (None: one group, the plain correlations).

    Returns
    -------
    dict
        ``diff, ci_low, ci_high, z, p, r1, r2, r12, n, n_eff, n_groups, design, method,
        absolute, n_boot``.
    """
    x, y1 = check_pair(x, y1, method, n_boot, 0, ci, min_n=4)
    y2 = check_vector(y2, "y2", n=x.shape[0])
    if np.ptp(y2) == 0:
        raise ValueError("y2 is constant; its correlation with anything is undefined.")
    V = np.stack([x, y1, y2])
    if groups is None:
        blocks = None
        n = n_eff = V.shape[1]
    else:
        order, blocks = strata_index(groups, V.shape[1])
        V = V[:, order]
        n, n_eff = V.shape[1], V.shape[1] - len(blocks) + 1
        if n_eff < 4:
            raise ValueError(f"a within-group comparison needs n - G + 1 >= 4 (got {n} cases in {len(blocks)} "
                             "groups of >= 2); pass groups=None or more cases per group.")

    def rs(W):  # (3, ..., n) -> r1, r2, r12 in the chosen frame
        if blocks is None:
            return (corr_statistic(W[a], W[b], None, method) for a, b in ((0, 1), (0, 2), (1, 2)))
        Wc = within_rows(W, blocks, rank=method == "spearman")
        return (pearson_rows(Wc[a], Wc[b]) for a, b in ((0, 1), (0, 2), (1, 2)))

    r1, r2, r12 = (float(v) for v in rs(V))
    if not np.isfinite([r1, r2, r12]).all():
        raise ValueError("a variable is constant (within every group, with groups); the comparison is undefined.")

    def diff(a, b):
        return np.abs(a) - np.abs(b) if absolute else a - b

    d = float(diff(r1, r2))
    s1, s2 = (np.sign(r1) or 1.0, np.sign(r2) or 1.0) if absolute else (1.0, 1.0)
    z, p = steiger_z(s1 * r1, s2 * r2, s1 * s2 * r12, n_eff)
    zlo, zhi = zou_ci(s1 * r1, s2 * r2, s1 * s2 * r12, n_eff, ci)
    lo = hi = np.nan
    n_valid = 0
    if n_boot:
        rng = np.random.default_rng(seed)
        step = max(1, CHUNK_ELEMS // (3 * n))
        boots = []
        for start in range(0, n_boot, step):
            b = min(step, n_boot - start)
            if blocks is None:
                idx = rng.integers(0, n, size=(b, n))
            else:  # resample inside each group: the blocks stay contiguous
                idx = np.concatenate([a + rng.integers(0, m, size=(b, m)) for a, m in blocks], axis=1)
            b1, b2, _ = rs(V[:, idx])  # (3, b, n)
            boots.append(diff(b1, b2))
        boots = np.concatenate(boots)
        boots = boots[np.isfinite(boots)]
        n_valid = int(boots.size)
        if n_valid:
            lo, hi = np.quantile(boots, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    return {"diff": d, "ci_low": float(lo), "ci_high": float(hi), "z": z, "p": p,
            "ci_zou_low": zlo, "ci_zou_high": zhi,
            "r1": r1, "r2": r2, "r12": r12, "n": int(n), "n_eff": int(n_eff),
            "n_groups": 1 if blocks is None else len(blocks),
            "design": "pooled" if blocks is None else "within group", "method": method,
            "absolute": bool(absolute), "n_boot": int(n_boot), "n_boot_valid": n_valid, "ci": float(ci)}
