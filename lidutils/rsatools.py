"""Representational similarity analysis: RDMs, their comparison, noise ceilings and baselines.

(The module is named ``rsatools`` rather than ``rsa`` so that the flat API's function
``lidutils.rsa`` is never shadowed by a sub-module of the same name.)

- :func:`rdm` -- dissimilarity matrix of a representation (Kriegeskorte et al. 2008);
- :func:`rsa` -- correlation of two RDMs' upper triangles; :func:`rsa_many` -- every
  model against every subject in one matrix product;
- :func:`check_rdms`, :func:`upper_triangles` -- validated RDM stacks and their
  upper triangles;
- :func:`noise_ceiling` -- leave-one-subject-out noise ceiling of an RDM set (Nili et
  al. 2014), pooled as rsatoolbox pools for the chosen correlation;
- :func:`ranking_reliability` -- can the subjects' scores rank the models reliably?
- :func:`partial_rsa` with :func:`pixel_rdm` / :func:`gabor_rdm` -- model–brain
  scores with low-level image statistics partialled out;
- :func:`brain_test_informative` -- the rule that turns the two checks above into
  "this brain test can tell" or not (verdict ``"uninformative"``).

All RDMs are symmetric with a zero diagonal; the diagonal never enters a comparison.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import stats as _sstats

from lidutils._device import resolve_device, to_numpy, to_tensor
from lidutils._validation import check_representation

__all__ = ["rdm", "rsa", "rsa_many", "check_rdms", "upper_triangles", "noise_ceiling",
           "ranking_reliability", "partial_rsa", "pixel_rdm", "gabor_features", "gabor_rdm",
           "brain_test_informative", "RDM_METRICS", "RSA_METHODS", "RELIABILITY_THRESHOLD",
           "MIN_PARTIAL_SCORE"]

RDM_METRICS = ("correlation", "euclidean", "cosine")
RSA_METHODS = ("spearman", "pearson", "kendall")
_VECTOR_METHODS = ("spearman", "pearson")

#: Default of :func:`brain_test_informative`: the lower 95 % bound of the split-half
#: (Spearman–Brown) reliability of the model ranking must exceed this.
RELIABILITY_THRESHOLD = 0.5
#: Default of :func:`brain_test_informative`: some model's score with the low-level
#: baselines partialled out (mean over subjects) must reach this.
MIN_PARTIAL_SCORE = 0.05


# --------------------------------------------------------------------------- RDMs

def rdm(X, metric="correlation", device="auto"):
    """Representational dissimilarity matrix between the rows (stimuli) of ``X``.

    - ``"correlation"``: :math:`d_{ij} = 1 - r(x_i, x_j)` (Pearson r across features);
    - ``"cosine"``: :math:`d_{ij} = 1 - x_i^\\top x_j / (\\lVert x_i\\rVert \\lVert x_j\\rVert)`;
    - ``"euclidean"``: :math:`d_{ij} = \\lVert x_i - x_j \\rVert`.

    Same values as ``scipy.spatial.distance.squareform(pdist(X, metric))``; the
    result is exactly symmetric with a zero diagonal.

    Returns
    -------
    ndarray (N, N), float64
    """
    if metric not in RDM_METRICS:
        raise ValueError(f"metric must be one of {RDM_METRICS}, got {metric!r}.")
    X = check_representation(X, "X", min_samples=2, duplicates="ignore")
    dev = resolve_device(device)
    T = to_tensor(X, dev, torch.float64)
    if metric == "euclidean":
        T = T - T.mean(0, keepdim=True)
        sq = (T * T).sum(1)
        D = (sq[:, None] + sq[None, :] - 2.0 * T @ T.T).clamp_min_(0).sqrt_()
    else:
        if metric == "correlation":
            if X.shape[1] < 2:
                raise ValueError("metric='correlation' needs at least 2 features per row.")
            T = T - T.mean(1, keepdim=True)
        norms = torch.linalg.norm(T, dim=1)
        if (norms == 0).any():
            bad = torch.nonzero(norms == 0).flatten()[:5].tolist()
            raise ValueError(
                f"metric={metric!r} is undefined for rows that are "
                f"{'constant' if metric == 'correlation' else 'all zero'} (first: {bad}); "
                "remove them or use metric='euclidean'."
            )
        T = T / norms[:, None]
        D = 1.0 - T @ T.T
    D = to_numpy(0.5 * (D + D.T))
    np.fill_diagonal(D, 0.0)
    return D


def check_rdms(rdms, name="rdms", atol=1e-8):
    """Validate a stack of RDMs and return it symmetrised, shape (n, N, N), float64.

    Accepts one (N, N) matrix or an (n, N, N) stack; each must be finite, symmetric
    (to ``atol`` relative to the largest entry) with a zero diagonal and ``N >= 3``.
    """
    rdms = np.asarray(rdms, dtype=np.float64)
    if rdms.ndim == 2:
        rdms = rdms[None]
    if rdms.ndim != 3 or rdms.shape[1] != rdms.shape[2]:
        raise ValueError(f"{name} must have shape (n_subjects, N, N) of square matrices, got {rdms.shape}.")
    if rdms.shape[1] < 3:
        raise ValueError(f"{name} needs at least 3 conditions, got N={rdms.shape[1]}.")
    if not np.isfinite(rdms).all():
        bad = np.flatnonzero(~np.isfinite(rdms).all(axis=(1, 2)))
        raise ValueError(f"{name} holds NaN or inf (subjects {bad.tolist()}); remove or impute them first.")
    asym = np.abs(rdms - rdms.transpose(0, 2, 1)).max()
    if asym > atol * max(1.0, np.abs(rdms).max()):
        raise ValueError(f"{name} must be symmetric; max |R - R.T| = {asym:.3g}. Use (R + R.T) / 2 if intended.")
    diag = np.abs(np.diagonal(rdms, axis1=1, axis2=2)).max()
    if diag > atol:
        raise ValueError(f"{name} must have a zero diagonal (dissimilarity of an image with itself); max |diag| = {diag:.3g}.")
    return (rdms + rdms.transpose(0, 2, 1)) / 2


def upper_triangles(rdms):
    """Upper triangles (``i < j``, row-major as ``scipy.spatial.distance.squareform``)
    of an (n, N, N) stack, shape (n, N (N - 1) / 2)."""
    rdms = np.asarray(rdms)
    iu = np.triu_indices(rdms.shape[-1], k=1)
    return rdms[..., iu[0], iu[1]]


def _upper(R, name):
    """One RDM (square symmetric or condensed 1-D) as its upper-triangle vector."""
    R = np.asarray(R, dtype=np.float64)
    if R.ndim == 1:  # condensed form, as from scipy pdist
        return R
    if R.ndim != 2 or R.shape[0] != R.shape[1]:
        raise ValueError(f"{name} must be a square (N, N) RDM or a condensed 1-D vector, got shape {R.shape}.")
    if not np.allclose(R, R.T, rtol=1e-7, atol=1e-10, equal_nan=True):
        raise ValueError(f"{name} is not symmetric; an RDM must satisfy R[i, j] == R[j, i].")
    return upper_triangles(R)


def _vectors(rdms, name):
    """RDMs -> (n, P) upper-triangle vectors.

    Accepts one square (N, N) RDM, an (n, N, N) stack, an (n, P) array of condensed
    vectors (2-D and not square), a 1-D condensed vector, or a sequence of these.
    """
    if isinstance(rdms, (list, tuple)):
        vs = [_vectors(r, f"{name}[{i}]") for i, r in enumerate(rdms)]
        return np.concatenate(vs) if vs else np.empty((0, 0))
    R = np.asarray(rdms, dtype=np.float64)
    if R.ndim == 1:
        V = R[None]
    elif R.ndim == 2 and R.shape[0] == R.shape[1]:
        V = _upper(R, name)[None]
    elif R.ndim == 2:
        V = R
    elif R.ndim == 3 and R.shape[1] == R.shape[2]:
        iu, il = np.triu_indices(R.shape[1], k=1)
        V, Vt = R[:, iu, il], R[:, il, iu]
        if (np.abs(V - Vt) > 1e-10 + 1e-7 * np.abs(Vt)).any():  # np.allclose's rule, off the diagonal
            raise ValueError(f"{name} holds a non-symmetric matrix; an RDM must satisfy R[i, j] == R[j, i].")
    else:
        raise ValueError(f"{name} must be (N, N), (n, N, N) or condensed (n, P) RDMs, got shape {R.shape}.")
    if not np.isfinite(V).all():
        raise ValueError(f"{name} has NaN or inf off-diagonal entries; mask or impute them first.")
    flat = np.ptp(V, axis=1) == 0
    if flat.any():
        raise ValueError(f"{name} has RDM(s) constant off the diagonal (index {np.flatnonzero(flat)[:5].tolist()}); "
                         "the correlation is undefined.")
    return V


def _standardise(V, method):
    """Rows ranked (Spearman) and z-scored, divided by sqrt(P): the Pearson r of two
    rows is then their dot product."""
    if method not in _VECTOR_METHODS:
        raise ValueError(f"method must be one of {_VECTOR_METHODS}, got {method!r} "
                         "(for Kendall's tau loop over rsa()).")
    V = _sstats.rankdata(V, axis=1) if method == "spearman" else np.asarray(V, dtype=np.float64)
    V = V - V.mean(1, keepdims=True)
    return V / np.linalg.norm(V, axis=1, keepdims=True)


def rsa(rdm_a, rdm_b, method="spearman"):
    """Representational similarity analysis: correlation of two RDMs' upper triangles.

    .. math:: \\mathrm{RSA} = \\rho\\big(\\{d^A_{ij}\\}_{i<j},\\ \\{d^B_{ij}\\}_{i<j}\\big)

    with :math:`\\rho` Spearman (default), Pearson or Kendall (tau-b). The diagonal
    is excluded. Accepts square symmetric (N, N) matrices or condensed vectors.

    Returns
    -------
    float
    """
    if method not in RSA_METHODS:
        raise ValueError(f"method must be one of {RSA_METHODS}, got {method!r}.")
    a, b = _upper(rdm_a, "rdm_a"), _upper(rdm_b, "rdm_b")
    if a.shape != b.shape:
        raise ValueError(
            f"RDMs describe different numbers of stimuli ({a.size} vs {b.size} pairs); "
            "both must be built from the same stimuli."
        )
    if a.size < 3:
        raise ValueError(f"RSA needs at least 3 stimulus pairs (N >= 3), got {a.size}.")
    for v, name in ((a, "rdm_a"), (b, "rdm_b")):
        if not np.isfinite(v).all():
            raise ValueError(f"{name} has NaN or inf off-diagonal entries; mask or impute them first.")
        if np.ptp(v) == 0:
            raise ValueError(f"{name} is constant off the diagonal; the correlation is undefined.")
    fn = {"spearman": _sstats.spearmanr, "pearson": _sstats.pearsonr, "kendall": _sstats.kendalltau}[method]
    return float(fn(a, b)[0])


def rsa_many(model_rdms, subject_rdms, method="spearman"):
    """:func:`rsa` of every model RDM with every subject RDM, in one matrix product.

    The upper triangles are ranked (Spearman) once per RDM and standardised,
    :math:`\\tilde v = (v - \\bar v)/\\lVert v - \\bar v \\rVert`; then

    .. math:: S_{ms} = \\tilde v^{model}_m \\cdot \\tilde v^{subject}_s ,

    identical to ``rsa(model_rdms[m], subject_rdms[s], method)`` (to rounding,
    ~1e-16) for Pearson and Spearman.

    Parameters
    ----------
    model_rdms, subject_rdms : array-like
        One square (N, N) RDM, an (n, N, N) stack, (n, P) condensed vectors, or a
        list of these (a 2-D square array is read as one RDM).
    method : {"spearman", "pearson"}

    Returns
    -------
    ndarray (n_models, n_subjects)
    """
    A = _vectors(model_rdms, "model_rdms")
    B = _vectors(subject_rdms, "subject_rdms")
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"model and subject RDMs describe different numbers of stimulus pairs "
                         f"({A.shape[1]} vs {B.shape[1]}); both must be built from the same stimuli.")
    if A.shape[1] < 3:
        raise ValueError(f"RSA needs at least 3 stimulus pairs (N >= 3), got {A.shape[1]}.")
    return np.clip(_standardise(A, method) @ _standardise(B, method).T, -1.0, 1.0)


# --------------------------------------------------------------------------- noise ceiling

def noise_ceiling(rdms, method="spearman"):
    r"""Leave-one-subject-out noise ceiling of a set of RDMs (Nili et al., 2014).

    With :math:`v_s` the upper triangle of subject :math:`s`'s RDM, :math:`\tilde v_s`
    its pooling transform (ranks for Spearman; z-scores,
    :math:`(v_s - \bar v_s)/\sigma(v_s)`, for Pearson) and :math:`\rho` the chosen
    correlation,

    .. math::
        \text{upper} = \frac1S \sum_s \rho\Bigl(v_s, \tfrac1S \textstyle\sum_t \tilde v_t\Bigr), \qquad
        \text{lower} = \frac1S \sum_s \rho\Bigl(v_s, \tfrac{1}{S-1}\textstyle\sum_{t\ne s} \tilde v_t\Bigr).

    The pooled RDM is the one that maximises the mean correlation with the subjects
    (for Pearson the mean of z-scored RDMs, not of raw ones), exactly as rsatoolbox's
    ``pool_rdm`` / ``boot_noise_ceiling`` (``method="corr"`` / ``"spearman"``): no
    model can be expected to beat the upper bound, and a model reaching the lower
    bound explains the RDMs as well as the other subjects do.

    Parameters
    ----------
    rdms : array of shape (n_subjects, N, N)
        Symmetric, zero-diagonal dissimilarity matrices, ``n_subjects >= 2``.
    method : {"spearman", "pearson"}

    Returns
    -------
    dict
        ``lower``, ``upper`` (means), ``per_subject_lower``, ``per_subject_upper``
        (arrays), ``lower_ci95`` and ``upper_ci95`` (t-interval over subjects),
        ``n_subjects``, ``n_pairs`` (upper-triangle entries), ``method``.
    """
    rdms = check_rdms(rdms)
    S = rdms.shape[0]
    if S < 2:
        raise ValueError(f"noise_ceiling needs at least 2 subjects, got {S}.")
    if method not in _VECTOR_METHODS:
        raise ValueError(f"method must be 'spearman' or 'pearson', got {method!r}.")
    V = upper_triangles(rdms)
    # pooling transform, as rsatoolbox's pool_rdm: raw ranks (Spearman) or z-scores (Pearson)
    T = _sstats.rankdata(V, axis=1) if method == "spearman" else _sstats.zscore(V, axis=1)
    total = T.sum(axis=0)
    # correlation of each subject with a pool = dot product of standardised vectors
    Vs = _standardise(V, method)
    upper = (Vs @ _standardise((total / S)[None], method).T)[:, 0]
    lower = (Vs * _standardise((total[None] - T) / (S - 1), method)).sum(1)

    def ci(x):
        h = _sstats.t.ppf(0.975, S - 1) * x.std(ddof=1) / np.sqrt(S)
        return (float(x.mean() - h), float(x.mean() + h))

    return {
        "lower": float(lower.mean()), "upper": float(upper.mean()),
        "per_subject_lower": lower, "per_subject_upper": upper,
        "lower_ci95": ci(lower), "upper_ci95": ci(upper),
        "n_subjects": S, "n_pairs": V.shape[1], "method": method,
    }


# --------------------------------------------------------------------------- can the test tell?

def ranking_reliability(scores, n_splits=1000, seed=0, ci=0.95):
    """Split-half reliability of the model ranking across subjects.

    ``scores[m, s]`` is model ``m``'s brain score with subject ``s``. For each of
    ``n_splits`` random splits of the subjects into halves ``A`` (``S // 2``
    subjects) and ``B`` (the rest), the models' mean scores in each half are
    compared by Spearman's :math:`\\rho_{AB}` and corrected to full length by
    Spearman–Brown,

    .. math:: r_{SB} = \\frac{2 \\rho_{AB}}{1 + \\rho_{AB}} .

    Parameters
    ----------
    scores : array-like (n_models, n_subjects)
        ``n_models >= 3``, ``n_subjects >= 2``, finite.
    n_splits : int
        Random splits (drawn with replacement from the distinct splits).
    seed : int
    ci : float
        Level of the percentile interval over splits.

    Returns
    -------
    dict
        ``mean`` (mean of :math:`r_{SB}` over splits), ``ci_low``, ``ci_high``,
        ``rho_half`` (mean uncorrected :math:`\\rho_{AB}`), ``per_split`` (array),
        ``n_models``, ``n_subjects``, ``n_splits``.
    """
    X = np.asarray(scores, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"scores must be (n_models, n_subjects), got shape {X.shape}.")
    M, S = X.shape
    if M < 3 or S < 2:
        raise ValueError(f"ranking_reliability needs >= 3 models and >= 2 subjects, got {M} x {S}.")
    if not np.isfinite(X).all():
        raise ValueError("scores has NaN/inf; drop those models or subjects first.")
    if n_splits < 1:
        raise ValueError(f"n_splits must be >= 1, got {n_splits}.")
    rng = np.random.default_rng(seed)
    h = S // 2
    inA = np.argsort(rng.random((n_splits, S)), axis=1) < h  # (n_splits, S): random halves
    mA = X @ (inA / h).T                                   # (M, n_splits)
    mB = X @ (~inA / (S - h)).T
    rA, rB = _sstats.rankdata(mA, axis=0), _sstats.rankdata(mB, axis=0)
    rA -= rA.mean(0)
    rB -= rB.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (rA * rB).sum(0) / np.sqrt((rA * rA).sum(0) * (rB * rB).sum(0))
        sb = np.where(rho > -1, 2 * rho / (1 + rho), -np.inf)
    sb = np.where(np.isfinite(rho), sb, np.nan)  # a half with all-equal means has no ranking
    valid = sb[~np.isnan(sb)]
    lo, hi = (np.quantile(valid, [(1 - ci) / 2, 1 - (1 - ci) / 2]) if valid.size else (np.nan, np.nan))
    return {"mean": float(valid.mean()) if valid.size else float("nan"),
            "ci_low": float(lo), "ci_high": float(hi),
            "rho_half": float(np.nanmean(rho)) if valid.size else float("nan"),
            "per_split": sb, "n_models": M, "n_subjects": S, "n_splits": int(n_splits)}


def partial_rsa(model_rdms, brain_rdms, baseline_rdms, method="spearman"):
    """Model–brain RSA with low-level baseline RDMs partialled out.

    On the upper triangles (ranks for Spearman), model ``m``, brain ``b`` and the
    baselines :math:`Z = [1, z_1, \\dots, z_q]`:

    - ``score``: :math:`r(m, b)` (= :func:`rsa_many`);
    - ``partial``: :math:`r(m - Z\\hat\\beta_m,\\ b - Z\\hat\\beta_b)`, the partial
      correlation given the baselines;
    - ``unique_r2``: variance of ``b`` explained by ``m`` beyond the baselines,
      :math:`R^2(b \\sim Z, m) - R^2(b \\sim Z) = r_{partial}^2 (1 - R^2(b \\sim Z))`;
    - ``shared_fraction``: :math:`1 - \\text{unique\\_r2} / r(m, b)^2`, the share of the
      model's explained variance that the baselines already explain (1: all of it;
      it can fall below 0 under suppression).

    Parameters
    ----------
    model_rdms, brain_rdms, baseline_rdms : array-like
        RDMs as in :func:`rsa_many` (one, a stack, or condensed vectors), same stimuli.
    method : {"spearman", "pearson"}

    Returns
    -------
    dict of ndarray (n_models, n_brain)
        ``score``, ``partial``, ``unique_r2``, ``shared_fraction``; plus
        ``baseline_r2`` (n_brain,): :math:`R^2(b \\sim Z)`.
    """
    A = _vectors(model_rdms, "model_rdms")
    B = _vectors(brain_rdms, "brain_rdms")
    Z = _vectors(baseline_rdms, "baseline_rdms")
    P = A.shape[1]
    if B.shape[1] != P or Z.shape[1] != P:
        raise ValueError(f"model, brain and baseline RDMs must describe the same stimulus pairs, got "
                         f"{A.shape[1]}, {B.shape[1]}, {Z.shape[1]}.")
    if P < Z.shape[0] + 3:
        raise ValueError(f"{Z.shape[0]} baselines need more than {Z.shape[0] + 2} stimulus pairs, got {P}.")
    As, Bs, Zs = (_standardise(V, method) for V in (A, B, Z))
    Q, _ = np.linalg.qr(np.column_stack([np.ones(P), Zs.T]))  # orthonormal basis of [1, Z]

    def resid(V):
        return V - (V @ Q) @ Q.T

    eA, eB = resid(As), resid(Bs)
    nA, nB = np.linalg.norm(eA, axis=1), np.linalg.norm(eB, axis=1)
    for nrm, name in ((nA, "a model"), (nB, "a brain")):
        if (nrm < 1e-10).any():
            raise ValueError(f"{name} RDM is fully explained by the baselines (zero residual); "
                             "its partial correlation is undefined.")
    partial = np.clip((eA / nA[:, None]) @ (eB / nB[:, None]).T, -1.0, 1.0)
    score = np.clip(As @ Bs.T, -1.0, 1.0)
    base_r2 = 1.0 - nB ** 2  # rows of Bs have unit norm and zero mean
    unique = partial ** 2 * (1.0 - base_r2)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        shared = 1.0 - unique / score ** 2
    return {"score": score, "partial": partial, "unique_r2": unique, "shared_fraction": shared,
            "baseline_r2": base_r2}


def brain_test_informative(reliability, partialled=None, threshold=RELIABILITY_THRESHOLD,
                           min_partial=MIN_PARTIAL_SCORE, score=None, baseline=None):
    """Can this population's brain test tell models apart for reasons beyond pixels?

    Informative when all hold:

    1. the model ranking is reliable across subjects: the lower bound of the
       split-half (Spearman–Brown) interval of :func:`ranking_reliability` exceeds
       ``threshold`` (default 0.5);
    2. the scores do not vanish once low-level baselines are partialled out: some
       model's partial score (mean over subjects of :func:`partial_rsa`'s
       ``partial``) reaches ``min_partial`` (default 0.05). Skipped when
       ``partialled`` is None;
    3. the models' scores exceed the low-level baselines: the population's mean
       score ``score`` (mean over its units of the subject-mean score) is above
       ``baseline``, the stronger of the pixel and Gabor-energy RDMs' mean score with
       the same subjects. A population that sits below pixels is not ranked by what
       the paper's argument needs. Skipped when either is None.

    A test that fails any gets the verdict ``"uninformative"``
    (``lidutils.stats.verdict(..., informative=False)``).

    Parameters
    ----------
    reliability : dict
        Output of :func:`ranking_reliability` (needs ``ci_low``, ``mean``).
    partialled : dict or array-like, optional
        Output of :func:`partial_rsa` or its ``partial`` array (n_models[, n_subjects]).
    threshold, min_partial : float
    score, baseline : float, optional
        The population's mean score and the stronger low-level baseline's score (same units).

    Returns
    -------
    (bool, str)
        Whether the test is informative, and the reason in one sentence.
    """
    lo, mean = float(reliability["ci_low"]), float(reliability["mean"])
    if not np.isfinite(lo) or lo <= threshold:
        return False, (f"the model ranking is not reliable across subjects: split-half reliability "
                       f"{mean:.2f} (95 % interval from {lo:.2f}), needs a lower bound above {threshold:.2f}")
    if score is not None and baseline is not None and not float(score) > float(baseline):
        return False, (f"the models score below the low-level baseline: mean score {float(score):.3f} does not "
                       f"exceed the pixel/Gabor baseline's {float(baseline):.3f} (ranking reliability {mean:.2f})")
    if partialled is None:
        return True, (f"the model ranking is reliable across subjects (split-half reliability {mean:.2f}, "
                      f"lower bound {lo:.2f} > {threshold:.2f}); low-level baselines not checked")
    part = np.asarray(partialled["partial"] if isinstance(partialled, dict) else partialled, dtype=np.float64)
    per_model = part.mean(axis=1) if part.ndim == 2 else part
    best = float(np.nanmax(per_model))
    if not best >= min_partial:
        return False, (f"the scores vanish once low-level statistics are partialled out: best partial "
                       f"score {best:.3f} < {min_partial:.2f}")
    above = ("" if score is None or baseline is None else
             f", the mean score {float(score):.3f} exceeds the pixel/Gabor baseline's {float(baseline):.3f}")
    return True, (f"the model ranking is reliable (split-half {mean:.2f}, lower bound {lo:.2f} > "
                  f"{threshold:.2f}){above} and scores survive partialling out low-level baselines "
                  f"(best partial score {best:.2f})")


# --------------------------------------------------------------------------- low-level baselines

def _gray(images, size=None):
    """Images (N, H, W[, C]) -> float grey (N, h, w) in [0, 1], optionally resized."""
    from skimage.color import rgb2gray
    from skimage.transform import resize

    imgs = np.asarray(images)
    if imgs.ndim not in (3, 4) or imgs.shape[0] < 3:
        raise ValueError(f"images must be (N, H, W) or (N, H, W, C) with N >= 3, got shape {imgs.shape}.")
    x = imgs.astype(np.float64)
    if imgs.dtype == np.uint8:
        x = x / 255.0
    if x.ndim == 4:
        if x.shape[-1] == 1:
            x = x[..., 0]
        elif x.shape[-1] in (3, 4):
            x = rgb2gray(x[..., :3])
        else:
            raise ValueError(f"images must have 1, 3 or 4 channels last, got {x.shape[-1]}.")
    if size is not None:
        x = resize(x, (x.shape[0], size, size), anti_aliasing=True)
    return x


def pixel_rdm(images, metric="correlation", size=None):
    """RDM of raw pixels: each image flattened (all channels) into one feature vector.

    Parameters
    ----------
    images : array (N, H, W[, C])
        Same-sized images (uint8 scaled to [0, 1]).
    metric : {"correlation", "euclidean", "cosine"}
    size : int, optional
        Resize (grey) images to ``size`` x ``size`` first.

    Returns
    -------
    ndarray (N, N)
    """
    imgs = np.asarray(images)
    if size is not None:
        x = _gray(imgs, size)
    else:
        if imgs.ndim not in (3, 4):
            raise ValueError(f"images must be (N, H, W) or (N, H, W, C), got shape {imgs.shape}.")
        x = imgs.astype(np.float64) / (255.0 if imgs.dtype == np.uint8 else 1.0)
    return rdm(x.reshape(x.shape[0], -1), metric=metric, device="cpu")


def gabor_features(images, frequencies=(0.05, 0.1, 0.2, 0.3), n_orientations=4, grid=4, size=64):
    """Gabor-energy features (a V1 complex-cell model; Jones & Palmer 1987, Adelson & Bergen 1985).

    Images are turned grey and resized to ``size`` x ``size``; each is filtered by
    the complex Gabor kernels ``skimage.filters.gabor_kernel(f, theta)`` at every
    frequency ``f`` (cycles per pixel) and orientation
    :math:`\\theta = k\\pi / n_{orientations}`; the energy
    :math:`\\sqrt{(I * g_{re})^2 + (I * g_{im})^2}` (phase-invariant, rectified) is
    averaged over a ``grid`` x ``grid`` partition of the image.

    Returns
    -------
    ndarray (N, len(frequencies) * n_orientations * grid * grid)
    """
    from scipy.signal import fftconvolve
    from skimage.filters import gabor_kernel

    if grid < 1 or size < grid or n_orientations < 1 or not len(frequencies):
        raise ValueError("need grid >= 1, size >= grid, n_orientations >= 1 and at least one frequency.")
    x = _gray(images, size)
    x = x - x.mean(axis=(1, 2), keepdims=True)  # energy from contrast, not mean luminance
    edges = np.linspace(0, size, grid + 1).astype(int)
    feats = []
    for f in frequencies:
        for k in range(n_orientations):
            g = gabor_kernel(float(f), theta=np.pi * k / n_orientations)
            resp = fftconvolve(x, g[None], mode="same", axes=(1, 2))
            energy = np.abs(resp)
            pooled = np.stack([energy[:, edges[i]:edges[i + 1], edges[j]:edges[j + 1]].mean(axis=(1, 2))
                               for i in range(grid) for j in range(grid)], axis=1)
            feats.append(pooled)
    return np.concatenate(feats, axis=1)


def gabor_rdm(images, metric="correlation", frequencies=(0.05, 0.1, 0.2, 0.3), n_orientations=4,
              grid=4, size=64):
    """RDM of :func:`gabor_features` (a low-level, V1-like baseline).

    With the defaults: 4 frequencies x 4 orientations x 4 x 4 grid = 256 features
    per image.

    Returns
    -------
    ndarray (N, N)
    """
    return rdm(gabor_features(images, frequencies, n_orientations, grid, size), metric=metric, device="cpu")
