"""Statistical power of the claim notebooks' decision rule.

A claim is "replicated" when :func:`lidutils.stats.label` says so: the 95 %
percentile-bootstrap interval of the correlation excludes 0 on the side of the
expected sign, the p-value agrees (p < 0.05), and there are at least
:data:`lidutils.stats.MIN_N_VERDICT` units (below it no label is given, so the power is 0).
:func:`coverage_table` measures how often each interval holds the true value. The *power* at
``n_models`` models is the probability that this rule fires when the true
correlation across the model population is ``r_true``; at ``r_true = 0`` the same
number is the false-positive rate.

Two-level simulation
--------------------
Running whole synthetic worlds (:mod:`lidutils.book.simulate`) thousands of times is too
slow, so power is computed in two documented stages.

1. **Second stage, exact rule** (:func:`power`): draw ``n_models`` pairs from a
   bivariate Gaussian copula whose population correlation equals ``r_true`` in the
   chosen ``method`` (for Spearman the latent Gaussian correlation is
   :math:`\\rho = 2 \\sin(\\pi r_s / 6)`, so that the population Spearman
   correlation is :math:`r_s`), and apply the decision rule of
   :func:`lidutils.stats.corr` + :func:`lidutils.stats.verdict`, vectorised over all
   replicates by their public batched forms :func:`lidutils.stats.corr_batch` and
   :func:`lidutils.stats.verdict_batch` (the rule :func:`~lidutils.stats.verdict`
   itself calls). The only approximation is fewer bootstrap resamples (``n_boot``, default 400,
   versus 2000 in the notebooks), which makes the interval bounds slightly noisier;
   :func:`decision_agreement` measures how often the fast rule and the notebooks'
   ``corr(..., n_boot=2000, n_perm=10000)`` + ``verdict`` agree on the same data.
2. **First stage, attenuation** (:func:`lidutils.book.simulate.first_stage_attenuation`): LID and the
   targets are themselves estimated from a finite stimulus set, which adds noise
   and attenuates the observed correlation. A modest number of full positive worlds
   is analysed at ``n_stimuli`` and at a larger reference ``n_ref`` (same models,
   more stimuli); the ratio of the mean correlations is the attenuation factor.
   :func:`power` with ``attenuation=`` that factor multiplies ``r_true`` by it.
"""
from __future__ import annotations

import functools
import json
import math

import numpy as np

from lidutils.book import paper as _paper
from lidutils.cache import default_cache_dir, hash_key, save_json
from lidutils.resampling import pearson_rows
from lidutils.stats import ALPHA, corr, corr_batch, fisher_ci, label, MIN_N_VERDICT, verdict_batch

__all__ = [
    "power",
    "claim_power",
    "power_table",
    "power_at",
    "decide",
    "decision_agreement",
    "PAPER_RS",
    "N_MODELS_GRID",
    "coverage_table",
    "min_n_for_coverage",
    "COVERAGE_NS",
]

#: The paper's LID correlations of C1-C3 (weakest to strongest, from :mod:`lidutils.book.paper`).
PAPER_RS = tuple(sorted((_paper.paper_r(c) for c in ("C1", "C2", "C3")), reverse=True))
#: Bump when the decision rule or the simulation changes: invalidates the disk cache.
POWER_VERSION = 3
#: Population sizes of the power table.
N_MODELS_GRID = (4, 8, 16, 32, 64)


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


def decide(x, y, method="pearson", n_boot=400, n_perm=0, ci=0.95, expected_sign=-1, seed=0):
    """Vectorised :func:`lidutils.stats.corr` + :func:`lidutils.stats.label` (the records' rule).

    :func:`lidutils.stats.corr_batch` on every row, then
    :func:`lidutils.stats.verdict_batch` on the intervals, a label kept only where the
    p-value agrees (``p < 0.05``; analytic p when ``n_perm=0``, which the permutation p
    approximates), and "descriptive" for every row below
    :data:`lidutils.stats.MIN_N_VERDICT` units: the rule ``label`` applies to one
    record, here applied to ``n_sim`` datasets.

    Parameters
    ----------
    x, y : ndarray of shape (n_sim, n)
        ``n_sim`` independent datasets of ``n`` paired observations (continuous).
    method : {"pearson", "spearman"}
    n_boot : int
        Bootstrap resamples per dataset (percentile interval at level ``ci``).
    n_perm : int
        Permutations for the reported p-value (0: analytic p; the verdict does not use p).
    ci : float
    expected_sign : {-1, +1}
    seed : int

    Returns
    -------
    dict of ndarray (n_sim,)
        ``r``, ``ci_low``, ``ci_high``, ``p`` and ``verdict``.
    """
    out = corr_batch(x, y, method=method, n_boot=n_boot, n_perm=n_perm, seed=seed, ci=ci)
    v = verdict_batch(out["ci_low"], out["ci_high"], expected_sign)
    labelled = np.isin(v, ("replicated", "opposite"))
    v = np.where(labelled & ~(np.asarray(out["p"]) < ALPHA), "inconclusive", v)  # CI and p must agree
    if np.shape(x)[-1] < MIN_N_VERDICT:  # too few units: no label (lidutils.stats.label)
        v = np.full(v.shape, "descriptive")
    out["verdict"] = v
    return out


def power(r_true, n_models, n_stimuli=None, method="pearson", n_sim=1000, seed=0, n_boot=400,
          expected_sign=None, attenuation=None):
    """Probability that the decision rule returns "replicated" at ``n_models`` models.

    .. math:: \\mathrm{power} = P\\bigl(\\mathrm{verdict}(\\mathrm{corr}(x, y)) =
              \\text{"replicated"} \\mid r_{true}, n\\bigr),

    estimated over ``n_sim`` simulated populations (second stage, see the module
    docstring). At ``r_true = 0`` this is the false-positive rate of one direction
    (about 2.5 % for a calibrated 95 % interval; percentile intervals at small ``n``
    are somewhat liberal, which this measures).

    Parameters
    ----------
    r_true : float in (-1, 1)
        Population correlation (in ``method``: Spearman or Pearson) between the
        true LID and the target across models.
    n_models : int
        Number of models (>= 3).
    n_stimuli : int, optional
        Not used alone: the first-stage factor for a number of stimuli comes from
        :func:`lidutils.book.simulate.first_stage_attenuation` (it runs the claim code, which
        this module does not import); pass it as ``attenuation``.
    method : {"pearson", "spearman"}
        Pearson is the paper's statistic.
    n_sim : int
        Simulated populations; the Monte-Carlo standard error of the power is
        :math:`\\sqrt{P(1-P)/n_{sim}}` (returned as ``se``).
    seed : int
    n_boot : int
        Bootstrap resamples of the vectorised rule (:func:`decide`).
    expected_sign : {-1, +1}, optional
        Default: the sign of ``r_true`` (-1 for ``r_true = 0``).
    attenuation : float, optional
        Explicit first-stage factor applied to ``r_true``.

    Returns
    -------
    dict
        ``power``, ``se``, ``opposite`` (rate of significant wrong-sign verdicts),
        ``r_true``, ``r_effective``, ``n_models``, ``n_sim``, ``method``.
    """
    r = _check_r(r_true, method)
    if expected_sign is None:
        expected_sign = 1 if r > 0 else -1
    n = int(n_models)
    if n < 3:
        raise ValueError(f"n_models must be >= 3 for a correlation, got {n_models}.")
    if n_sim < 1:
        raise ValueError(f"n_sim must be >= 1, got {n_sim}.")
    if attenuation is None and n_stimuli is not None:
        raise ValueError("n_stimuli needs the first-stage factor: pass attenuation="
                         "lidutils.book.simulate.first_stage_attenuation(n_stimuli)['factor'].")
    r_eff = r if attenuation is None else r * float(attenuation)
    rng = np.random.default_rng([seed, n, int(round(r * 1e6)) % 2**31])
    x, y = _draw_pairs(r_eff, n, int(n_sim), method, rng)
    d = decide(x, y, method=method, n_boot=n_boot, n_perm=0,
               expected_sign=expected_sign, seed=int(rng.integers(2**31)))
    P = float((d["verdict"] == "replicated").mean())
    return dict(power=P, se=math.sqrt(max(P * (1 - P), 1e-12) / n_sim),
                opposite=float((d["verdict"] == "opposite").mean()),
                r_true=r, r_effective=r_eff, n_models=n, n_sim=int(n_sim), method=method,
                n_boot=n_boot, expected_sign=int(expected_sign))


def power_table(n_models=N_MODELS_GRID, rs=PAPER_RS + (0.0,), n_sim=1000, seed=0, **kwargs):
    """Power for every ``n_models`` x ``r`` (one row each) as a pandas DataFrame.

    ``r = 0`` rows give the false-positive rate of the rule. Extra kwargs go to
    :func:`power`.
    """
    import pandas as pd

    rows = [power(r, n, n_sim=n_sim, seed=seed, **kwargs) for r in rs for n in n_models]
    return pd.DataFrame(rows)


@functools.lru_cache(maxsize=1024)
def _power_cached(n_models, r, n_sim, seed, method):
    """:func:`power` cached in memory and on disk (``<cache dir>/power/<key>.json``)."""
    path = default_cache_dir() / "power" / (
        hash_key("power", POWER_VERSION, n_models, r, n_sim, seed, method) + ".json")
    if path.exists():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass  # unreadable entry: recompute and overwrite
    out = power(r, n_models, n_sim=n_sim, seed=seed, method=method)
    try:
        save_json(path, out)
    except OSError:
        pass  # read-only cache location: the in-memory cache still applies
    return out


def power_at(n_models, r=PAPER_RS[0], n_sim=1000, seed=0, method="pearson"):
    """Power of the notebooks' rule at ``n_models`` for true correlation ``r`` (cached).

    The one definition of "power at n for r" used by every results record (cached in
    memory and on disk, keyed by the arguments and :data:`POWER_VERSION`).

    Returns
    -------
    dict
        ``power``, ``se``, ``n_models``, ``r`` and ``text``, e.g.
        ``"n = 8 models: power 0.41 for r = -0.84"``.
    """
    out = dict(_power_cached(int(n_models), float(r), int(n_sim), int(seed), str(method)))
    out["r"] = float(r)
    out["text"] = (f"n = {int(n_models)} models: power {out['power']:.2f} for r = {float(r):+.2f} "
                   f"(±{out['se']:.2f} Monte-Carlo SE, {out['method']}, {n_sim} simulations)")
    return out


def claim_power(claim, n_models, value=None, n_sim=1000, seed=0, method="pearson"):
    """Power of the rule for ``claim`` at ``n_models``: at the paper's value and at -0.3 / -0.5.

    The alternatives are :func:`lidutils.book.paper.power_alternatives` (signed like the
    claim). Fields ready for a results record (:func:`lidutils.book.records.correlate`).

    Parameters
    ----------
    claim : str
        ``"C1"`` ... ``"C7"``.
    n_models : int or None
        Sample size of the record (models, design cells, ...); below 4 every power is None.
    value : str, optional
        Which of several paper values (C5: ``"accuracy_vs_log_params"``).

    Returns
    -------
    dict
        ``power`` (at the paper's value; None where the paper gives none),
        ``power_r`` (that value, or the first alternative when None),
        ``power_at`` ({"-0.3": p, "-0.5": p}, keys ``f"{r:g}"``).
    """
    pr = _paper.paper_r(claim, value)
    alts = [a for a in _paper.power_alternatives(claim, value) if a != pr]
    ok = n_models is not None and int(n_models) >= 4

    def p(r):
        return float(power_at(int(n_models), r, n_sim=n_sim, seed=seed, method=method)["power"]) if ok else None

    return {"power": None if pr is None else p(pr), "power_r": float(pr if pr is not None else alts[0]),
            "power_at": {f"{a:g}": p(a) for a in alts}}


def decision_agreement(n_models=8, r_true=PAPER_RS[0], n_datasets=100, method="pearson",
                       n_boot=400, n_perm=0, seed=0):
    """How often the fast rule (:func:`decide`) agrees with the notebooks' rule.

    On ``n_datasets`` simulated populations, compares :func:`decide` (``n_boot``,
    ``n_perm``) with ``lidutils.stats.label(lidutils.stats.corr(x, y, method,
    n_boot=2000, n_perm=0))`` (the records' rule: CI and p agree, enough units).

    Returns
    -------
    dict
        ``agreement`` (fraction of identical verdicts), ``fast_replicated`` and
        ``exact_replicated`` rates, ``n_datasets``.
    """
    rng = np.random.default_rng([seed, 7])
    x, y = _draw_pairs(_check_r(r_true, method), int(n_models), int(n_datasets), method, rng)
    fast = decide(x, y, method=method, n_boot=n_boot, n_perm=n_perm, seed=seed)["verdict"]
    exact = np.array([label(corr(a, b, method=method, n_boot=2000, n_perm=0, seed=seed + i))
                      for i, (a, b) in enumerate(zip(x, y))])
    return dict(agreement=float((fast == exact).mean()),
                fast_replicated=float((fast == "replicated").mean()),
                exact_replicated=float((exact == "replicated").mean()),
                n_datasets=int(n_datasets), n_models=int(n_models), r_true=float(r_true))


#: Unit counts of the validation chapter's coverage table.
COVERAGE_NS = (4, 5, 6, 8, 10, 12, 15, 20, 30)


def coverage_table(ns=COVERAGE_NS, rs=(0.0, -0.5, -0.8), n_sim=1000, n_boot=400, families=3, ci=0.95, seed=0):
    r"""How often each interval the claim chapters can use covers the true correlation, at n units.

    Bivariate-normal pairs with correlation ``r_true`` (:func:`_draw_pairs`), ``n_sim``
    datasets per cell. Four intervals at level ``ci``:

    - ``percentile bootstrap``: :func:`lidutils.stats.corr_batch` (``n_boot`` resamples);
    - ``Fisher z``: :func:`lidutils.stats.fisher_ci` at ``n``;
    - ``stratified bootstrap, G families`` and ``Fisher z, G families``: the ``n`` units
      split into ``families`` equal families (``n >= 2 G``), each family shifted by a
      large common offset in both variables of *opposite* sign (a between-family
      correlation of −1 that must not leak in), correlation ``r_true`` within; the
      within-family r of :func:`lidutils.stats.corr_within` with its family-stratified
      percentile interval, and :func:`~lidutils.stats.fisher_ci` at
      :math:`n_{eff} = n - G + 1`.

    Returns
    -------
    DataFrame
        One row per (interval, n, r_true): ``coverage`` (fraction of intervals holding
        ``r_true``), ``width`` (median), ``n_sim``. The Monte-Carlo s.e. of a coverage
        near 0.95 is about :math:`\sqrt{0.05 \cdot 0.95 / n_{sim}}` (0.007 at 1000).
    """
    import pandas as pd


    rng = np.random.default_rng([seed, 11])
    rows = []
    fisher = np.vectorize(fisher_ci)
    for r_true in rs:
        for n in ns:
            x, y = _draw_pairs(_check_r(r_true, "pearson"), int(n), int(n_sim), "pearson", rng)
            out = corr_batch(x, y, n_boot=n_boot, n_perm=0, seed=int(rng.integers(1 << 31)), ci=ci)
            fl, fh = fisher(out["r"], n, ci)
            for name, lo, hi in (("percentile bootstrap", out["ci_low"], out["ci_high"]), ("Fisher z", fl, fh)):
                rows.append(dict(interval=name, n=int(n), r_true=float(r_true),
                                 coverage=float(np.mean((lo <= r_true) & (r_true <= hi))),
                                 width=float(np.nanmedian(hi - lo)), n_sim=int(n_sim)))
            G = int(families)
            m = int(n) // G
            if m < 2:
                continue
            xs, ys = x[:, :G * m].reshape(n_sim, G, m), y[:, :G * m].reshape(n_sim, G, m)
            off = 10.0 * np.arange(G)[None, :, None]
            xs, ys = xs + off, ys - off

            def within(a, b):  # (..., G, m) -> r_w (...)
                a = a - a.mean(-1, keepdims=True)
                b = b - b.mean(-1, keepdims=True)
                return pearson_rows(a.reshape(*a.shape[:-2], -1), b.reshape(*b.shape[:-2], -1))

            rw = within(xs, ys)
            lo, hi = np.empty(n_sim), np.empty(n_sim)
            step = max(1, 2_000_000 // (n_boot * G * m))
            for s in range(0, n_sim, step):
                sl = slice(s, s + step)
                k = xs[sl].shape[0]
                idx = rng.integers(0, m, size=(k, n_boot, G, m))
                xb = np.take_along_axis(np.broadcast_to(xs[sl, None], idx.shape), idx, -1)
                yb = np.take_along_axis(np.broadcast_to(ys[sl, None], idx.shape), idx, -1)
                with np.errstate(all="ignore"):
                    bt = within(xb, yb)
                    lo[sl], hi[sl] = np.nanquantile(bt, [(1 - ci) / 2, 1 - (1 - ci) / 2], axis=1)
            fl, fh = fisher(rw, G * m - G + 1, ci)
            for name, lo_, hi_ in ((f"stratified bootstrap, {G} families", lo, hi), (f"Fisher z, {G} families", fl, fh)):
                rows.append(dict(interval=name, n=int(G * m), r_true=float(r_true),
                                 coverage=float(np.mean((lo_ <= r_true) & (r_true <= hi_))),
                                 width=float(np.nanmedian(hi_ - lo_)), n_sim=int(n_sim)))
    return pd.DataFrame(rows)


def min_n_for_coverage(table, floor=0.89):
    """Per interval of :func:`coverage_table`: the smallest n from which the coverage stays >= ``floor``.

    The coverage at each n is averaged over the table's true correlations (each cell
    has a Monte-Carlo s.e. of about 0.01 at 400 data sets; the default floor is 0.90
    less one such s.e.). Returns a dict ``{interval: n}`` (None when no n qualifies).
    """
    out = {}
    for name, g in table.groupby("interval"):
        worst = g.groupby("n")["coverage"].mean().sort_index()
        ok = worst >= floor
        good = [n for n in worst.index if ok.loc[n:].all()]
        out[str(name)] = int(good[0]) if good else None
    return out
