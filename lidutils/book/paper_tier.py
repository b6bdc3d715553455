"""The paper tier as one call: the paper's models on NSD vertices, for real or as a dry run.

:func:`build_paper_population` embeds the NSD / Algonauts-2023 training images of
each subject in the paper's ``timm`` models (:data:`lidutils.models.PAPER_MODELS`)
and scores every model against every subject's vertices with voxelwise encoding
(:func:`lidutils.encoding.encoding_alignment`: 300 PCs fitted on the training fold,
per-vertex ridge penalty by inner CV, held-out R² averaged over outer folds,
median per ROI). It returns a :class:`PaperRun`: the members table (published
top-1 as the generalization score), the features, the long table of brain scores
(model / roi / subject / score) with noise ceilings, and per-vertex R² for maps.

One visible parameter makes it a **dry run**: ``weights="random"`` builds the same
architectures with ``timm.create_model(..., pretrained=False)`` (seeded) at a
reduced input size, so the whole path runs on a CPU without downloads. A folder
written by :func:`lidutils.standins.make_nsd_layout` (it holds ``STANDIN.json``)
also makes a run a dry run, whatever the weights. A dry run is marked in every
output (``members.dry_run``, ``brain.dry_run``, ``PaperRun.meta["dry_run"]``,
``meta["tier"] == "paper-dryrun"``, the bundle manifest) and :func:`read_bundle`
refuses to mix it with a real run (``expect_dry_run``).

Bundles: results brought from elsewhere
---------------------------------------
A run computed on a cluster can be rendered elsewhere without the models or the
data: :func:`write_bundle` writes, and :func:`read_bundle` reads back equal::

    <bundle_dir>/
      manifest.json                 format "lidutils-paper-bundle", version, tier, dry_run,
                                    weights, subjects, rois, models, eval_subject, n_pcs,
                                    n_folds, seed, image_size, nsd_root, lidutils version
      members.csv                   one row per member (index column "member")
      brain.csv                     model, roi, subject, score, r2_mean, r2_median,
                                    frac_positive, n_voxels, noise_ceiling, score_normalized, dry_run
      ceilings.csv                  subject, roi, n_voxels, noise_ceiling (median over vertices)
      features/subjNN/<member>.npy  (n_images, D) float32, rows in the loader's image order
      features/subjNN/images.txt    image file names, one per row of the feature files
      vertex_r2/subjNN.npz          "<member>|<hemi>" -> held-out R² per challenge vertex (NaN
                                    outside the ROIs), "fsaverage|<hemi>" -> fsaverage index

Member file names replace every character outside ``[A-Za-z0-9._-]`` by ``_``; the
manifest's ``files`` maps each member to its name. ``build_paper_population(...,
bundle_dir=...)`` reads the bundle when it exists (no model, no data needed) and
writes it after computing when it does not.
"""
from __future__ import annotations

import dataclasses
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from lidutils import __version__
from lidutils._device import resolve_device
from lidutils.cache import atomic_path, computing, default_cache_dir, hash_key, save_json, save_npz
from lidutils.encoding import encoding_alignment, roi_summary
from lidutils.features import extract
from lidutils.models import (
    HFBackbone, IMAGENET_MEAN, IMAGENET_STD, load_model, ModelInfo, PAPER_MODELS, published_top1,
    timm_info,
)
from lidutils.nsd import default_nsd_root, load_algonauts2023
from lidutils.standins import make_nsd_layout, SUBJECT1_VERTICES
from lidutils.surface import to_fsaverage5, vertexwise_corr
from lidutils.sweep import run_sweep

__all__ = ["DRY_RUN_MODELS", "PAPER_ROIS", "WEIGHTS", "PaperRun", "paper_model", "build_paper_population",
           "dry_run", "write_bundle", "read_bundle", "hf_model_from_config", "encode_representation",
           "to_fsaverage5", "vertexwise_corr", "lid_r2_map"]

WEIGHTS = ("pretrained", "random")
#: Dry-run subset of :data:`lidutils.models.PAPER_MODELS`: every family, three ConvNeXt sizes.
DRY_RUN_MODELS = ("convnext_atto.d2_in1k", "convnext_tiny.fb_in1k", "convnext_base.fb_in22k_ft_in1k",
                  "resnet18.tv_in1k", "resnet50.a1_in1k", "resmlp_12_224.fb_in1k", "vit_base_patch16_224.mae")
#: ROIs scored by default: the early visual areas and the body / face / place areas.
PAPER_ROIS = ("V1", "V2", "V3", "hV4", "EBA", "FBA", "OFA", "FFA", "OPA", "PPA")
#: Input side (pixels) of the dry-run models (the pretrained ones use their own).
DRY_RUN_IMAGE_SIZE = 64
BUNDLE_FORMAT, BUNDLE_VERSION = "lidutils-paper-bundle", 1
STANDIN_MARKER = "STANDIN.json"


@dataclasses.dataclass
class PaperRun:
    """The paper tier's population and brain scores (see the module docstring).

    Attributes
    ----------
    members : DataFrame
        Index = member (the paper's timm name); ``group`` ("paper"), ``family``,
        ``architecture``, ``pretrained``, ``n_params``, ``accuracy`` (published
        ImageNet-1k top-1 of the pretrained weights, NaN for MAE encoders),
        ``accuracy_kind``, ``top1_source``, ``input_size``, ``dry_run``.
    reps : dict {subject: {member: ndarray (n_images, D) float32}}
        Features of each subject's training images (loader row order).
    brain : DataFrame
        Long table, one row per (model, roi, subject): ``score`` (median vertex R²),
        ``r2_mean``, ``r2_median``, ``frac_positive``, ``n_voxels``, ``noise_ceiling``
        (median, NaN without ceilings), ``score_normalized`` (= score / noise_ceiling),
        ``dry_run``.
    ceilings : DataFrame
        subject, roi, n_voxels, noise_ceiling (median over the ROI's vertices).
    vertex_r2 : dict {subject: {member: {hemi: ndarray (n_challenge_vertices,)}}}
        Held-out R² per challenge-space vertex (NaN outside the scored ROIs).
    fsaverage_index : dict {subject: {hemi: ndarray}}
        fsaverage vertex of each challenge-space vertex (empty when the layout has none).
    images : dict {subject: list of str}
        Image file names, the row order of ``reps[subject]``.
    meta : dict
        tier, dry_run, weights, subjects, rois, models, eval_subject, n_pcs, n_folds,
        seed, image_size, nsd_root.
    """

    members: pd.DataFrame
    reps: dict
    brain: pd.DataFrame
    ceilings: pd.DataFrame
    vertex_r2: dict
    fsaverage_index: dict
    images: dict
    meta: dict

    @property
    def eval_reps(self):
        """Features on the images of ``meta["eval_subject"]`` (the LID / model-model stimulus set)."""
        return self.reps[self.meta["eval_subject"]]

    @property
    def dry_run(self):
        return bool(self.meta["dry_run"])

    def group(self, name="paper"):
        """Names of the members of one group (all members are in group "paper")."""
        return list(self.members.index[self.members["group"] == name])

    def summary(self):
        """One row per subject: images, members, ROIs, median score over models and ROIs."""
        rows = []
        for s in self.meta["subjects"]:
            sub = self.brain[self.brain["subject"] == s]
            first = next(iter(self.reps[s].values()))
            rows.append(dict(subject=s, n_images=first.shape[0], members=len(self.reps[s]),
                             rois=sub["roi"].nunique(), median_score=float(sub["score"].median()),
                             dry_run=self.dry_run))
        return pd.DataFrame(rows)


# --------------------------------------------------------------------------- models
def _arch_tag(name):
    import timm

    arch, tag = timm.models.split_model_name_tag(name)
    if not timm.is_model(arch):
        raise ValueError(f"unknown model {name!r}: not a timm architecture; the paper tier's models are "
                         "lidutils.models.PAPER_MODELS['name'].")
    return arch, tag


def paper_model(name, weights="pretrained", image_size=None, seed=0, device="cpu"):
    """One paper model: pretrained (downloaded by timm) or an untrained stand-in.

    Parameters
    ----------
    name : str
        A timm name, e.g. ``"convnext_tiny.fb_in1k"`` (:data:`lidutils.models.PAPER_MODELS`).
    weights : {"pretrained", "random"}
        ``"pretrained"``: :func:`lidutils.models.load_model` (needs the hub or its
        cache). ``"random"``: ``timm.create_model(arch, pretrained=False)`` under
        ``torch.manual_seed(seed)``; the published top-1 of the pretrained weights is
        kept as metadata (``info.top1``), the name becomes ``random:<name>[@<px>px]``.
    image_size : int, optional
        Random weights only: input side in pixels (ViT / ResMLP are built for it,
        ``img_size=``; ConvNets take any size). Default: the architecture's own.
    seed : int
        Torch seed of the random initialisation.
    device : str

    Returns
    -------
    (model, info) : as :func:`lidutils.models.load_model`, usable by :func:`lidutils.features.extract`.
    """
    import timm
    import torch


    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}.")
    if weights == "pretrained":
        if image_size is not None:
            raise ValueError("image_size is for weights='random' only: pretrained models use the input "
                             "size their weights were trained with.")
        return load_model(name, device=device)
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer))
                                   or image_size < 16):
        raise ValueError(f"image_size must be an integer >= 16 pixels, got {image_size!r}.")
    arch, _ = _arch_tag(name)
    top1, src = published_top1(name)
    kw = {"img_size": int(image_size)} if image_size else {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            model = timm.create_model(arch, pretrained=False, **kw)
        except TypeError:  # ConvNets: no img_size argument, any input size works
            torch.manual_seed(seed)
            model = timm.create_model(arch, pretrained=False)
    px = f"@{int(image_size)}px" if image_size else ""
    info = timm_info(model, f"random:{name}{px}", arch, None, False,
                      f"untrained stand-in: timm default init, torch seed {seed}", f"random-seed{seed}{px}",
                      top1, src)
    if image_size:
        info = dataclasses.replace(info, input_size=(3, int(image_size), int(image_size)), crop_pct=1.0)
    model = model.eval().to(resolve_device(device))
    model.lidutils_info = info
    return model, info


def hf_model_from_config(config, seed=0, image_size=None, mean=None, std=None):
    """A randomly initialised ``transformers`` vision backbone from its configuration, ready for extract.

    The offline counterpart of ``load_model("hf:<id>")``: the same wrapper
    (:class:`lidutils.models.HFBackbone`, timm's ``forward_features`` /
    ``forward_head`` API, pooled output as the penultimate layer), so
    :func:`lidutils.features.extract` runs the same code (pooled output, hooks on
    ``hf.<module>``, cache) as for a hub model.

    Parameters
    ----------
    config : transformers.PretrainedConfig
        E.g. ``ConvNextConfig(depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 32, 64])`` or
        ``ViTConfig(image_size=32, patch_size=8, ...)``.
    seed : int
        Torch seed of the initialisation.
    image_size : int, optional
        Input side; default ``config.image_size`` (224 when the config has none).
    mean, std : tuple, optional
        Normalisation; default ImageNet's.

    Returns
    -------
    (model, info)
    """
    import torch
    from transformers import AutoModel


    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        hf = AutoModel.from_config(config)
    px = int(image_size or getattr(config, "image_size", 224) or 224)
    model = HFBackbone(hf).eval()
    digest = json.dumps(config.to_dict(), sort_keys=True, default=str)
    info = ModelInfo(
        name=f"random:hf-config:{config.model_type}", architecture=config.model_type, pretrained=False,
        pretrained_tag=None, weights_source=f"untrained, built from {type(config).__name__}, seed {seed}",
        n_params=sum(p.numel() for p in model.parameters()), input_size=(3, px, px),
        mean=tuple(mean or IMAGENET_MEAN), std=tuple(std or IMAGENET_STD), interpolation="bicubic",
        crop_pct=1.0, weights_id=f"random-seed{seed}-{hash_key(digest)}", family="hf")
    model.lidutils_info = info
    return model, info


# --------------------------------------------------------------------------- encoding task
def encode_representation(X, Y, roi_labels, n_pcs=300, n_folds=5, device="cpu", seed=0):
    """Sweep task: held-out R² per vertex of one representation (:func:`encoding_alignment`).

    Module-level so :func:`lidutils.sweep.run_sweep` can cache it and ship it to Dask
    workers. Returns ``{"r2": (n_vertices,), "alpha": (n_folds, n_vertices), "n_pcs": int}``.
    """

    enc = encoding_alignment(X, Y, n_pcs=n_pcs, n_folds=n_folds, device=device, seed=seed,
                             roi_labels=roi_labels)
    return {"r2": enc.r2, "alpha": enc.alpha, "n_pcs": enc.n_pcs}


def _members_row(name, info, weights, is_dry):

    hit = PAPER_MODELS[PAPER_MODELS["name"] == name]
    family = hit["family"].iloc[0] if len(hit) else name.split("_")[0]
    kind = "published ImageNet-1k top-1 (timm)"
    if weights == "random":
        kind += " of the pretrained weights; metadata only: this member is an untrained stand-in"
    return dict(member=name, group="paper", family=family, architecture=info.architecture,
                pretrained=bool(info.pretrained), n_params=int(info.n_params), accuracy=float(info.top1),
                accuracy_kind=kind, top1_source=info.top1_source, input_size=int(info.input_size[-1]),
                weights=weights, dry_run=bool(is_dry))


def _ceiling_rows(s, nsd):
    rows = []
    for roi in nsd.roi_names:
        nc = nsd.noise_ceiling[roi] if nsd.noise_ceiling else None
        rows.append(dict(subject=s, roi=roi, n_voxels=int(nsd.fmri[roi].shape[1]),
                         noise_ceiling=float(np.nanmedian(nc)) if nc is not None else float("nan")))
    return rows


def build_paper_population(nsd_root=None, weights="pretrained", models=None, subjects=(1,), rois=PAPER_ROIS,
                           image_size=None, n_pcs=300, n_folds=5, eval_subject=None, device="auto",
                           cache_dir=None, bundle_dir=None, client=None, seed=0, progress=False):
    """Embed each subject's NSD images in the paper's models and score them on the subject's vertices.

    Parameters
    ----------
    nsd_root : str or Path, optional
        Algonauts-2023 layout folder (:func:`lidutils.nsd.load_algonauts2023`; default
        ``$LIDUTILS_NSD_DIR``). Not needed when ``bundle_dir`` holds a bundle.
    weights : {"pretrained", "random"}
        ``"random"`` is the dry run (untrained stand-ins, see the module docstring).
    models : sequence of str, optional
        timm names; default all of ``PAPER_MODELS`` (pretrained) or :data:`DRY_RUN_MODELS` (random).
    subjects : sequence of int
        NSD subjects (the paper: 1-8).
    rois : sequence of str
        ROIs scored (names of :func:`lidutils.nsd.load_algonauts2023`).
    image_size : int, optional
        Input side of random models; default :data:`DRY_RUN_IMAGE_SIZE` for ``weights="random"``.
    n_pcs, n_folds : int
        Encoding: PCs of the features (the paper: 300) and outer folds.
    eval_subject : int, optional
        Subject whose images are ``PaperRun.eval_reps`` (default the first).
    device : str
    cache_dir : path, optional
        Feature cache (``features/``) and encoding sweep cache (``paper_sweep/subjNN``);
        default :func:`lidutils.cache.default_cache_dir`.
    bundle_dir : path, optional
        Read the bundle there if it exists (nothing is recomputed; its models, subjects
        and settings are used, only ``weights`` must match), else write it after
        computing. See :func:`write_bundle`.
    client : optional
        Dask client / cluster / address for the encodings (:func:`lidutils.sweep.run_sweep`).
    seed : int
        Seed of the random weights and of the encoding folds.
    progress : bool

    Returns
    -------
    PaperRun
    """
    if bundle_dir is not None and (Path(bundle_dir) / "manifest.json").exists():
        run = read_bundle(bundle_dir)
        if run.meta["weights"] != weights:
            raise ValueError(f"bundle {bundle_dir} holds a run with weights={run.meta['weights']!r}, not "
                             f"{weights!r}; point bundle_dir at the matching bundle or another folder.")
        if models is not None and list(models) != run.meta["models"]:
            warnings.warn(f"bundle {bundle_dir} holds models {run.meta['models']}, not the {list(models)} asked "
                          "for: the bundle's are used (delete the bundle folder to recompute).", stacklevel=2)
        return run

    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}.")
    root = Path(nsd_root) if nsd_root is not None else default_nsd_root()
    if root is None or not root.is_dir():
        raise FileNotFoundError(
            f"the paper tier needs the NSD images and responses in the Algonauts-2023 layout: pass nsd_root "
            f"(got {nsd_root!r}) or set LIDUTILS_NSD_DIR (see docs/paper_tier.md). For a dry run, write a "
            "stand-in folder with lidutils.standins.make_nsd_layout(root).")
    subjects = [int(s) for s in subjects]
    if not subjects:
        raise ValueError("subjects is empty: give at least one NSD subject, e.g. subjects=(1,).")

    models = list(models) if models is not None else (
        list(DRY_RUN_MODELS) if weights == "random" else PAPER_MODELS["name"].tolist())
    if weights == "random" and image_size is None:
        image_size = DRY_RUN_IMAGE_SIZE
    is_dry = weights == "random" or (root / STANDIN_MARKER).exists()
    eval_subject = subjects[0] if eval_subject is None else int(eval_subject)
    if eval_subject not in subjects:
        raise ValueError(f"eval_subject={eval_subject} is not one of subjects={subjects}.")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()

    loaded = {s: load_algonauts2023(root, subject=s, rois=rois) for s in subjects}
    # NSD images shared by several subjects (same NSD id, same picture) are embedded once
    paths, rows_of = _unique_images(loaded)
    rows, reps = [], {s: {} for s in subjects}
    for name in models:
        model, info = paper_model(name, weights, image_size, seed=seed, device=device)
        X = extract((model, info), paths, device=device, cache_dir=cache / "features", progress=progress)
        for s in subjects:
            reps[s][name] = X[rows_of[s]]
        rows.append(_members_row(name, info, weights, is_dry))
        del model
    members = pd.DataFrame(rows).set_index("member")


    brain, ceilings, vertex_r2, fs_index = [], [], {}, {}
    for s, nsd in loaded.items():
        Y = np.concatenate([nsd.fmri[r] for r in nsd.roi_names], axis=1)
        labels = np.concatenate([np.full(nsd.fmri[r].shape[1], r) for r in nsd.roi_names])
        nc = (np.concatenate([nsd.noise_ceiling[r] for r in nsd.roi_names]) if nsd.noise_ceiling else None)
        res = run_sweep({name: {"X": reps[s][name]} for name in models}, encode_representation,
                        client=client, cache_dir=cache / "paper_sweep" / f"subj{s:02d}", progress=progress,
                        common=dict(Y=Y, roi_labels=labels, n_pcs=n_pcs, n_folds=n_folds, device=device,
                                    seed=seed))
        ceilings += _ceiling_rows(s, nsd)
        fs_index[s] = dict(nsd.fsaverage_index or {})
        vertex_r2[s] = {}
        for name in models:
            r2 = np.asarray(res[name]["r2"], dtype=np.float64)
            t = roi_summary(r2, labels, "median", nc)
            for _, row in t.iterrows():
                brain.append(dict(model=name, roi=row["roi"], subject=s, score=row["r2"], r2_mean=row["r2_mean"],
                                  r2_median=row["r2_median"], frac_positive=row["frac_positive"],
                                  n_voxels=int(row["n_voxels"]), noise_ceiling=row.get("noise_ceiling", np.nan),
                                  score_normalized=row.get("r2_normalized", np.nan), dry_run=is_dry))
            vertex_r2[s][name] = _per_vertex(r2, nsd)
    meta = dict(tier="paper-dryrun" if is_dry else "paper", dry_run=is_dry, weights=weights,
                subjects=subjects, rois=list(loaded[subjects[0]].roi_names), models=models,
                eval_subject=eval_subject, n_pcs=n_pcs, n_folds=n_folds, seed=seed, image_size=image_size,
                nsd_root=str(root))
    images = {s: [p.name for p in nsd.image_paths] for s, nsd in loaded.items()}
    run = PaperRun(members, reps, pd.DataFrame(brain), pd.DataFrame(ceilings), vertex_r2, fs_index, images, meta)
    if bundle_dir is not None:
        write_bundle(run, bundle_dir)
    return run


def dry_run(workdir, n_subjects=2, n_images=200, models=DRY_RUN_MODELS, rois=PAPER_ROIS, image_size=None,
            n_vertices=None, n_pcs=300, n_folds=5, device="auto", seed=0, progress=False):
    """The paper tier end to end on stand-ins: write the layout, run the models, write the bundle.

    Writes ``<workdir>/nsd`` (:func:`lidutils.standins.make_nsd_layout`, reused when it
    exists), caches under ``<workdir>/cache`` and the bundle ``<workdir>/bundle`` (read
    back when it exists). Everything returned is marked ``dry_run``.

    Parameters
    ----------
    workdir : path
    n_subjects, n_images : int
        Stand-in subjects and training images per subject.
    models : sequence of str
        Paper models built untrained (default :data:`DRY_RUN_MODELS`, every family).
    rois : sequence of str
    image_size : int, optional
        Model input side (default :data:`DRY_RUN_IMAGE_SIZE`).
    n_vertices : (int, int), optional
        Vertices per hemisphere (default NSD subject 1's 19 004 + 20 544).
    n_pcs, n_folds, device, seed, progress
        As :func:`build_paper_population` (``n_pcs`` is capped by the training images).

    Returns
    -------
    PaperRun
    """

    work = Path(workdir)
    root = work / "nsd"
    # chapters executed side by side wait here for the first one to write the stand-ins and bundle
    with computing(work):
        if not (root / STANDIN_MARKER).exists():
            make_nsd_layout(root, n_subjects=n_subjects, n_images=n_images, rois=rois, seed=seed,
                            n_vertices=n_vertices or SUBJECT1_VERTICES)
        return build_paper_population(root, weights="random", models=models, subjects=range(1, n_subjects + 1),
                                      rois=rois, image_size=image_size, n_pcs=n_pcs, n_folds=n_folds,
                                      device=device, cache_dir=work / "cache", bundle_dir=work / "bundle",
                                      seed=seed, progress=progress)


def _unique_images(loaded):
    """One path per distinct NSD id over all subjects, and each subject's rows into that list.

    Images whose name carries no NSD id (``nsd_ids == -1``) are kept per subject.
    """
    paths, index, rows_of = [], {}, {}
    for s, nsd in loaded.items():
        rows = []
        for p, nid in zip(nsd.image_paths, nsd.nsd_ids):
            key = int(nid) if nid >= 0 else (s, p.name)
            if key not in index:
                index[key] = len(paths)
                paths.append(p)
            rows.append(index[key])
        rows_of[s] = np.asarray(rows)
    return paths, rows_of


def _per_vertex(r2, nsd):
    """Scatter the ROI-ordered R² back to each hemisphere's challenge vertices (NaN elsewhere)."""
    n_h = {h: int(np.load(Path(nsd.root) / f"subj{nsd.subject:02d}" / "training_split" / "training_fmri"
                          / f"{h}_training_fmri.npy", mmap_mode="r").shape[1]) for h in nsd.hemis}
    out = {h: np.full(n, np.nan) for h, n in n_h.items()}
    pos = 0
    for roi in nsd.roi_names:
        for h in nsd.hemis:
            idx = nsd.vertices[roi][h]
            out[h][idx] = r2[pos:pos + len(idx)]
            pos += len(idx)
    return out


# --------------------------------------------------------------------------- bundles
def _fname(name):
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def write_bundle(run, bundle_dir):
    """Write a :class:`PaperRun` as a bundle folder (layout in the module docstring); return its path.

    Every file is written atomically; the manifest last, so a folder with a
    manifest is complete.
    """

    bundle = Path(bundle_dir)
    files = {name: _fname(name) for name in run.members.index}
    if len(set(files.values())) != len(files):
        raise ValueError(f"member names collide after making them file names: {files}.")
    for s, by_model in run.reps.items():
        d = bundle / "features" / f"subj{int(s):02d}"
        for name, X in by_model.items():
            with atomic_path(d / f"{files[name]}.npy") as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, np.asarray(X, dtype=np.float32))
        with atomic_path(d / "images.txt") as tmp:
            Path(tmp).write_text("".join(f"{n}\n" for n in run.images[s]))
    for s, by_model in run.vertex_r2.items():
        arrays = {f"{name}|{h}": v for name, hemis in by_model.items() for h, v in hemis.items()}
        arrays.update({f"fsaverage|{h}": v for h, v in run.fsaverage_index.get(s, {}).items()})
        save_npz(bundle / "vertex_r2" / f"subj{int(s):02d}.npz", **arrays)
    for fname, df, index in (("members.csv", run.members, True), ("brain.csv", run.brain, False),
                             ("ceilings.csv", run.ceilings, False)):
        with atomic_path(bundle / fname) as tmp:
            df.to_csv(tmp, index=index)
    dtypes = {k: {c: str(t) for c, t in df.dtypes.items()} for k, df in
              (("members", run.members), ("brain", run.brain), ("ceilings", run.ceilings))}
    save_json(bundle / "manifest.json", {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION,
                                         "lidutils": __version__, "files": files, "dtypes": dtypes,
                                         **run.meta})
    return bundle


def _read_frame(path, dtypes, index_col=None):
    """A CSV written by :func:`write_bundle`, with the column dtypes it had (strings stay strings)."""
    text = [c for c, t in dtypes.items() if t in ("object", "str", "string")]
    df = pd.read_csv(path, index_col=index_col, dtype={c: str for c in text}, keep_default_na=False,
                     na_values={c: ["", "nan", "NaN"] for c in dtypes if c not in text})
    if index_col is not None:
        df.index = df.index.astype(str)
    df[text] = df[text].fillna("")
    return df.astype({c: t for c, t in dtypes.items() if c not in text})


def read_bundle(bundle_dir, expect_dry_run=None):
    """Read a bundle written by :func:`write_bundle` back into a :class:`PaperRun`.

    Parameters
    ----------
    bundle_dir : path
    expect_dry_run : bool, optional
        Raise ``ValueError`` when the bundle's ``dry_run`` differs (keeps stand-in
        results out of a real analysis and vice versa).
    """
    bundle = Path(bundle_dir)
    man_path = bundle / "manifest.json"
    if not man_path.exists():
        raise FileNotFoundError(f"no bundle at {bundle}: {man_path} is missing (write one with "
                                "lidutils.book.paper_tier.write_bundle or build_paper_population(bundle_dir=...)).")
    meta = json.loads(man_path.read_text())
    if meta.get("format") != BUNDLE_FORMAT or meta.get("version") != BUNDLE_VERSION:
        raise ValueError(f"{man_path} is not a {BUNDLE_FORMAT} v{BUNDLE_VERSION} manifest "
                         f"(format={meta.get('format')!r}, version={meta.get('version')!r}).")
    if expect_dry_run is not None and bool(meta["dry_run"]) != bool(expect_dry_run):
        raise ValueError(f"bundle {bundle} has dry_run={meta['dry_run']} but dry_run={expect_dry_run} was "
                         "expected: stand-in and real results are never mixed.")
    files, dtypes = meta.pop("files"), meta.pop("dtypes")
    for key in ("format", "version", "lidutils"):
        meta.pop(key)
    members = _read_frame(bundle / "members.csv", dtypes["members"], "member")
    brain = _read_frame(bundle / "brain.csv", dtypes["brain"])
    ceilings = _read_frame(bundle / "ceilings.csv", dtypes["ceilings"])
    reps, vertex_r2, fs_index, images = {}, {}, {}, {}
    for s in meta["subjects"]:
        d = bundle / "features" / f"subj{s:02d}"
        reps[s] = {name: np.load(d / f"{files[name]}.npy") for name in meta["models"]}
        images[s] = (d / "images.txt").read_text().splitlines()
        with np.load(bundle / "vertex_r2" / f"subj{s:02d}.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        vertex_r2[s] = {name: {k.split("|")[1]: v for k, v in arrays.items() if k.split("|")[0] == name}
                        for name in meta["models"]}
        fs_index[s] = {k.split("|")[1]: v for k, v in arrays.items() if k.startswith("fsaverage|")}
    return PaperRun(members, reps, brain, ceilings, vertex_r2, fs_index, images, meta)


# --------------------------------------------------------------------------- maps
# to_fsaverage5 and vertexwise_corr are the utility's (lidutils.surface), re-exported here.


def lid_r2_map(run, lid, subject):
    """C7 as a map: per-vertex Pearson r across models between LID and held-out R², per hemisphere.

    Parameters
    ----------
    run : PaperRun
    lid : dict or Series {model: mean LID}
        One value per model (e.g. K = 1000 in the PCA-300 space on that subject's images);
        models of ``run`` without a value are left out.
    subject : int

    Returns
    -------
    dict {hemi: ndarray (n_challenge_vertices,)} for :func:`lidutils.book.plotting.surface_maps`
    with ``run.fsaverage_index[subject]``.
    """
    lid = dict(lid)
    models = [m for m in run.vertex_r2[subject] if m in lid]
    x = np.array([lid[m] for m in models], dtype=np.float64)
    hemis = run.vertex_r2[subject][models[0]] if models else {}
    return {h: vertexwise_corr(x, np.stack([run.vertex_r2[subject][m][h] for m in models])) for h in hemis}
