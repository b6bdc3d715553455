"""Statistical power of the claim notebooks' decision rule.

A claim is "replicated" when :func:`lidutils.stats.verdict` says so: the correlation
has the expected sign, its 95 % percentile-bootstrap interval excludes 0 on that
side, and its two-sided permutation p-value is below ``alpha``. The *power* at
``n_models`` models is the probability that this rule fires when the true
correlation across the model population is ``r_true``; at ``r_true = 0`` the same
number is the false-positive rate.

Two-level simulation
--------------------
Running whole synthetic worlds (:mod:`lidutils.simulate`) thousands of times is too
slow, so power is computed in two documented stages.

1. **Second stage, exact rule** (:func:`power`): draw ``n_models`` pairs from a
   bivariate Gaussian copula whose population correlation equals ``r_true`` in the
   chosen ``method`` (for Spearman the latent Gaussian correlation is
   :math:`\\rho = 2 \\sin(\\pi r_s / 6)`, so that the population Spearman
   correlation is :math:`r_s`), and apply the decision rule of
   :func:`lidutils.stats.corr` + :func:`lidutils.stats.verdict`, vectorised over all
   replicates: the same point estimate and percentile bootstrap (the private
   kernel ``lidutils.stats._stat``), and the permutation p-value
   :math:`(b+1)/(m+1)`. For Spearman the permutation null of :math:`\\rho` depends
   on ``n`` only (continuous data have no ties), so one set of ``n_perm`` permuted
   correlations serves every replicate; for Pearson every replicate is permuted.
   The only approximation is fewer bootstrap resamples (``n_boot``, default 400,
   versus 2000 in the notebooks), which makes the interval bounds slightly noisier;
   :func:`decision_agreement` measures how often the fast rule and the notebooks'
   ``corr(..., n_boot=2000, n_perm=10000)`` + ``verdict`` agree on the same data.
2. **First stage, attenuation** (:func:`first_stage_attenuation`): LID and the
   targets are themselves estimated from a finite stimulus set, which adds noise
   and attenuates the observed correlation. A modest number of full positive worlds
   is analysed at ``n_stimuli`` and at a larger reference ``n_ref`` (same models,
   more stimuli); the ratio of the mean correlations is the attenuation factor.
   :func:`power` with ``n_stimuli`` multiplies ``r_true`` by it.
"""
from __future__ import annotations

import functools
import math

import numpy as np

__all__ = [
    "power",
    "power_table",
    "power_at",
    "decide",
    "decision_agreement",
    "first_stage_attenuation",
    "PAPER_RS",
    "N_MODELS_GRID",
]

#: The paper's LID correlations (weakest to strongest) used as alternatives.
PAPER_RS = (-0.84, -0.88, -0.92)
#: Population sizes of the power table.
N_MODELS_GRID = (4, 8, 16, 32, 64)

_CHUNK_ELEMS = 4_000_000


def _check_r(r_true, method):
    if method not in ("spearman", "pearson"):
        raise ValueError(f"method must be 'spearman' or 'pearson', got {method!r}.")
    r = float(r_true)
    if not -1 < r < 1:
        raise ValueError(f"r_true must be in (-1, 1), got {r_true!r}.")
    return r


def _latent_rho(r_true, method):
    """Gaussian-copula correlation whose population ``method`` correlation is ``r_true``."""
    return 2 * math.sin(math.pi * r_true / 6) if method == "spearman" else r_true


def _draw_pairs(r_true, n, n_sim, method, rng):
    rho = _latent_rho(r_true, method)
    x = rng.standard_normal((n_sim, n))
    y = rho * x + math.sqrt(1 - rho * rho) * rng.standard_normal((n_sim, n))
    return x, y


def _resample_ranks(ranks, idx):
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


def decide(x, y, method="spearman", n_boot=400, n_perm=2000, alpha=0.05, ci=0.95,
           expected_sign=-1, seed=0):
    """Vectorised :func:`lidutils.stats.corr` + :func:`lidutils.stats.verdict`.

    Parameters
    ----------
    x, y : ndarray of shape (n_sim, n)
        ``n_sim`` independent datasets of ``n`` paired observations (continuous).
    method : {"spearman", "pearson"}
    n_boot : int
        Bootstrap resamples per dataset (percentile interval at level ``ci``).
    n_perm : int
        Permutations for the two-sided p-value :math:`(b+1)/(m+1)`.
    alpha : float
    expected_sign : {-1, +1}
    seed : int

    Returns
    -------
    dict of ndarray (n_sim,)
        ``r``, ``ci_low``, ``ci_high``, ``p`` and ``verdict`` (strings
        "replicated" / "opposite" / "inconclusive", the rule of
        :func:`lidutils.stats.verdict`).
    """
    from .stats import _pearson_rows, _rank_rows, _stat

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"x and y must be (n_sim, n) arrays of the same shape, got {x.shape}, {y.shape}.")
    if expected_sign not in (-1, 1):
        raise ValueError(f"expected_sign must be -1 or +1, got {expected_sign!r}.")
    n_sim, n = x.shape
    if n < 3:
        raise ValueError(f"a correlation needs n >= 3 observations, got {n}.")
    if n_boot < 1 or n_perm < 1:
        raise ValueError("n_boot and n_perm must be >= 1.")
    rng = np.random.default_rng(seed)
    r = _stat(x, y, None, method)
    # permutation p-value
    rx, ry = (_rank_rows(x), _rank_rows(y)) if method == "spearman" else (x, y)
    tol = 1e-12 * np.maximum(1.0, np.abs(r))
    if method == "spearman":
        base = np.arange(1, n + 1, dtype=np.float64)
        perm = rng.permuted(np.broadcast_to(base, (n_perm, n)), axis=1)
        null = np.sort(np.abs(_pearson_rows(np.broadcast_to(base, (n_perm, n)), perm)))
        b = n_perm - np.searchsorted(null, np.abs(r) - tol, side="left")
    else:
        b = np.zeros(n_sim, dtype=np.int64)
        step = max(1, _CHUNK_ELEMS // (n * n_perm))
        for s in range(0, n_sim, step):
            sl = slice(s, s + step)
            perm = rng.permuted(np.broadcast_to(np.arange(n), (len(rx[sl]), n_perm, n)), axis=2)
            r_perm = _pearson_rows(np.broadcast_to(rx[sl, None, :], perm.shape),
                                   np.take_along_axis(np.broadcast_to(ry[sl, None, :], perm.shape), perm, 2))
            b[sl] = (np.abs(r_perm) >= (np.abs(r[sl]) - tol[sl])[:, None]).sum(1)
    p = (b + 1) / (n_perm + 1)
    # percentile bootstrap
    lo = np.empty(n_sim)
    hi = np.empty(n_sim)
    step = max(1, _CHUNK_ELEMS // (n * n_boot))
    q = [(1 - ci) / 2, 1 - (1 - ci) / 2]
    if method == "spearman":
        ix = np.argsort(np.argsort(x, axis=1), axis=1)
        iy = np.argsort(np.argsort(y, axis=1), axis=1)
    for s in range(0, n_sim, step):
        m = min(step, n_sim - s)
        idx = rng.integers(0, n, size=(m, n_boot, n))
        if method == "spearman":  # same numbers as _stat's rankdata, by counting
            boots = _pearson_rows(_resample_ranks(ix[s:s + m], idx), _resample_ranks(iy[s:s + m], idx))
        else:
            rows = np.arange(s, s + m)[:, None, None]
            boots = _stat(x[rows, idx], y[rows, idx], None, method)
        lo[s:s + m], hi[s:s + m] = np.nanquantile(boots, q, axis=1)
    sig = (p < alpha) & np.isfinite(lo) & np.isfinite(hi)
    pos = sig & (lo > 0) & (r > 0)
    neg = sig & (hi < 0) & (r < 0)
    hit, miss = (neg, pos) if expected_sign == -1 else (pos, neg)
    verdict = np.where(hit, "replicated", np.where(miss, "opposite", "inconclusive"))
    return dict(r=r, ci_low=lo, ci_high=hi, p=p, verdict=verdict)


def power(r_true, n_models, n_stimuli=None, method="spearman", n_sim=1000, alpha=0.05,
          seed=0, n_boot=400, n_perm=2000, expected_sign=-1, attenuation=None):
    """Probability that the decision rule returns "replicated" at ``n_models`` models.

    .. math:: \\mathrm{power} = P\\bigl(\\mathrm{verdict}(\\mathrm{corr}(x, y)) =
              \\text{"replicated"} \\mid r_{true}, n\\bigr),

    estimated over ``n_sim`` simulated populations (second stage, see the module
    docstring). At ``r_true = 0`` this is the false-positive rate, which should be
    at most about ``alpha / 2`` (the rule is two-sided and counts one direction).

    Parameters
    ----------
    r_true : float in (-1, 1)
        Population correlation (in ``method``: Spearman or Pearson) between the
        true LID and the target across models.
    n_models : int
        Number of models (>= 3).
    n_stimuli : int, optional
        If given (and ``attenuation`` is None), ``r_true`` is first multiplied by the
        first-stage attenuation measured on full positive worlds with this many
        stimuli (:func:`first_stage_attenuation`, cached; takes a while).
    method : {"spearman", "pearson"}
    n_sim : int
        Simulated populations; the Monte-Carlo standard error of the power is
        :math:`\\sqrt{P(1-P)/n_{sim}}` (returned as ``se``).
    alpha : float
    seed : int
    n_boot, n_perm : int
        Resamples of the vectorised rule (:func:`decide`).
    expected_sign : {-1, +1}
    attenuation : float, optional
        Explicit first-stage factor applied to ``r_true``.

    Returns
    -------
    dict
        ``power``, ``se``, ``opposite`` (rate of significant wrong-sign verdicts),
        ``r_true``, ``r_effective``, ``n_models``, ``n_sim``, ``method``.
    """
    r = _check_r(r_true, method)
    n = int(n_models)
    if n < 3:
        raise ValueError(f"n_models must be >= 3 for a correlation, got {n_models}.")
    if n_sim < 1:
        raise ValueError(f"n_sim must be >= 1, got {n_sim}.")
    if attenuation is None and n_stimuli is not None:
        attenuation = first_stage_attenuation(int(n_stimuli))["factor"]
    r_eff = r if attenuation is None else r * float(attenuation)
    rng = np.random.default_rng([seed, n, int(round(r * 1e6)) % 2**31])
    x, y = _draw_pairs(r_eff, n, int(n_sim), method, rng)
    d = decide(x, y, method=method, n_boot=n_boot, n_perm=n_perm, alpha=alpha,
               expected_sign=expected_sign, seed=int(rng.integers(2**31)))
    P = float((d["verdict"] == "replicated").mean())
    return dict(power=P, se=math.sqrt(max(P * (1 - P), 1e-12) / n_sim),
                opposite=float((d["verdict"] == "opposite").mean()),
                r_true=r, r_effective=r_eff, n_models=n, n_sim=int(n_sim), method=method,
                alpha=alpha, n_boot=n_boot, n_perm=n_perm)


def power_table(n_models=N_MODELS_GRID, rs=PAPER_RS + (0.0,), n_sim=1000, seed=0, **kwargs):
    """Power for every ``n_models`` x ``r`` (one row each) as a pandas DataFrame.

    ``r = 0`` rows give the false-positive rate of the rule. Extra kwargs go to
    :func:`power`.
    """
    import pandas as pd

    rows = [power(r, n, n_sim=n_sim, seed=seed, **kwargs) for r in rs for n in n_models]
    return pd.DataFrame(rows)


@functools.lru_cache(maxsize=256)
def _power_cached(n_models, r, n_sim, seed):
    return power(r, n_models, n_sim=n_sim, seed=seed)


def power_at(n_models, r=PAPER_RS[0], n_sim=1000, seed=0):
    """Power of the notebooks' rule at ``n_models`` for true correlation ``r`` (cached).

    Returns
    -------
    dict
        ``power``, ``se``, ``n_models``, ``r`` and ``text``, e.g.
        ``"n = 8 models: power 0.41 for r = -0.84"``.
    """
    out = dict(_power_cached(int(n_models), float(r), int(n_sim), int(seed)))
    out["r"] = float(r)
    out["text"] = (f"n = {int(n_models)} models: power {out['power']:.2f} for r = {float(r):+.2f} "
                   f"(±{out['se']:.2f} Monte-Carlo SE, {out['method']}, {n_sim} simulations)")
    return out


def decision_agreement(n_models=8, r_true=PAPER_RS[0], n_datasets=100, method="spearman",
                       n_boot=400, n_perm=2000, seed=0):
    """How often the fast rule (:func:`decide`) agrees with the notebooks' rule.

    On ``n_datasets`` simulated populations, compares :func:`decide` (``n_boot``,
    ``n_perm``) with ``lidutils.stats.verdict(lidutils.stats.corr(x, y, method,
    n_boot=2000, n_perm=10000))``.

    Returns
    -------
    dict
        ``agreement`` (fraction of identical verdicts), ``fast_replicated`` and
        ``exact_replicated`` rates, ``n_datasets``.
    """
    from .stats import corr, verdict

    rng = np.random.default_rng([seed, 7])
    x, y = _draw_pairs(_check_r(r_true, method), int(n_models), int(n_datasets), method, rng)
    fast = decide(x, y, method=method, n_boot=n_boot, n_perm=n_perm, seed=seed)["verdict"]
    exact = np.array([verdict(corr(a, b, method=method, n_boot=2000, n_perm=10000, seed=seed + i))
                      for i, (a, b) in enumerate(zip(x, y))])
    return dict(agreement=float((fast == exact).mean()),
                fast_replicated=float((fast == "replicated").mean()),
                exact_replicated=float((exact == "replicated").mean()),
                n_datasets=int(n_datasets), n_models=int(n_models), r_true=float(r_true))


@functools.lru_cache(maxsize=16)
def first_stage_attenuation(n_stimuli=400, n_ref=1600, n_models=24, n_worlds=3,
                            world="positive", k=10, targets=("generalization", "brain_rsa"),
                            seed=0):
    """Attenuation of the LID–target correlation by finite-stimulus estimation.

    The same positive worlds (same models, nuisance levels and brain; only the
    stimuli differ) are analysed with :func:`lidutils.simulate.claim_analysis` at
    ``n_stimuli`` and at ``n_ref`` stimuli. With :math:`\\bar r_N` the mean over
    worlds and targets of the Spearman correlation of LID with the target,

    .. math:: a = \\bar r_{N} / \\bar r_{N_{ref}} ,

    the attenuation factor. ``reliability`` is the mean Spearman correlation of the
    per-model LID at ``n_stimuli`` with that at ``n_ref``.

    Returns
    -------
    dict
        ``factor``, ``r_n`` and ``r_ref`` (per target, mean over worlds),
        ``reliability``, and the settings.
    """
    from scipy.stats import spearmanr

    from .simulate import claim_analysis, make_world

    r_n = {t: [] for t in targets}
    r_ref = {t: [] for t in targets}
    rel = []
    for w in range(n_worlds):
        tabs = []
        for N, store in ((n_stimuli, r_n), (n_ref, r_ref)):
            res = claim_analysis(make_world(world, seed=seed + w, n_models=n_models, n_stimuli=N),
                                 k=k, dims=("lid",), targets=tuple(targets), n_boot=0, n_perm=0)
            for t in targets:
                store[t].append(res["corr"]["lid"][t]["r"])
            tabs.append(res["table"]["lid"].to_numpy())
        rel.append(spearmanr(*tabs)[0])
    mean_n = float(np.mean([np.mean(v) for v in r_n.values()]))
    mean_ref = float(np.mean([np.mean(v) for v in r_ref.values()]))
    return dict(factor=mean_n / mean_ref, r_n={t: float(np.mean(v)) for t, v in r_n.items()},
                r_ref={t: float(np.mean(v)) for t, v in r_ref.items()},
                reliability=float(np.mean(rel)), n_stimuli=n_stimuli, n_ref=n_ref,
                n_models=n_models, n_worlds=n_worlds, world=world, k=k)
