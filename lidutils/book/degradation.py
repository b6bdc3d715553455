"""Within-model degradation series (weight noise, pruning, blur) and their records."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lidutils import degrade as D, rsatools, stats
from lidutils.book import measures, paper
from lidutils.book.params import claim_k
from lidutils.book.records import correlate
from lidutils.book.report import to_plain

#: The within-model dose–response series of the natural-image models: which
#: classifiers, which damages (6 levels each, :data:`lidutils.degrade.DEFAULT_LEVELS`),
#: on how many ImageNet sample photos.
DEGRADATION = dict(models=("tf_efficientnet_lite0", "mobilenetv2_100"),
                   kinds=("weight_noise", "blur"), n_photos=100)

#: Fewest photos for a ridge R² in the degradation series: with 100 photos (80 to fit on,
#: 20 held out) the held-out R² of every level was negative in the book's build,
#: so no alignment column is computed below this many.
MIN_RIDGE_PHOTOS = 300


def degradation_plan(params, members, models=None, kinds=None, n_photos=None):
    """``(models, kinds, n_photos)`` of the chapters' degradation series: the models of
    :data:`DEGRADATION` among ``members``, the damages and photo count of the parameters
    ``degrade_kinds`` / ``degrade_photos`` (else :data:`DEGRADATION`'s)."""
    models = [m for m in (models or DEGRADATION["models"]) if m in set(members)]
    kinds = list(kinds or params.get("degrade_kinds") or DEGRADATION["kinds"])
    n_photos = int(n_photos or params.get("degrade_photos") or DEGRADATION["n_photos"])
    return models, kinds, n_photos


def series(params, model, kind, n_photos, probe_images, cache_dir, device="auto"):
    """One degradation series (:func:`lidutils.degrade.degradation_series`) as the chapters
    compute it: the probe images embedded at every level, features cached under
    ``cache_dir/features``."""
    cache = None if cache_dir is None else Path(cache_dir) / "features"
    return D.degradation_series(model, kind, images={"probe": probe_images}, n_photos=n_photos, cache_dir=cache,
                                device=device, data_dir=params.get("data_dir"), seed=params.get("seed", 0))


def degradation_table(study, models=None, kinds=None, n_photos=None):
    """One row per (model, damage, level) of the degradation series, measured as the chapters measure.

    Per level: ``retained_accuracy`` (top-1 on the sample photos relative to the
    intact model: retained function, not generalization), mean LID at the paper's K
    in the analysis space of the photos, ridge alignment with the other series'
    *intact* models on the same photos (both directions averaged), and the mean RSA
    with every brain region (``brain_<roi>``) on the probe images. ``series`` names the
    paired group (model / damage).
    """

    models, kinds, n_photos = degradation_plan(study.params, study.pop.members.index, models, kinds, n_photos)
    if not models or not kinds:
        return pd.DataFrame()
    k = claim_k("C3", n_photos)
    series_ = {(m, kind): series(study.params, m, kind, n_photos, study.pop.probe_images, study.cache_dir,
                                 study.device)
               for m in models for kind in kinds}
    intact = {m: series_[(m, kinds[0])].features["photos"][0] for m in models}
    frames = []
    for (m, kind), s in series_.items():
        t = s.table.copy()
        t["series"] = f"{m} / {kind}"
        photos = {row.member: s.features["photos"][row.dose] for row in t.itertuples()}
        t = t.set_index("member")
        sp = study.params.get("space", "pca300")
        t = t.join(measures.lid_table(photos, [k], space=sp, n_pcs=study.params.get("n_pcs", 300),
                               seed=study.params.get("seed", 0), device=study.device, cache_dir=study.cache_dir))
        partners = {p: X for p, X in intact.items() if p != m}
        if partners and n_photos >= MIN_RIDGE_PHOTOS:  # below it the held-out R² is noise (negative)
            al = [measures.ridge_all_pairs({**{lv: X}, **partners}, n_pcs=study.params.get("n_pcs", 300),
                                 seed=study.params.get("seed", 0), device=study.device, cache_dir=study.cache_dir,
                                 **measures.RIDGE)
                  for lv, X in photos.items()]
            t["ridge"] = [float(np.mean([(a.iloc[0, j] + a.iloc[j, 0]) / 2 for j in range(1, len(a))])) for a in al]
        if study.pop.brain is not None:
            rd = np.stack([rsatools.rdm(P_, device=study.device) for P_ in s.features["probe"]])
            for roi, rdms in study.pop.brain.items():
                t[f"brain_{roi}"] = rsatools.rsa_many(rd, rdms, method=study.params.get("rsa_method", "spearman")).mean(1)
        frames.append(t)
    out = pd.concat(frames)
    out.attrs["k"] = k
    return out


def degradation_records(claim, table, x, y, label=None, n_boot=2000, n_perm=10000, seed=0, dose="dose"):
    """Manipulation checks of the degradation series: per series, not a replication.

    Damaging one network in six steps is a manipulation of that network, not a sample
    of networks: weight noise inflating the dimension of a representation is close to
    mechanical. So each series (model / damage) gets its own records — dose vs ``x``
    (does the damage move LID?) and ``x`` vs ``y`` across its levels — each
    descriptive at six levels (:func:`lidutils.stats.label`, Fisher-z interval). The
    repeated-measures correlation over all series (:func:`lidutils.stats.rmcorr`) is
    kept as a summary, labelled ``descriptive`` too. Every record has
    ``role="manipulation check"`` (:func:`finalize` leaves it out of Holm). ``y`` may be
    a list of targets (one dose check per series, then ``x`` vs each). Returns a list
    (empty when the table lacks the columns).
    """
    ys = [y] if isinstance(y, str) else list(y)
    if len(ys) > 1:  # one dose check per series, then x vs each target
        out = degradation_records(claim, table, x, ys[0], None, n_boot, n_perm, seed, dose)
        for yy in ys[1:]:
            out += [r for r in degradation_records(claim, table, x, yy, None, n_boot, n_perm, seed, dose)
                    if r["x"] != dose]
        return out
    y = ys[0]
    if table.empty or x not in table or y not in table:
        return []
    sub = table[[c for c in dict.fromkeys([x, y, dose, "series"]) if c in table]].dropna(subset=[x, y])
    info = paper.PAPER.get(claim, {})
    sign = int(info.get("expected_sign", -1))
    common = dict(claim=claim, role="manipulation check", population="degradation series (within model)",
                  space=None, k=table.attrs.get("k"), estimator="mle", paper_r=None, power=None, power_r=None,
                  power_at={}, excludes_paper_value=None, p_holm=None)
    recs = []
    for ser, g in sub.groupby("series", sort=False):
        pairs = ([(dose, x, f"{ser}: damage dose vs {x}")] if dose in g else []) + [(x, y, f"{ser}: {x} vs {y}")]
        for a, b, lab in pairs:
            rec = correlate(claim, g, a, b, population=f"degradation series {ser}", role="manipulation check",
                            expected_sign=sign if a == x else 1, paper_r=None, label=lab, n_boot=n_boot,
                            n_perm=n_perm, seed=seed, design="pooled",
                            note="levels of one damaged network: a manipulation check, not a sample of models")
            if rec is not None:
                rec.update(series=str(ser), verdict="descriptive")
                recs.append(rec)
    if sub["series"].nunique() >= 2 and len(sub) >= sub["series"].nunique() + 3:
        res = stats.rmcorr(sub[x], sub[y], sub["series"], n_boot=n_boot, n_perm=n_perm, seed=seed)
        rec = {k: to_plain(v) for k, v in res.items()}
        rec.update(common, analysis=label or f"degradation series: {x} vs {y} (within model, all series)", x=x,
                   y=y, unit="levels within series", members=[str(m) for m in sub.index], expected_sign=sign,
                   excludes_zero=bool(stats.excludes(res, 0.0)), verdict="descriptive",
                   note="repeated-measures correlation over the series; each series is a manipulation check, "
                        "so this summary carries no verdict")
        recs.append(rec)
    return recs
