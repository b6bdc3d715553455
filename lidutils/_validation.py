"""Input checks shared by every estimator.

Every public function that takes a representation funnels it through
:func:`check_representation`, so bad input fails early with a message that says
what is wrong and how to fix it, instead of a silent NaN or inf downstream.
"""
from __future__ import annotations

import warnings

import numpy as np

DUPLICATE_POLICIES = ("error", "drop", "ignore")


def as_2d_float(X, name="X"):
    """Return ``X`` as a C-contiguous 2-D float array (float32 kept, else float64).

    Accepts numpy arrays, array-likes and torch tensors.
    """
    if hasattr(X, "detach"):  # torch tensor
        X = X.detach().cpu().numpy()
    X = np.asarray(X)
    if X.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be numeric, got dtype {X.dtype}.")
    if X.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_samples, n_features), got "
            f"{X.ndim}-D shape {X.shape}. Reshape it, e.g. X.reshape(len(X), -1)."
        )
    if X.dtype != np.float32:
        X = X.astype(np.float64, copy=False)
    return np.ascontiguousarray(X)


def check_finite(X, name="X"):
    """Raise ``ValueError`` naming how many rows hold NaN or inf."""
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(
            f"{name} has {bad.sum()} row(s) with NaN or inf values (first: "
            f"{rows[:5].tolist()}). Remove or impute them before estimating."
        )


def duplicate_rows(X):
    """Boolean mask marking every exact repeat of an earlier row of ``X``."""
    _, first = np.unique(X, axis=0, return_index=True)
    mask = np.ones(len(X), dtype=bool)
    mask[first] = False
    return mask


def handle_duplicates(X, policy="error", name="X"):
    """Apply the duplicate-point policy.

    Exact duplicate points have zero neighbour distance, which makes
    ``log(T_K / T_j)`` infinite (the MLE then collapses to 0, silently, in
    scikit-dimension).
    Here the caller chooses:

    - ``"error"`` (default): raise ``ValueError`` with the count;
    - ``"drop"``: keep the first copy of each point and warn with the count
      (per-point outputs then refer to the kept rows, see :func:`duplicate_rows`);
    - ``"ignore"``: do nothing (only for callers that handle ties themselves).
    """
    if policy not in DUPLICATE_POLICIES:
        raise ValueError(f"duplicates must be one of {DUPLICATE_POLICIES}, got {policy!r}.")
    if policy == "ignore":
        return X
    dup = duplicate_rows(X)
    n_dup = int(dup.sum())
    if n_dup == 0:
        return X
    if policy == "error":
        raise ValueError(
            f"{name} has {n_dup} exact duplicate row(s): their neighbour distances are "
            "zero and the log-distance ratios of LID estimators become infinite. Pass "
            "duplicates='drop' to keep one copy of each point, or deduplicate first "
            "(np.unique(X, axis=0))."
        )
    warnings.warn(f"Dropped {n_dup} exact duplicate row(s) of {name}.", stacklevel=3)
    return X[~dup]


def check_representation(X, name="X", min_samples=3, duplicates="error"):
    """Validate one representation: 2-D, numeric, finite, enough rows, duplicates policy."""
    X = as_2d_float(X, name)
    if X.shape[0] < min_samples:
        raise ValueError(f"{name} needs at least {min_samples} samples, got {X.shape[0]}.")
    if X.shape[1] < 1:
        raise ValueError(f"{name} has no features (shape {X.shape}).")
    check_finite(X, name)
    return handle_duplicates(X, duplicates, name)


def check_k(k, n_samples, name="k"):
    """``k`` must be an integer with ``1 <= k < n_samples`` (self is excluded)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {k!r}.")
    if k < 1:
        raise ValueError(f"{name} must be >= 1, got {k}.")
    if k >= n_samples:
        raise ValueError(
            f"{name}={k} but only {n_samples} samples: each point has at most "
            f"{n_samples - 1} neighbours (self excluded). Use {name} <= {n_samples - 1}."
        )
    return int(k)


def check_paired(A, B, names=("A", "B")):
    """Two representations of the same stimuli must have the same number of rows."""
    if A.shape[0] != B.shape[0]:
        raise ValueError(
            f"{names[0]} has {A.shape[0]} rows but {names[1]} has {B.shape[0]}: "
            "alignment compares representations of the same stimuli in the same order."
        )
