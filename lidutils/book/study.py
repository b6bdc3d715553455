"""The study a chapter runs: its population, analysis populations and correlation settings."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lidutils.book import measures, zoo
from lidutils.book.params import SHARED_DEFAULTS
from lidutils.book.population import build_population, ZOO_GROUPS
from lidutils.book.records import correlate


def analysis_populations(members, min_n=3):
    """Pre-declared analysis populations, in priority order: name -> member list.

    Zoo groups (one per training set, e.g. ``zoo-fmnist``):

    - ``"<group>: clean, converged"`` — final checkpoints, clean labels, passing the
      convergence rule; the unit is the design cell (seeds averaged). The first zoo
      group's is the primary population of C1, C3–C6;
    - ``"<group>: clean, final epoch"`` — the same without the convergence rule (listed
      only when it differs: some network did not converge);
    - ``"<group>: label-noise series"`` — final checkpoints of the label-noise series
      (noise 0 / 0.2 / 0.4 at fixed architecture);
    - ``"<group>: under-trained"`` — the same clean networks at their first saved epoch.

    Natural-image models: ``"ImageNet models"`` (pretrained; accuracy = published
    top-1) and ``"ImageNet models + random controls"``. Paper tier: ``"paper models"``.
    Sets with fewer than ``min_n`` members, or identical to an earlier set, are dropped.
    """
    sets = {}
    for grp in pd.unique(members["group"]):
        m = members[members["group"] == grp]
        if str(grp).startswith("zoo"):
            clean = m["label_noise"].fillna(0).eq(0) if "label_noise" in m else pd.Series(True, m.index)
            conv = m["converged"].fillna(False).astype(bool) if "converged" in m else pd.Series(True, m.index)
            first = m["epoch"] == m.groupby("model")["epoch"].transform("min")
            sets[f"{grp}: clean, converged"] = m.index[m["final"] & clean & conv]
            sets[f"{grp}: clean, final epoch"] = m.index[m["final"] & clean]
            noise = m["in_noise"].fillna(False).astype(bool) if "in_noise" in m else ~clean
            sets[f"{grp}: label-noise series"] = m.index[m["final"] & noise]
            sets[f"{grp}: under-trained"] = m.index[first & ~m["final"] & clean]
        elif grp == "imagenet":
            sets["ImageNet models"] = m.index[m["pretrained"].astype(bool)]
            sets["ImageNet models + random controls"] = m.index
        else:
            sets[f"{grp} models"] = m.index
    out, seen = {}, set()
    for k, v in sets.items():
        key = tuple(sorted(v))
        if len(v) >= min_n and key not in seen:
            out[k] = list(v)
            seen.add(key)
    return out


def primary_population(populations):
    """The pre-declared primary population: the first zoo ``clean, converged`` set.

    When no network of a zoo passed the convergence rule (e.g. the few-epoch smoke
    grid), its ``clean, final epoch`` set; else the first population.
    """
    for suffix in ("clean, converged", "clean, final epoch"):
        for name in populations:
            if name.endswith(suffix):
                return name
    return next(iter(populations))


@dataclass
class Study:
    """A population, its analysis populations and the correlation settings of one notebook run."""

    params: dict
    pop: object
    populations: dict
    corr_kw: dict = field(default_factory=dict)

    @property
    def cache_dir(self):
        return self.params.get("cache_dir")

    @property
    def device(self):
        return self.params.get("device", "auto")

    def n_stimuli(self, name):
        """Number of evaluation stimuli of an analysis population."""
        return int(self.pop.eval_reps[self.populations[name][0]].shape[0])

    def reps(self, name, which="eval"):
        src = self.pop.eval_reps if which == "eval" else self.pop.probe_reps
        return {m: src[m] for m in self.populations[name]}

    def members(self, name):
        return self.pop.members.loc[self.populations[name]]

    # --- measurements (per member) ---------------------------------------------------
    def lid(self, name, ks, estimators=("mle",), space=None, which="eval"):
        """:func:`lidutils.book.measures.lid_table` of one analysis population."""
        space = space or self.params.get("space", "pca300")
        return measures.lid_table(self.reps(name, which), ks, estimators=estimators, space=space,
                           n_pcs=self.params.get("n_pcs", 300), seed=self.params.get("seed", 0),
                           device=self.device, cache_dir=self.cache_dir)

    def global_dims(self, name, space=None):
        space = space or self.params.get("space", "pca300")
        return measures.global_table(self.reps(name), space=space, n_pcs=self.params.get("n_pcs", 300),
                              seed=self.params.get("seed", 0), device=self.device, cache_dir=self.cache_dir)

    def alignment(self, name, metric="ridge"):
        """(matrix, partner scores) of one analysis population (:func:`lidutils.book.measures.partner_scores`)."""
        mat = measures.cached_alignment(self.reps(name), metric=metric, n_pcs=self.params.get("n_pcs", 300),
                                 k=self.params.get("k_align", 10), seed=self.params.get("seed", 0),
                                 device=self.device, cache_dir=self.cache_dir)
        return mat, measures.partner_scores(mat, self.pop.members)

    def brain(self, name=None):
        """Long table of model–brain scores (model, roi, subject, score) of a population (or all)."""
        names = self.populations[name] if name else list(self.pop.probe_reps)
        long = self.pop.brain_scores
        if long is None:
            long = measures.brain_long({m: self.pop.probe_reps[m] for m in names}, self.pop.brain,
                                method=self.params.get("rsa_method", "spearman"), device=self.device)
        return long[long["model"].isin(names)]

    # --- the unit table --------------------------------------------------------------
    def table(self, name, ks=(), estimators=("mle",), space=None, global_dims=False, align=(),
              brain=False):
        """One row per unit (design cell or model) of an analysis population, with the measures asked for.

        Columns: the members' metadata (``accuracy``, ``family``, ``n_params``, ...),
        ``log10_params``, LID columns ``<est>_k<K>`` and ``twonn`` (if ``ks``), global
        measures (``global_dims``), ``<metric>`` / ``<metric>_balanced`` partner
        alignment for each metric in ``align``, ``brain_<roi>`` (subject-mean score: RSA, or encoding R² in the paper tier) if
        ``brain``; numeric columns averaged over seed replicates, with ``<col>_sd``,
        ``n_seeds`` and ``members``.
        """
        t = self.members(name).copy()
        t["log10_params"] = np.log10(t["n_params"].astype(float))
        if "n_train" in t:
            t["log10_n_train"] = np.log10(t["n_train"].astype(float))
        if len(ks):
            t = t.join(self.lid(name, ks, estimators, space))
        if global_dims:
            t = t.join(self.global_dims(name, space))
        for metric in align:
            _, sc = self.alignment(name, metric)
            t = t.join(sc.rename(columns={"mean_partner": metric, "family_balanced": f"{metric}_balanced"}))
        if brain:
            b = self.brain(name).groupby(["model", "roi"])["score"].mean().unstack("roi")
            t = t.join(b.add_prefix("brain_"))
        return measures.cell_means(t)

    def correlate(self, claim, table, x, y, *, population, role="secondary", method=None, **kw):
        """:func:`correlate` with this study's bootstrap / permutation settings."""
        return correlate(claim, table, x, y, population=population, role=role,
                         method=method or self.params.get("method", "pearson"),
                         n_boot=self.params.get("n_boot", 2000), n_perm=self.params.get("n_perm", 10000),
                         seed=self.params.get("seed", 0), space=kw.pop("space", self.params.get("space")),
                         **kw)


def setup(params, include=("zoo", "imagenet")):
    """Build the :class:`Study` of a notebook from its parameters (:func:`parameters`)."""

    pop = build_population(
        tier=params["tier"], zoo_grid=params["zoo_grid"], models=params["models"],
        controls=params["controls"], n_images=params["n_images"], cache_dir=params["cache_dir"],
        device=params["device"], data_dir=params["data_dir"], nsd_root=params["nsd_root"],
        include=include, rdm_npz=params.get("rdm_npz"), image_dir=params.get("image_dir"),
        rois=params.get("rois"), nsd_subjects=params.get("nsd_subjects") or (1,),
        layer=params.get("layer", "penultimate"))
    if params["tier"] == "paper-dryrun":
        print(DRY_RUN_BANNER)
    return Study(dict(params), pop, analysis_populations(pop.members))

#: Printed by :func:`setup` in every chapter of a dry run (and prefixed to its verdicts).
DRY_RUN_BANNER = ("DRY RUN on stand-ins (tier='paper-dryrun'): untrained paper architectures and generated "
                  "NSD-layout data exercise the paper tier's code path. These numbers are not results.")


def from_population(pop, **params):
    """A :class:`Study` of a ready population (e.g. a synthetic world's) with default parameters."""
    p = dict(SHARED_DEFAULTS, cache_dir=None)
    p.update(params)
    return Study(p, pop, analysis_populations(pop.members))


def zoo_design(zoo_grid):
    """The design tables of a book zoo (:data:`lidutils.book.population.ZOO_GROUPS`), one row per design cell."""

    frames = []
    for group, grid, data in ZOO_GROUPS.get(zoo_grid, (("zoo", zoo_grid, "animal-mnist"),)):
        d = zoo.design_table(grid)
        frames.append(d.assign(group=group, data_set=data, n_networks=d["seeds"].map(len)))
    return pd.concat(frames, ignore_index=True)


def zoo_networks(zoo_grid, cache_dir="data/cache", device="auto"):
    """Final-epoch row of every network of a book zoo (trained if missing), with its data set."""

    frames = []
    for group, grid, data in ZOO_GROUPS.get(zoo_grid, (("zoo", zoo_grid, "animal-mnist"),)):
        t = zoo.train_zoo(grid=grid, data=data, cache_dir=Path(cache_dir) / "zoo", device=device, progress=False,
                      num_workers=2)
        frames.append(t[t["final"]].assign(group=group, data_set=data))
    out = pd.concat(frames, ignore_index=True)
    if "family" not in out:
        out["family"] = out["arch"]
    if "converged" not in out:
        out["converged"] = np.nan
    return out


def learning_curves(networks, per_family=2):
    """Per-epoch learning curves of ``per_family`` networks of each (data set, family): long table."""

    frames = []
    for (data, fam), g in networks.groupby(["data_set", "family"]):
        for _, row in g.head(per_family).iterrows():
            c = zoo.load_learning_curve(row)
            frames.append(c.assign(network=f"{data}/{row['name']}", family=fam, data_set=data))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def population_named(study, suffix):
    """The first analysis population whose name ends with ``suffix`` (None when there is none)."""
    return next((n for n in study.populations if n.endswith(suffix)), None)


def populations_frame(study):
    """The pre-declared analysis populations: units, networks, unit kind and stimuli, in priority order."""
    rows = []
    for name, members in study.populations.items():
        m = study.pop.members.loc[members]
        units = m["design"].nunique() if "design" in m and m["design"].notna().all() else len(m)
        rows.append(dict(population=name, units=units, networks=len(m),
                         unit="design cells" if units < len(m) else "models",
                         families=", ".join(sorted(map(str, m["family"].unique()))),
                         n_stimuli=study.n_stimuli(name)))
    return pd.DataFrame(rows).set_index("population")


def replication_populations(study, primary, natural=("ImageNet models",)):
    """The populations a primary analysis is repeated in: each other zoo's primary set, then ``natural``.

    For every zoo group other than ``primary``'s, its ``clean, converged`` set (or
    ``clean, final epoch`` when none converged); then the natural-image populations
    named in ``natural`` that exist.
    """
    out = []
    groups = {n.split(":")[0] for n in study.populations if n.startswith("zoo")} - {primary.split(":")[0]}
    for g in sorted(groups):
        sub = {n: v for n, v in study.populations.items() if n.startswith(g + ":")}
        if sub:
            out.append(primary_population(sub))
    return out + [n for n in natural if n in study.populations and n != primary]
