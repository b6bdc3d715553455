"""Voxelwise encoding models: model features -> fMRI, scored by held-out R².

The paper's model-brain alignment (C2, C7): for every voxel (or surface vertex)
of an ROI, predict its responses to images from a model's representation of the
same images with ridge regression, and score the prediction on held-out images.

Recipe (:func:`encoding_alignment`)
-----------------------------------
1. Outer ``n_folds``-fold split of the images (shuffled with ``seed``).
2. In each outer fold, the top ``n_pcs`` principal components of the features are
   fitted on the **training** images only and applied to both sets
   (:func:`lidutils.ridge.pca_fit_transform`; no test information leaks).
3. Ridge regression from the PCs to every voxel, alpha chosen by inner K-fold CV
   on the training images only - one alpha per voxel (``alpha_per_voxel=True``,
   the paper's recipe) or one shared by all voxels - then refitted on all
   training images (:func:`lidutils.ridge.ridge_cv_predict`, the shared SVD ridge
   engine; a grid of alphas costs about one fit).
4. Held-out R² of each voxel in each outer fold, with the held-out fold's own mean:

   .. math:: R^2_{v,f} = 1 - \\frac{\\sum_{i \\in f} (y_{iv} - \\hat y_{iv})^2}
                                    {\\sum_{i \\in f} (y_{iv} - \\bar y_{v,f})^2}

   and the voxel's score is the **mean over outer folds**,
   :math:`R^2_v = \\frac{1}{F}\\sum_f R^2_{v,f}` (as ``sklearn``'s
   ``cross_val_score``). Averaging per-fold R² (instead of pooling out-of-fold
   predictions) means no full ``(n_images, n_voxels)`` prediction matrix is ever
   kept. With no signal, R² is slightly negative (about ``-p/n_train``), never
   inflated.

Voxels are processed in chunks of ``voxel_chunk`` columns: with the per-voxel
alpha, memory is ``O(n_images * voxel_chunk)`` beyond the data (each chunk is an
independent ridge problem, so results do not depend on the chunk size); with a
shared alpha, the alpha must be chosen over all voxels at once, so one fold's
held-out predictions ``(n_test, n_voxels)`` float64 are held in host memory
(device memory stays bounded by the chunk).

Noise ceiling (:func:`split_half_noise_ceiling`)
------------------------------------------------
With two independent measurements (halves of the repeats) of each image, the
split-half reliability of voxel ``v`` is the Pearson correlation across images
:math:`r_v = \\mathrm{corr}(y^{(1)}_v, y^{(2)}_v)`, and the Spearman-Brown
prophecy gives the reliability of their average (the data a model is scored on):

.. math:: \\rho_v = \\frac{2 r_v}{1 + r_v} .

Reliability is the fraction of the averaged response's variance that is
reproducible signal, :math:`\\rho = \\sigma_s^2 / (\\sigma_s^2 + \\sigma_e^2/2)`,
and the best possible predictor (the signal itself) reaches
:math:`R^2 = \\mathrm{corr}^2(\\text{data}, \\text{signal}) = \\rho`. So the noise
ceiling **in R² units is** :math:`\\rho_v` **itself** (not :math:`\\rho_v^2`; the
squared version would be the ceiling of a squared correlation between two noisy
measurements). See Spearman (1910), Brown (1910); Lage-Castellanos et al. (2019)
PLoS Comput Biol 15:e1006397; the NSD noise ceiling of Allen et al. (2022) is the
same quantity, estimated from the single-trial variance (ncsnr).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold
from sklearn.utils import Bunch

from lidutils._validation import as_2d_float, check_finite
from lidutils.ridge import DEFAULT_TARGET_CHUNK, pca_fit_transform, r2_columns, ridge_cv_predict

__all__ = ["encoding_alignment", "split_half_noise_ceiling", "roi_summary"]

_SUMMARIES = ("median", "mean")


def _stack_rois(Y, roi_labels):
    """Accept a dict {roi: (n, v_roi)} as Y: concatenate, derive the labels."""
    if isinstance(Y, dict):
        if roi_labels is not None:
            raise ValueError("pass roi_labels only with an array Y; a dict Y already names the ROIs.")
        if not Y:
            raise ValueError("Y is an empty dict; give at least one ROI.")
        blocks = [as_2d_float(v, f"Y[{k!r}]") for k, v in Y.items()]
        rows = {b.shape[0] for b in blocks}
        if len(rows) != 1:
            raise ValueError(f"ROIs of Y have different numbers of rows {sorted(rows)}: all must "
                             "hold the responses to the same images.")
        labels = np.concatenate([np.full(b.shape[1], str(k), dtype=object) for k, b in zip(Y, blocks)])
        return np.concatenate(blocks, axis=1), labels
    return Y, roi_labels


def _summ(a, how):
    a = np.asarray(a, dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return float("nan")
    return float(np.median(a) if how == "median" else a.mean())


def roi_summary(r2, roi_labels, summary="median", noise_ceiling=None):
    """Per-ROI summary of voxelwise R² as a DataFrame.

    Columns: ``roi``, ``n_voxels``, ``r2`` (the ``summary`` - median or mean - over
    the ROI's voxels with finite R²), ``r2_mean``, ``r2_median``, ``frac_positive``
    (share of voxels with R² > 0) and, when ``noise_ceiling`` (per voxel, R² units)
    is given, ``noise_ceiling`` (same summary) and ``r2_normalized`` = r2 / noise_ceiling
    (ratio of the two summaries; per-voxel ratios explode where the ceiling is ~0).
    Rows keep the order in which ROIs first appear in ``roi_labels``.
    """
    if summary not in _SUMMARIES:
        raise ValueError(f"summary must be one of {_SUMMARIES}, got {summary!r}.")
    r2 = np.asarray(r2, dtype=np.float64).ravel()
    labels = np.asarray(roi_labels).ravel()
    if labels.shape[0] != r2.shape[0]:
        raise ValueError(f"roi_labels has {labels.shape[0]} entries but there are {r2.shape[0]} "
                         "voxels: give one ROI label per voxel (column of Y).")
    nc = None
    if noise_ceiling is not None:
        nc = np.asarray(noise_ceiling, dtype=np.float64).ravel()
        if nc.shape != r2.shape:
            raise ValueError(f"noise_ceiling has {nc.shape[0]} entries but there are {r2.shape[0]} voxels.")
    rows = []
    for roi in pd.unique(labels):
        m = labels == roi
        fin = r2[m][np.isfinite(r2[m])]
        row = {"roi": roi, "n_voxels": int(m.sum()), "r2": _summ(r2[m], summary),
               "r2_mean": _summ(r2[m], "mean"), "r2_median": _summ(r2[m], "median"),
               "frac_positive": float((fin > 0).mean()) if fin.size else float("nan")}
        if nc is not None:
            row["noise_ceiling"] = _summ(nc[m], summary)
            row["r2_normalized"] = (row["r2"] / row["noise_ceiling"]
                                    if row["noise_ceiling"] > 0 else float("nan"))
        rows.append(row)
    return pd.DataFrame(rows)


def encoding_alignment(X, Y, n_pcs=300, n_folds=5, alphas=None, alpha_per_voxel=True, inner_folds=5,
                       voxel_chunk=DEFAULT_TARGET_CHUNK, device="auto", seed=0, roi_labels=None,
                       summary="median", noise_ceiling=None):
    """Voxelwise encoding-model alignment: held-out R² of ridge from model PCs to each voxel.

    See the module docstring for the full recipe and formulas: outer K-fold over
    images; PCA of ``X`` fitted on the training fold only; ridge with alpha chosen
    by inner CV (per voxel or shared); held-out R² per voxel and fold, averaged
    over the outer folds.

    Parameters
    ----------
    X : array-like (n_images, n_features)
        Model representation of the images (rows in the same order as ``Y``).
    Y : array-like (n_images, n_voxels), or dict {roi: (n_images, n_roi_voxels)}
        fMRI responses (e.g. ``load_algonauts2023(...).fmri``; a dict is concatenated
        and its keys become ``roi_labels``). May be a ``np.memmap``: only voxel
        chunks are read at a time.
    n_pcs : int
        Number of principal components of ``X`` (the paper: 300); capped at
        ``min(n_train - 1, n_features)``.
    n_folds : int
        Outer folds (>= 2).
    alphas : array-like, optional
        Absolute alpha grid; ``None`` uses the scale-free default grid of
        :func:`lidutils.ridge.ridge_cv_predict`.
    alpha_per_voxel : bool
        One alpha per voxel (default) or one shared alpha per outer fold.
    inner_folds : int
        Inner CV folds for alpha selection.
    voxel_chunk : int
        Voxels processed at once (bounds memory; results do not depend on it).
    device : {"auto", "cpu", "cuda"}
        Torch device of the PCA and ridge (float64 on every device).
    seed : int
        Seed of the outer and inner fold shuffles.
    roi_labels : array-like (n_voxels,), optional
        ROI name of each voxel; adds a per-ROI ``roi_table``.
    summary : {"median", "mean"}
        Statistic of R² over voxels for ``score`` and the ROI table (default median:
        voxel R² distributions are skewed, with many near-zero voxels).
    noise_ceiling : array-like (n_voxels,), optional
        Per-voxel noise ceiling in R² units (:func:`split_half_noise_ceiling`);
        adds normalized columns to ``roi_table``.

    Returns
    -------
    Bunch with
        ``r2`` : (n_voxels,) mean held-out R² over outer folds (NaN for a voxel that
        is constant in a held-out fold);
        ``r2_folds`` : (n_folds, n_voxels);
        ``alpha`` : (n_folds, n_voxels) chosen alphas (shared alpha repeated);
        ``score`` : ``summary`` of ``r2`` over all voxels;
        ``roi_table`` : DataFrame from :func:`roi_summary`, or None;
        ``n_pcs`` : number of PCs actually used (per fold, the minimum);
        ``summary``.
    """
    Y, roi_labels = _stack_rois(Y, roi_labels)
    X = as_2d_float(X, "X")
    check_finite(X, "X")
    if not isinstance(Y, np.ndarray) or Y.dtype.kind not in "fiu":
        Y = as_2d_float(Y, "Y")
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.ndim != 2:
        raise ValueError(f"Y must be 2-D (n_images, n_voxels), got shape {Y.shape}.")
    n, V = Y.shape
    if X.shape[0] != n:
        raise ValueError(f"X has {X.shape[0]} rows but Y has {n}: features and fMRI must describe "
                         "the same images in the same order.")
    if summary not in _SUMMARIES:
        raise ValueError(f"summary must be one of {_SUMMARIES}, got {summary!r}.")
    for name, val, lo in (("n_folds", n_folds, 2), ("voxel_chunk", voxel_chunk, 1), ("n_pcs", n_pcs, 1)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {val!r}.")
    if n < 2 * n_folds:
        raise ValueError(f"n_folds={n_folds} needs at least {2 * n_folds} images, got {n}.")
    if roi_labels is not None and len(roi_labels) != V:
        raise ValueError(f"roi_labels has {len(roi_labels)} entries but Y has {V} voxels.")

    r2 = np.full((n_folds, V), np.nan)
    alpha = np.full((n_folds, V), np.nan)
    used = []
    outer = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for f, (tr, te) in enumerate(outer.split(np.arange(n))):
        Ztr, Zte = pca_fit_transform(X[tr], X[te], int(n_pcs), device=device)
        used.append(Ztr.shape[1])
        kw = dict(alphas=alphas, inner_folds=inner_folds, device=device, seed=seed, return_info=True)
        if alpha_per_voxel:
            for start in range(0, V, voxel_chunk):
                sl = slice(start, min(V, start + voxel_chunk))
                P, info = ridge_cv_predict(Ztr, _rows(Y, tr, sl), Zte, alpha_per_target=True,
                                           target_chunk=voxel_chunk, **kw)
                r2[f, sl] = r2_columns(_rows(Y, te, sl), P)
                alpha[f, sl] = info["alpha"]
        else:
            P, info = ridge_cv_predict(Ztr, _rows(Y, tr, slice(None)), Zte, alpha_per_target=False,
                                       target_chunk=voxel_chunk, **kw)
            for start in range(0, V, voxel_chunk):
                sl = slice(start, min(V, start + voxel_chunk))
                r2[f, sl] = r2_columns(_rows(Y, te, sl), P[:, sl])
            alpha[f] = info["alpha"]
            del P
    with np.errstate(invalid="ignore"):
        r2_mean = r2.mean(0)  # NaN if the voxel was constant in any held-out fold
    table = None
    if roi_labels is not None:
        table = roi_summary(r2_mean, roi_labels, summary, noise_ceiling)
    return Bunch(r2=r2_mean, r2_folds=r2, alpha=alpha, score=_summ(r2_mean, summary),
                 roi_table=table, n_pcs=int(min(used)), summary=summary)


def _rows(Y, rows, cols):
    """``Y[rows, cols]`` as an in-memory array, copying only that block (also from a memmap)."""
    return np.asarray(Y[:, cols][rows])


def split_half_noise_ceiling(Y_rep1, Y_rep2, clip=False):
    """Per-voxel noise ceiling (R² units) from two independent halves of the repeats.

    .. math:: r_v = \\mathrm{corr}_{images}(y^{(1)}_v, y^{(2)}_v), \\qquad
              NC_v = \\rho_v = \\frac{2 r_v}{1 + r_v}

    ``NC_v`` is the Spearman-Brown reliability of the average of the two halves,
    i.e. the largest R² any model can reach on that average (see the module
    docstring for why it is :math:`\\rho` and not :math:`\\rho^2`). For NSD's three
    repeats, use e.g. ``Y_rep1 = betas[0]`` and ``Y_rep2 = betas[1]`` (then the
    ceiling refers to a 2-repeat average), or average disjoint repeat sets of equal
    size.

    Parameters
    ----------
    Y_rep1, Y_rep2 : array-like (n_images, n_voxels)
        Responses to the same images (same order) from disjoint repeats.
    clip : bool
        Set negative ceilings (unreliable voxels) to 0.

    Returns
    -------
    nc : ndarray (n_voxels,)
        Noise ceiling in R² units (NaN where a voxel is constant in a half).
    """
    A, B = as_2d_float(Y_rep1, "Y_rep1"), as_2d_float(Y_rep2, "Y_rep2")
    if A.shape != B.shape:
        raise ValueError(f"Y_rep1 has shape {A.shape} but Y_rep2 has shape {B.shape}: both halves "
                         "must hold the same images (rows) and voxels (columns).")
    if A.shape[0] < 3:
        raise ValueError(f"need at least 3 images to correlate the halves, got {A.shape[0]}.")
    check_finite(A, "Y_rep1")
    check_finite(B, "Y_rep2")
    A = A - A.mean(0, dtype=np.float64)
    B = B - B.mean(0, dtype=np.float64)
    den = np.sqrt((A * A).sum(0) * (B * B).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 0, (A * B).sum(0) / np.where(den > 0, den, 1.0), np.nan)
        nc = 2 * r / (1 + r)
    if clip:
        nc = np.where(np.isnan(nc), nc, np.maximum(nc, 0.0))
    return nc
