"""Ridge regression engine: SVD-based, many alphas for the price of one, chunked targets.

Shared core of :func:`lidutils.alignment.ridge_alignment` (model -> model) and of
voxelwise encoding models (model -> fMRI, 10^4-10^5 targets).

Model
-----
With training features ``X`` (n x p) and targets ``Y`` (n x T), both centred with
their **training** means (this fits an unpenalised intercept, as
``sklearn.linear_model.Ridge(fit_intercept=True)`` does), ridge regression solves

.. math:: \\hat W_\\alpha = \\arg\\min_W \\lVert Y_c - X_c W \\rVert_F^2 + \\alpha \\lVert W \\rVert_F^2
          = V\\, \\mathrm{diag}\\!\\left(\\frac{s}{s^2 + \\alpha}\\right) U^\\top Y_c ,

where :math:`X_c = U\\,\\mathrm{diag}(s)\\,V^\\top` is the thin SVD. Predictions for new
rows :math:`X^*` are

.. math:: \\hat Y^* = \\bar y + (X^* - \\bar x)\\, V\\, \\mathrm{diag}\\!\\left(\\frac{s}{s^2+\\alpha}\\right) U^\\top Y_c .

The SVD, :math:`U^\\top Y_c` and :math:`(X^*-\\bar x)V` are computed once; each extra
alpha costs one diagonal scaling and one ``(n* x r) @ (r x T)`` product, so a grid
of 20 alphas costs little more than one fit. Targets are processed in chunks of
``target_chunk`` columns, so memory stays bounded for tens of thousands of voxels.

Alpha selection
---------------
``ridge_cv_predict`` chooses alpha by inner K-fold cross-validation on the
training set only: for every inner fold and alpha it computes the held-out R² of
every target (:func:`r2_columns`). With ``alpha_per_target=False`` the alpha with
the best mean inner R² (averaged over folds and targets) is shared by all
targets; with ``alpha_per_target=True`` each target gets the alpha that maximises
its own mean inner R². The model is then refitted on the full training set.

All arithmetic is float64, on every device (the H100/H200 class GPUs run float64
at full speed; on consumer GPUs pass ``device="cpu"`` if float64 is slow).
"""
from __future__ import annotations

import numpy as np
import torch

from lidutils._device import resolve_device, to_numpy, to_tensor
from lidutils._validation import as_2d_float, check_finite

#: Default alpha grid, **relative** to the mean squared singular value of the
#: centred training features (``alphas=None``). Relative alphas make the fit
#: invariant to the overall scale of ``X``; explicit ``alphas`` are absolute.
DEFAULT_ALPHAS = 10.0 ** np.arange(-4.0, 5.5, 0.5)

DEFAULT_TARGET_CHUNK = 4096
_ALPHA_BLOCK_BYTES = 256 * 2**20  # predictions for a block of alphas held at once


# --------------------------------------------------------------------------- checks

def _check_xy(X_train, Y_train, X_test):
    X_train = as_2d_float(X_train, "X_train")
    Y_train = _as_targets(Y_train, "Y_train")
    X_test = as_2d_float(X_test, "X_test")
    for arr, name in ((X_train, "X_train"), (Y_train, "Y_train"), (X_test, "X_test")):
        check_finite(arr, name)
    if X_train.shape[0] != Y_train.shape[0]:
        raise ValueError(
            f"X_train has {X_train.shape[0]} rows but Y_train has {Y_train.shape[0]}: "
            "features and targets must describe the same training stimuli in the same order."
        )
    if X_test.shape[1] != X_train.shape[1]:
        raise ValueError(
            f"X_test has {X_test.shape[1]} features but X_train has {X_train.shape[1]}; "
            "project both with the same transform (e.g. pca_fit_transform)."
        )
    if X_train.shape[0] < 2:
        raise ValueError(f"Ridge needs at least 2 training samples, got {X_train.shape[0]}.")
    return X_train, Y_train, X_test


def _as_targets(Y, name):
    if hasattr(Y, "detach"):
        Y = Y.detach().cpu().numpy()
    Y = np.asarray(Y)
    if Y.ndim == 1:
        Y = Y[:, None]
    return as_2d_float(Y, name)


def _check_alphas(alphas, allow_zero=True):
    a = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"alphas must be a non-empty 1-D sequence, got shape {a.shape}.")
    if not np.isfinite(a).all() or (a < 0).any() or (not allow_zero and (a == 0).any()):
        raise ValueError(f"alphas must be finite and {'>=' if allow_zero else '>'} 0, got {a}.")
    return a


# --------------------------------------------------------------------------- core

class _SVDFit:
    """Thin SVD of the centred training features, with the test rows projected on V."""

    def __init__(self, X_train, X_test, rtol=1e-12):
        self.x_mean = X_train.mean(0, keepdim=True)
        U, s, Vh = torch.linalg.svd(X_train - self.x_mean, full_matrices=False)
        keep = s > rtol * max(float(s[0]), np.finfo(float).tiny) if s.numel() else s > 0
        self.U, self.s = U[:, keep], s[keep]
        self.XtV = (X_test - self.x_mean) @ Vh[keep].T  # (n_test, r)

    def mean_sq_sv(self, n_features):
        """Mean eigenvalue of X_c^T X_c over the p features: ||X_c||_F^2 / p."""
        return float((self.s ** 2).sum()) / n_features

    def project_targets(self, Y):
        """(U^T Y_c, y_mean) for a chunk of training targets."""
        y_mean = Y.mean(0, keepdim=True)
        return self.U.T @ (Y - y_mean), y_mean

    def predict(self, UtY, y_mean, alpha):
        """Predictions for one scalar alpha, or one alpha per target (1-D tensor)."""
        s = self.s
        if torch.is_tensor(alpha) and alpha.ndim == 1:  # per-target alphas: (r, T) shrinkage
            d = s[:, None] / (s[:, None] ** 2 + alpha[None, :])
            return self.XtV @ (d * UtY) + y_mean
        d = s / (s ** 2 + float(alpha))
        return (self.XtV * d) @ UtY + y_mean


    def cv_r2(self, UtY, y_mean, Y_val, alphas, block_bytes):
        """Held-out R² (n_alphas, T) of every alpha, alphas batched within ``block_bytes``."""
        sst = ((Y_val - Y_val.mean(0, keepdim=True)) ** 2).sum(0)
        step = max(1, int(block_bytes // (8 * max(1, Y_val.numel()))))
        out = []
        for i in range(0, alphas.numel(), step):
            a = alphas[i:i + step]
            d = self.s[None, :] / (self.s[None, :] ** 2 + a[:, None])  # (b, r)
            P = (self.XtV[None] * d[:, None, :]) @ UtY + y_mean  # (b, n_val, T)
            out.append(1.0 - ((Y_val[None] - P) ** 2).sum(1) / sst)
        r2 = torch.cat(out)
        return torch.where(sst > 0, r2, torch.full_like(r2, float("nan")))


def _chunks(n, size):
    size = max(1, int(size))
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


# --------------------------------------------------------------------------- public API

def ridge_predict(X_train, Y_train, X_test, alpha, device="auto", target_chunk=DEFAULT_TARGET_CHUNK):
    """Ridge predictions for a fixed ``alpha`` (scalar, or one value per target).

    .. math:: \\hat Y^* = \\bar y + (X^*-\\bar x) V \\operatorname{diag}(s/(s^2+\\alpha)) U^\\top (Y-\\bar y)

    Identical to ``sklearn.linear_model.Ridge(alpha, fit_intercept=True)``; ``alpha=0``
    gives the minimum-norm least-squares fit (singular values below ``1e-12 s_max``
    are dropped).

    Parameters
    ----------
    X_train : array-like (n_train, p)
    Y_train : array-like (n_train, T) or (n_train,)
    X_test : array-like (n_test, p)
    alpha : float or array-like of shape (T,)
        Absolute ridge penalty (>= 0).
    device : {"auto", "cpu", "cuda"}
    target_chunk : int
        Number of target columns processed at once (bounds memory).

    Returns
    -------
    Y_pred : ndarray (n_test, T), float64
    """
    X_train, Y_train, X_test = _check_xy(X_train, Y_train, X_test)
    a = _check_alphas(alpha)
    T = Y_train.shape[1]
    if a.size not in (1, T):
        raise ValueError(f"alpha must be a scalar or have one value per target ({T}), got {a.size}.")
    dev = resolve_device(device)
    dt = torch.float64
    fit = _SVDFit(to_tensor(X_train, dev, dt), to_tensor(X_test, dev, dt))
    out = np.empty((X_test.shape[0], T))
    for sl in _chunks(T, target_chunk):
        UtY, ym = fit.project_targets(to_tensor(Y_train[:, sl], dev, dt))
        al = float(a[0]) if a.size == 1 else to_tensor(a[sl], dev, dt)
        out[:, sl] = to_numpy(fit.predict(UtY, ym, al))
    return out


def ridge_cv_predict(X_train, Y_train, X_test, alphas=None, inner_folds=5, alpha_per_target=False,
                     device="auto", target_chunk=DEFAULT_TARGET_CHUNK, seed=0, return_info=False):
    """Ridge predictions with alpha chosen by inner K-fold cross-validation.

    For each of ``inner_folds`` shuffled folds of the **training** rows, the model is
    fitted on the other folds (one SVD per fold) and the held-out R² of every target
    is computed for every alpha (:func:`r2_columns`, held-out-fold mean). The chosen
    alpha maximises the mean inner R² -- over folds and targets (shared alpha,
    ``alpha_per_target=False``) or over folds for each target separately. The model
    is then refitted on all training rows (centred with the training means, i.e.
    with an unpenalised intercept) and applied to ``X_test``:

    .. math:: \\hat Y^* = \\bar y + (X^*-\\bar x) V \\operatorname{diag}(s/(s^2+\\alpha^\\star)) U^\\top (Y-\\bar y)

    Parameters
    ----------
    X_train : array-like (n_train, p)
        Training features (e.g. principal components fitted on the training fold).
    Y_train : array-like (n_train, T) or (n_train,)
        Training targets (model PCs, or fMRI voxels).
    X_test : array-like (n_test, p)
        Held-out features.
    alphas : array-like, optional
        Absolute alpha grid. ``None`` (default) uses :data:`DEFAULT_ALPHAS`
        (``1e-4 ... 1e5``) multiplied by ``||X_c||_F^2 / p``, the mean eigenvalue of
        ``X_cᵀX_c`` of the full training set, which makes the result invariant to the
        scale of ``X``.
    inner_folds : int
        Number of inner folds (>= 2); every inner held-out fold needs >= 2 rows.
    alpha_per_target : bool
        One alpha per target column instead of one shared alpha.
    device : {"auto", "cpu", "cuda"}
    target_chunk : int
        Target columns processed at once. Peak memory is about
        ``8 * target_chunk * (n_train + n_test + n_alphas)`` bytes beyond the SVDs,
        plus at most 256 MiB of held-out predictions for a block of alphas.
    seed : int
        Seed of the inner fold shuffle.
    return_info : bool
        Also return a dict with ``alpha`` (float, or (T,) array), ``alphas`` (grid
        used, absolute) and ``cv_r2`` (mean inner R² per alpha, shape (n_alphas,), or
        (n_alphas, T) when ``alpha_per_target``).

    Returns
    -------
    Y_pred : ndarray (n_test, T), float64
    info : dict, only if ``return_info``
    """
    X_train, Y_train, X_test = _check_xy(X_train, Y_train, X_test)
    n, p = X_train.shape
    T = Y_train.shape[1]
    if isinstance(inner_folds, bool) or not isinstance(inner_folds, (int, np.integer)) or inner_folds < 2:
        raise ValueError(f"inner_folds must be an integer >= 2, got {inner_folds!r}.")
    if n < 2 * inner_folds:
        raise ValueError(
            f"inner_folds={inner_folds} needs at least {2 * inner_folds} training rows (>= 2 per "
            f"held-out fold), got {n}. Use fewer inner folds or more data."
        )
    dev = resolve_device(device)
    dt = torch.float64
    Xtr = to_tensor(X_train, dev, dt)
    full = _SVDFit(Xtr, to_tensor(X_test, dev, dt))
    if alphas is None:
        grid = DEFAULT_ALPHAS * max(full.mean_sq_sv(p), np.finfo(float).tiny)
    else:
        grid = _check_alphas(alphas)

    grid_t = torch.as_tensor(grid, dtype=dt, device=dev)
    # inner folds: one SVD each, reused for every target chunk and alpha
    perm = np.random.default_rng(seed).permutation(n)
    folds = []
    for val in np.array_split(perm, inner_folds):
        tr = np.setdiff1d(perm, val)
        vt, tt = torch.as_tensor(val, device=dev), torch.as_tensor(tr, device=dev)
        folds.append((tt, vt, _SVDFit(Xtr[tt], Xtr[vt])))

    # pass 1: inner-CV R^2 for every alpha and target (n_alphas x T, small)
    score = np.zeros((grid.size, T))
    count = np.zeros((grid.size, T))
    for sl in _chunks(T, target_chunk):
        Ych = to_tensor(Y_train[:, sl], dev, dt)
        for tt, vt, fit in folds:
            UtY, ym = fit.project_targets(Ych[tt])
            Yv = Ych[vt]
            r2 = to_numpy(fit.cv_r2(UtY, ym, Yv, grid_t, _ALPHA_BLOCK_BYTES))
            ok = np.isfinite(r2)
            score[:, sl] += np.where(ok, r2, 0.0)
            count[:, sl] += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        per_target = score / count  # NaN where a target was constant in every inner fold
    if alpha_per_target:
        filled = np.where(np.isfinite(per_target), per_target, -np.inf)
        best = np.argmax(filled, axis=0)
        best[~np.isfinite(per_target).any(0)] = grid.size - 1  # no signal: strongest shrinkage
        chosen = grid[best]
        cv_r2 = per_target
    else:
        with np.errstate(invalid="ignore"):
            cv_r2 = (np.nanmean(per_target, axis=1) if np.isfinite(per_target).any()
                     else np.full(grid.size, np.nan))
        best = int(np.nanargmax(cv_r2)) if np.isfinite(cv_r2).any() else grid.size - 1
        chosen = float(grid[best])

    # pass 2: refit on all training rows with the chosen alpha(s)
    out = np.empty((X_test.shape[0], T))
    for sl in _chunks(T, target_chunk):
        UtY, ym = full.project_targets(to_tensor(Y_train[:, sl], dev, dt))
        al = to_tensor(chosen[sl], dev, dt) if alpha_per_target else chosen
        out[:, sl] = to_numpy(full.predict(UtY, ym, al))
    if return_info:
        return out, {"alpha": chosen, "alphas": grid, "cv_r2": cv_r2}
    return out


def r2_columns(Y_true, Y_pred):
    """Per-column coefficient of determination on held-out data.

    .. math:: R^2_t = 1 - \\frac{\\sum_i (y_{it} - \\hat y_{it})^2}{\\sum_i (y_{it} - \\bar y_t)^2}

    where :math:`\\bar y_t` is the mean of column ``t`` of ``Y_true`` **itself** (the
    held-out fold), as in ``sklearn.metrics.r2_score(..., multioutput="raw_values")``.
    A prediction equal to the training mean therefore scores slightly below 0.
    R² can be negative (worse than the held-out mean); columns that are constant in
    ``Y_true`` get NaN.

    Returns
    -------
    r2 : ndarray (T,)
    """
    Yt, Yp = _as_targets(Y_true, "Y_true"), _as_targets(Y_pred, "Y_pred")
    if Yt.shape != Yp.shape:
        raise ValueError(f"Y_true has shape {Yt.shape} but Y_pred has shape {Yp.shape}.")
    check_finite(Yt, "Y_true")
    check_finite(Yp, "Y_pred")
    sse = ((Yt - Yp) ** 2).sum(0)
    sst = ((Yt - Yt.mean(0)) ** 2).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sst > 0, 1.0 - sse / np.where(sst > 0, sst, 1.0), np.nan)


def r2_weighted(Y_true, Y_pred):
    """Variance-weighted R² over columns: the fraction of total held-out variance explained.

    .. math:: R^2_w = 1 - \\frac{\\sum_t \\sum_i (y_{it} - \\hat y_{it})^2}{\\sum_t \\sum_i (y_{it} - \\bar y_t)^2}

    Equal to the mean of :func:`r2_columns` weighted by each column's held-out
    variance (``sklearn`` ``multioutput="variance_weighted"``). Invariant to an
    orthogonal rotation of the target columns.
    """
    Yt, Yp = _as_targets(Y_true, "Y_true"), _as_targets(Y_pred, "Y_pred")
    if Yt.shape != Yp.shape:
        raise ValueError(f"Y_true has shape {Yt.shape} but Y_pred has shape {Yp.shape}.")
    sst = float(((Yt - Yt.mean(0)) ** 2).sum())
    if sst <= 0:
        return float("nan")
    return 1.0 - float(((Yt - Yp) ** 2).sum()) / sst


def pca_fit_transform(train, test, n_pcs, device="auto", return_variance=False):
    """Principal components fitted on the training rows only, applied to both sets.

    With :math:`X_c = X_{train} - \\bar x_{train} = U \\operatorname{diag}(s) V^\\top`,

    .. math:: Z_{train} = X_c V_{:, :q}, \\qquad Z_{test} = (X_{test} - \\bar x_{train}) V_{:, :q} .

    ``q = min(n_pcs, n_train - 1, n_features)``: a centred training set of ``n``
    rows has rank at most ``n - 1``, so more components would be pure numerical
    noise. Component signs are those of the SVD (arbitrary); ridge predictions
    and R² do not depend on them.

    Parameters
    ----------
    train : array-like (n_train, p)
    test : array-like (n_test, p)
    n_pcs : int (>= 1)
    device : {"auto", "cpu", "cuda"}
    return_variance : bool
        Also return the training variance of each kept component, ``s**2 / (n-1)``.

    Returns
    -------
    train_pcs : ndarray (n_train, q)
    test_pcs : ndarray (n_test, q)
    variance : ndarray (q,), only if ``return_variance``
    """
    train, test = as_2d_float(train, "train"), as_2d_float(test, "test")
    check_finite(train, "train")
    check_finite(test, "test")
    if train.shape[1] != test.shape[1]:
        raise ValueError(f"train has {train.shape[1]} features but test has {test.shape[1]}.")
    if train.shape[0] < 2:
        raise ValueError(f"PCA needs at least 2 training rows, got {train.shape[0]}.")
    if isinstance(n_pcs, bool) or not isinstance(n_pcs, (int, np.integer)) or n_pcs < 1:
        raise ValueError(f"n_pcs must be a positive integer, got {n_pcs!r}.")
    q = int(min(n_pcs, train.shape[0] - 1, train.shape[1]))
    dev = resolve_device(device)
    Xtr = to_tensor(train, dev, torch.float64)
    mean = Xtr.mean(0, keepdim=True)
    _, s, Vh = torch.linalg.svd(Xtr - mean, full_matrices=False)
    V = Vh[:q].T
    ztr = to_numpy((Xtr - mean) @ V)
    zte = to_numpy((to_tensor(test, dev, torch.float64) - mean) @ V)
    if return_variance:
        return ztr, zte, to_numpy(s[:q] ** 2) / (train.shape[0] - 1)
    return ztr, zte
