"""The intervention experiment: does lowering local dimension *cause* better generalization?

The paper's evidence is correlational across models that differ in architecture,
size and data. Here the local intrinsic dimension (LID) of the embedding is moved
directly, at fixed architecture, data and schedule, by adding
``lam * lidutils.penalty.batch_penalty(emb, "lid", k)`` to the training loss
(``lam > 0`` lowers LID, ``lam < 0`` raises it), and the effect is measured within
matched seeds (same initialisation, data order and subset; only ``lam`` differs).

Design (:class:`Experiment`, :data:`EXPERIMENTS`)
-------------------------------------------------
For each family (default: the controlled zoo's MLP and MLP-Mixer trunks at
their reference capacity, :data:`lidutils.book.zoo.CONTROLLED`), every network has the
zoo's fixed embedding width, optimiser, cosine schedule with warm-up and weight
decay, and the same training images (``n_train``) and epochs:

- the **dose series**: ``lam`` over ``lambdas[family]``, **symmetric about 0**
  (every positive dose with its negative; :class:`Experiment` refuses anything
  else), every value with every seed (``lam = 0`` is the unregularised network).
  The two **arms** — ``lam > 0`` (LID pushed down) and ``lam < 0`` (LID pushed up)
  — are analysed separately (:data:`ARMS`), so an inverted U (every perturbation
  costs) cannot pass for a monotone dose–response;
- the **norm control**: the penalty ``kind="norm"`` (coefficient of variation of the
  embedding norms: radial, scale invariant, unrelated to local dimension) with the
  weight that gives the *same gradient norm on the embeddings* as the LID penalty
  at ``lam`` (:func:`lidutils.penalty.matched_weight`, measured on the
  unregularised networks' evaluation embeddings), for each ``lam`` in
  ``norm_lambdas[family]`` (positive: the control of the LID-lowering arm);
- the **label-noise series**: ``noise`` of the training labels wrong, for each
  ``lam`` in ``noise_lambdas[family]`` (includes 0), every seed; test accuracy is on
  the clean test labels.

The unregularised networks (the *twins*) are saved at several epochs
(:meth:`Experiment.twin_epochs`): their test accuracy against their training loss
along training is the reference of the primary outcome.

The training regime (default: 1000 images, 24 epochs, no augmentation) is chosen so
that the unregularised networks fit their training set clearly better than the test
set: a generalization gap that a penalty could close (the chapter shows it as a
premise check).

Outcomes: generalization separated from optimisation
----------------------------------------------------
A penalty that makes a network *fit* its training set worse lowers its test
accuracy without saying anything about generalization, and it also shrinks the
generalization gap (an underfitted network has none). The pre-declared primary
outcome therefore compares test accuracy **at matched training loss**
(:func:`test_at_fit`): for a penalised network with final training loss
:math:`L_p` and test accuracy :math:`A_p`, its twin's test accuracy at the same
training loss, :math:`A_t(L_p)`, is interpolated linearly along the twin's
checkpoints :math:`(L_t(e), A_t(e))`, and

.. math:: \\Delta A_{\\mathrm{fit}} = A_p - A_t(L_p),

positive when the penalised network generalizes better than its twin did at the
same fit. The generalization gap :math:`g = A_{\\mathrm{train}} - A_{\\mathrm{test}}`
(training accuracy on the labels trained on, evaluation mode) is a secondary outcome.

Measurements (:func:`measure`), as in the claim notebooks
---------------------------------------------------------
LID: Levina–Bickel MLE at the paper's K = 50, mean over the 1000 evaluation images,
in the PCA-300 space (:func:`lidutils.book.measures.lid_table`); test accuracy (all clean
test images), training accuracy and loss; model–model alignment: held-out ridge
:math:`R^2` (:func:`lidutils.book.measures.ridge_all_pairs`, the paper's ridge on 300 PCs)
in both directions between the network and each *unregularised* clean network of
its family with another seed, averaged over those references; brain: Spearman RSA
of the 92-image probe RDM with each subject's EVC and IT RDM, mean over subjects
(:func:`lidutils.book.measures.brain_long`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math

import numpy as np
import pandas as pd
from lidutils.book.records import correlate, finalize, holm_gate
from lidutils.book.measures import brain_long, lid_table, RIDGE, ridge_all_pairs
from lidutils.book.report import write_claim
from lidutils.book.zoo import CONTROLLED as D, load_embeddings, train_zoo, zoo_summary, ZooEntry
from lidutils.lid import lid_mle
from lidutils.penalty import batch_penalty, matched_weight
from lidutils.rsatools import noise_ceiling, pixel_rdm, rsa_many
from lidutils.stats import corr, holm

__all__ = ["Experiment", "EXPERIMENTS", "ARMS", "PRIMARIES", "experiment", "design", "entries", "run",
           "twin_curves", "load_eval", "measure", "test_at_fit", "paired", "paired_summary", "baseline",
           "baseline_text", "arm",
           "validate_penalty", "penalty_validation", "validation_text", "records", "claim_verdict",
           "write_result", "norm_control", "interpretation", "design_text", "brain_context", "METRICS"]

#: Per-network measurements compared between a penalised network and its matched
#: unregularised twin (column names of :func:`measure`).
METRICS = ("lid", "accuracy", "train_acc", "gap", "ridge_to_ref", "ridge_from_ref", "ridge", "brain_EVC",
           "brain_IT")
#: The two arms of the dose series: name -> sign of ``lam``.
ARMS = {"lowering": 1, "raising": -1}
_ARM_TEXT = {"lowering": "λ > 0 arm (LID pushed down)", "raising": "λ < 0 arm (LID pushed up)"}
#: Labels of C8's two pre-declared primary analyses, one per arm: within family (two
#: families), Pearson r between ΔLID and Δtest accuracy at matched training loss,
#: across the LID-penalised networks on clean labels of that arm.
PRIMARIES = {arm: f"{_ARM_TEXT[arm]}: ΔLID vs Δtest accuracy at matched training loss (Pearson)"
             for arm in ARMS}
#: Unit of every C8 record.
UNIT = "penalised networks, each minus its unregularised twin"


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One dose–response design (see the module docstring).

    Parameters
    ----------
    families : tuple of str
        Zoo architectures; each at ``capacity[family]`` = (width, depth).
    capacity : dict
    lambdas : dict family -> tuple of float
        LID-penalty weights of the dose series: 0 and pairs ``±lam`` (symmetric about 0).
    seeds : tuple of int
    n_train, epochs : int
        Training images (nested subsets of the training split) and epochs.
    noise : float
        Label-noise fraction of the label-noise series.
    noise_lambdas, norm_lambdas : dict family -> tuple of float
    k : int
        Neighbours of the batch LID penalty.
    data : str
        Named zoo data set.
    embed_dim, lr, weight_decay, augment, batch_size, schedule
        Training settings (default: the zoo's, :data:`lidutils.book.zoo.CONTROLLED`;
        ``augment`` = 0, no random shifts, in the named experiments).
    """

    families: tuple
    capacity: dict
    lambdas: dict
    seeds: tuple
    n_train: int
    epochs: int
    noise: float
    noise_lambdas: dict
    norm_lambdas: dict
    lr: dict
    k: int = 10
    data: str = "fashion-mnist"
    embed_dim: int = 128
    weight_decay: float = 5e-4
    augment: int = 2
    batch_size: int = 128
    schedule: str = "cosine"

    def __post_init__(self):
        for fam in self.families:
            lams = tuple(float(v) for v in self.lambdas[fam])
            pos = sorted(v for v in lams if v > 0)
            neg = sorted(-v for v in lams if v < 0)
            if 0 not in lams or not pos or not neg:
                raise ValueError(f"lambdas[{fam!r}] = {lams} must hold negative values, 0 and positive values.")
            if len(pos) != len(neg) or not np.allclose(pos, neg):
                raise ValueError(f"lambdas[{fam!r}] = {lams} must be symmetric about 0 (each dose with its "
                                 f"negative, e.g. {tuple(sorted(set(pos + [-v for v in pos] + [0.0])))}), so "
                                 "that the two arms are comparable.")
            if 0 not in self.noise_lambdas.get(fam, (0,)):
                raise ValueError(f"noise_lambdas[{fam!r}] must contain 0 (the matched unregularised twin).")
            if any(v <= 0 for v in self.norm_lambdas.get(fam, ())):
                raise ValueError(f"norm_lambdas[{fam!r}] must be positive (the control of the LID-lowering doses).")

    def twin_epochs(self):
        """Checkpoints of the unregularised networks: every epoch up to 4, then every ``epochs // 6``, and the last.

        Their test accuracy against training loss is the reference curve of
        :func:`test_at_fit`; penalised networks are saved at the last epoch only.
        """
        E = int(self.epochs)
        step = max(1, E // 6)
        return tuple(sorted(set(range(1, min(4, E) + 1)) | set(range(step, E + 1, step)) | {E}))


def _from_controlled(families, lambdas, seeds, n_train, epochs, noise, noise_lambdas, norm_lambdas, **kw):

    cap = {f: tuple(D.capacity[f][D.ref_capacity]) for f in families}
    kw = {"data": D.data, "embed_dim": D.embed_dim, "weight_decay": D.weight_decay, "augment": D.augment,
          "batch_size": D.batch_size, **kw}
    return Experiment(families=tuple(families), capacity=cap, lambdas=lambdas, seeds=tuple(seeds),
                      n_train=n_train, epochs=epochs, noise=noise, noise_lambdas=noise_lambdas,
                      norm_lambdas=norm_lambdas, lr={f: D.lr[f] for f in families}, **kw)


def _experiments():
    # Families: the controlled zoo's MLP and MLP-Mixer (LayerNorm inside). Its third
    # family, the all-convolutional trunk (no normalisation layers), was tried and
    # left out: measured at lam = -0.01 it collapsed to chance and lam = -0.003 *lowered*
    # its LID (not a monotone dose), so it cannot carry a dose-response.
    # Regime: 1000 images x 24 epochs without random shifts (the same number of
    # examples seen as 2000 x 12): measured on one seed, the unregularised MLP fitted
    # its training set to 0.93 against 0.81 on the test set and the Mixer 0.83 / 0.74,
    # where 2000 x 12 with shifts gave gaps of 0.02 — no generalization gap to close.
    lam = (-0.1, -0.03, -0.01, 0.0, 0.01, 0.03, 0.1)
    default = _from_controlled(
        ("mlp", "mixer"), {"mlp": lam, "mixer": lam}, seeds=(0, 1, 2), n_train=1000, epochs=24, noise=0.4,
        noise_lambdas={"mlp": (0.0, 0.1), "mixer": (0.0, 0.1)}, norm_lambdas={"mlp": (0.1,), "mixer": (0.1,)},
        augment=0)
    smoke = _from_controlled(
        ("mlp",), {"mlp": (-0.01, -0.001, 0.0, 0.001, 0.01)}, seeds=(0, 1), n_train=300, epochs=4, noise=0.4,
        noise_lambdas={"mlp": (0.0, 0.01)}, norm_lambdas={"mlp": (0.01,)}, augment=0)
    return {"default": default, "smoke": smoke}


#: Named experiments: ``"default"`` (the chapter's) and ``"smoke"`` (tests).
EXPERIMENTS = _experiments()


#: The zoo's grid names that a book-wide ``-p zoo_grid ...`` may pass to this chapter.
ALIASES = {"controlled": "default", "controlled-smoke": "smoke"}


def experiment(grid):
    """An :class:`Experiment` from a name in :data:`EXPERIMENTS` (or one passed through).

    The zoo's grid names ``"controlled"`` / ``"controlled-smoke"`` (:data:`ALIASES`)
    select ``"default"`` / ``"smoke"``, so one book-wide ``zoo_grid`` serves every chapter.
    """
    if isinstance(grid, Experiment):
        return grid
    grid = ALIASES.get(grid, grid)
    if grid not in EXPERIMENTS:
        raise ValueError(f"unknown intervention grid {grid!r}; choose one of {sorted(EXPERIMENTS)}.")
    return EXPERIMENTS[grid]


def design(grid="default"):
    """One row per network: ``family``, ``condition`` ("none", "lid", "norm"), ``lam``
    (LID-penalty weight, or for "norm" the LID weight it is matched to),
    ``label_noise``, ``seed``."""
    exp = experiment(grid)
    rows = []
    for fam in exp.families:
        for s in exp.seeds:
            for lam in exp.lambdas[fam]:
                rows.append(dict(family=fam, condition="lid" if lam else "none", lam=float(lam),
                                 label_noise=0.0, seed=s))
            for lam in exp.norm_lambdas.get(fam, ()):
                rows.append(dict(family=fam, condition="norm", lam=float(lam), label_noise=0.0, seed=s))
            for lam in exp.noise_lambdas.get(fam, ()):
                rows.append(dict(family=fam, condition="lid" if lam else "none", lam=float(lam),
                                 label_noise=float(exp.noise), seed=s))
    return pd.DataFrame(rows)


def design_text(grid="default"):
    """The design in one markdown sentence (families, doses, seeds, images, epochs), for the chapter to glue."""
    exp = experiment(grid)
    d = design(exp)
    parts = []
    for fam in exp.families:
        lams = ", ".join(f"{v:+g}" if v else "0" for v in sorted(exp.lambdas[fam]))
        parts.append(f"{fam} ({exp.capacity[fam][0]} wide, depth {exp.capacity[fam][1]}): λ ∈ {{{lams}}}")
    def values(attr):
        return ", ".join(f"{v:g}" for v in sorted({v for f in exp.families for v in getattr(exp, attr).get(f, ())}))

    shifts = "no" if not exp.augment else f"{exp.augment}-pixel"
    return (f"{'; '.join(parts)}; {len(exp.seeds)} seeds per dose; {exp.n_train} training images, "
            f"{exp.epochs} epochs, {shifts} random shifts; norm control at λ = {values('norm_lambdas')}; "
            f"label-noise series ({exp.noise:.0%} wrong labels) at λ = {values('noise_lambdas')} — {len(d)} "
            "networks in all")


def _entry(exp, family, seed, label_noise=0.0, penalty="none", weight=0.0):

    w, d = exp.capacity[family]
    epochs = (exp.epochs,) if weight else exp.twin_epochs()
    return ZooEntry(family, w, d, label_noise=label_noise, epochs=epochs, seed=seed, lr=exp.lr[family],
                    batch_size=exp.batch_size, weight_decay=exp.weight_decay, n_train=exp.n_train,
                    embed_dim=exp.embed_dim, schedule=exp.schedule, augment=exp.augment,
                    penalty=penalty if weight else "none", penalty_weight=float(weight), penalty_k=exp.k)


def _round_sig(x, digits=3):
    return 0.0 if x == 0 else float(round(x, digits - 1 - int(math.floor(math.log10(abs(x))))))


def entries(grid="default", norm_ratio=None):
    """The design with its :class:`~lidutils.book.zoo.ZooEntry` (column ``entry``) and ``penalty_weight``.

    ``norm_ratio`` : dict family -> float, the matched norm weight per unit ``lam``
    (from :func:`run`); without it the norm-control rows are left out.
    """
    exp = experiment(grid)
    df = design(exp)
    out = []
    for r in df.itertuples(index=False):
        if r.condition == "norm":
            if norm_ratio is None:
                continue
            weight, kind = _round_sig(r.lam * norm_ratio[r.family]), "norm"
        else:
            weight, kind = r.lam, "lid"
        out.append({**r._asdict(), "penalty_weight": weight,
                    "entry": _entry(exp, r.family, r.seed, r.label_noise, kind, weight)})
    return pd.DataFrame(out)


def run(grid="default", cache_dir=None, device="auto", num_workers=1, progress=False, probe_images=None):
    """Train (or load from the zoo cache) every network of the experiment.

    Two stages: the LID dose and label-noise series first; then the norm weights
    are matched on the unregularised clean networks' evaluation embeddings
    (:func:`lidutils.penalty.matched_weight`, pooled over seeds, per family, rounded
    to 3 significant digits) and the norm controls trained.

    Returns
    -------
    DataFrame
        One row per network (its final checkpoint): the design columns,
        ``penalty_weight``, the zoo's columns (``member``, ``key``, ``test_acc``,
        ``train_acc``, ``train_loss``, ``eval_path``, ``probe_path``, ...) and
        ``norm_ratio``. Index: ``name`` (unique, readable). The twins' earlier
        checkpoints: :func:`twin_curves`.
    """

    exp = experiment(grid)
    kw = dict(cache_dir=cache_dir, device=device, progress=progress, data=exp.data, num_workers=num_workers,
              probe_images=probe_images)
    first = entries(exp)
    t1 = train_zoo(list(first["entry"]), **kw)
    t1 = t1[t1["final"]]
    ratio = {}
    for fam in exp.families:
        keys = first[(first.family == fam) & (first.condition == "none") & (first.label_noise == 0)]["entry"]
        embs = [load_embeddings(t1[t1.key == e.key].iloc[-1], cache_dir=cache_dir) for e in keys]
        ratio[fam] = matched_weight(embs, 1.0, k=exp.k, batch_size=exp.batch_size)
    allrows = entries(exp, norm_ratio=ratio)
    table = train_zoo(list(allrows["entry"]), **kw)
    table = table[table["final"]].set_index("key")
    keys = [e.key for e in allrows["entry"]]
    des = allrows.drop(columns="entry").assign(key=keys, norm_ratio=allrows["family"].map(ratio))
    out = des.join(table.drop(columns=[c for c in table.columns if c in des.columns]), on="key")
    out.index = [_name(r) for r in out.itertuples()]
    out.index.name = "name"
    return out


def twin_curves(runs, cache_dir=None):
    """Every saved checkpoint of the unregularised networks of :func:`run`.

    Returns
    -------
    DataFrame
        One row per (twin, epoch): ``name`` (the twin's row name in ``runs``),
        ``epoch``, ``train_loss`` and ``train_acc`` (evaluation mode, on the labels
        trained on), ``test_acc``; sorted by name and epoch.
    """

    twins = runs[runs.condition == "none"]
    s = zoo_summary(cache_dir)
    s = s[s["key"].isin(set(twins["key"]))]
    names = pd.Series(twins.index, index=twins["key"])
    out = s.assign(name=s["key"].map(names))[["name", "epoch", "train_loss", "train_acc", "test_acc"]]
    return out.sort_values(["name", "epoch"]).reset_index(drop=True)


def load_eval(row):
    """Evaluation-set embeddings (float64) of one network of :func:`run` (a row)."""

    return load_embeddings(row).astype(np.float64)


def _name(r):
    noise = f"-noise{r.label_noise:g}" if r.label_noise else ""
    return f"{r.family}-{r.condition}{r.lam:+g}{noise}-s{r.seed}"


# ----------------------------------------------------------------------------- measurement
def _references(runs):
    """For each network: the unregularised clean networks of its family with another seed."""
    ref = runs[(runs.condition == "none") & (runs.label_noise == 0)]
    return {n: list(ref[(ref.family == r.family) & (ref.seed != r.seed)].index) for n, r in runs.iterrows()}


@contextlib.contextmanager
def _torch_threads(n):
    """Run torch with ``n`` CPU threads (``None``: unchanged); restored afterwards."""
    import torch

    prev = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def measure(runs, brain=None, k=50, n_pcs=300, seed=0, device="auto", cache_dir=None, num_threads=1):
    """Per-network measurements as the claim notebooks make them.

    Parameters
    ----------
    runs : DataFrame from :func:`run`
    brain : dict roi -> (n_subjects, 92, 92) RDMs, optional
        Brain RSA columns ``brain_<roi>`` (mean Spearman over subjects,
        :func:`lidutils.book.measures.brain_long`).
    k, n_pcs : LID neighbourhood (paper: 50) and PCA space (paper: 300).
    seed : PCA split / ridge folds.
    num_threads : torch CPU threads while measuring (1: fastest on a shared machine;
        measured: two threads under load were 9x slower for the ridge fits).

    Returns
    -------
    DataFrame indexed like ``runs``: ``lid`` (mean MLE at ``k`` in PCA-``n_pcs``,
    :func:`lidutils.book.measures.lid_table`), ``accuracy`` (clean test accuracy),
    ``train_acc`` and ``train_loss`` (evaluation mode, on the labels trained on),
    ``gap`` (``train_acc - accuracy``, the generalization gap),
    ``ridge_to_ref`` (held-out ridge R² of predicting the references from the
    network), ``ridge_from_ref`` (the references predicting the network), ``ridge``
    (their mean), ``n_refs``, and ``brain_<roi>``. The references of a network are
    the unregularised clean-label networks of its family with another seed; the
    ridge R² of every ordered pair comes from :func:`lidutils.book.measures.ridge_all_pairs`
    (cached), one per family for the dose and noise series and one for its norm
    controls with their references.
    """

    with _torch_threads(num_threads):
        reps = {n: load_eval(r) for n, r in runs.iterrows()}
        lid = lid_table(reps, ks=[k], space="pca300", n_pcs=n_pcs, seed=seed, device=device, cache_dir=cache_dir)
        out = pd.DataFrame(index=runs.index)
        out["lid"] = lid[f"mle_k{k}"]
        out["accuracy"] = runs["test_acc"].astype(float)
        out["train_acc"] = runs["train_acc"].astype(float)
        out["train_loss"] = runs["train_loss"].astype(float)
        out["gap"] = out["train_acc"] - out["accuracy"]
        refs = _references(runs)
        rows = {}
        for (fam, is_norm), g in runs.groupby(["family", runs["condition"] == "norm"]):
            # one matrix per family for the dose and noise series, a small one for the norm
            # controls with their references (so a changed control recomputes only its own)
            names = list(dict.fromkeys(list(g.index) + [m for n in g.index for m in refs[n]]))
            M = ridge_all_pairs({n: reps[n] for n in names}, n_pcs=n_pcs, seed=seed, device=device,
                             cache_dir=cache_dir, **RIDGE)
            for n in g.index:
                r = refs[n]
                rows[n] = {"ridge_to_ref": float(M.loc[n, r].mean()) if r else np.nan,
                           "ridge_from_ref": float(M.loc[r, n].mean()) if r else np.nan, "n_refs": len(r)}
        out = out.join(pd.DataFrame.from_dict(rows, orient="index"))
        out["ridge"] = (out["ridge_to_ref"] + out["ridge_from_ref"]) / 2
        if brain is not None:

            probe = {n: load_embeddings(r, which="probe").astype(np.float64) for n, r in runs.iterrows()}
            b = brain_long(probe, brain, device=device)
            out = out.join(b.groupby(["model", "roi"])["score"].mean().unstack("roi").add_prefix("brain_"))
    return out


# ----------------------------------------------------------------------------- statistics
def test_at_fit(curve, train_loss):
    """A twin's test accuracy at a given training loss, interpolated along its training.

    ``curve`` holds the twin's checkpoints (``train_loss``, ``test_acc``; e.g. one
    name of :func:`twin_curves`). With the checkpoints ordered by training loss,
    :math:`A_t(L)` is the linear interpolation of their test accuracy at :math:`L`.

    - :math:`L` above the highest checkpoint loss (the network fits worse than the
      twin did at its first checkpoint): no comparison point, ``nan``, status
      ``"worse than first checkpoint"``;
    - :math:`L` below the lowest (it fits better than the twin ever did): the twin's
      test accuracy at its best fit, status ``"better than twin's best"`` (a
      conservative reference: the twin got no further);
    - otherwise status ``"interpolated"``.

    Returns
    -------
    (float, str)
    """
    c = pd.DataFrame(curve)[["train_loss", "test_acc"]].astype(float).dropna().sort_values("train_loss")
    if c.empty or not np.isfinite(train_loss):
        return np.nan, "no curve"
    xs, ys = c["train_loss"].to_numpy(), c["test_acc"].to_numpy()
    if train_loss > xs[-1]:
        return np.nan, "worse than first checkpoint"
    if train_loss < xs[0]:
        return float(ys[0]), "better than twin's best"
    return float(np.interp(train_loss, xs, ys)), "interpolated"


def paired(table, metrics=METRICS, curves=None):
    """Differences to the matched unregularised twin (same family, seed and label noise).

    ``table`` has the design columns and the metric columns. Returns one row per
    penalised network (``condition`` "lid" or "norm"): design columns,
    ``d_<metric> = metric(network) - metric(twin)``, and, with ``curves``
    (:func:`twin_curves`) and ``train_loss`` in ``table``, the primary outcome
    ``d_test_at_fit`` = :math:`A_p - A_t(L_p)` (:func:`test_at_fit`) with its
    ``fit_status`` and the twin's interpolated ``twin_test_at_fit``.
    """
    metrics = [m for m in metrics if m in table]
    nones = table[table.condition == "none"]
    base = nones.set_index(["family", "seed", "label_noise"])
    if base.index.duplicated().any():
        raise ValueError("more than one unregularised network per (family, seed, label_noise).")
    pen = table[table.condition != "none"]
    keys = pd.MultiIndex.from_frame(pen[["family", "seed", "label_noise"]])
    twin = base.reindex(keys)
    d = pd.DataFrame(pen[metrics].to_numpy(float) - twin[metrics].to_numpy(float),
                     index=pen.index, columns=[f"d_{m}" for m in metrics])
    cols = ["family", "condition", "lam", "label_noise", "seed"] + \
        (["penalty_weight"] if "penalty_weight" in pen else [])
    out = pen[cols].join(d)
    if curves is not None:
        if "train_loss" not in table:
            raise ValueError("the matched-fit outcome needs a 'train_loss' column in table; build the table "
                             "with lidutils.book.intervention.measure.")
        twin_name = pd.Series(nones.index, index=base.index).reindex(keys).to_numpy()
        by_twin = dict(tuple(curves.groupby("name")))
        vals = [test_at_fit(by_twin.get(t, pd.DataFrame(columns=["train_loss", "test_acc"])), float(L))
                for t, L in zip(twin_name, pen["train_loss"].to_numpy(float))]
        out["twin_test_at_fit"] = [v for v, _ in vals]
        out["fit_status"] = [s for _, s in vals]
        out["d_test_at_fit"] = pen["accuracy"].to_numpy(float) - out["twin_test_at_fit"].to_numpy(float)
    return out


def paired_summary(diffs, by=("family", "condition", "label_noise", "lam"), ci=0.95):
    """Mean paired difference per group with a t confidence interval over seeds.

    For the :math:`n` paired differences :math:`d_s` of a group,
    :math:`\\bar d \\pm t_{(1+c)/2,\\,n-1}\\, s_d/\\sqrt n`. Returns one row per
    (group, metric) with ``mean``, ``ci_low``, ``ci_high``, ``n``, ``excludes_zero``.
    """
    from scipy import stats as st

    rows = []
    dcols = [c for c in diffs.columns if c.startswith("d_")]
    for key, g in diffs.groupby(list(by), sort=True):
        for c in dcols:
            v = g[c].to_numpy(float)
            v = v[np.isfinite(v)]
            n = len(v)
            m = float(v.mean()) if n else np.nan
            half = float(st.t.ppf((1 + ci) / 2, n - 1) * v.std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan
            rows.append({**dict(zip(by, key)), "metric": c[2:], "mean": m, "ci_low": m - half,
                         "ci_high": m + half, "n": n,
                         "excludes_zero": bool(np.isfinite(half) and (m - half > 0 or m + half < 0))})
    return pd.DataFrame(rows)


def baseline(table):
    """Premise check: do the unregularised networks generalize imperfectly (a gap a penalty could close)?

    Per family and label noise, over the unregularised networks (seeds): mean
    training accuracy, test accuracy and generalization gap
    :math:`g = A_{train} - A_{test}`, the gap's smallest value and ``n``.
    """
    t = table[table.condition == "none"]
    g = t.groupby(["family", "label_noise"])
    return pd.DataFrame({"train_acc": g["train_acc"].mean(), "test_acc": g["accuracy"].mean(),
                         "gap": g["gap"].mean(), "gap_min": g["gap"].min(), "n": g.size()}).reset_index()


def baseline_text(base):
    """One markdown sentence from :func:`baseline`: each family's unregularised training and test accuracy and gap."""
    parts = [f"{r.family}{f' ({r.label_noise:.0%} label noise)' if r.label_noise else ''}: training accuracy "
             f"{r.train_acc:.3f}, test {r.test_acc:.3f}, gap {r.gap:+.3f} (smallest {r.gap_min:+.3f}, n = {r.n})"
             for r in base.itertuples()]
    return "; ".join(parts)


# ----------------------------------------------------------------------------- validation
def validate_penalty(reps, k=10, batch_size=128, k_full=50, n_pcs=300, seed=0, device="auto", num_threads=1):
    """Does the training-time batch estimate track the full-set LID?

    For each representation (e.g. every network's evaluation embeddings), disjoint
    random batches of ``batch_size`` rows:

    - ``batch``: :func:`lidutils.penalty.batch_penalty` (``kind="lid"``, ``k``) on
      the batch in float32, as in training;
    - ``same_points``: :func:`lidutils.lid_mle` (float64) on the same rows, same ``k``
      (its mean over the batch): the batch penalty must equal it up to its
      smoothing :math:`\\varepsilon` and float32 rounding.

    Per representation, also ``full``: the mean MLE at ``k_full`` in the PCA-``n_pcs``
    space over all rows (the measurement of the chapter) and ``batch_mean`` (mean of
    the batch estimates).

    Returns
    -------
    batches : DataFrame (one row per batch: ``model``, ``batch``, ``same_points``)
    models : DataFrame (one row per representation: ``batch_mean``, ``full``)
    """
    rng = np.random.default_rng(seed)
    with _torch_threads(num_threads):
        batches, models = _validate(reps, k, batch_size, k_full, n_pcs, rng, seed, device)
    return batches, models


def _validate(reps, k, batch_size, k_full, n_pcs, rng, seed, device):
    import torch


    rows = []
    for name, X in reps.items():
        X = np.asarray(X)
        order = rng.permutation(len(X))
        for i in range(0, len(X) - batch_size + 1, batch_size):
            b = X[order[i:i + batch_size]]
            with torch.no_grad():
                v = float(batch_penalty(torch.as_tensor(b, dtype=torch.float32), "lid", k))
            ref = float(lid_mle(b.astype(np.float64), k, device=device, duplicates="ignore").mean())
            rows.append(dict(model=name, batch=v, same_points=ref))
    batches = pd.DataFrame(rows)
    full = lid_table({n: np.asarray(X, dtype=np.float64) for n, X in reps.items()}, ks=[k_full],
                     space="pca300", n_pcs=n_pcs, seed=seed, device=device)[f"mle_k{k_full}"]
    models = batches.groupby("model")["batch"].mean().rename("batch_mean").to_frame().join(full.rename("full"))
    return batches, models


def penalty_validation(batches, models, n_boot=2000, n_perm=10000, seed=0):
    """The two checks of :func:`validate_penalty` as numbers.

    - ``max_rel_diff_same_points``: :math:`\\max_b |P_b - M_b| / M_b` over batches,
      :math:`P_b` the batch penalty and :math:`M_b` :func:`lidutils.lid_mle` on the
      same points (must be rounding-sized);
    - ``tracks``: Pearson r (bootstrap CI, permutation p, n) across representations
      between the mean batch estimate and the full-set LID
      (:func:`lidutils.stats.corr`);
    - ``bias``: mean of (batch mean − full-set LID) over representations.

    Returns
    -------
    dict with ``n_batches``, ``max_rel_diff_same_points``, ``tracks`` (r, ci_low,
    ci_high, p, n) and ``bias``.
    """

    rel = (batches["batch"] - batches["same_points"]) / batches["same_points"]
    tr = corr(models["batch_mean"].to_numpy(float), models["full"].to_numpy(float), method="pearson",
              n_boot=n_boot, n_perm=n_perm, seed=seed)
    return dict(n_batches=int(len(batches)), max_rel_diff_same_points=float(rel.abs().max()),
                tracks={k: (int(tr[k]) if k == "n" else float(tr[k])) for k in ("r", "ci_low", "ci_high", "p", "n")},
                bias=float((models["batch_mean"] - models["full"]).mean()))


def validation_text(summary):
    """Two markdown snippets from :func:`penalty_validation`: ``(same points, across networks)``."""
    t = summary["tracks"]
    same = f"{summary['n_batches']} batches: max |relative difference| {summary['max_rel_diff_same_points']:.1e}"
    track = (f"Pearson r = {t['r']:+.3f} [{t['ci_low']:+.3f}, {t['ci_high']:+.3f}], n = {t['n']} networks; "
             f"mean bias (batch − full) {summary['bias']:+.2f}")
    return same, track


# ----------------------------------------------------------------------------- results record
def arm(diffs, name, label_noise=0.0, condition="lid"):
    """The penalised networks of one arm: ``"lowering"`` (``lam > 0``) or ``"raising"`` (``lam < 0``).

    ``label_noise``: 0 (clean labels) or the noise series' fraction (``None``: any > 0).
    """
    if name not in ARMS:
        raise ValueError(f"arm must be one of {list(ARMS)}, got {name!r}.")
    d = diffs[diffs.condition == condition]
    d = d[d.label_noise > 0] if label_noise is None else d[np.isclose(d.label_noise, label_noise)]
    return d[np.sign(d["lam"]) == ARMS[name]]


def _correlate(label, t, x, y, sign, *, population, method="pearson", note="", k=50, n_boot=2000, n_perm=10000,
               seed=0):
    """One C8 record by the claims' builder (:func:`lidutils.book.claims.correlate`): within family when the
    units span two or more families (family means removed, family-stratified bootstrap,
    permutation within family), a label only at enough units and when CI and p agree."""

    rec = correlate("C8", t, x, y, population=population, method=method, expected_sign=sign, paper_r=None,
                    space="pca300", k=k, estimator="mle", label=label, n_boot=n_boot, n_perm=n_perm, seed=seed,
                    note=note)
    if rec is not None:
        rec["unit"] = UNIT
    return rec


def records(diffs, k=50, n_boot=2000, n_perm=10000, seed=0):
    """The C8 correlation records from the paired differences (:func:`paired` with ``curves``).

    Per arm (:data:`ARMS`), across its LID-penalised networks on clean labels:

    - **primary** (:data:`PRIMARIES`): Pearson r between ΔLID and Δtest accuracy
      at matched training loss (``d_test_at_fit``), within family; the causal
      reading predicts r < 0 in both arms (LID down → better generalization at the
      same fit; LID up → worse);
    - the same with Spearman; ΔLID vs Δgeneralization gap (expected r > 0); ΔLID vs
      Δtest accuracy (raw: generalization and fit together); ΔLID vs Δridge
      alignment and vs Δbrain RSA per region;
    - the **manipulation check** per family: dose λ vs ΔLID (Spearman, expected
      r < 0: a larger |λ| must move LID further the intended way).

    And the label-noise series (LID-lowering doses): ΔLID vs Δtest accuracy at matched
    training loss.

    Returns
    -------
    records : list of dict
    checks : dict ``"<family>, <arm>"`` -> the manipulation check's verdict
        ("replicated" = passed; "wrong direction" when the arm's mean ΔLID has the
        wrong sign; "too few networks" when no record could be made).
    """
    kw = dict(k=k, n_boot=n_boot, n_perm=n_perm, seed=seed)
    out, checks = [], {}
    for name, s in ARMS.items():
        a = arm(diffs, name)
        if a.empty:
            continue
        txt = _ARM_TEXT[name]
        pop = f"{txt}, clean labels"
        out.append(_correlate(PRIMARIES[name], a, "d_lid", "d_test_at_fit", -1, population=pop, **kw))
        out.append(_correlate(f"{txt}: ΔLID vs Δtest accuracy at matched training loss (Spearman)", a, "d_lid",
                              "d_test_at_fit", -1, population=pop, method="spearman", **kw))
        out.append(_correlate(f"{txt}: ΔLID vs Δgeneralization gap (Pearson)", a, "d_lid", "d_gap", 1,
                              population=pop, note="gap = training − test accuracy; the causal reading predicts "
                              "r > 0; a penalty that only underfits also shrinks the gap", **kw))
        out.append(_correlate(f"{txt}: ΔLID vs Δtest accuracy (Pearson)", a, "d_lid", "d_accuracy", -1,
                              population=pop, note="raw test accuracy: generalization and fit together", **kw))
        out.append(_correlate(f"{txt}: ΔLID vs Δridge alignment with the unregularised networks (Pearson)", a,
                              "d_lid", "d_ridge", -1, population=pop, **kw))
        for roi in sorted(c[len("d_brain_"):] for c in a.columns if c.startswith("d_brain_")):
            out.append(_correlate(f"{txt}: ΔLID vs Δbrain RSA ({roi}) (Pearson)", a, "d_lid", f"d_brain_{roi}", -1,
                                  population=pop, **kw))
        for fam, g in a.groupby("family"):
            r = _correlate(f"manipulation check, {fam}, {txt}: λ vs ΔLID (Spearman)", g, "lam", "d_lid", -1,
                           population=f"{fam}, {pop}", method="spearman",
                           note="a larger |λ| must move LID further: down for λ > 0, up for λ < 0", **kw)
            out.append(r)
            right_way = bool(np.sign(g["d_lid"].mean()) == -s)
            checks[f"{fam}, {name}"] = ("wrong direction" if not right_way else
                                        r["verdict"] if r is not None else "too few networks")
        noisy = arm(diffs, name, label_noise=None)
        if len(noisy):
            out.append(_correlate(f"label-noise series, {txt}: ΔLID vs Δtest accuracy at matched training loss "
                                  "(Pearson)", noisy, "d_lid", "d_test_at_fit", -1,
                                  population=f"{txt}, noisy training labels (clean test labels)", **kw))
    return [r for r in out if r is not None], checks


def _arm_verdicts(recs, checks):
    """Per arm: its primary record (p Holm-adjusted between the two primaries, as
    :func:`lidutils.book.claims.finalize` does) and its verdict ("uninformative" when a
    family's manipulation check failed, "descriptive" when there is no primary record)."""

    prim = {a: next((dict(r) for r in recs if r["analysis"] == PRIMARIES[a]), None) for a in ARMS}
    present = [a for a in ARMS if prim[a] is not None]
    if len(present) > 1:
        for a, ph in zip(present, holm([prim[a]["p"] for a in present])):
            prim[a]["p_holm"] = float(ph)
            holm_gate(prim[a])
    v = {}
    for a in ARMS:
        failed = [k.rsplit(", ", 1)[0] for k, c in checks.items() if k.endswith(f", {a}") and c != "replicated"]
        v[a] = ("descriptive" if prim[a] is None else "uninformative" if failed or not any(
            k.endswith(f", {a}") for k in checks) else prim[a]["verdict"])
    return prim, v


def _say(rec, verdict):
    if rec is None:
        return "no primary record (too few networks)"
    fam = f", within {rec['n_families']} families" if rec.get("design") == "within family" else ""
    return (f"r = {rec['r']:+.2f} [{rec['ci_low']:+.2f}, {rec['ci_high']:+.2f}], n = {rec['n']}{fam} → {verdict}")


def claim_verdict(recs, checks):
    """C8's verdict and its reason, by a rule fixed before the data (both arms' primaries).

    Each arm's verdict is its primary's label (p Holm-adjusted between the two arms),
    or "uninformative" when the manipulation check failed in one of its families.
    With L the LID-lowering arm's verdict and R the LID-raising arm's:

    ==================  ======================  ==================
    L                   R                       C8
    ==================  ======================  ==================
    uninformative       any                     uninformative
    replicated          opposite                inconclusive (every push on LID helped)
    replicated          anything else           replicated
    opposite            opposite                opposite (higher LID generalizes better)
    opposite            anything else           not replicated (lowering LID did not help)
    inconclusive        any                     inconclusive
    descriptive         any                     descriptive
    ==================  ======================  ==================

    Returns ``(verdict, reason)``.
    """
    prim, v = _arm_verdicts(recs, checks)
    L, R = v["lowering"], v["raising"]
    why = "; ".join(f"{_ARM_TEXT[a]}: {_say(prim[a], v[a])}" for a in ARMS)
    if L == "uninformative":
        bad = ", ".join(f"{k.rsplit(', ', 1)[0]}: {c}" for k, c in checks.items()
                        if k.endswith(", lowering") and c != "replicated")
        return "uninformative", (f"the manipulation check of the λ > 0 arm (λ vs ΔLID) did not pass "
                                 f"({bad or 'no family checked'}), so the test cannot tell ({why})")
    if L == "descriptive":
        return "descriptive", f"too few networks in the λ > 0 arm for a verdict ({why})"
    if L == "replicated":
        if R == "opposite":
            return "inconclusive", ("at matched training loss both lowering and raising LID raised test accuracy: "
                                    f"the effect does not follow the direction of LID ({why})")
        return "replicated", f"lowering LID raised test accuracy at matched training loss ({why})"
    if L == "opposite":
        if R == "opposite":
            return "opposite", ("at matched training loss lowering LID cost test accuracy and raising it "
                                f"bought some ({why})")
        return "not replicated", (f"lowering LID cost test accuracy at matched training loss and raising it did "
                                  f"not buy any ({why})")
    return "inconclusive", f"the λ > 0 arm's interval covers 0 or its CI and p disagree ({why})"


def write_result(recs, verdict, reason, parameters, out_dir="results", tier="offline", extra=None):
    """Write ``<out_dir>/C8.json``: the two arms' primaries first (Holm-adjusted between
    them), the secondaries Holm-adjusted (:func:`lidutils.book.claims.finalize`).

    Returns the written dict, or ``None`` (nothing written) when neither primary record exists.
    """

    prims = [PRIMARIES[a] for a in ARMS if any(r["analysis"] == PRIMARIES[a] for r in recs)]
    if not prims:
        return None
    extra = dict(extra or {}, primaries=prims)
    return write_claim("C8", finalize(recs, prims), out_dir=out_dir, primary=prims[0], verdict=verdict,
                       reason=reason, parameters=parameters, extra=extra, notebook="06_intervention",
                       section="c8-result", tier=tier)


def norm_control(diffs):
    """LID penalty vs the norm control at the matched ``lam``, within seeds.

    Returns one row per (family, lam, metric) with the mean paired difference of each
    condition against the unregularised twin (``lid_mean``, ``norm_mean``) and the
    within-seed contrast ``lid - norm`` with its t interval (``n`` seeds).
    """
    from scipy import stats as st

    clean = diffs[diffs.label_noise == 0]
    norm = clean[clean.condition == "norm"]
    rows = []
    for (fam, lam), g in norm.groupby(["family", "lam"]):
        twin = clean[(clean.condition == "lid") & (clean.family == fam) & np.isclose(clean.lam, lam)]
        both = g.set_index("seed").join(twin.set_index("seed"), lsuffix="_norm", rsuffix="_lid", how="inner")
        for c in [c for c in diffs.columns if c.startswith("d_")]:
            a, b = both[f"{c}_lid"].to_numpy(float), both[f"{c}_norm"].to_numpy(float)
            d = a - b
            ok = np.isfinite(d)
            n = int(ok.sum())
            half = float(st.t.ppf(0.975, n - 1) * d[ok].std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan
            m = float(d[ok].mean()) if n else np.nan
            rows.append(dict(family=fam, lam=lam, metric=c[2:], lid_mean=float(np.nanmean(a)) if n else np.nan,
                             norm_mean=float(np.nanmean(b)) if n else np.nan, contrast=m, ci_low=m - half,
                             ci_high=m + half, n=n))
    return pd.DataFrame(rows)


def _meaning(verdict, raising):
    """The verdict's meaning, given the λ < 0 arm's own label (:func:`claim_verdict`'s rule)."""
    up = {"replicated": "pushing LID up lowered it", "opposite": "pushing LID up raised it",
          "uninformative": "the λ < 0 arm could not be tested (its manipulation check did not pass)",
          }.get(raising, "pushing LID up changed it by no detectable amount")
    if verdict == "replicated":
        return (f"At matched training loss, the networks whose LID the penalty lowered tested better than their "
                f"twins, and {up}: in this setting lowering local dimension improved generalization, not only fit.")
    if verdict == "opposite":
        return ("At matched training loss, lowering LID cost test accuracy and raising it bought some: in this "
                "setting higher local dimension went with better generalization — the reverse of the paper's "
                "direction.")
    if verdict == "not replicated":
        tail = {"replicated": ": every push on LID, either way, cost generalization at matched fit — an optimum "
                              "near the unregularised network, not a monotone effect of local dimension",
                "uninformative": ""}.get(raising, ": no monotone effect of local dimension on generalization in "
                                                  "the paper's direction")
        return (f"Pushing LID down lowered test accuracy at matched training loss, and {up}{tail}. Lowering "
                "local dimension did not improve generalization in this setting.")
    if verdict == "inconclusive":
        if raising == "opposite":
            return ("At matched training loss, both lowering and raising LID raised test accuracy: the effect does "
                    "not follow the direction of LID, so the intervention does not support a causal role of local "
                    "dimension.")
        return ("The intervention neither supports nor refutes a causal role of local dimension in "
                "generalization at this size.")
    if verdict == "uninformative":
        return ("The penalty did not move LID in the intended direction in every family, so the experiment "
                "cannot test the causal reading.")
    return "Too few networks per arm for a verdict."


def interpretation(verdict, recs, diffs, checks=None, norm=None):
    """What the result means for the paper's causal reading (markdown, every number from the data).

    Per arm, over its LID-penalised networks on clean labels: the mean ΔLID, Δtest
    accuracy, Δtraining accuracy and Δtest accuracy at matched training loss, and the
    primary record; then the verdict's meaning (:func:`claim_verdict`'s rule; with
    ``checks`` the λ < 0 arm's label is read from the records as the rule reads it) and,
    with ``norm`` (:func:`norm_control`), the norm control at matched fit.
    """
    parts = []
    for name in ARMS:
        a = arm(diffs, name)
        if a.empty:
            continue
        rec = next((r for r in recs if r["analysis"] == PRIMARIES[name]), None)
        m = {c: float(a[c].mean()) for c in ("d_lid", "d_accuracy", "d_train_acc", "d_test_at_fit") if c in a}
        bits = [f"ΔLID {m['d_lid']:+.2f}"] + [f"{lab} {m[c]:+.3f}" for c, lab in (
            ("d_accuracy", "Δtest accuracy"), ("d_train_acc", "Δtraining accuracy"),
            ("d_test_at_fit", "Δtest accuracy at matched training loss")) if c in m and np.isfinite(m[c])]
        unmatched = int((a.get("fit_status", pd.Series(dtype=str)) == "worse than first checkpoint").sum())
        parts.append(f"*{_ARM_TEXT[name]}* ({len(a)} networks; means {', '.join(bits)}"
                     + (f"; {unmatched} fit worse than their twin's first checkpoint, no matched value" if unmatched
                        else "") + f"): primary {_say(rec, rec['verdict'] if rec else '—')}.")
    raising = _arm_verdicts(recs, checks)[1]["raising"] if checks is not None else "inconclusive"
    text = " ".join(parts) + " " + _meaning(verdict, raising)
    if norm is not None and len(norm):
        rows = norm[norm.metric == "test_at_fit"]
        if rows.empty:
            rows = norm[norm.metric == "accuracy"]
        what = "Δtest accuracy at matched training loss" if (norm.metric == "test_at_fit").any() else "Δtest accuracy"
        txt = [f"{r.family} at λ = {r.lam:g}: LID penalty {r.lid_mean:+.3f}, norm penalty {r.norm_mean:+.3f} "
               f"(difference {r.contrast:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}], n = {r.n} seeds)"
               for r in rows.itertuples()]
        text += (f" Control — a penalty of the same gradient size on the spread of the embedding norms, {what}: "
                 + "; ".join(txt) + ".")
    return text


def brain_context(brain, images, method="spearman"):
    """Per region: leave-one-subject-out noise ceiling (lower, upper) and the raw-pixel
    RDM's mean RSA over subjects (:func:`lidutils.rsatools.noise_ceiling`,
    :func:`~lidutils.rsatools.pixel_rdm`, :func:`~lidutils.rsatools.rsa_many`)."""

    pix = pixel_rdm(images)
    rows = {}
    for roi, rdms in brain.items():
        nc = noise_ceiling(rdms, method=method)
        rows[roi] = dict(ceiling_low=float(nc["lower"]), ceiling_high=float(nc["upper"]),
                         pixels=float(rsa_many(pix, rdms, method=method).mean()))
    return pd.DataFrame.from_dict(rows, orient="index")
