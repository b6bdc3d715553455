"""Representational alignment between two representations of the same stimuli.

Metrics (rows of ``A`` and ``B`` are the same N stimuli, in the same order):

- :func:`mutual_knn` -- mutual k-nearest-neighbour overlap (Huh et al. 2024,
  *The Platonic Representation Hypothesis*);
- :func:`linear_cka` -- linear centred kernel alignment (Kornblith et al. 2019),
  optionally with the unbiased HSIC estimator (Song et al. 2012);
- :func:`ridge_alignment` -- the paper's metric: cross-validated ridge R² between
  the top principal components of the two representations;
- :func:`rdm` / :func:`rsa` -- representational dissimilarity matrices and their
  rank correlation (Kriegeskorte et al. 2008); defined in :mod:`lidutils.rsatools`
  and re-exported here;
- :func:`alignment_matrix` -- all pairs of a dict of representations as a DataFrame.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from lidutils._device import resolve_device, to_tensor
from lidutils._validation import as_2d_float, check_finite, check_k, check_paired, check_representation
from lidutils.neighbors import knn
from lidutils.ridge import DEFAULT_ALPHAS, pca_fit_transform, r2_columns, r2_weighted, ridge_cv_predict
from lidutils.rsatools import rdm, RDM_METRICS, rsa, RSA_METHODS

METRICS = ("mutual_knn", "cka", "ridge", "rsa")


# --------------------------------------------------------------------------- mutual kNN

def _normalise_rows(X, center=True):
    """Optionally centre the columns, then scale every row to unit L2 norm."""
    X = np.asarray(X, dtype=np.float64)
    if center:
        X = X - X.mean(0, keepdims=True)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    if (norms == 0).any():
        bad = np.flatnonzero(norms[:, 0] == 0)
        raise ValueError(
            f"{len(bad)} row(s) have zero norm after {'centring' if center else 'loading'} "
            f"(first: {bad[:5].tolist()}); their direction is undefined. Remove them"
            + (" or pass center=False." if center else ".")
        )
    return X / norms


def mutual_knn_neighbors(X, k=10, device="auto", center=True):
    """Neighbour indices used by :func:`mutual_knn` for one representation.

    Rows are (optionally) centred, L2-normalised, and their ``k`` nearest
    neighbours found by exact Euclidean search (equivalently, highest cosine
    similarity), the point itself excluded. Compute once per representation and pass
    ``neighbors=(idx_a, idx_b)`` to :func:`mutual_knn` to compare many pairs.

    Returns
    -------
    idx : ndarray (N, k), int64
    """
    X = check_representation(X, "X", duplicates="ignore")
    k = check_k(k, X.shape[0])
    _, idx = knn(_normalise_rows(X, center), k, device=device)
    return idx


def mutual_knn(A, B, k=10, device="auto", neighbors=None, center=True):
    """Mutual k-nearest-neighbour alignment (Huh et al. 2024).

    .. math:: m_{kNN}(A, B) = \\frac{1}{N} \\sum_{i=1}^{N} \\frac{|\\mathcal N^A_k(i) \\cap \\mathcal N^B_k(i)|}{k}

    where :math:`\\mathcal N^A_k(i)` is the set of the ``k`` nearest neighbours of
    stimulus ``i`` (itself excluded) among the L2-normalised rows of ``A``, i.e. by
    cosine similarity as in Huh et al. Ranges over [0, 1]; 1 means identical
    neighbourhoods. For unrelated representations the expected value is the chance
    level ``k / (N - 1)``.

    **Centring.** With ``center=True`` (default) the columns are centred before the
    rows are normalised, so the score is invariant to rotation, isotropic scaling
    *and translation* ``A -> s A Q + t`` of either representation. Huh et al.
    normalise without centring; ``center=False`` reproduces that exactly (then a
    translation does change the neighbourhoods).

    Parameters
    ----------
    A, B : array-like (N, D_a), (N, D_b)
        Representations of the same N stimuli.
    k : int
        Neighbourhood size, ``1 <= k < N``.
    device : {"auto", "cpu", "cuda"}
    neighbors : tuple (idx_a, idx_b), optional
        Precomputed neighbour indices of shape (N, >= k) from
        :func:`mutual_knn_neighbors`, nearest first; only the first ``k`` columns
        are used. ``A`` and ``B`` are then ignored (they may be None).
    center : bool
        Centre columns before L2 normalisation (see above).

    Returns
    -------
    float
    """
    if neighbors is None:
        A = check_representation(A, "A", duplicates="ignore")
        B = check_representation(B, "B", duplicates="ignore")
        check_paired(A, B)
        k = check_k(k, A.shape[0])
        ia = mutual_knn_neighbors(A, k, device, center)
        ib = mutual_knn_neighbors(B, k, device, center)
    else:
        if len(neighbors) != 2:
            raise ValueError("neighbors must be a pair (idx_a, idx_b) of index arrays.")
        ia, ib = (np.asarray(n) for n in neighbors)
        if ia.ndim != 2 or ib.ndim != 2 or ia.shape[0] != ib.shape[0]:
            raise ValueError(
                f"neighbors must be two 2-D index arrays with the same number of rows, got "
                f"shapes {ia.shape} and {ib.shape}."
            )
        k = check_k(k, ia.shape[0])
        if min(ia.shape[1], ib.shape[1]) < k:
            raise ValueError(
                f"k={k} but the precomputed neighbours have only "
                f"{min(ia.shape[1], ib.shape[1])} columns; recompute them with k >= {k}."
            )
    ia, ib = ia[:, :k], ib[:, :k]
    # |N_A(i) ∩ N_B(i)|: neighbour lists hold distinct indices, so count equal pairs
    overlap = (ia[:, :, None] == ib[:, None, :]).sum(axis=(1, 2))
    return float(overlap.mean() / k)


# --------------------------------------------------------------------------- CKA

def _unbiased_hsic(A, B):
    """Unbiased linear HSIC (Song et al. 2012) in feature space, O(N D) memory.

    With K = A Aᵀ, L = B Bᵀ and K̃, L̃ their copies with zeroed diagonals,

    HSIC_u = [tr(K̃L̃) + (1ᵀK̃1)(1ᵀL̃1)/((n-1)(n-2)) - 2/(n-2) 1ᵀK̃L̃1] / (n(n-3)),

    using tr(K̃L̃) = ||BᵀA||_F² - Σ_i k_i l_i (k_i = ||a_i||², l_i = ||b_i||²),
    K̃1 = A(Aᵀ1) - k.
    """
    n = A.shape[0]
    ka, kb = (A * A).sum(1), (B * B).sum(1)
    tr = (B.T @ A).pow(2).sum() - (ka * kb).sum()
    Kt1 = A @ A.sum(0) - ka
    Lt1 = B @ B.sum(0) - kb
    return (tr + Kt1.sum() * Lt1.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (Kt1 @ Lt1)) / (n * (n - 3))


def linear_cka(A, B, debiased=False, device="auto"):
    """Linear centred kernel alignment (Kornblith et al. 2019).

    With column-centred :math:`A` (N x D_a) and :math:`B` (N x D_b),

    .. math:: \\mathrm{CKA}(A, B) = \\frac{\\lVert B^\\top A \\rVert_F^2}
              {\\lVert A^\\top A \\rVert_F \\, \\lVert B^\\top B \\rVert_F}
              = \\frac{\\mathrm{HSIC}(K, L)}{\\sqrt{\\mathrm{HSIC}(K, K)\\,\\mathrm{HSIC}(L, L)}},

    the feature-space form of the kernel form with :math:`K = AA^\\top`,
    :math:`L = BB^\\top`, :math:`\\mathrm{HSIC}(K, L) = \\operatorname{tr}(KHLH)`. The
    feature form is used when both ``D`` are at most ``N``, the kernel form
    otherwise (same value, cheaper). Invariant to orthogonal transforms and
    isotropic scaling of either representation; ``CKA(A, A) = 1``.

    ``debiased=True`` replaces HSIC by the unbiased estimator of Song et al. (2012)
    (as in Kornblith's reference code), computed in feature space in O(N D)
    memory; it removes the positive bias of CKA for ``D`` comparable to ``N``, so
    that independent representations score about 0 (it can be slightly negative).
    Needs ``N >= 4``.

    Returns
    -------
    float
    """
    A = check_representation(A, "A", min_samples=4 if debiased else 2, duplicates="ignore")
    B = check_representation(B, "B", min_samples=4 if debiased else 2, duplicates="ignore")
    check_paired(A, B)
    dev = resolve_device(device)
    At = to_tensor(A, dev, torch.float64)
    Bt = to_tensor(B, dev, torch.float64)
    At = At - At.mean(0, keepdim=True)
    Bt = Bt - Bt.mean(0, keepdim=True)
    if debiased:
        num = _unbiased_hsic(At, Bt)
        den = torch.sqrt(_unbiased_hsic(At, At) * _unbiased_hsic(Bt, Bt))
    elif max(A.shape[1], B.shape[1]) <= A.shape[0]:
        num = (Bt.T @ At).pow(2).sum()
        den = torch.linalg.norm(At.T @ At) * torch.linalg.norm(Bt.T @ Bt)
    else:
        K, L = At @ At.T, Bt @ Bt.T  # already centred: HKH = K
        num = (K * L).sum()
        den = torch.linalg.norm(K) * torch.linalg.norm(L)
    den = float(den)
    if not den > 0:
        raise ValueError(
            "CKA is undefined: a representation has zero variance after centring"
            + (" (or a non-positive unbiased HSIC; use more samples)" if debiased else "") + "."
        )
    return float(num) / den


# --------------------------------------------------------------------------- ridge

def outer_folds(n, n_folds, seed):
    """Shuffled outer folds as (train, test) index arrays; depends only on (n, n_folds, seed)."""
    perm = np.random.default_rng(seed).permutation(n)
    return [(np.setdiff1d(perm, test), test) for test in np.array_split(perm, n_folds)]


def fold_pcs(X, folds, n_pcs, device):
    """Per outer fold, (train PCs, test PCs) of X with PCs fitted on the training rows."""
    return [pca_fit_transform(X[tr], X[te], n_pcs, device=device) for tr, te in folds]


def _ridge_from_pcs(src, tgt, alphas, inner_folds, seed, score, device):
    """Mean over outer folds of the held-out R² of predicting tgt PCs from src PCs."""
    grid = None if alphas is None else np.asarray(alphas, dtype=float)
    scores = []
    for f, ((Xtr, Xte), (Ytr, Yte)) in enumerate(zip(src, tgt)):
        P = ridge_cv_predict(Xtr, Ytr, Xte, alphas=grid, inner_folds=inner_folds, seed=seed + f,
                             device=device)
        scores.append(r2_weighted(Yte, P) if score == "weighted" else float(np.nanmean(r2_columns(Yte, P))))
    return float(np.mean(scores))


def check_ridge_args(n, n_pcs, n_folds, score):
    if score not in ("weighted", "mean"):
        raise ValueError(f"score must be 'weighted' or 'mean', got {score!r}.")
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ValueError(f"n_folds must be an integer >= 2, got {n_folds!r}.")
    if n < 2 * n_folds:
        raise ValueError(f"n_folds={n_folds} needs at least {2 * n_folds} stimuli, got {n}.")
    if isinstance(n_pcs, bool) or not isinstance(n_pcs, (int, np.integer)) or n_pcs < 1:
        raise ValueError(f"n_pcs must be a positive integer, got {n_pcs!r}.")


def ridge_alignment(A, B, n_pcs=300, n_folds=5, alphas=None, seed=0, return_directions=False,
                    device="auto", inner_folds=5, score="weighted"):
    """Cross-validated ridge-regression alignment between two representations (the paper's metric).

    For each of ``n_folds`` outer folds over the stimuli (shuffled with ``seed``):

    1. fit the top ``q`` principal components of the source and, separately, of the
       target on the **training** stimuli only and project training and held-out
       stimuli on them (:func:`lidutils.ridge.pca_fit_transform`), with
       ``q = min(n_pcs, n_train - 1, D)`` (a centred training fold of ``n_train``
       rows has rank ``<= n_train - 1``);
    2. regress target PCs on source PCs by ridge, alpha chosen by ``inner_folds``-fold
       CV inside the training fold (one shared alpha, :func:`lidutils.ridge.ridge_cv_predict`;
       by default a relative grid ``1e-4 ... 1e5`` times the mean eigenvalue of
       the source Gram matrix, so the score does not depend on feature scale);
    3. score the held-out predictions by the **variance-weighted** R²

       .. math:: R^2 = 1 - \\frac{\\sum_{t}\\sum_{i\\in\\text{test}} (y_{it}-\\hat y_{it})^2}
                              {\\sum_t \\sum_{i\\in\\text{test}} (y_{it}-\\bar y_t)^2},

       the fraction of the target's held-out variance (within its top PCs) that is
       explained. This weights each target PC by its variance, so the hundreds of
       low-variance, noise-dominated trailing PCs cannot dominate the score as they
       would in an unweighted mean of per-PC R², and it is invariant to the
       (arbitrary) rotation of the target PC basis. ``score="mean"`` gives the
       unweighted mean over target PCs instead.

    The fold scores are averaged. Ridge is asymmetric, so both directions are
    computed; the default return value is their mean.

    Parameters
    ----------
    A, B : array-like (N, D_a), (N, D_b)
        Representations of the same N stimuli.
    n_pcs : int
        Principal components kept per representation (300 in the paper).
    n_folds : int
        Outer cross-validation folds (>= 2).
    alphas : array-like, optional
        Absolute alpha grid; default relative grid (see step 2).
    seed : int
        Seed of the outer and inner fold shuffles.
    return_directions : bool
        Return ``{"a_to_b", "b_to_a", "mean"}`` instead of the mean.
    device : {"auto", "cpu", "cuda"}
    inner_folds : int
        Inner CV folds for alpha.
    score : {"weighted", "mean"}

    Returns
    -------
    float, or dict if ``return_directions``
    """
    A = check_representation(A, "A", duplicates="ignore")
    B = check_representation(B, "B", duplicates="ignore")
    check_paired(A, B)
    check_ridge_args(A.shape[0], n_pcs, n_folds, score)
    folds = outer_folds(A.shape[0], n_folds, seed)
    pa, pb = fold_pcs(A, folds, n_pcs, device), fold_pcs(B, folds, n_pcs, device)
    common = (alphas, inner_folds, seed, score, device)
    return _ridge_result(_ridge_from_pcs(pa, pb, *common), _ridge_from_pcs(pb, pa, *common), return_directions)


def _ridge_result(ab, ba, return_directions):
    res = {"a_to_b": float(ab), "b_to_a": float(ba)}
    res["mean"] = 0.5 * (res["a_to_b"] + res["b_to_a"])
    return res if return_directions else res["mean"]


# --------------------------------------------------------------------------- all pairs

def alignment_matrix(reps, metric="mutual_knn", **kwargs):
    """Pairwise alignment of a dict of representations, as a labelled DataFrame.

    Parameters
    ----------
    reps : dict[str, array-like]
        Representations of the same N stimuli (same row order), by name.
    metric : {"mutual_knn", "cka", "ridge", "rsa"}
        - ``"mutual_knn"``: :func:`mutual_knn`; the neighbour search runs **once per
          representation** (kwargs ``k``, ``device``, ``center``), not once per pair;
        - ``"cka"``: :func:`linear_cka` (kwargs ``debiased``, ``device``);
        - ``"ridge"``: :func:`ridge_alignment` (its kwargs). Ridge is asymmetric:
          entry ``[a, b]`` is the R² of predicting ``b`` from ``a`` (row = source,
          column = target). The outer folds are shared by all pairs and the
          principal components are fitted **once per representation and fold**,
          not once per pair. The diagonal is ``a -> a`` (close to, not exactly, 1);
        - ``"rsa"``: one RDM per representation (kwarg ``rdm_metric``, default
          ``"correlation"``), then :func:`rsa` (kwarg ``method``, default Spearman).

    Returns
    -------
    pandas.DataFrame (n_reps, n_reps)
        Symmetric for ``mutual_knn``, ``cka`` and ``rsa``. ``df.attrs["metric"]``
        records the metric and, for ridge, the row -> column convention.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}.")
    if not isinstance(reps, dict) or len(reps) < 1:
        raise ValueError("reps must be a non-empty dict {name: (N, D) array}.")
    names = list(reps)
    arrays = {}
    for name in names:
        X = as_2d_float(reps[name], name)
        check_finite(X, name)
        arrays[name] = X
    n_rows = {name: X.shape[0] for name, X in arrays.items()}
    if len(set(n_rows.values())) != 1:
        raise ValueError(f"All representations must have the same stimuli (rows); got {n_rows}.")
    M = np.full((len(names), len(names)), np.nan)

    if metric == "mutual_knn":
        k = kwargs.pop("k", 10)
        device = kwargs.pop("device", "auto")
        center = kwargs.pop("center", True)
        _no_extra(kwargs, metric)
        idx = {n: mutual_knn_neighbors(arrays[n], k, device, center) for n in names}
        pair = lambda a, b: mutual_knn(None, None, k=k, neighbors=(idx[a], idx[b]))  # noqa: E731
        symmetric = True
    elif metric == "cka":
        pair = lambda a, b: linear_cka(arrays[a], arrays[b], **kwargs)  # noqa: E731
        symmetric = True
    elif metric == "rsa":
        rdm_metric = kwargs.pop("rdm_metric", "correlation")
        method = kwargs.pop("method", "spearman")
        device = kwargs.pop("device", "auto")
        _no_extra(kwargs, metric)
        rdms = {n: rdm(arrays[n], rdm_metric, device=device) for n in names}
        pair = lambda a, b: rsa(rdms[a], rdms[b], method)  # noqa: E731
        symmetric = True
    else:
        opts = {"n_pcs": 300, "n_folds": 5, "alphas": None, "seed": 0, "device": "auto",
                "inner_folds": 5, "score": "weighted"}
        unknown = set(kwargs) - set(opts)
        if unknown:
            raise ValueError(f"Unexpected keyword argument(s) for metric='ridge': {sorted(unknown)}.")
        opts.update(kwargs)
        n = next(iter(n_rows.values()))
        check_ridge_args(n, opts["n_pcs"], opts["n_folds"], opts["score"])
        folds = outer_folds(n, opts["n_folds"], opts["seed"])
        # PCs once per representation and fold, reused by every pair
        pcs = {nm: fold_pcs(arrays[nm], folds, opts["n_pcs"], opts["device"]) for nm in names}
        common = (opts["alphas"], opts["inner_folds"], opts["seed"], opts["score"], opts["device"])
        symmetric = False

    for i, a in enumerate(names):
        for j in range(i, len(names)):
            b = names[j]
            if symmetric:
                M[i, j] = M[j, i] = pair(a, b)
            elif i == j:
                M[i, i] = _ridge_from_pcs(pcs[a], pcs[a], *common)
            else:
                M[i, j] = _ridge_from_pcs(pcs[a], pcs[b], *common)
                M[j, i] = _ridge_from_pcs(pcs[b], pcs[a], *common)
    df = pd.DataFrame(M, index=names, columns=names)
    df.attrs["metric"] = metric
    if metric == "ridge":
        df.attrs["note"] = "entry [a, b] = held-out R^2 of predicting b (column) from a (row)"
    return df


def _no_extra(kwargs, metric):
    if kwargs:
        raise ValueError(f"Unexpected keyword argument(s) for metric={metric!r}: {sorted(kwargs)}.")


__all__ = ["mutual_knn", "mutual_knn_neighbors", "linear_cka", "ridge_alignment", "rdm", "rsa",
           "alignment_matrix", "DEFAULT_ALPHAS"]
