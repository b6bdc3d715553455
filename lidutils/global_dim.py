"""Global (whole-dataset) dimension measures of a representation.

All spectral measures use the eigenvalues :math:`\\lambda_1 \\ge \\lambda_2 \\ge \\dots`
of the sample covariance of the centered data :math:`X_c = X - \\bar x`,
:math:`\\Sigma = X_c^\\top X_c / (N - 1)`, and the singular values
:math:`\\sigma_i = \\sqrt{(N-1)\\lambda_i}` of :math:`X_c`. They are obtained with
one ``torch.linalg.eigvalsh`` of the smaller of the two Gram matrices
(:math:`X_c^\\top X_c` if :math:`D \\le N`, else :math:`X_c X_c^\\top`), in float64
on the CPU or on CUDA (``device="auto"``).

The paper contrasts these *global* measures (and LID at very large :math:`K`)
with the *local* LID at small :math:`K` (:mod:`lidutils.lid`).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from lidutils._device import resolve_device, to_numpy, to_tensor
from lidutils._validation import check_representation
from lidutils.lid import lid_twonn

__all__ = ["global_dims", "participation_ratio", "covariance_spectrum",
           "effective_rank", "pca_n_components", "spectrum_alpha"]

#: Default 1-based, inclusive rank range of the power-law fit (Stringer et al. 2019
#: fit ranks 11..500 of neural spectra; rank 10 on is past the few leading modes).
DEFAULT_ALPHA_RANKS = (10, 500)


def covariance_spectrum(X, device="auto"):
    """Eigenvalues of the sample covariance of ``X``, descending.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    device : {"auto", "cpu", "cuda"} or torch.device

    Returns
    -------
    eigvals : ndarray of shape (min(n_samples, n_features),)
        :math:`\\lambda_1 \\ge \\lambda_2 \\ge \\dots \\ge 0` (tiny negative round-off
        clipped to 0). Because the data are centered, at most ``n_samples - 1`` are
        non-zero.
    """
    X = check_representation(X, name="X", min_samples=2, duplicates="ignore")
    return _spectrum(X, resolve_device(device))


def _spectrum(X, dev):
    Xt = to_tensor(X, dev, torch.float64)
    Xt = Xt - Xt.mean(0, keepdim=True)
    n, D = Xt.shape
    gram = Xt.T @ Xt if D <= n else Xt @ Xt.T
    lam = torch.linalg.eigvalsh(gram).flip(0).clamp_min(0) / (n - 1)
    return to_numpy(lam)


def participation_ratio(X, device="auto"):
    """Participation ratio of the covariance spectrum.

    .. math:: \\mathrm{PR} = \\frac{\\left(\\sum_i \\lambda_i\\right)^2}{\\sum_i \\lambda_i^2}

    It equals :math:`d` for data spread isotropically in :math:`d` dimensions and
    lies between 1 and ``min(N - 1, D)``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    device : {"auto", "cpu", "cuda"} or torch.device

    Returns
    -------
    pr : float
    """
    return _pr(covariance_spectrum(X, device))


def _pr(lam):
    total = lam.sum()
    if total <= 0:
        raise ValueError("X has zero variance: all rows are identical.")
    return float(total ** 2 / (lam ** 2).sum())


def effective_rank(eigvals):
    """Roy & Vetterli (2007) effective rank from covariance eigenvalues.

    With the singular values :math:`\\sigma_i \\propto \\sqrt{\\lambda_i}` of the
    centered data and :math:`p_i = \\sigma_i / \\sum_j \\sigma_j`,

    .. math:: \\mathrm{erank} = \\exp\\Bigl(-\\sum_i p_i \\log p_i\\Bigr)

    (with :math:`0 \\log 0 = 0`); the normalisation makes the scale (and hence the
    :math:`N-1` factor) irrelevant.
    """
    s = np.sqrt(np.clip(np.asarray(eigvals, dtype=np.float64), 0, None))
    if s.sum() <= 0:
        raise ValueError("X has zero variance: all rows are identical.")
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def pca_n_components(eigvals, variance=0.9):
    """Smallest :math:`n` with :math:`\\sum_{i \\le n} \\lambda_i \\ge` ``variance`` :math:`\\cdot \\sum_i \\lambda_i`."""
    if not 0 < variance <= 1:
        raise ValueError(f"variance must be in (0, 1], got {variance!r}.")
    lam = np.asarray(eigvals, dtype=np.float64)
    frac = np.cumsum(lam) / lam.sum()
    # tolerance so that e.g. exactly 90 % (up to round-off) counts as reached
    return int(np.searchsorted(frac, variance - 1e-12) + 1)


def spectrum_alpha(eigvals, ranks=DEFAULT_ALPHA_RANKS):
    """Power-law exponent :math:`\\alpha` of a covariance spectrum, :math:`\\lambda_n \\propto n^{-\\alpha}`.

    Ordinary least squares of :math:`\\log \\lambda_n` on :math:`\\log n` over the
    1-based, inclusive rank range ``ranks = (lo, hi)``:

    .. math:: \\log \\lambda_n = c - \\alpha \\log n, \\qquad lo \\le n \\le hi_{eff}

    where :math:`hi_{eff} = \\min(hi, \\lfloor r / 2 \\rfloor)` and :math:`r` is the
    number of eigenvalues above :math:`10^{-10}\\lambda_1` (the numerical rank,
    :math:`\\le \\min(N-1, D)`): the last half of a sample spectrum is biased by the
    finite number of samples and by numerical zeros, so it is excluded. If fewer than
    3 ranks remain the result is ``nan`` with a warning.

    Returns
    -------
    alpha : float
    """
    lam = np.asarray(eigvals, dtype=np.float64)
    lo, hi = ranks
    if not (isinstance(lo, (int, np.integer)) and isinstance(hi, (int, np.integer)) and 1 <= lo < hi):
        raise ValueError(f"ranks must be integers (lo, hi) with 1 <= lo < hi, got {ranks!r}.")
    r = int((lam > 1e-10 * lam[0]).sum()) if lam.size and lam[0] > 0 else 0
    hi_eff = min(hi, r // 2)
    if hi_eff - lo + 1 < 3:
        warnings.warn(
            f"spectrum_alpha: only ranks {lo}..{hi_eff} are usable (numerical rank {r}); "
            "need at least 3, returning nan. Use more samples or a lower ranks[0].",
            stacklevel=2,
        )
        return float("nan")
    n = np.arange(lo, hi_eff + 1)
    slope = np.polyfit(np.log(n), np.log(lam[lo - 1:hi_eff]), 1)[0]
    return float(-slope)


def global_dims(X, variance=0.9, alpha_ranks=DEFAULT_ALPHA_RANKS, discard_fraction=0.1,
                device="auto", duplicates="error"):
    """All global dimension measures of one representation.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Finite, at least 3 rows.
    variance : float, default=0.9
        Explained-variance threshold of ``pca_n90``.
    alpha_ranks : (int, int), default=(10, 500)
        Rank range of the power-law fit, see :func:`spectrum_alpha`.
    discard_fraction : float, default=0.1
        Passed to :func:`lidutils.lid.lid_twonn`.
    device : {"auto", "cpu", "cuda"} or torch.device
    duplicates : {"error", "drop", "ignore"}, default="error"
        Duplicate rows make TwoNN undefined (see :mod:`lidutils.lid`).

    Returns
    -------
    dims : dict
        - ``participation_ratio``: :math:`(\\sum\\lambda_i)^2 / \\sum\\lambda_i^2`;
        - ``effective_rank``: :math:`\\exp(-\\sum p_i \\log p_i)`,
          :math:`p_i = \\sigma_i/\\sum_j\\sigma_j` (Roy & Vetterli 2007);
        - ``pca_n90``: number of principal components explaining ``variance`` of the
          total variance (key name fixed even if ``variance`` differs);
        - ``twonn``: TwoNN global ID (Facco et al. 2017);
        - ``alpha``: power-law exponent of the eigenspectrum over ``alpha_ranks``.
    """
    X = check_representation(X, name="X", min_samples=3, duplicates=duplicates)
    dev = resolve_device(device)
    lam = _spectrum(X, dev)
    return {
        "participation_ratio": _pr(lam),
        "effective_rank": effective_rank(lam),
        "pca_n90": pca_n_components(lam, variance),
        "twonn": lid_twonn(X, discard_fraction=discard_fraction, device=dev,
                           duplicates="ignore"),
        "alpha": spectrum_alpha(lam, alpha_ranks),
    }
