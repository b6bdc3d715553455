"""Cortical surface maps: values on challenge-space vertices to fsaverage5, and a correlation per vertex.

Array in, array out (no knowledge of the book): :func:`to_fsaverage5` places per-vertex
values of the Algonauts-2023 challenge space on the fsaverage5 mesh for plotting;
:func:`vertexwise_corr` correlates a per-model score with each vertex's values across
models (the paper tier draws C7 as such a map).
"""
from __future__ import annotations

import numpy as np

from lidutils.standins import N_FSAVERAGE5


def to_fsaverage5(values, fsaverage_index):
    """Values on challenge-space vertices -> an fsaverage5 texture (10 242 per hemisphere).

    fsaverage5's vertices are the first 10 242 of fsaverage (icosahedral
    subdivision keeps the coarser vertices first), so a challenge vertex whose
    fsaverage index is below 10 242 *is* an fsaverage5 vertex; the others have no
    fsaverage5 counterpart and are left out. Vertices without a value are NaN.

    Parameters
    ----------
    values : array-like (n_challenge_vertices,)
    fsaverage_index : array-like (n_challenge_vertices,)
        fsaverage vertex of each value (``load_algonauts2023(...).fsaverage_index[hemi]``).

    Returns
    -------
    ndarray (10242,) float64
    """

    values = np.asarray(values, dtype=np.float64).ravel()
    idx = np.asarray(fsaverage_index).ravel()
    if values.shape != idx.shape:
        raise ValueError(f"values has {values.size} entries but fsaverage_index has {idx.size}: give one "
                         "fsaverage vertex per value (the challenge-space vertex order).")
    out = np.full(N_FSAVERAGE5, np.nan)
    keep = idx < N_FSAVERAGE5
    out[idx[keep]] = values[keep]
    return out


def vertexwise_corr(x, Y):
    """Pearson correlation across models between a model score and each vertex's value.

    .. math:: r_v = \\frac{\\sum_m (x_m - \\bar x)(Y_{mv} - \\bar Y_v)}
                         {\\sqrt{\\sum_m (x_m - \\bar x)^2 \\sum_m (Y_{mv} - \\bar Y_v)^2}}

    C7 as a map: ``x`` = each model's mean LID, ``Y[m, v]`` = model ``m``'s held-out
    R² at vertex ``v``.

    Parameters
    ----------
    x : array-like (n_models,)
    Y : array-like (n_models, n_vertices)

    Returns
    -------
    r : ndarray (n_vertices,)
        NaN where a vertex has a NaN value or no variance across models.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim != 2 or Y.shape[0] != x.size:
        raise ValueError(f"Y must be (n_models, n_vertices) with n_models = len(x) = {x.size}, got {Y.shape}.")
    if x.size < 3:
        raise ValueError(f"a correlation across models needs at least 3 models, got {x.size}.")
    xc = x - x.mean()
    Yc = Y - Y.mean(0)
    den = np.sqrt((xc @ xc) * (Yc * Yc).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (xc @ Yc) / np.where(den > 0, den, 1.0), np.nan)
