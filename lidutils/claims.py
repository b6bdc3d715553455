"""The claim analyses: one function per block a claim notebook runs.

A claim notebook reads like the paper: a sentence, one call of this module, a
figure or a table. Everything that decides a verdict lives here (and is
unit-tested on small synthetic populations); the notebooks hold narrative only.
The validation chapter runs the synthetic worlds of :mod:`lidutils.simulate`
through the same functions, so it certifies the code that produces the verdicts.

The study
---------
:func:`setup` turns a notebook's parameters into a :class:`Study`: the population
(:func:`lidutils.population.build_population`), its **analysis populations**
(:func:`analysis_populations`: pre-declared, in priority order) and the
correlation settings. ``Study.table`` measures one analysis population
(:mod:`lidutils.measures`) and returns one row per **unit**: a design cell of the
zoo (seed replicates averaged, :func:`lidutils.measures.cell_means`) or a model.

The paper's method (:data:`lidutils.paper.PROTOCOL`)
----------------------------------------------------
Top-300-PC space fitted on an 80 % split (``space="pca300"``); K = 50 for
model–model alignment and generalization, K = 1000 for the brain where the
stimulus set allows it, otherwise the largest K of the sweep below N/4
(:func:`paper_k`, stated in every record); Pearson first, Spearman alongside;
ridge R² over all pairs, both directions averaged.

Records
-------
:func:`correlate` returns one record (the fields of the results files): r, 95 %
bootstrap CI, permutation p, n and its unit, whether the CI excludes 0 and the
paper's value, power at the paper's value and at r = −0.3 / −0.5, the verdict from
:func:`lidutils.stats.verdict` (it always agrees with the CI), and the members.
:func:`finalize` marks the pre-declared primary and Holm-adjusts the secondaries'
p within a claim.
"""
from __future__ import annotations

import ast
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import measures as M
from . import paper as PAPER
from . import rsatools as R
from . import stats as S
from . import zoo as Z
from .cache import save_json
from .population import ZOO_GROUPS, build_population
from .power import power_at
# tables for a page (notebooks: C.readable, C.facts_frame, C.best_k_frame)
from .report import _plain, best_k_frame, facts_frame, readable, write_claim  # noqa: F401
from .simulate import world_population
from .measures import lid_col  # noqa: F401  (notebooks: C.lid_col)

#: Parameters shared by every claim notebook, with their defaults (the notebooks'
#: parameters cells must agree: tests/test_claims.py checks it).
SHARED_DEFAULTS = dict(
    tier="offline", zoo_grid="controlled", models=None,
    controls=["random:tf_efficientnet_lite0", "random:mobilenetv2_100"], n_images=300,
    layer="penultimate", space="pca300", n_pcs=300, method="pearson", n_boot=2000, n_perm=10000, seed=0,
    device="auto", cache_dir="data/cache", out_dir="results", data_dir=None, nsd_root=None,
)
#: Notebook-specific parameters (name -> default), recorded with the shared ones.
NOTEBOOK_DEFAULTS = {
    "01_generalization": {"degrade_photos": 100, "degrade_kinds": ["weight_noise", "blur"]},
    "02_model_model": {"k_align": 10},
    "03_model_brain": {"rois": None, "rdm_npz": None, "image_dir": None, "rsa_method": "spearman",
                       "nsd_subjects": [1], "degrade_photos": 100, "degrade_kinds": ["weight_noise", "blur"]},
    "04_scaling": {},
    "05_local_vs_global": {},
    "population": {},
}
#: Chapters whose parameters are their own (no population of the claim chapters): name -> defaults.
#: Where a name is shared with :data:`SHARED_DEFAULTS` its default agrees (tests/test_claims.py).
OWN_PARAMETERS = {
    "00_validation": dict(tier="offline", n_models=16, n_stimuli=400, seeds=2, n_sim=1000, n_boot=2000,
                          n_perm=10000, out_dir="results", seed=0),
    "06_intervention": dict(tier="offline", zoo_grid="controlled", k_local=50, n_pcs=300, method="pearson",
                            n_boot=2000, n_perm=10000, seed=0, device="auto", num_workers=2,
                            cache_dir="data/cache", out_dir="results", data_dir=None),
    "07_factorial": dict(tier="offline", zoo_grid="controlled", k_local=50, n_pcs=300, n_boot=2000, n_perm=10000,
                         seed=0, device="auto", num_workers=2, cache_dir="data/cache", out_dir="results",
                         data_dir=None),
}
#: The K sweep of every r-vs-K curve (clipped below N/4 per population; N/4 itself is added).
K_SWEEP = (5, 10, 20, 50, 100, 200, 500, 1000)
GLOBAL_FRACTION = 0.25  # LID at K >= N/4 counts as a global measure (C4)
MIN_N = 4


def parameters(namespace, notebook):
    """Every parameter of ``notebook`` taken from its namespace (for the results file).

    ``namespace`` is the notebook's ``globals()``; the names are
    :data:`SHARED_DEFAULTS` plus ``NOTEBOOK_DEFAULTS[notebook]`` (or the chapter's
    :data:`OWN_PARAMETERS`), so a results file
    records every parameter that can change it without anything typed by hand.
    Relative ``cache_dir`` / ``out_dir`` are relative to the book's root (the folder
    with ``_toc.yml``), so a notebook opened in ``notebooks/`` (``make lab``) uses the
    same caches and results as the book.
    """
    if notebook in OWN_PARAMETERS:
        names = list(OWN_PARAMETERS[notebook])
    elif notebook in NOTEBOOK_DEFAULTS:
        names = list(SHARED_DEFAULTS) + list(NOTEBOOK_DEFAULTS[notebook])
    else:
        raise ValueError(f"unknown notebook {notebook!r}; known: {sorted(NOTEBOOK_DEFAULTS) + sorted(OWN_PARAMETERS)}.")
    missing = [n for n in names if n not in namespace]
    if missing:
        raise ValueError(f"{notebook}: the parameters cell lacks {missing}; define them there.")
    params = {n: namespace[n] for n in names}
    root = _book_root()
    for key in ("cache_dir", "out_dir"):  # relative to the book, wherever the kernel starts
        if root is not None and isinstance(params.get(key), str) and not Path(params[key]).is_absolute():
            params[key] = os.path.relpath(Path(root, params[key]), Path.cwd())
    return params


def _book_root():
    """The repository root (the folder holding ``_toc.yml`` and ``notebooks/``) above the working directory."""
    for d in [Path.cwd(), *Path.cwd().parents]:
        if (d / "_toc.yml").is_file() and (d / "notebooks").is_dir():
            return d
    return None


def notebook_parameter_defaults(path):
    """``{name: default}`` of the cell tagged ``parameters`` of a notebook file (parsed, not run)."""
    nb = json.loads(Path(path).read_text())
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse("".join(cell["source"]))
            return {t.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)}
    raise ValueError(f"{path}: no cell tagged 'parameters'.")


# ----------------------------------------------------------------------------- populations
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


def paper_k(claim, n_stimuli):
    """K of a claim's primary analysis for ``n_stimuli`` points (stated in each record).

    The paper's K (:data:`lidutils.paper.PAPER`: 50, or 1000 for the brain) when it
    lies below ``n_stimuli / 4``; otherwise the largest K of :data:`K_SWEEP` below
    ``n_stimuli / 4`` (a K at or above N/4 is a global measure, see :func:`k_grid`).
    """
    k = int(PAPER.PAPER[claim].get("k") or PAPER.PROTOCOL["k_model"])
    allowed = [kk for kk in K_SWEEP if kk < GLOBAL_FRACTION * n_stimuli]
    if not allowed:
        raise ValueError(f"{n_stimuli} stimuli are too few for a local K (need > {4 * K_SWEEP[0]}).")
    return k if k in allowed else max(allowed)


def k_grid(n_stimuli):
    """The r-vs-K sweep for ``n_stimuli`` points: K of :data:`K_SWEEP` below N/4, then K = N/4 (global)."""
    local = [k for k in K_SWEEP if k < GLOBAL_FRACTION * n_stimuli]
    return local + [k_global(n_stimuli)]


def k_global(n_stimuli):
    """The large-K "global" LID of claim C4: K = floor(N/4)."""
    return int(GLOBAL_FRACTION * n_stimuli)


# ----------------------------------------------------------------------------- study
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
        """:func:`lidutils.measures.lid_table` of one analysis population."""
        space = space or self.params.get("space", "pca300")
        return M.lid_table(self.reps(name, which), ks, estimators=estimators, space=space,
                           n_pcs=self.params.get("n_pcs", 300), seed=self.params.get("seed", 0),
                           device=self.device, cache_dir=self.cache_dir)

    def global_dims(self, name, space=None):
        space = space or self.params.get("space", "pca300")
        return M.global_table(self.reps(name), space=space, n_pcs=self.params.get("n_pcs", 300),
                              seed=self.params.get("seed", 0), device=self.device, cache_dir=self.cache_dir)

    def alignment(self, name, metric="ridge"):
        """(matrix, partner scores) of one analysis population (:func:`lidutils.measures.partner_scores`)."""
        mat = M.alignment_matrix(self.reps(name), metric=metric, n_pcs=self.params.get("n_pcs", 300),
                                 k=self.params.get("k_align", 10), seed=self.params.get("seed", 0),
                                 device=self.device, cache_dir=self.cache_dir)
        return mat, M.partner_scores(mat, self.pop.members)

    def brain(self, name=None):
        """Long table of model–brain scores (model, roi, subject, score) of a population (or all)."""
        names = self.populations[name] if name else list(self.pop.probe_reps)
        long = self.pop.brain_scores
        if long is None:
            long = M.brain_long({m: self.pop.probe_reps[m] for m in names}, self.pop.brain,
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
        return M.cell_means(t)

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


# ----------------------------------------------------------------------------- records
def _unit(table):
    return "design cells" if "n_seeds" in table and (table["n_seeds"] > 1).any() else "models"


def families_of(table, rows=None):
    """Family label of each unit of ``table`` (``rows``: a subset of its index), or None without families."""
    if "family" not in table:
        return None
    f = table["family"] if rows is None else table.loc[rows, "family"]
    return f.astype(str)


def within_design(families, min_units=2):
    """Whether a correlation across these units is a within-family one (the design's primary kind).

    True when at least two families have ``min_units`` or more units: then
    family means are removed (:func:`lidutils.stats.corr_within`) and the
    between-family r of the family means is reported beside it. One family (or a
    table without ``family``): a plain correlation.
    """
    if families is None:
        return False
    counts = pd.Series(families).value_counts()
    return int((counts >= min_units).sum()) >= 2


def correlate(claim, table, x, y, *, population, role="secondary", method="pearson", expected_sign=None,
              paper_r="claim", space=None, k=None, estimator=None, label=None, n_boot=2000, n_perm=10000,
              seed=0, note="", design=None):
    """One correlation record across the units of ``table`` (rows with finite x and y).

    ``design``: ``"within"`` (family fixed effects, :func:`lidutils.stats.corr_within`:
    family-stratified bootstrap CI, permutation p within family, the between-family r
    of the family means beside it with its n), ``"pooled"`` (:func:`lidutils.stats.corr`,
    units exchangeable), or None: within family whenever the units span two or more
    families with two or more units each (:func:`within_design`), else pooled.

    The verdict is :func:`lidutils.stats.label`: ``"descriptive"`` below
    :data:`lidutils.stats.MIN_N_VERDICT` units (then ``ci_low``/``ci_high`` are the
    Fisher-z interval, valid at that n, and the bootstrap one is kept as
    ``ci_boot_low``/``ci_boot_high``); otherwise a label only when the CI and the
    permutation p agree.

    Returns ``None`` when a column is missing or constant, or fewer than 4 units remain. The record holds the fields of
    the results files (see the module docstring); ``expected_sign`` defaults to the
    claim's, ``paper_r`` to the claim's paper value (``None``: no paper number).
    """
    if x not in table or y not in table:
        return None
    sub = table[[x, y]].apply(pd.to_numeric, errors="coerce").replace([np.inf, -np.inf], np.nan).dropna()
    if len(sub) < MIN_N or np.ptp(sub[x]) == 0 or np.ptp(sub[y]) == 0:  # no correlation to speak of
        return None
    info = PAPER.PAPER.get(claim, {"expected_sign": -1})  # a claim beyond the paper (C8): no paper value
    sign = int(expected_sign if expected_sign is not None else info["expected_sign"])
    pr = info.get("paper_r") if isinstance(paper_r, str) and paper_r == "claim" else paper_r
    fams = families_of(table, sub.index)
    if design not in (None, "within", "pooled"):
        raise ValueError(f"design must be 'within', 'pooled' or None (automatic), got {design!r}.")
    within = within_design(fams) if design is None else design == "within"
    if within and fams is None:
        raise ValueError("design='within' needs a 'family' column in the table.")
    xv, yv = sub[x].to_numpy(float), sub[y].to_numpy(float)
    with warnings.catch_warnings(record=True) as caught:  # said once, in the record's note
        warnings.simplefilter("always")
        if within:
            try:
                res = S.corr_within(xv, yv, fams.to_numpy(), method=method, n_boot=n_boot, n_perm=n_perm,
                                    seed=seed)
            except ValueError:  # e.g. constant within every family: no within-family correlation
                return None
        else:
            res = S.corr(xv, yv, method=method, n_boot=n_boot, n_perm=n_perm, seed=seed)
    note = "; ".join(dict.fromkeys([note] * bool(note) + [str(w.message) for w in caught]))
    rec = {k_: _plain(v) for k_, v in res.items() if np.isscalar(v) or v is None}
    n = int(res["n"])
    if within:
        rec["r_pooled"] = float(np.corrcoef(xv, yv)[0, 1])
        members = [str(m) for m, f in zip(sub.index, fams) if (fams == f).sum() >= 2]
    else:
        rec.update(design="pooled", n_families=None if fams is None else int(fams.nunique()), r_between=None,
                   n_eff=n)
        members = [str(m) for m in sub.index]
    lo_f, hi_f = S.fisher_ci(res["r"], rec["n_eff"])
    rec.update(ci_fisher_low=lo_f, ci_fisher_high=hi_f, ci_method="percentile bootstrap"
               + (", family-stratified" if within else ""))
    if S.too_few(rec):  # descriptive: the interval valid at this n
        rec.update(ci_boot_low=rec["ci_low"], ci_boot_high=rec["ci_high"], ci_low=lo_f, ci_high=hi_f,
                   ci_method="Fisher z" + (f" at n_eff = {rec['n_eff']}" if within else ""))
    unit = _unit(table.loc[sub.index])
    rec.update(
        claim=claim, analysis=label or f"{population}: {x} vs {y} ({method}{', within family' if within else ''})",
        x=x, y=y, population=population, role=role, method=method, space=space, k=k, estimator=estimator,
        unit=unit, members=members,
        expected_sign=sign, paper_r=pr, excludes_zero=bool(S.excludes(rec, 0.0)),
        excludes_paper_value=None if pr is None else bool(S.excludes(rec, pr)),
        verdict=S.label(rec, expected_sign=sign), p_holm=None, note=note,
    )
    rec.update(_powers(rec["n_eff"], pr, sign))
    return rec


def _powers(n, pr, sign):

    alts = [a * -sign for a in PAPER.POWER_ALTERNATIVES]  # -0.3/-0.5 in the claim's direction
    power_alt = {f"{a:+.1f}": (None if n < MIN_N else float(power_at(n, a)["power"])) for a in alts}
    power = None if pr is None or n < MIN_N else float(power_at(n, pr)["power"])
    return dict(power=power, power_r=pr, power_at=power_alt)


def both_methods(study, claim, table, x, y, *, population, role="secondary", label=None, **kw):
    """Pearson (the paper's statistic; carries ``role``) and Spearman (secondary) records.

    ``label`` may hold ``{method}``, filled in per record.
    """
    out = []
    for method in ("pearson", "spearman"):
        rec = study.correlate(claim, table, x, y, population=population, method=method,
                              role=role if method == "pearson" else "secondary",
                              label=label.format(method=method) if label else None, **kw)
        if rec is not None:
            out.append(rec)
    return out


def holm_gate(rec, alpha=S.ALPHA):
    """A record's label after multiplicity: "replicated" / "opposite" stand only when ``p_holm < alpha``.

    Otherwise the verdict becomes "inconclusive" and the note says why. Records without
    ``p_holm``, and "uninformative" / "descriptive" ones, are left as they are.
    """
    ph = rec.get("p_holm")
    # "not replicated": C4's label of a global measure that predicts (against C4), a label like the others
    if ph is not None and rec.get("verdict") in ("replicated", "opposite", "not replicated") and not float(ph) < alpha:
        was = rec["verdict"]
        rec["verdict"] = "inconclusive"
        rec["note"] = "; ".join(filter(None, [rec.get("note"), f"{was} by its CI and p, but Holm p = "
                                              f"{float(ph):.2g} >= {alpha}"]))
    return rec


def finalize(records, primary):
    """Mark the primary record(s) and Holm-adjust the secondaries' p-values (within one claim).

    ``primary`` is the label of the pre-declared primary analysis, or a list of labels
    when a claim has several pre-declared primaries (C5: capacity and data); several
    primaries are Holm-adjusted among themselves. Returns the records with the
    primaries first; every other record gets ``role="secondary"`` and ``p_holm``, and
    keeps a "replicated" / "opposite" label only when ``p_holm < 0.05``
    (:func:`holm_gate`). Records with ``role="manipulation check"``
    (:func:`degradation_records`) keep their role, come last and enter no Holm family.
    """
    records = [r for r in records if r is not None]
    labels = [r["analysis"] for r in records]
    if len(set(labels)) != len(labels):
        dup = sorted({lab for lab in labels if labels.count(lab) > 1})
        raise ValueError(f"analysis labels must be unique within a claim; repeated: {dup}.")
    prims = [primary] if isinstance(primary, str) or primary is None else list(primary)
    missing = [p for p in prims if p not in labels]
    if missing or not prims:
        raise ValueError(f"primary analysis {missing or primary!r} is not among the records {labels}.")
    heads = [records[labels.index(p)] for p in prims]
    checks = [r for r in records if r.get("role") == "manipulation check" and all(r is not h for h in heads)]
    rest = [r for r in records if all(r is not h for h in heads) and all(r is not c for c in checks)]
    padj = S.holm([h["p"] for h in heads]) if len(heads) > 1 else [None]
    for h, p in zip(heads, padj):
        h["role"], h["p_holm"] = "primary", None if p is None else float(p)
        holm_gate(h)
    adj = S.holm([r["p"] for r in rest]) if rest else []
    for r, p in zip(rest, adj):
        r["role"], r["p_holm"] = "secondary", float(p)
        holm_gate(r)
    return heads + rest + checks


def records_frame(records, raw=False):
    """Records as a compact table for a page (:func:`lidutils.report.readable`).

    r and its CI to two decimals, p in the usual form (``< 0.001`` at the permutation
    floor), n and K as integers, flags as yes/no, a dash for a missing value; the
    records themselves are not changed. ``raw=True`` returns the same columns unformatted
    (numbers, None) for computing.
    """
    cols = ["analysis", "method", "k", "n", "unit", "r", "ci_low", "ci_high", "p", "p_holm",
            "r_between", "n_families", "excludes_paper_value", "power", "verdict"]
    df = pd.DataFrame([r for r in records if r is not None])
    if raw or df.empty:
        return df[[c for c in cols if c in df]]
    return readable(df[[c for c in cols + ["n_perm"] if c in df]])


# ----------------------------------------------------------------------------- K curves
def target_measures(y):
    """The :meth:`Study.table` arguments that produce a target column ``y``.

    ``y`` must be a measured quantity (:func:`measured`): a seed-SD column such as
    ``brain_IT_sd`` is refused.
    """
    if not measured(y):
        raise ValueError(f"{y!r} is not a measured quantity (a seed-SD or bookkeeping column); name the "
                         f"measure itself, e.g. {y.removesuffix('_sd')!r}.")
    base = y.removesuffix("_balanced")
    if base in ("ridge", "mutual_knn", "cka"):
        return dict(align=(base,))
    if y.startswith("brain_"):
        return dict(brain=True)
    return {}


def measured(col):
    """Whether a unit-table column is a measured quantity a claim may correlate.

    :func:`lidutils.measures.cell_means` adds ``<col>_sd`` (the spread of a measure
    across seed replicates), ``n_seeds`` and ``members`` beside every measure: none of
    them is a measurement of the unit, so none may be a record's x or y.
    """
    return isinstance(col, str) and not col.endswith("_sd") and col not in ("n_seeds", "members")


def c4_targets(study, table):
    """C4's targets, each named (never picked by prefix): accuracy, ridge alignment and the primary brain region.

    Accuracy (C3's target, the primary), partner ridge alignment (C1's) and the
    subject-mean score in the region C2 tests (:func:`brain_regions`; ``brain_<roi>``),
    those present in ``table``.
    """
    names = ["accuracy", "ridge"]
    if study.pop.brain is not None or study.pop.brain_scores is not None:
        names.append(f"brain_{brain_regions(study)[1]}")
    return [y for y in names if y in table and measured(y)]


def _groups(table, rows, design=None):
    """Family labels of ``rows`` when the comparison is within family (as :func:`correlate` decides), else None."""
    fams = families_of(table, rows)
    within = within_design(fams) if design is None else design == "within"
    return fams.to_numpy() if within and fams is not None else None


#: C4's global measures: LID at K = N/4 (added per population) and these columns of
#: :func:`lidutils.measures.global_table`, with the names the verdict's reason uses.
C4_GLOBALS = {"participation_ratio": "participation ratio", "effective_rank": "effective rank",
              "pca_n90": "PCA-n90", "alpha": "spectral alpha"}


def k_curve(study, claim, name, y, ks=None, estimator="mle", table=None, method=None):
    """Correlation of mean LID with ``y`` at every K of the sweep, and the max-over-K corrected p.

    Returns ``(curve, best)``: ``curve`` a DataFrame (one row per K: ``k``, ``r``,
    ``ci_low``, ``ci_high``, ``p``, ``n``, ``global`` = K >= N/4); ``best`` the K with
    the largest |r| among the local K and its p corrected for the selection by
    :func:`max_over_k_p`.
    """
    n_stim = study.n_stimuli(name)
    ks = list(ks or k_grid(n_stim))
    t = table if table is not None else study.table(name, ks=ks, estimators=(estimator,), **target_measures(y))
    rows = []
    for k in ks:
        rec = study.correlate(claim, t, M.lid_col(k, estimator), y, population=name, method=method, k=k,
                              estimator=estimator)
        if rec is not None:
            rows.append(dict(target=y, k=k, r=rec["r"], ci_low=rec["ci_low"], ci_high=rec["ci_high"],
                             p=rec["p"], n=rec["n"], glob=k >= GLOBAL_FRACTION * n_stim))
    curve = pd.DataFrame(rows)
    local = [k for k in ks if k < GLOBAL_FRACTION * n_stim]
    sub = t[[M.lid_col(k, estimator) for k in local] + [y]].apply(pd.to_numeric, errors="coerce").dropna()
    best = None
    if len(curve) and len(sub) >= MIN_N:
        fams = families_of(t, sub.index)
        if within_design(fams):  # as the records: family means removed (permutation of the centred y)
            sub = sub.apply(lambda c: pd.Series(S.centre_within(c.to_numpy(float), fams.to_numpy()), c.index))
        p, kbest, r = max_over_k_p(sub.iloc[:, :-1].to_numpy(), sub[y].to_numpy(),
                                   method=method or study.params.get("method", "pearson"),
                                   n_perm=study.params.get("n_perm", 10000), seed=study.params.get("seed", 0))
        best = dict(target=y, k=local[kbest], r=r, p_selection_corrected=p)
    return curve, best


def max_over_k_p(X, y, method="pearson", n_perm=10000, seed=0):
    """Permutation p of the best K, corrected for choosing it: max |r| over the columns.

    With :math:`r_j` the correlation of column :math:`j` of ``X`` (one K each) with
    ``y``, the statistic is :math:`T = \\max_j |r_j|`; under the null, ``y`` is
    permuted jointly for all columns, so :math:`p = (1 + \\#\\{T^{(b)} \\ge T\\}) / (1 + B)`.

    Returns ``(p, j_best, r_best)``.
    """
    X = np.asarray(X, float)
    y = np.asarray(y, float)
    if method == "spearman":
        X = np.apply_along_axis(lambda c: pd.Series(c).rank().to_numpy(), 0, X)
        y = pd.Series(y).rank().to_numpy()
    Xz = (X - X.mean(0)) / X.std(0)
    Xz = np.nan_to_num(Xz)
    n = len(y)

    def rs(Y):  # Y: (b, n)
        Yz = (Y - Y.mean(1, keepdims=True)) / Y.std(1, keepdims=True)
        return Yz @ Xz / n  # (b, n_k)

    r = rs(y[None])[0]
    j = int(np.argmax(np.abs(r)))
    T = np.abs(r).max()
    rng = np.random.default_rng(seed)
    count, done = 0, 0
    while done < n_perm:
        b = min(2000, n_perm - done)
        Y = np.stack([rng.permutation(y) for _ in range(b)])
        count += int((np.abs(rs(Y)).max(1) >= T - 1e-12).sum())
        done += b
    return (count + 1) / (n_perm + 1), j, float(r[j])


# ----------------------------------------------------------------------------- robustness
def robustness_grid(study, claim, name, y, estimators=("mle", "mom", "mada"), spaces=("pca300", "raw"),
                    methods=("pearson", "spearman"), ks=None):
    """r of LID with ``y`` for every estimator x K x method x space (paper App. G), one row each.

    TwoNN (no K) enters as one column at ``k=2``.
    """
    n_stim = study.n_stimuli(name)
    ks = list(ks or k_grid(n_stim))
    rows = []
    for space in spaces:
        t = study.table(name, ks=ks, estimators=estimators, space=space, **target_measures(y))
        cols = [(est, k, M.lid_col(k, est)) for est in estimators for k in ks] + [("twonn", 2, "twonn")]
        for est, k, col in cols:
            for method in methods:
                rec = study.correlate(claim, t, col, y, population=name, method=method, space=space, k=k,
                                      estimator=est)
                if rec is not None:
                    rows.append(dict(space=space, estimator=est, k=k, method=method, r=rec["r"],
                                     ci_low=rec["ci_low"], ci_high=rec["ci_high"], n=rec["n"]))
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- claim rules
def family_records(study, claim, table, x, y, name, min_n=MIN_N, **kw):
    """The same correlation inside each architecture family of a population (Pearson)."""
    recs = []
    for fam, g in table.groupby("family"):
        rec = study.correlate(claim, g, x, y, population=f"{name} / family {fam}",
                              label=f"{name} / family {fam}: {x} vs {y} (pearson)", **kw)
        if rec is not None:
            rec["family"] = str(fam)
            recs.append(rec)
    return recs


#: C5's two pre-declared primaries (the paper: "capacity and data lower LID"), each within family.
C5_SERIES = (("capacity", "log10_params"), ("data", "log10_n_train"))


def c5_primaries(study, name, tables, k, estimator="mle"):
    """C5's two pre-declared primary analyses: log10 capacity vs LID and log10 training images vs LID.

    ``tables``: ``{"capacity": units, "data": units}`` (:func:`series_table`). Each is
    Pearson across the units of its series, within family (family means removed,
    :func:`correlate`), Spearman beside it. Returns ``(records, primary labels)``.
    """
    recs, labels = [], []
    space = study.params.get("space", "pca300")
    for series, x in C5_SERIES:
        t = tables.get(series)
        if t is None or t.empty:
            continue
        out = both_methods(study, "C5", t, x, lid_col(k, estimator), population=f"{name} / {series} series",
                           role="primary", k=k, estimator=estimator,
                           label=f"{name} / {series} series: {lid_label(k, estimator, space)} vs {x} ({{method}})")
        if out:
            recs += out
            labels.append(out[0]["analysis"])
    return recs, labels


def c5_verdict(capacity, data):
    """C5's claim-level verdict from its two primaries (capacity, data), Holm-adjusted between them.

    The two p-values are Holm-adjusted together (:func:`holm_gate`, as :func:`finalize`
    does), then:

    - ``"replicated"``: both series replicate (LID falls with capacity *and* with data);
    - ``"opposite"``: at least one series is opposite and neither replicates;
    - ``"descriptive"``: neither series has enough units for a label;
    - ``"inconclusive"``: otherwise (one replicates and the other does not, a split, or
      neither excludes 0).

    Either record may be None (series missing): it counts as descriptive. Returns
    ``(verdict, reason)``.
    """
    recs = {"capacity": capacity, "data": data}
    present = {s: dict(r) for s, r in recs.items() if r is not None}
    if len(present) == 2:
        for r, ph in zip(present.values(), S.holm([r["p"] for r in present.values()])):
            r["p_holm"] = float(ph)
            holm_gate(r)
    v = {s: (present[s]["verdict"] if s in present else "descriptive") for s in recs}

    def say(s):
        r = present.get(s)
        if r is None:
            return f"{s}: no series"
        fam = f", within {r['n_families']} families" if r.get("design") == "within family" else ""
        return f"{s}: r = {r['r']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}], n = {r['n']}{fam} → {v[s]}"

    why = "; ".join(say(s) for s in recs)
    vals = list(v.values())
    if all(x == "replicated" for x in vals):
        return "replicated", f"LID falls with both capacity and data ({why})"
    if "opposite" in vals and "replicated" not in vals:
        return "opposite", f"LID rises with {' and '.join(s for s in v if v[s] == 'opposite')} ({why})"
    if all(x == "descriptive" for x in vals):
        return "descriptive", f"too few units in either series for a verdict ({why})"
    return "inconclusive", f"the two series do not agree on the paper's sign ({why})"


def c6_verdict(per_family, min_n=S.MIN_N_VERDICT):
    """C6: "replicated" when every family with >= ``min_n`` units is replicated (>= 2 such families).

    "opposite" when one is opposite and none replicated; "descriptive" when no family
    has ``min_n`` units (:data:`lidutils.stats.MIN_N_VERDICT`: no verdict below it);
    "inconclusive" otherwise. Returns ``(verdict, reason)``.
    """
    big = [r for r in per_family if r["n"] >= min_n]
    v = [r["verdict"] for r in big]
    if not big:
        return "descriptive", f"no family has the {min_n} units a verdict needs"
    if len(big) >= 2 and all(x == "replicated" for x in v):
        return "replicated", f"all {len(big)} families with >= {min_n} units replicate"
    if "opposite" in v and "replicated" not in v:
        return "opposite", "a family shows the opposite sign and none the paper's"
    return "inconclusive", f"{v.count('replicated')} of {len(big)} families with >= {min_n} units replicate"


def local_global(study, claim, name, y, table=None, estimator="mle", design=None, brain_test=None):
    """C4's records for one target: local LID at the paper's K, local estimators, global measures, contrasts.

    Local: LID (``estimator``) at :func:`paper_k`, MOM at the same K, TwoNN. Global:
    LID at K = N/4 and :data:`C4_GLOBALS`. Every record is :func:`correlate`'s, in the
    frame the primaries use (``design``: None = within family whenever the units span
    two or more families, :func:`within_design`). Each global measure :math:`g` is
    compared with local LID by :math:`\\Delta_g = |r_{local}| - |r_g|`
    (:func:`lidutils.stats.compare_dependent`, in the same frame: within-family
    centring and a family-stratified bootstrap when the records are within family),
    and the contrast becomes a record of its own (:func:`contrast_record`).

    A global measure's own record is never "replicated": one that predicts (its
    verdict would be "replicated" or "opposite") is evidence *against* C4 and gets
    ``"not replicated"`` with the reason "global predicts (against C4)".

    A brain target (``brain_<roi>``) with ``brain_test`` (:func:`brain_test`'s
    summary of this population) has every record annotated and, where the test
    cannot tell, marked "uninformative" (:func:`mark_uninformative`).

    Returns a dict with ``local``, ``local_others``, ``globals``, ``comparisons``
    (one dict per global measure) and ``contrasts`` (their records).
    """
    if not measured(y):
        raise ValueError(f"C4 target {y!r} is not a measured quantity; pass the measure, not its seed SD.")
    n = study.n_stimuli(name)
    k, kg = paper_k(claim, n), k_global(n)
    t = table if table is not None else study.table(name, ks=(k, kg), estimators=(estimator, "mom"),
                                                    global_dims=True, **target_measures(y))
    lcol = M.lid_col(k, estimator)
    kw = dict(population=name, paper_r=None, design=design)
    how = study.params.get("method", "pearson")
    local = study.correlate(claim, t, lcol, y, k=k, estimator=estimator,
                            label=f"{name}: local LID (K={k}) vs {y} ({how})", **kw)
    others = [study.correlate(claim, t, c, y, k=kk, estimator=e, label=f"{name}: local {e} (K={kk}) vs {y} ({how})",
                              **kw)
              for c, e, kk in ((M.lid_col(k, "mom"), "mom", k), ("twonn", "twonn", 2))]
    for rec, lab in zip([local] + others, (f"local LID (K={k})", f"local MOM (K={k})", "local TwoNN")):
        if rec is not None:
            rec["measure"] = lab
            _frame_label(rec)
    gcols = [(M.lid_col(kg, estimator), f"LID at K=N/4={kg}")] + list(C4_GLOBALS.items())
    globals_, comps, contrasts = [], [], []
    for col, lab in gcols:
        rec = study.correlate(claim, t, col, y, expected_sign=-1, label=f"{name}: global {lab} vs {y} ({how})", **kw)
        if rec is None:
            continue
        rec["measure"] = lab
        globals_.append(_global_verdict(_frame_label(rec)))
        if local is None:
            continue
        sub = t.loc[[m for m in local["members"] if m in rec["members"]], [lcol, col, y]]
        sub = sub.apply(pd.to_numeric, errors="coerce").dropna()
        try:
            comp = S.compare_dependent(sub[y].to_numpy(), sub[lcol].to_numpy(), sub[col].to_numpy(),
                                       method=study.params.get("method", "pearson"),
                                       n_boot=study.params.get("n_boot", 2000), seed=study.params.get("seed", 0),
                                       groups=_groups(t, sub.index, design))
        except ValueError:  # too few units or a constant column in this frame
            continue
        comps.append(dict(measure=lab, column=col, analysis=rec["analysis"], **comp))
        contrasts.append(contrast_record(local, rec, comp, members=list(sub.index)))
    out = dict(local=local, local_others=[o for o in others if o is not None], globals=globals_,
               comparisons=comps, contrasts=contrasts)
    if brain_test is not None and y.startswith("brain_"):
        mark_uninformative([local] + out["local_others"] + globals_ + contrasts, brain_test)
    return out


def _frame_label(rec):
    """Say the record's frame in its label: ``(pearson)`` becomes ``(pearson, within family)`` when it is one."""
    if str(rec.get("design", "")).startswith("within") and "within family" not in rec["analysis"]:
        rec["analysis"] = rec["analysis"].replace(f"({rec['method']})", f"({rec['method']}, within family)")
    return rec


def _global_verdict(rec):
    """A global measure's record under C4: predicting is evidence against C4, never "replicated"."""
    if rec["verdict"] in ("replicated", "opposite"):
        rec["verdict"] = "not replicated"
        rec["reason"] = (f"global predicts (against C4): r = {rec['r']:+.2f} [{rec['ci_low']:+.2f}, "
                         f"{rec['ci_high']:+.2f}], p = {rec['p']:.2g}; C4 says global dimension does not predict")
    elif rec["verdict"] == "inconclusive":
        rec["reason"] = ("global does not predict here (what C4 expects of it; C4 also needs local LID to "
                         "predict significantly more strongly)")
    return rec


def contrast_record(local, glob, comp, members=None):
    """C4's contrast as a results record: :math:`\\Delta = |r_{local}| - |r_{global}|` in the ``r`` field.

    ``r``, ``ci_low``, ``ci_high``: the contrast and its bootstrap CI
    (:func:`lidutils.stats.compare_dependent`; below the minimum n for a verdict,
    :func:`lidutils.stats.too_few`, Zou's Fisher-z interval :func:`lidutils.stats.zou_ci`
    instead, the bootstrap one kept as ``ci_boot_*``); ``p``: Steiger's test; ``n_eff`` and
    ``design`` as the comparison's. ``expected_sign = +1`` (C4: local stronger), so
    the verdict (:func:`lidutils.stats.label`) reads "replicated" when local predicts
    significantly more strongly than this global measure, "opposite" when the global
    measure predicts significantly more strongly, "inconclusive" when the two cannot
    be told apart. ``statistic = "abs_r_difference"`` marks it for the claims page.
    """
    within = comp.get("design") == "within group"
    res = dict(r=float(comp["diff"]), ci_low=comp["ci_low"], ci_high=comp["ci_high"], p=comp["p"],
               n=int(comp["n"]), n_eff=int(comp.get("n_eff", comp["n"])),
               n_families=comp.get("n_groups") if within else None,
               ci_method="paired percentile bootstrap" + (", family-stratified" if within else ""))
    if S.too_few(res) and "ci_zou_low" in comp:  # descriptive: the interval valid at this n
        res.update(ci_boot_low=res["ci_low"], ci_boot_high=res["ci_high"], ci_low=comp["ci_zou_low"],
                   ci_high=comp["ci_zou_high"], ci_method=f"Zou (2007), Fisher z at n_eff = {res['n_eff']}")
    rec = {key: local.get(key) for key in ("claim", "y", "population", "method", "space", "k", "estimator", "unit",
                                           "note")}
    rec.update(res, analysis=(f"{local['population']}: |r| of local LID (K={local['k']}) minus |r| of "
                              f"{glob['measure']}, vs {local['y']} ({local['method']}"
                              f"{', within family' if within else ''})"),
               statistic="abs_r_difference", x=local["x"], x_global=glob["x"], measure=glob["measure"],
               r_local=float(comp["r1"]), r_global=float(comp["r2"]), r_local_global=float(comp["r12"]),
               design="within family" if within else "pooled",
               members=[str(m) for m in (members if members is not None else local["members"])],
               role="secondary", expected_sign=1, paper_r=None, excludes_zero=bool(S.excludes(res, 0.0)),
               excludes_paper_value=None, verdict=S.label(res, expected_sign=1), p_holm=None,
               power=None, power_r=None, power_at={}, z=float(comp["z"]), n_boot=int(comp["n_boot"]))
    return rec


def write(study, claim, records, primary, *, notebook, verdict=None, reason=None, extra=None, section=None):
    """Finalize (primary, Holm) and write ``<out_dir>/<claim>.json`` with every parameter.

    ``primary``: the primary analysis' label, or a list of labels (C5's two primaries;
    the file's ``primary`` is the first, ``extra["primaries"]`` lists them all).

    Without a primary record (too few units for the pre-declared analysis) nothing is
    written and ``None`` is returned; :func:`lidutils.report.glue_claim` then says so.
    """
    if primary is None or not any(r is not None for r in records):
        return None
    recs = finalize(records, primary)
    prims = [primary] if isinstance(primary, str) else list(primary)
    extra = dict(extra or {})
    if len(prims) > 1:
        extra["primaries"] = prims
    if getattr(study.pop, "brain_source", None):  # which brain data, read by which policy
        extra.setdefault("brain_data", study.pop.brain_source)
    return write_claim(claim, recs, out_dir=study.params.get("out_dir", "results"), primary=prims[0],
                       verdict=verdict, reason=reason, parameters=study.params, extra=extra,
                       notebook=notebook, section=section, tier=study.params.get("tier", "offline"))


def premise_records(study, name):
    """The anchors the paper's argument stands on, in one zoo population (issue 10 "premise checks").

    Accuracy vs log10 parameters across the capacity series (paper: r = +0.949),
    accuracy vs log10 training images across the data series, and mean ridge
    alignment with the partners vs accuracy across all units ("better models align
    more"); Pearson with CI, expected sign +1.
    """
    recs = []
    pr = PAPER.paper_r("C5", "accuracy_vs_log_params")
    for series, x, y, p in (("capacity", "log10_params", "accuracy", pr), ("data", "log10_n_train", "accuracy", None)):
        t = series_table(study, name, series, ks=())
        recs.append(study.correlate("C5", t, x, y, population=f"{name} / {series} series", expected_sign=1,
                                    paper_r=p, label=f"{name} / {series} series: {y} vs {x} (pearson)"))
    t = study.table(name, align=("ridge",))
    recs.append(study.correlate("C1", t, "accuracy", "ridge", population=name, expected_sign=1, paper_r=None,
                                label=f"{name}: ridge alignment vs accuracy (pearson)"))
    return [r for r in recs if r is not None]


def zoo_design(zoo_grid):
    """The design tables of a book zoo (:data:`lidutils.population.ZOO_GROUPS`), one row per design cell."""

    frames = []
    for group, grid, data in ZOO_GROUPS.get(zoo_grid, (("zoo", zoo_grid, "animal-mnist"),)):
        d = Z.design_table(grid)
        frames.append(d.assign(group=group, data_set=data, n_networks=d["seeds"].map(len)))
    return pd.concat(frames, ignore_index=True)


def zoo_networks(zoo_grid, cache_dir="data/cache", device="auto"):
    """Final-epoch row of every network of a book zoo (trained if missing), with its data set."""

    frames = []
    for group, grid, data in ZOO_GROUPS.get(zoo_grid, (("zoo", zoo_grid, "animal-mnist"),)):
        t = Z.train_zoo(grid=grid, data=data, cache_dir=Path(cache_dir) / "zoo", device=device, progress=False,
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
            c = Z.load_learning_curve(row)
            frames.append(c.assign(network=f"{data}/{row['name']}", family=fam, data_set=data))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# ----------------------------------------------------------------------------- blocks
def lid_label(k, estimator="mle", space=None):
    """Readable name of a LID column: ``"LID (MLE, K=50, pca300)"``."""
    return f"LID ({estimator.upper()}, K={k}{', ' + space if space else ''})"


def primary_analysis(study, claim, y, name=None, estimator="mle", align=(), brain=False, role="primary"):
    """A claim's pre-declared analysis in one population: LID at the paper's K vs ``y``, Pearson and Spearman.

    Measures the population over the whole K sweep (:func:`k_grid`, so the r-vs-K
    curve needs no second search). Returns a dict with ``name``, ``k``, ``table``
    (units), ``records`` (Pearson first) and ``label`` (the Pearson record's label,
    the primary analysis when ``role="primary"``).
    """
    name = name or primary_population(study.populations)
    n = study.n_stimuli(name)
    k = paper_k(claim, n)
    t = study.table(name, ks=k_grid(n), estimators=(estimator,), align=align, brain=brain)
    space = study.params.get("space", "pca300")
    recs = both_methods(study, claim, t, M.lid_col(k, estimator), y, population=name, role=role, k=k,
                        estimator=estimator, label=f"{name}: {lid_label(k, estimator, space)} vs {y} ({{method}})")
    return dict(name=name, k=k, table=t, records=recs, label=recs[0]["analysis"] if recs else None)


def _units(members):
    """Each member's unit of analysis: its design cell, or itself."""
    own = members.index.to_series()
    return members["design"].where(members["design"].notna(), own) if "design" in members else own


def model_rdms(study, name, metric="correlation"):
    """Each member's RDM of the brain probe images (stacked in member order)."""

    return np.stack([R.rdm(study.pop.probe_reps[m], metric, device=study.device) for m in study.populations[name]])


def brain_test(study, name, method="spearman"):
    """Can this population's brain test tell? One row per region.

    Per region: the split-half reliability of the ranking of the population's units
    across subjects (:func:`lidutils.rsatools.ranking_reliability`, Spearman–Brown);
    the population's mean score (``mean_score``: mean over units of the subject-mean
    score) beside the stronger low-level baseline (``baseline``: the pixel or
    Gabor-energy RDM's mean score with the same subjects, named in ``baseline_name``);
    and each model's RSA with the pixel and Gabor-energy RDMs of the probe images
    partialled out (:func:`lidutils.rsatools.partial_rsa`). ``informative`` and its
    ``reason`` by :func:`lidutils.rsatools.brain_test_informative`: a reliable
    ranking, scores above the low-level baseline, and scores that survive partialling.
    Paper tier (encoding scores, no RDMs): reliability only.

    Returns
    -------
    (summary DataFrame indexed by region, partial DataFrame (members x ``partial_<roi>``,
    the mean over subjects, and ``partial_<roi>_s<subject>`` per subject, 1-based))
    """

    members = study.members(name)
    long = study.brain(name)
    units = _units(members)
    rows, partial = [], pd.DataFrame(index=members.index)
    base = None
    if study.pop.brain is not None and study.pop.brain_scores is None and study.pop.probe_images is not None:
        base = np.stack([R.pixel_rdm(study.pop.probe_images), R.gabor_rdm(study.pop.probe_images)])
        mrdms = model_rdms(study, name)
    for roi, g in long.groupby("roi", sort=False):
        S_ = g.pivot_table(index="model", columns="subject", values="score").reindex(members.index)
        cell = S_.groupby(units.reindex(S_.index).to_numpy()).mean()
        rel = R.ranking_reliability(cell.to_numpy()) if cell.shape[1] >= 2 and len(cell) >= 3 else None
        mean_score = float(cell.mean(axis=1).mean())
        part = bl = bl_name = None
        if base is not None:
            pr = R.partial_rsa(mrdms, study.pop.brain[roi], base, method=method)
            partial[f"partial_{roi}"] = pr["partial"].mean(1)
            for j in range(pr["partial"].shape[1]):
                partial[f"partial_{roi}_s{j + 1}"] = pr["partial"][:, j]
            part = partial[f"partial_{roi}"].groupby(units.to_numpy()).mean().to_numpy()
            bls = {b: float(R.rsa_many(B, study.pop.brain[roi], method=method).mean())
                   for b, B in zip(("pixels", "Gabor energy"), base)}
            bl_name = max(bls, key=bls.get)
            bl = bls[bl_name]
        if rel is None:
            ok, why = False, "fewer than 2 subjects or 3 units: no ranking reliability"
        else:
            ok, why = R.brain_test_informative(rel, part, score=mean_score, baseline=bl)
        rows.append(dict(roi=roi, n_units=len(cell), n_subjects=cell.shape[1],
                         reliability=None if rel is None else rel["mean"],
                         reliability_low=None if rel is None else rel["ci_low"],
                         mean_score=mean_score, baseline=bl, baseline_name=bl_name,
                         mean_partial=None if part is None else float(np.nanmean(part)),
                         best_partial=None if part is None else float(np.nanmax(part)),
                         informative=ok, reason=why))
    return pd.DataFrame(rows).set_index("roi"), partial


def _record_roi(rec):
    return rec.get("roi") or rec["y"].removeprefix("partial_").removeprefix("brain_")


def mark_uninformative(records, test, study=None, table=None):
    """Annotate model–brain records with their region's brain test; "uninformative" where it cannot tell.

    ``test`` is :func:`brain_test`'s summary; a record's region is read from its
    ``roi`` field or its ``y`` (``brain_<roi>``, ``partial_<roi>``). Every record of a
    tested region gets the test beside its r: ``reliability`` (and
    ``reliability_low``), ``mean_score``, ``baseline`` (``baseline_name``),
    ``mean_partial`` and ``brain_test_informative``. With ``study`` and ``table``
    (the units with :func:`cell_partial`'s columns) it also gets the **low-level-
    partialled score** of the same analysis: ``r_partial`` [``r_partial_ci_low``,
    ``r_partial_ci_high``], ``p_partial``, the correlation of its x with the
    partialled score (``partial_<roi>``; a per-subject record: that subject's,
    ``partial_<roi>_s<subject>``), in the record's own frame.

    Where the test cannot tell, the verdict becomes "uninformative" with the test's
    reason, and ``excludes_paper_value`` is cleared (None): an uninformative record
    says nothing about the paper's value either way.
    """
    for rec in records:
        if rec is None:
            continue
        roi = _record_roi(rec)
        if roi not in test.index:
            continue
        row = test.loc[roi]
        info = {key: _plain(row[key]) if key in row else None
                for key in ("reliability", "reliability_low", "mean_score", "baseline", "baseline_name",
                            "mean_partial")}
        rec.update(info, brain_test_informative=bool(row["informative"]))
        if study is not None and table is not None and not str(rec["y"]).startswith("partial_"):
            pcol = f"partial_{roi}" + (f"_s{rec['subject']}" if rec.get("subject") is not None else "")
            pr = study.correlate(rec["claim"], table, rec["x"], pcol, population=rec["population"],
                                 method=rec.get("method"), k=rec.get("k"), estimator=rec.get("estimator"),
                                 expected_sign=rec["expected_sign"], paper_r=None,
                                 design="within" if str(rec.get("design", "")).startswith("within") else "pooled",
                                 label=f"{rec['analysis']} | partialled") if pcol in table else None
            rec.update(r_partial=None if pr is None else pr["r"], r_partial_ci_low=None if pr is None else pr["ci_low"],
                       r_partial_ci_high=None if pr is None else pr["ci_high"],
                       p_partial=None if pr is None else pr["p"])
        if not bool(row["informative"]):
            rec["verdict"] = S.verdict(rec, expected_sign=rec["expected_sign"], informative=False)
            rec["reason"] = str(row["reason"])
            rec["excludes_paper_value"] = None
    return records


def per_subject_records(study, claim, name, table, k, estimator="mle"):
    """C7: LID vs each subject's score, per region (one record each, units of ``table``)."""
    long = study.brain(name)
    units = _units(study.members(name))
    recs = []
    for (roi, s), g in long.groupby(["roi", "subject"], sort=False):
        sc = g.set_index("model")["score"].groupby(units.reindex(g["model"]).to_numpy()).mean()
        t = table.join(sc.rename("score_subject"))
        rec = study.correlate(claim, t, M.lid_col(k, estimator), "score_subject", population=name, k=k,
                              estimator=estimator, label=f"{name}: LID (K={k}) vs {roi}, subject {s} (pearson)")
        if rec is not None:
            rec.update(roi=str(roi), subject=int(s))
            recs.append(rec)
    return recs


def c7_verdict(per_roi, comparison, per_subject, order):
    """C7 from per-region records, the dependent-correlation test between regions, and per-subject records.

    "replicated": the higher region's record replicates, its relation is significantly
    stronger than the lower region's (CI of :math:`r_{low} - r_{high}` above 0 with
    expected negative sign, i.e. :func:`lidutils.stats.compare_dependent` of ``|r|``
    with its CI above 0), and most subjects show the paper's sign; "uninformative"
    when the higher region's test cannot tell; "opposite" when the higher region's
    record is opposite; otherwise "inconclusive". The reason gives the higher region's
    ranking reliability where the record carries it (:func:`mark_uninformative`).
    Returns ``(verdict, reason)``.
    """
    hi = per_roi[order[-1]]
    rel = (f" (ranking reliability {hi['reliability']:.2f})" if isinstance(hi.get("reliability"), (int, float))
           else "")
    if hi["verdict"] == "uninformative":
        return "uninformative", f"{order[-1]}: {hi.get('reason', 'the brain test cannot tell')}"
    if hi["verdict"] == "opposite":
        return "opposite", f"{order[-1]}{rel} shows the opposite sign"
    subj = [r for r in per_subject if r["roi"] == order[-1]]
    neg = sum(r["r"] < 0 for r in subj)
    stronger = comparison is not None and comparison["ci_low"] > 0
    if hi["verdict"] == "replicated" and stronger and neg > len(subj) / 2:
        return "replicated", (f"{order[-1]}{rel} replicates, is significantly stronger than {order[0]}, "
                              f"and {neg} of {len(subj)} subjects show the paper's sign")
    return "inconclusive", (f"{order[-1]}{rel}: {hi['verdict']}; stronger than {order[0]}: "
                            f"{'yes' if stronger else 'not significantly'}; {neg} of {len(subj)} subjects negative")


def compare_regions(study, table, x, y_low, y_high, design=None):
    """:func:`lidutils.stats.compare_dependent` of |r(x, high region)| vs |r(x, low region)| across units.

    In the frame of :func:`correlate` (``design``; None: within family whenever the
    units span two or more families): within-family centring and a family-stratified
    bootstrap.
    """
    sub = table[[x, y_low, y_high]].apply(pd.to_numeric, errors="coerce").dropna()
    if len(sub) < MIN_N:
        return None
    try:
        return S.compare_dependent(sub[x].to_numpy(), sub[y_high].to_numpy(), sub[y_low].to_numpy(),
                                   method=study.params.get("method", "pearson"),
                                   n_boot=study.params.get("n_boot", 2000), seed=study.params.get("seed", 0),
                                   groups=_groups(table, sub.index, design))
    except ValueError:  # too few units in this frame
        return None


def population_named(study, suffix):
    """The first analysis population whose name ends with ``suffix`` (None when there is none)."""
    return next((n for n in study.populations if n.endswith(suffix)), None)


def series_table(study, name, series, ks, estimator="mle", align=(), brain=False, whole_if_missing=False):
    """Units of one controlled series (``"capacity"``, ``"data"``, ``"noise"``) of a zoo population.

    Empty when ``name`` is None or the population has no such series, unless
    ``whole_if_missing``: then every unit (e.g. the paper tier's models, which differ
    in capacity without a controlled design).
    """
    if name is None:
        return pd.DataFrame()
    t = study.table(name, ks=ks, estimators=(estimator,), align=align, brain=brain)
    col = f"in_{series}"
    if col not in t or not t[col].notna().any():
        return t if whole_if_missing else t.iloc[:0]
    return t[t[col].fillna(False).astype(bool)]


def show_claim(claim):
    """The claim in the paper's words, its number and setting, as Markdown (from :mod:`lidutils.paper`)."""
    from IPython.display import Markdown

    info = PAPER.claim_info(claim)
    return Markdown(f"**Paper ({claim}).** {info['statement']}  \n**Paper's value:** {info['paper_value']}  \n"
                    f"**Paper's setting:** {info['paper_setting']}")


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


def k_curves(study, claim, name, targets, table=None):
    """:func:`k_curve` for several targets, one DataFrame (column ``target``)."""
    return pd.concat([k_curve(study, claim, name, y, table=table)[0] for y in targets], ignore_index=True)


def local_global_frame(blocks):
    """One row per (target, measure) of :func:`local_global` blocks: r, CI, verdict and, for a global measure, Δ|r|.

    ``delta`` = :math:`|r_{local}| - |r_{global}|` with its CI (``delta_low``,
    ``delta_high``): positive when local LID predicts more strongly.
    """
    rows = []
    for y, b in blocks.items():
        deltas = {c["measure"]: c for c in b.get("comparisons", [])}
        for kind, recs in (("local", [b["local"]] + b["local_others"]), ("global", b["globals"])):
            for r in recs:
                if r is None:
                    continue
                c = deltas.get(r.get("measure")) if kind == "global" else None
                rows.append(dict(target=y, kind=kind, measure=r.get("measure") or
                                 r["analysis"].split(": ", 1)[1].rsplit(" vs ", 1)[0],
                                 r=r["r"], ci_low=r["ci_low"], ci_high=r["ci_high"], n=r["n"],
                                 predicts=r["verdict"] in ("replicated", "opposite", "not replicated"),
                                 verdict=r["verdict"],
                                 delta=None if c is None else c["diff"], delta_low=None if c is None else c["ci_low"],
                                 delta_high=None if c is None else c["ci_high"]))
    return pd.DataFrame(rows).round(3)


def k_trend(curve, y=None):
    """One sentence on how r changes with K: r at the smallest and the largest K, and where |r| peaks.

    The paper's C4: the correlation *decays* as K grows. ``curve`` is :func:`k_curve`'s
    (or :func:`k_curves`'s, then ``y`` picks the target).
    """
    c = curve if y is None or "target" not in curve else curve[curve["target"] == y]
    c = c.dropna(subset=["r"]).sort_values("k")
    if len(c) < 2:
        return "r against K: fewer than two K with a correlation"
    first, last = c.iloc[0], c.iloc[-1]
    peak = c.loc[c["r"].abs().idxmax()]
    change = abs(last["r"]) - abs(first["r"])
    how = ("|r| rises with K — the reverse of the paper's decay" if change > 0.05 else
           "|r| falls with K, as the paper reports" if change < -0.05 else "|r| about flat across K")
    return (f"r against K: {first['r']:+.2f} at K = {int(first['k'])} to {last['r']:+.2f} at K = {int(last['k'])}"
            f" (largest |r| at K = {int(peak['k'])}): {how}")


def c4_verdict(block, curve=None):
    """C4's verdict for one target's :func:`local_global` block: ``(verdict, reason, comparisons)``.

    :func:`lidutils.stats.c4_rule` on the block's records and contrasts; with
    ``curve`` (:func:`k_curve` / :func:`k_curves` of the same target) the reason
    also states the direction of r against K (:func:`k_trend`).
    """
    comps = pd.DataFrame(block["comparisons"])
    if block["local"] is None:
        return "inconclusive", "no local record: fewer than 4 units with both variables", comps
    v, why = S.c4_rule(block["local"], block["globals"], block["comparisons"])
    if curve is not None and len(curve):
        why = f"{why}; {k_trend(curve, block['local']['y'])}"
    return v, why, comps


def c4_records(blocks, primary):
    """All records of :func:`local_global` blocks, C4's primary record first.

    The primary is the contrast :math:`|r_{local}| - |r_{global}|` of the ``primary``
    target against the global measure local LID beats least clearly (lowest lower CI
    bound): C4 is replicated only if that one, and so every one, lies above 0. Without
    contrasts, the local record of the primary target leads.
    """
    order = [primary] + [y for y in blocks if y != primary]
    head = None
    cons = blocks[primary].get("contrasts", [])
    if cons:
        head = min(cons, key=lambda c: (np.nan_to_num(c["ci_low"], nan=np.inf), c["r"]))
    recs = [head]
    for y in order:
        b = blocks[y]
        recs += [b["local"]] + b["local_others"] + b["globals"] + [c for c in b.get("contrasts", []) if c is not head]
    recs = [r for r in recs if r is not None]
    bad = [(r["analysis"], c) for r in recs for c in (r.get("x"), r.get("x_global"), r.get("y"))
           if c is not None and not measured(c)]
    if bad:
        raise ValueError(f"C4 records on unmeasured columns: {bad}.")
    return recs


def reference_records(study, claim, name, k, matrix, estimator="mle"):
    """Alignment with a reference outside the correlated set (one record per reference family).

    For each family F, the reference is F's most accurate network (chosen by accuracy,
    not by the alignment being correlated); every network of the *other* families is
    scored by its ridge alignment with it, both directions averaged,
    :math:`(M_{a,ref} + M_{ref,a})/2`, read off the all-pairs ``matrix``; units are
    then seed-averaged and correlated with LID. The reference's own LID is recorded.
    """
    members = study.members(name)
    lids = study.lid(name, [k], (estimator,))[lid_col(k, estimator)]
    recs = []
    for fam, g in members.groupby("family"):
        acc = g["accuracy"].astype(float).dropna()
        if acc.empty:  # no accuracy to choose a reference by (e.g. MAE encoders)
            continue
        ref = acc.idxmax()
        others = members.index[members["family"] != fam]
        score = (matrix.loc[others, ref] + matrix.loc[ref, others]) / 2
        t = M.cell_means(members.loc[others].join(lids).assign(ref_alignment=score))
        rec = study.correlate(claim, t, lid_col(k, estimator), "ref_alignment", population=f"{name} without {fam}",
                              k=k, estimator=estimator,
                              label=f"{name}: LID vs alignment with the best {fam} (reference outside the set, pearson)")
        if rec is not None:
            rec.update(reference=str(ref), reference_lid=float(lids[ref]))
            recs.append(rec)
    return recs


def brain_references(study):
    """Per region: noise ceiling (lower, upper; needs 2+ subjects) and the pixel / Gabor baselines' mean RSA."""

    run = study.pop.paper_run
    if run is not None:  # encoding R²: the ceiling is the median per-vertex noise ceiling (R² units)
        c = run.ceilings.groupby("roi")["noise_ceiling"].median()
        return pd.DataFrame({"ceiling_low": c, "ceiling_high": c})
    if study.pop.brain is None:
        return pd.DataFrame()
    method = study.params.get("rsa_method", "spearman")
    imgs = study.pop.probe_images
    base = {"pixels": R.pixel_rdm(imgs), "gabor": R.gabor_rdm(imgs)} if imgs is not None else {}
    rows = {}
    for roi, rdms in study.pop.brain.items():
        row = {}
        if rdms.shape[0] >= 2:
            nc = R.noise_ceiling(rdms, method=method)
            row.update(ceiling_low=nc["lower"], ceiling_high=nc["upper"])
        for b, B in base.items():
            row[b] = float(R.rsa_many(B, rdms, method=method).mean())
        rows[roi] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def brain_showcase(study, long, n=6):
    """Members to show in the brain-score figure: every non-zoo model, the best and worst zoo ones."""
    members = study.pop.members
    top = long["roi"].iloc[-1] if len(long) else None
    show = [m for m in long["model"].unique() if not str(members.loc[m, "group"]).startswith("zoo")]
    prim = primary_population(study.populations)
    if prim.startswith("zoo") and top is not None:
        s = long[(long["roi"] == top) & long["model"].isin(study.populations[prim])].groupby("model")["score"].mean()
        s = s.sort_values()
        show += list(s.index[: n // 2]) + list(s.index[-(n // 2):])
    return list(dict.fromkeys(show))


def brain_test_frame(tests, reasons=True):
    """:func:`brain_test` summaries of several populations, one row per (population, region).

    ``reasons=False`` leaves out the sentence column (a compact table for the page).
    """
    frames = [s.assign(population=n) for n, (s, _) in tests.items() if len(s)]
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames).reset_index().set_index(["population", "roi"])
    return out if reasons else out.drop(columns="reason").round(2)


def cell_partial(study, name, partial):
    """Seed-average :func:`brain_test`'s per-member partialled scores to the population's units."""
    if partial is None or partial.empty:
        return pd.DataFrame()
    units = _units(study.members(name))
    return partial.groupby(units.reindex(partial.index).to_numpy()).mean()


def lite_series(study):
    """EfficientNet-Lite 0 → 1 → 2 (one family at three sizes): parameters, top-1 and LID at the paper's K."""
    names = [m for m in study.pop.members.index if str(m).startswith("tf_efficientnet_lite")]
    if not names:
        return pd.DataFrame()
    reps = {m: study.pop.eval_reps[m] for m in names}
    k = paper_k("C5", next(iter(reps.values())).shape[0])
    lids = M.lid_table(reps, [k], space=study.params.get("space", "pca300"), n_pcs=study.params.get("n_pcs", 300),
                       seed=study.params.get("seed", 0), device=study.device, cache_dir=study.cache_dir)
    t = study.pop.members.loc[names, ["n_params", "accuracy"]].join(lids[[lid_col(k)]])
    return t.sort_values("n_params")


def natural_k_table(study, claim, name, y, estimator="mle", design="pooled"):
    """A natural-image population shown as r against K, with what K means on its photos; no label.

    The ImageNet population is a handful of models (six): every record is descriptive
    (:data:`lidutils.stats.MIN_N_VERDICT`). What K measures depends on the photos: with
    ``N`` photos of ``N`` different classes (one photo each), the K nearest neighbours of
    a photo are K *other classes*, so LID at K = 50 of 300 photos describes
    between-class structure, not the local neighbourhood of a class. One row per K (and
    TwoNN as K = 2): ``r`` with its Fisher-z interval, ``n``, ``k_over_n`` = K/N,
    ``classes_per_photo`` (distinct classes / photos) and ``classes_in_neighbourhood``
    (how many classes the K neighbours span at most), ``verdict`` ("descriptive" at
    this n). ``design``: pooled over the models by default (independently trained
    networks, not a designed family crossing; :func:`correlate`'s ``design``).
    """
    n_stim = study.n_stimuli(name)
    ks = k_grid(n_stim)
    t = study.table(name, ks=ks, estimators=(estimator,), **target_measures(y))
    desc = study.pop.stimuli.get(str(study.members(name)["group"].iloc[0]), "") if hasattr(study.pop, "stimuli") else ""
    per_photo = 1.0 if "one photo each" in str(desc) else np.nan
    rows = []
    for k, col in [(kk, M.lid_col(kk, estimator)) for kk in ks] + [(2, "twonn")]:
        rec = study.correlate(claim, t, col, y, population=name, k=k, estimator=estimator if k != 2 else "twonn",
                              design=design)
        if rec is None:
            continue
        rows.append(dict(measure="TwoNN" if col == "twonn" else f"LID K={k}", k=k, n_photos=n_stim,
                         k_over_n=k / n_stim, classes_per_photo=per_photo,
                         classes_in_neighbourhood=min(k, n_stim - 1) * per_photo if per_photo == per_photo else np.nan,
                         r=rec["r"], ci_low=rec["ci_low"], ci_high=rec["ci_high"], ci_method=rec["ci_method"],
                         n=rec["n"], design=rec["design"], verdict=rec["verdict"]))
    return pd.DataFrame(rows)


def epoch_table(study, name, k, estimator="mle"):
    """LID at ``k`` of every saved checkpoint of the population's networks (one row per checkpoint)."""
    members = study.members(name)
    if "epoch" not in members or "model" not in members:  # pretrained models: one checkpoint each
        return pd.DataFrame()
    nets = set(members["model"])
    allm = study.pop.members
    rows = allm[(allm["group"] == members["group"].iloc[0]) & allm["model"].isin(nets)]
    if "label_noise" in rows:
        rows = rows[rows["label_noise"].fillna(0) == 0]
    reps = {m: study.pop.eval_reps[m] for m in rows.index}
    lids = M.lid_table(reps, [k], (estimator,), space=study.params.get("space", "pca300"),
                       n_pcs=study.params.get("n_pcs", 300), seed=study.params.get("seed", 0),
                       device=study.device, cache_dir=study.cache_dir)
    return rows.join(lids)


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


# ----------------------------------------------------------------------------- validation
def world_claims(world, **params):
    """The claim chapters' analyses on a synthetic world, through the chapters' own functions.

    C3 (LID vs generalization, :func:`primary_analysis` as chapter 01), C1 (LID vs
    ridge alignment with the partners, as 02), C2 (LID vs RSA with each subject,
    averaged, as 03) and C4's rule (:func:`local_global` + :func:`c4_verdict`, as 05)
    on :func:`lidutils.simulate.world_population`. Returns the Pearson records
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

    ``coverage``: :func:`lidutils.power.coverage_table` (stored with the smallest n per
    interval whose mean coverage stays >= 0.89, :func:`lidutils.power.min_n_for_coverage`:
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
            min_n_verdict=S.MIN_N_VERDICT, min_per_family=S.MIN_PER_FAMILY),
    )


def _min_n_cov(coverage):
    from .power import min_n_for_coverage

    return min_n_for_coverage(coverage)


def save_validation(summary, out_dir="results"):
    """Write ``<out_dir>/validation.json`` atomically; returns the path."""

    path = Path(out_dir) / "validation.json"
    save_json(path, _plain(summary))
    return path


# ----------------------------------------------------------------------------- degradation
#: The within-model dose–response series of the natural-image models (issue 16): which
#: classifiers, which damages (6 levels each, :data:`lidutils.degrade.DEFAULT_LEVELS`),
#: on how many ImageNet sample photos.
DEGRADATION = dict(models=("tf_efficientnet_lite0", "mobilenetv2_100"),
                   kinds=("weight_noise", "blur"), n_photos=100)
#: Fewest photos for a ridge R² in the degradation series: with 100 photos (80 to fit on,
#: 20 held out) the held-out R² of every level was negative in the book's build (issue 20),
#: so no alignment column is computed below this many.
MIN_RIDGE_PHOTOS = 300


def degradation_table(study, models=None, kinds=None, n_photos=None):
    """One row per (model, damage, level) of the degradation series, measured as the chapters measure.

    Per level: ``retained_accuracy`` (top-1 on the sample photos relative to the
    intact model: retained function, not generalization), mean LID at the paper's K
    in the analysis space of the photos, ridge alignment with the other series'
    *intact* models on the same photos (both directions averaged), and the mean RSA
    with every brain region (``brain_<roi>``) on the probe images. ``series`` names the
    paired group (model / damage).
    """
    from . import degrade as D

    models = [m for m in (models or DEGRADATION["models"]) if m in study.pop.members.index]
    kinds = list(kinds or study.params.get("degrade_kinds") or DEGRADATION["kinds"])
    n_photos = int(n_photos or study.params.get("degrade_photos") or DEGRADATION["n_photos"])
    if not models or not kinds:
        return pd.DataFrame()
    k = paper_k("C3", n_photos)
    cache = None if study.cache_dir is None else Path(study.cache_dir) / "features"
    series = {(m, kind): D.degradation_series(
        m, kind, images={"probe": study.pop.probe_images}, n_photos=n_photos, cache_dir=cache,
        device=study.device, data_dir=study.params.get("data_dir"), seed=study.params.get("seed", 0))
        for m in models for kind in kinds}
    intact = {m: series[(m, kinds[0])].features["photos"][0] for m in models}
    frames = []
    for (m, kind), s in series.items():
        t = s.table.copy()
        t["series"] = f"{m} / {kind}"
        photos = {row.member: s.features["photos"][row.dose] for row in t.itertuples()}
        t = t.set_index("member")
        sp = study.params.get("space", "pca300")
        t = t.join(M.lid_table(photos, [k], space=sp, n_pcs=study.params.get("n_pcs", 300),
                               seed=study.params.get("seed", 0), device=study.device, cache_dir=study.cache_dir))
        partners = {p: X for p, X in intact.items() if p != m}
        if partners and n_photos >= MIN_RIDGE_PHOTOS:  # below it the held-out R² is noise (negative)
            al = [M.ridge_matrix({**{lv: X}, **partners}, n_pcs=study.params.get("n_pcs", 300),
                                 seed=study.params.get("seed", 0), device=study.device, cache_dir=study.cache_dir,
                                 **M.RIDGE)
                  for lv, X in photos.items()]
            t["ridge"] = [float(np.mean([(a.iloc[0, j] + a.iloc[j, 0]) / 2 for j in range(1, len(a))])) for a in al]
        if study.pop.brain is not None:
            rd = np.stack([R.rdm(P_, device=study.device) for P_ in s.features["probe"]])
            for roi, rdms in study.pop.brain.items():
                t[f"brain_{roi}"] = R.rsa_many(rd, rdms, method=study.params.get("rsa_method", "spearman")).mean(1)
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
    info = PAPER.PAPER.get(claim, {})
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
        res = S.rmcorr(sub[x], sub[y], sub["series"], n_boot=n_boot, n_perm=n_perm, seed=seed)
        rec = {k: _plain(v) for k, v in res.items()}
        rec.update(common, analysis=label or f"degradation series: {x} vs {y} (within model, all series)", x=x,
                   y=y, unit="levels within series", members=[str(m) for m in sub.index], expected_sign=sign,
                   excludes_zero=bool(S.excludes(res, 0.0)), verdict="descriptive",
                   note="repeated-measures correlation over the series; each series is a manipulation check, "
                        "so this summary carries no verdict")
        recs.append(rec)
    return recs


def ceiling_and_baseline(refs):
    """``({roi: (lower, upper)}, {roi: pixel score})`` from :func:`brain_references` (empty dicts if absent)."""
    ceil = {r: (row["ceiling_low"], row["ceiling_high"]) for r, row in refs.iterrows()
            if "ceiling_low" in refs and np.isfinite(row["ceiling_low"])}
    base = refs["pixels"].dropna().to_dict() if "pixels" in refs else {}
    return ceil, base


def surface_maps(study, table, k, estimator="mle", subject=None):
    """Paper tier: per-vertex held-out R² of the lowest-LID model, and the per-vertex r(LID, R²) across models.

    C7 as a map, not two bars, drawn on nilearn's fsaverage5 for both hemispheres
    (:func:`lidutils.plotting.surface_maps`). Returns the figures ([] outside the
    paper tier, or when the layout has no fsaverage indices).
    """
    from . import paper_tier as PT
    from .plotting import surface_maps as draw

    run = study.pop.paper_run
    if run is None:
        return []
    subject = subject or run.meta["eval_subject"]
    if not run.fsaverage_index.get(subject):
        return []
    lid = table[lid_col(k, estimator)].dropna()
    best = lid.idxmin()
    tag = " (dry run on stand-ins)" if run.dry_run else ""
    return [draw(run.vertex_r2[subject][best], run.fsaverage_index[subject],
                 title=f"subject {subject}: held-out R², {best}{tag}"),
            draw(PT.lid_r2_map(run, lid, subject), run.fsaverage_index[subject],
                 title=f"subject {subject}: r(LID, R²) across {len(lid)} models{tag}", label="r", vmax=1.0)]


def brain_regions(study):
    """``(regions lower area first, the primary region)`` of the population's brain data.

    Offline: the RDM set's regions in their order, the last (highest) primary. Paper
    tier: the paper's ROIs in :data:`lidutils.paper_tier.PAPER_ROIS` order, with EBA
    (the paper's C2 region) primary when scored.
    """
    if study.pop.brain is not None and study.pop.brain_scores is None:
        rois = list(study.pop.brain)
        return rois, rois[-1]
    from .paper_tier import PAPER_ROIS

    scored = list(pd.unique(study.pop.brain_scores["roi"]))
    rois = [r for r in PAPER_ROIS if r in scored] + [r for r in scored if r not in PAPER_ROIS]
    return rois, ("EBA" if "EBA" in rois else rois[-1])
