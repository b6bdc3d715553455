"""Validation worlds through the claim code: the synthetic worlds' records and the validation
chapter's summary.
"""
from __future__ import annotations

from pathlib import Path

from lidutils import stats
from lidutils.book.analyses import primary_analysis
from lidutils.book.local_global import c4_verdict, local_global
from lidutils.book.params import parameters
from lidutils.book.power import min_n_for_coverage
from lidutils.book.report import to_plain
from lidutils.book.simulate import world_population
from lidutils.book.study import from_population, primary_population
from lidutils.cache import save_json


def world_claims(world, **params):
    """The claim chapters' analyses on a synthetic world, through the chapters' own functions.

    C3 (LID vs generalization, :func:`primary_analysis` as chapter 01), C1 (LID vs
    ridge alignment with the partners, as 02), C2 (LID vs RSA with each subject,
    averaged, as 03) and C4's rule (:func:`local_global` + :func:`c4_verdict`, as 05)
    on :func:`lidutils.book.simulate.world_population`. Returns the Pearson records
    (with ``world`` and ``seed``), the C4 verdict and its reason.
    """

    study = from_population(world_population(world), **params)
    tag = dict(world=world.name, seed=int(world.params["seed"]))
    recs = []
    for claim, y, kw in (("C3", "accuracy", {}), ("C1", "ridge", dict(align=("ridge",))),
                         ("C2", "brain_all", dict(brain=True))):
        rec = primary_analysis(study, claim, y, **kw)["records"][0]
        recs.append({**rec, **tag})
    name = primary_population(study.populations)
    v, why, comps = c4_verdict(local_global(study, "C4", name, "accuracy"))
    return dict(**tag, records=recs, c4_verdict=v, c4_reason=why)


def validation_summary(recov, runs, power_table, attenuation, parameters, coverage=None):
    """The validation chapter's results record (``results/validation.json``).

    ``coverage``: :func:`lidutils.book.power.coverage_table` (stored with the smallest n per
    interval whose mean coverage stays >= 0.89, :func:`lidutils.book.power.min_n_for_coverage`:
    the basis of :data:`lidutils.stats.MIN_N_VERDICT`).
    """
    def counts(df, col="verdict"):
        return df.groupby("claim")[col].value_counts().unstack(fill_value=0).to_dict("index")

    pos, neg = recov[recov["world"] == "positive"], recov[recov["world"] == "negative"]
    covers = (neg["ci_low"] <= 0) & (neg["ci_high"] >= 0)
    fp = power_table[power_table["r_true"] == 0]
    return dict(
        parameters=parameters,
        positive_world=dict(mean_r=pos.groupby("claim")["r"].mean().round(3).to_dict(), verdicts=counts(pos)),
        negative_world=dict(mean_r=neg.groupby("claim")["r"].mean().round(3).to_dict(),
                            ci_covers_zero=int(covers.sum()), of=int(len(neg))),
        c4=[dict(world=r["world"], seed=r["seed"], verdict=r["c4_verdict"], reason=r["c4_reason"]) for r in runs],
        power_table=power_table.to_dict("records"),
        false_positive_rate=fp[["n_models", "power", "opposite"]].to_dict("records"),
        attenuation=attenuation,
        coverage=None if coverage is None else dict(
            table=coverage.to_dict("records"), min_n=_min_n_cov(coverage),
            min_n_verdict=stats.MIN_N_VERDICT, min_per_family=stats.MIN_PER_FAMILY),
    )


def _min_n_cov(coverage):

    return min_n_for_coverage(coverage)


def save_validation(summary, out_dir="results"):
    """Write ``<out_dir>/validation.json`` atomically; returns the path."""

    path = Path(out_dir) / "validation.json"
    save_json(path, to_plain(summary))
    return path
