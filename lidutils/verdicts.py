"""From a correlation to a statement: whether a CI excludes a value, the verdict rule and its
labels, Holm's step-down adjustment, and the design constants (smallest n for a verdict,
alpha).
"""
from __future__ import annotations

import numpy as np

#: Every verdict name used in the project, defined here only.
#: "replicated" / "opposite" / "inconclusive" follow a correlation's CI (:func:`verdict`);
#: "not replicated" is a comparative claim's rule rejecting it (:func:`c4_rule`);
#: "uninformative" marks a test that cannot tell (e.g. a brain test whose model ranking
#: is unreliable, :func:`lidutils.rsatools.brain_test_informative`).
#: "descriptive" marks a record with too few units for any verdict (:data:`MIN_N_VERDICT`,
#: :func:`label`): r and a Fisher-z interval only.
VERDICTS = ("replicated", "not replicated", "opposite", "inconclusive", "uninformative", "descriptive")


def excludes(result, value):
    """Whether the confidence interval of ``result`` excludes ``value``.

    True when ``value < ci_low`` or ``value > ci_high``; False when the interval
    covers it or is NaN. ``value=None`` (e.g. no paper value) returns None.
    """
    if value is None:
        return None
    lo, hi = ci_bounds(result)
    return bool(np.isfinite(lo) and np.isfinite(hi) and (value < lo or value > hi))


def ci_bounds(result):
    missing = [k for k in ("ci_low", "ci_high") if k not in result]
    if missing:
        raise ValueError(f"result lacks key(s) {missing}; pass the dict returned by corr().")
    return tuple(np.nan if result[k] is None else float(result[k]) for k in ("ci_low", "ci_high"))  # None: no CI


def check_sign(expected_sign):
    if isinstance(expected_sign, bool) or expected_sign not in (-1, 1):
        raise ValueError(f"expected_sign must be -1 or +1, got {expected_sign!r}.")
    return int(expected_sign)


def verdict_batch(ci_low, ci_high, expected_sign=-1):
    """Vectorised :func:`verdict`: one verdict per confidence interval.

    - ``"replicated"``: the interval excludes 0 on the side of ``expected_sign``
      (``ci_high < 0`` for -1, ``ci_low > 0`` for +1);
    - ``"opposite"``: it excludes 0 on the other side;
    - ``"inconclusive"``: it covers 0, or a bound is NaN.

    Parameters
    ----------
    ci_low, ci_high : array-like
        Interval bounds (same shape).
    expected_sign : {-1, +1}

    Returns
    -------
    ndarray of str, same shape as the bounds
    """
    s = check_sign(expected_sign)
    lo = np.asarray(ci_low, dtype=np.float64)
    hi = np.asarray(ci_high, dtype=np.float64)
    if lo.shape != hi.shape:
        raise ValueError(f"ci_low and ci_high must have the same shape, got {lo.shape} and {hi.shape}.")
    pos, neg = lo > 0, hi < 0  # NaN compares False: inconclusive
    hit, miss = (neg, pos) if s == -1 else (pos, neg)
    return np.where(hit, VERDICTS[0], np.where(miss, VERDICTS[2], VERDICTS[3]))


def verdict(result, expected_sign=-1, informative=True):
    """Verdict of a correlation result against the paper's sign, decided by its CI.

    - ``"replicated"``: the confidence interval ``[ci_low, ci_high]`` excludes 0 on
      the side of ``expected_sign``;
    - ``"opposite"``: it excludes 0 on the other side;
    - ``"inconclusive"``: it covers 0 (or is NaN);
    - ``"uninformative"``: ``informative=False`` — the test itself cannot tell
      (e.g. :func:`lidutils.rsatools.brain_test_informative` failed), whatever the CI.

    The interval is the only gate, so a record's verdict always agrees with its own
    CI (``excludes(result, 0)``). The permutation p-value is reported next to it, not
    used as a second gate: a 95 % interval that excludes 0 and a two-sided p < 0.05
    almost always agree, and where they do not, one rule stated once is easier to
    check than two. Same rule as :func:`verdict_batch` (which this calls).

    Parameters
    ----------
    result : dict
        Needs ``ci_low`` and ``ci_high`` (the dict returned by :func:`corr`).
    expected_sign : {-1, +1}
        The sign the claim predicts (-1: "lower LID goes with higher alignment").
    informative : bool
        False turns the verdict into ``"uninformative"``.

    Returns
    -------
    str
        One of :data:`VERDICTS`.
    """
    check_sign(expected_sign)
    lo, hi = ci_bounds(result)
    if not informative:
        return VERDICTS[4]
    return str(verdict_batch(lo, hi, expected_sign)[()])


def holm(pvals):
    """Holm–Bonferroni adjusted p-values (step-down; Holm 1979).

    With the :math:`m` finite p-values sorted, :math:`p_{(1)} \\le \\dots \\le p_{(m)}`,

    .. math:: \\tilde p_{(i)} = \\max_{j \\le i} \\min\\bigl(1, (m - j + 1)\\, p_{(j)}\\bigr),

    returned in the input order. Rejecting where :math:`\\tilde p < \\alpha` controls
    the family-wise error rate at :math:`\\alpha`. NaN inputs stay NaN and do not
    count in :math:`m`. Same values as ``statsmodels.stats.multitest.multipletests(p,
    method="holm")[1]``.

    Parameters
    ----------
    pvals : array-like (m,)
        p-values in [0, 1] (NaN allowed).

    Returns
    -------
    ndarray (m,)
    """
    p = np.asarray(pvals, dtype=np.float64).ravel()
    ok = np.isfinite(p)
    if ((p[ok] < 0) | (p[ok] > 1)).any():
        raise ValueError("p-values must lie in [0, 1].")
    out = np.full(p.shape, np.nan)
    q = p[ok]
    m = q.size
    if m:
        order = np.argsort(q, kind="stable")
        adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * q[order]))
        res = np.empty(m)
        res[order] = adj
        out[ok] = res
    return out

#: Fewest units for a verdict. Below it a record is descriptive: r and a Fisher-z
#: interval, no label (:func:`label`). The validation chapter's coverage simulation
#: (:func:`lidutils.book.power.coverage_table`, 1000 bivariate-normal data sets per cell) is
#: the reason: the percentile bootstrap interval of r covers the true value in 79–93 % of
#: data sets at n = 4, 84–91 % at n = 5 and 87–92 % at n = 6, and reaches about 90 % at
#: n = 8; the Fisher-z interval holds 95 % at every n >= 4. The permutation p, which a
#: verdict must agree with, has only 24 distinct orderings at n = 4.
MIN_N_VERDICT = 8

#: Fewest units per family for a within-family verdict: with two per family the
#: family-stratified bootstrap covers the true within-family r in only 64–76 % of data
#: sets (three families, six units); with three per family, 90–93 % (coverage table).
MIN_PER_FAMILY = 3

#: Significance level of the permutation p that a verdict's CI must agree with.
ALPHA = 0.05


def too_few(result, min_n=MIN_N_VERDICT, min_per_family=MIN_PER_FAMILY):
    """Whether a result has too few units for a verdict: ``n < min_n``, or (within family) ``n / G < min_per_family``."""
    n = result.get("n")
    if n is None:
        return False
    within = result.get("design", "within family") == "within family"  # a pooled record's families do not count
    G = int(result.get("n_families") or 1) if within else 1
    return int(n) < int(min_n) or (G > 1 and int(n) / G < min_per_family)


def label(result, expected_sign=-1, informative=True, min_n=MIN_N_VERDICT, alpha=ALPHA, p_key="p",
          min_per_family=MIN_PER_FAMILY):
    """The verdict a record may carry: its CI and its permutation p must agree, at enough units.

    - ``"descriptive"``: fewer than ``min_n`` units, or a within-family result with
      fewer than ``min_per_family`` units per family (:func:`too_few`): no label,
      whatever the CI (see :data:`MIN_N_VERDICT`);
    - ``"uninformative"``: ``informative=False`` (the test cannot tell);
    - ``"replicated"`` / ``"opposite"``: :func:`verdict` says so from the CI **and**
      ``result[p_key] < alpha`` (``p_key="p_holm"`` for a secondary record);
    - ``"inconclusive"``: otherwise (the CI covers 0, or CI and p disagree).
    """
    v = verdict(result, expected_sign, informative=informative)
    if too_few(result, min_n, min_per_family):
        return VERDICTS[5]
    if v in (VERDICTS[0], VERDICTS[2]):
        p = result.get(p_key)
        if p is None or not np.isfinite(float(p)) or float(p) >= alpha:
            return VERDICTS[3]
    return v


def format_corr(result, name="r"):
    """``"r = −0.41 [−0.62, −0.15], p = 0.003, n = 48"`` for a :func:`lidutils.stats.corr` dict."""
    p = result["p"]
    # the usual form: two decimals, three below 0.01, "< 0.001" below that (as lidutils.book.report.fmt_p)
    ptxt = ("= —" if p is None or p != p else "< 0.001" if p < 1e-3 else
            f"= {p:.3f}" if p < 0.01 else f"= {p:.2f}")
    return (f"{name} = {result['r']:+.2f} [{result['ci_low']:+.2f}, {result['ci_high']:+.2f}], "
            f"p {ptxt}, n = {int(result['n'])}")
