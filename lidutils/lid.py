"""Local intrinsic dimension (LID) estimators on k-nearest-neighbour distances.

All estimators take an ``(n_samples, n_features)`` array and return numpy; the
neighbour search is :func:`lidutils.knn` (exact, blockwise GEMM in torch,
``device="auto"`` uses CUDA when present), and the estimators themselves are a
few vectorised torch operations on the ``(n_samples, k)`` distance matrix.

Notation: for a point :math:`x`, :math:`T_j(x)` is the Euclidean distance to its
:math:`j`-th nearest neighbour, the point itself excluded
(:math:`T_1 \\le T_2 \\le \\dots`).

Per-point versus dataset score
------------------------------
:func:`lid_mle`, :func:`lid_mom`, :func:`lid_mada` and :func:`lid_profile` return one
estimate per point. The paper's LID of a representation is the **arithmetic mean over points**,
``lid_mle(X, k).mean()``. (scikit-dimension's ``MLE().dimension_`` instead uses
``comb="mle"`` by default, the harmonic mean ``1 / mean(1 / m_K(x))`` of
MacKay & Ghahramani; its ``comb="mean"`` is the arithmetic mean used here.)

Duplicate points
----------------
An exact duplicate has :math:`T_1 = 0`, which makes :math:`\\log(T_K / T_j)`
infinite, so the MLE degenerates to 0 (what scikit-dimension silently returns). By default
(``duplicates="error"``) such input raises ``ValueError``; ``"drop"`` keeps the
first copy of each point and warns with the count (per-point outputs then refer
to the kept rows, in their original order: ``X[~lidutils._validation.duplicate_rows(X)]``).
"""
from __future__ import annotations

import numpy as np
import torch

from lidutils._device import to_numpy
from lidutils._validation import check_k, check_representation
from lidutils.neighbors import knn

__all__ = ["lid_mle", "lid_mom", "lid_mada", "lid_profile", "lid_twonn", "DEFAULT_KS"]

#: Neighbourhood sizes of the local-to-global scale analysis of the paper.
DEFAULT_KS = (5, 10, 20, 50, 100, 200, 500, 1000)

_ESTIMATORS = ("mle", "mom", "mada")


# ----------------------------------------------------------------------------- helpers
def _prepare(X, duplicates):
    """Validate ``X`` (2-D, finite, >= 3 rows, duplicates policy)."""
    return check_representation(X, name="X", min_samples=3, duplicates=duplicates)


def _check_lid_k(k, n_samples, name="k"):
    k = check_k(k, n_samples, name=name)
    if k < 2:
        raise ValueError(
            f"{name}={k}: LID estimators compare the K-th neighbour distance with the "
            f"closer ones and need {name} >= 2 (typical values are 5 to 100)."
        )
    return k


def _check_neighbors(neighbors, n_samples, k, duplicates):
    """Validate a precomputed ``(dist, idx)`` pair from :func:`lidutils.knn`."""
    try:
        dist, idx = neighbors
    except (TypeError, ValueError):
        raise ValueError(
            "neighbors must be the (dist, idx) pair returned by lidutils.knn(X, k)."
        ) from None
    if hasattr(dist, "detach"):
        dist = dist.detach().cpu().numpy()
    if hasattr(idx, "detach"):
        idx = idx.detach().cpu().numpy()
    dist, idx = np.asarray(dist, dtype=np.float64), np.asarray(idx)
    if dist.ndim != 2 or idx.shape != dist.shape:
        raise ValueError(
            f"neighbors: dist and idx must be 2-D arrays of the same shape, got "
            f"{dist.shape} and {idx.shape}."
        )
    if dist.shape[0] != n_samples:
        raise ValueError(
            f"neighbors were computed for {dist.shape[0]} points but X has {n_samples} "
            "rows (after the duplicates policy). Recompute them with "
            "lidutils.knn(X, k) on the same (deduplicated) X."
        )
    if dist.shape[1] < k:
        raise ValueError(
            f"neighbors hold {dist.shape[1]} neighbours per point but k={k} is needed; "
            f"compute them with lidutils.knn(X, {k}) or larger."
        )
    if idx.dtype.kind not in "iu" or (idx.size and (idx.min() < 0 or idx.max() >= n_samples)):
        raise ValueError(f"neighbors: idx must hold integer row indices in [0, {n_samples}).")
    if not np.isfinite(dist).all() or (dist < 0).any():
        raise ValueError("neighbors: dist must be finite and non-negative.")
    if (np.diff(dist, axis=1) < 0).any():
        raise ValueError("neighbors: dist must be sorted ascending along each row (as knn returns).")
    if (idx == np.arange(n_samples)[:, None]).any():
        raise ValueError("neighbors: idx contains the point itself; the point must be excluded.")
    if duplicates != "ignore" and (dist[:, 0] == 0).any():
        raise ValueError(
            f"neighbors: {(dist[:, 0] == 0).sum()} point(s) have a neighbour at distance 0 "
            "(duplicate points), which makes LID infinite. Deduplicate X "
            "(duplicates='drop') and recompute the neighbours."
        )
    return dist


def _distances(X, k, device, duplicates, neighbors):
    """Validated ``(n_samples, >= k)`` float64 neighbour distances of ``X``."""
    X = _prepare(X, duplicates)
    k = _check_lid_k(k, X.shape[0])
    if neighbors is not None:
        return _check_neighbors(neighbors, X.shape[0], k, duplicates), k
    dist, _ = knn(X, k, device=device, duplicates="ignore")
    return dist, k


def _mle_from_dist(logd, k):
    """Levina–Bickel MLE from log-distances ``logd[:, :k]`` (torch, float64)."""
    logratio = logd[:, k - 1:k] - logd[:, :k - 1]  # log(T_K / T_j), j < K
    return (k - 1) / logratio.sum(1)


def _mom_from_dist(d, k):
    """Method-of-moments estimate from distances ``d[:, :k]`` (torch, float64)."""
    mu = d[:, :k].mean(1)
    return mu / (d[:, k - 1] - mu)


def _mada_from_logd(logd, k):
    """MADA estimate from log-distances ``logd[:, :k]`` (torch, float64)."""
    return np.log(2.0) / (logd[:, k - 1] - logd[:, k // 2 - 1])


# ----------------------------------------------------------------------------- public API
def lid_mle(X, k=20, device="auto", duplicates="error", neighbors=None):
    """Per-point Levina–Bickel maximum-likelihood local intrinsic dimension.

    .. math::

        \\hat m_K(x) = \\Bigl[\\frac{1}{K-1} \\sum_{j=1}^{K-1}
        \\log \\frac{T_K(x)}{T_j(x)}\\Bigr]^{-1}

    (Levina & Bickel 2005, with the :math:`K-1` normalisation of their paper and of
    MacKay & Ghahramani's note). This equals scikit-dimension's
    ``skdim.id.MLE().fit(X, n_neighbors=K).dimension_pw_`` (its defaults
    ``unbiased=False``, ``dnoise=None``, ``neighborhood_based=True``); its
    ``unbiased=True`` option uses :math:`K-2` instead, i.e. multiplies by
    :math:`(K-2)/(K-1)`.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Representation (rows = stimuli). Must be finite, with at least 3 rows.
    k : int, default=20
        Neighbourhood size :math:`K`, ``2 <= k <= n_samples - 1``.
    device : {"auto", "cpu", "cuda"} or torch.device
        Where the neighbour search runs.
    duplicates : {"error", "drop", "ignore"}, default="error"
        Exact duplicate rows give infinite LID; see the module docstring.
    neighbors : tuple (dist, idx), optional
        Precomputed ``lidutils.knn(X, k')`` result with ``k' >= k`` columns;
        only the first ``k`` columns are used, so one search serves many ``k``.

    Returns
    -------
    lid : ndarray of shape (n_samples,)
        Per-point estimates. The paper's dataset-level LID is ``lid.mean()``.
    """
    dist, k = _distances(X, k, device, duplicates, neighbors)
    d = torch.as_tensor(np.ascontiguousarray(dist[:, :k]), dtype=torch.float64)
    return to_numpy(_mle_from_dist(torch.log(d), k))


def lid_mom(X, k=20, device="auto", duplicates="error", neighbors=None):
    """Per-point method-of-moments local intrinsic dimension (Amsaleg et al. 2015/2018).

    With :math:`\\mu(x) = \\frac{1}{K}\\sum_{j=1}^{K} T_j(x)` the mean of the
    :math:`K` neighbour distances (the :math:`K`-th included),

    .. math:: \\hat m_K(x) = -\\frac{\\mu(x)}{\\mu(x) - T_K(x)} = \\frac{\\mu(x)}{T_K(x) - \\mu(x)} ,

    from :math:`E[T \\mid T \\le w] = w\\, m/(m+1)` for locally uniform density. Equals
    ``skdim.id.MOM().fit(X, n_neighbors=K).dimension_pw_``.

    Parameters and returns as in :func:`lid_mle`.
    """
    dist, k = _distances(X, k, device, duplicates, neighbors)
    d = torch.as_tensor(np.ascontiguousarray(dist[:, :k]), dtype=torch.float64)
    return to_numpy(_mom_from_dist(d, k))


def lid_mada(X, k=20, device="auto", duplicates="error", neighbors=None):
    """Per-point manifold-adaptive dimension estimate, MADA (Farahmand, Szepesvári & Audibert 2007).

    The probability mass of a ball of radius :math:`r` around :math:`x` grows as
    :math:`r^{m}`; comparing the radii that hold :math:`K` and :math:`\\lfloor K/2 \\rfloor`
    neighbours (half the mass) gives

    .. math:: \\hat m_K(x) = \\frac{\\log 2}{\\log\\bigl(T_K(x) / T_{\\lfloor K/2 \\rfloor}(x)\\bigr)} .

    Equals ``skdim.id.MADA().fit(X, n_neighbors=K).dimension_pw_`` (which uses
    :math:`\\lfloor K/2 \\rfloor` for odd ``K``); at ``K = 2`` it is the per-point
    TwoNN ratio :math:`\\log 2 / \\log(T_2/T_1)`. A point with
    :math:`T_K = T_{\\lfloor K/2 \\rfloor}` (ties) gets ``inf``. Noisier per point than
    :func:`lid_mle` (two distances instead of ``K``); the paper's App. G uses it as a
    robustness check.

    Parameters and returns as in :func:`lid_mle`.
    """
    dist, k = _distances(X, k, device, duplicates, neighbors)
    logd = torch.log(torch.as_tensor(np.ascontiguousarray(dist[:, :k]), dtype=torch.float64))
    return to_numpy(_mada_from_logd(logd, k))


def lid_profile(X, ks=DEFAULT_KS, estimator="mle", device="auto", duplicates="error",
                neighbors=None):
    """Per-point LID at several neighbourhood sizes from a single neighbour search.

    The local-to-global scale analysis of the paper: small ``k`` probes the local
    geometry, large ``k`` approaches the global dimension. One exact kNN search at
    ``max(ks)`` is done and every ``k`` reuses its first ``k`` columns, so
    ``lid_profile(X, ks)[k]`` is identical to ``lid_mle(X, k)`` (or ``lid_mom``, ``lid_mada``)
    at a fraction of the cost of one search per ``k``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    ks : sequence of int, default=(5, 10, 20, 50, 100, 200, 500, 1000)
        Neighbourhood sizes, each ``2 <= k <= n_samples - 1``. A ``k`` that is too
        large for ``X`` raises ``ValueError`` naming the largest allowed value
        (no silent clipping: filter them, e.g. ``[k for k in ks if k < len(X)]``).
    estimator : {"mle", "mom", "mada"}, default="mle"
        :func:`lid_mle`, :func:`lid_mom` or :func:`lid_mada`.
    device, duplicates, neighbors :
        As in :func:`lid_mle`; ``neighbors`` needs at least ``max(ks)`` columns.

    Returns
    -------
    profile : dict {int: ndarray of shape (n_samples,)}
        Per-point estimates for each distinct ``k``, in the order given.
    """
    if estimator not in _ESTIMATORS:
        raise ValueError(f"estimator must be one of {_ESTIMATORS}, got {estimator!r}.")
    if isinstance(ks, (int, np.integer)):
        ks = [ks]
    ks = list(dict.fromkeys(ks))
    if not ks:
        raise ValueError("ks must contain at least one neighbourhood size.")
    X = _prepare(X, duplicates)
    n = X.shape[0]
    for kk in ks:
        try:
            _check_lid_k(kk, n, name="k")
        except ValueError as err:
            raise ValueError(
                f"ks contains {kk!r}, invalid for {n} samples: {err} "
                f"The largest allowed k is {n - 1}."
            ) from None
    kmax = max(int(kk) for kk in ks)
    if neighbors is not None:
        dist = _check_neighbors(neighbors, n, kmax, duplicates)
    else:
        dist, _ = knn(X, kmax, device=device, duplicates="ignore")
    d = torch.as_tensor(np.ascontiguousarray(dist[:, :kmax]), dtype=torch.float64)
    ks = [int(kk) for kk in ks]
    return {kk: to_numpy(v) for kk, v in zip(ks, _profile_kernel(d, ks, estimator))}


def _profile_kernel(d, ks, estimator):
    """Every ``k`` of a profile from one pass over the sorted distances ``d`` (torch, float64).

    The logs are taken and summed once: with the row reference
    :math:`r_j = \\log T_j - \\log T_{K_{max}}` (small numbers, no cancellation) and
    :math:`S_K = \\sum_{j \\le K} r_j`, the MLE is
    :math:`\\hat m_K = (K-1) / ((K-1) r_K - S_{K-1})`. Same
    values as :func:`lid_mle` / :func:`lid_mom` / :func:`lid_mada` per ``k`` (to rounding,
    about 1e-14), with ``O(n K_max)`` work in all instead of ``O(n \\sum K)``.
    """
    kmax = d.shape[1]
    if estimator == "mom":
        return [_mom_from_dist(d, k) for k in ks]  # a mean per k: cheap, kept as in lid_mom
    logd = torch.log(d)
    if estimator == "mada":
        return [_mada_from_logd(logd, k) for k in ks]
    r = logd - logd[:, kmax - 1:kmax]  # <= 0; a zero distance gives -inf as in lid_mle
    csum = torch.cumsum(r, dim=1)
    return [(k - 1) / ((k - 1) * r[:, k - 1] - csum[:, k - 2]) for k in ks]


def lid_twonn(X, discard_fraction=0.1, device="auto", duplicates="error", neighbors=None):
    """Global intrinsic dimension by TwoNN (Facco, d'Errico, Rodriguez & Laio 2017).

    For every point :math:`\\mu_i = T_2(x_i) / T_1(x_i)`, which follows the Pareto law
    :math:`F(\\mu) = 1 - \\mu^{-d}`, so :math:`-\\log(1 - F(\\mu)) = d \\log \\mu`.
    With the ratios sorted, :math:`\\mu_{(1)} \\le \\dots \\le \\mu_{(N)}`, the largest
    ``discard_fraction`` of them are discarded (keep :math:`n = \\lfloor N(1 - f)\\rfloor`),
    the empirical CDF is :math:`F_{emp}(\\mu_{(i)}) = i / N`, and :math:`d` is the
    least-squares slope through the origin

    .. math::

        \\hat d = \\frac{\\sum_{i \\le n} x_i y_i}{\\sum_{i \\le n} x_i^2}, \\qquad
        x_i = \\log \\mu_{(i)},\\; y_i = -\\log(1 - i/N) ,

    exactly as DADApy's ``Data(X).compute_id_2NN()`` (``algorithm="base"``,
    ``mu_fraction = 1 - discard_fraction``) and scikit-dimension's
    ``TwoNN(discard_fraction)``. The largest ratio is always left out (at most
    :math:`n = N - 1`), because :math:`y_N = -\\log 0` is infinite; with
    ``discard_fraction=0`` the two references fail or return ``inf`` instead.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    discard_fraction : float in [0, 1), default=0.1
        Fraction of the largest ratios discarded (they are dominated by noise and
        density variation).
    device, duplicates :
        As in :func:`lid_mle`.
    neighbors : tuple (dist, idx), optional
        Precomputed ``lidutils.knn(X, k)`` result with ``k >= 2`` columns.

    Returns
    -------
    d : float
    """
    if not 0 <= discard_fraction < 1:
        raise ValueError(f"discard_fraction must be in [0, 1), got {discard_fraction!r}.")
    X = _prepare(X, duplicates)
    n = X.shape[0]
    if neighbors is not None:
        dist = _check_neighbors(neighbors, n, 2, duplicates)[:, :2]
    else:
        dist, _ = knn(X, 2, device=device, duplicates="ignore")
    if (dist[:, 0] == 0).any():  # only reachable with duplicates="ignore"
        raise ValueError(
            f"{(dist[:, 0] == 0).sum()} point(s) have a duplicate (T_1 = 0), so r2/r1 is "
            "undefined; use duplicates='drop' or 'error'."
        )
    n_keep = min(int(n * (1 - discard_fraction)), n - 1)  # y_N = -log(0) is infinite
    if n_keep < 2:
        raise ValueError(
            f"Only {n_keep} ratio(s) left after discarding {discard_fraction:.0%} of {n} "
            "points; TwoNN needs more samples."
        )
    d = torch.as_tensor(dist, dtype=torch.float64)
    x = torch.sort(torch.log(d[:, 1] / d[:, 0])).values[:n_keep]
    y = -torch.log1p(-torch.arange(1, n_keep + 1, dtype=torch.float64) / n)
    return float((x * y).sum() / (x * x).sum())
