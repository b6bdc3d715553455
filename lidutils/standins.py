"""Stand-in data of the paper tier's shape: an NSD / Algonauts-2023 folder with a planted answer.

:func:`make_nsd_layout` writes a folder that :func:`lidutils.nsd.load_algonauts2023`
reads exactly like the real challenge release (same file names, dtypes, shapes
per subject, ROI mapping pickles, ``*_fsaverage_space`` masks over the
163 842-vertex fsaverage surface), at a reduced number of images, so the whole
paper-tier path (features -> LID -> voxelwise encoding -> surface maps) can run
before anybody downloads NSD. Everything it writes is a **stand-in**: results
computed on it are dry runs, never evidence about the brain.

Planted signal
--------------
Each image is rendered from a low-dimensional latent :math:`z_i \\in R^d`
(``n_latent``; standardised, :math:`z \\sim N(0, I)`), a deterministic function
of its NSD id, so the images shared by several subjects are identical files:

.. math:: \\mathrm{img}_i = 255\\,\\sigma\\Big(\\sum_{j=1}^{d} z_{ij} B_j\\Big)

with fixed smooth colour patterns :math:`B_j` (oriented gratings times Gaussian
blobs). Vertex :math:`v` of a ROI with signal fraction :math:`s_v` responds

.. math:: y_{iv} = \\sqrt{s_v}\\; z_i^\\top w_v + \\sqrt{1 - s_v}\\; \\varepsilon_{iv},
          \\qquad \\lVert w_v \\rVert = 1,\\ \\varepsilon \\sim N(0, 1),

so :math:`\\mathrm{var}(y_v) = 1` and the largest R² any predictor reaches is
:math:`s_v` - the planted noise ceiling, written next to the betas as
``{lh,rh}_noise_ceiling.npy`` (R² units; not part of the challenge release: with real
NSD, compute it from NSD's ``ncsnr``, :func:`lidutils.nsd.ncsnr_to_noise_ceiling`).
A representation that holds :math:`z` linearly reaches :math:`R^2_v \\approx s_v`;
the default :data:`DEFAULT_SIGNAL` grows along the visual hierarchy (V1 lowest,
category areas highest).

Vertices
--------
Challenge-space vertices are a sorted subset of fsaverage's 163 842 per hemisphere
(``{lh,rh}.all-vertices_fsaverage_space.npy`` marks them, as in the release).
fsaverage5's 10 242 vertices are the first 10 242 of fsaverage; the generator puts
the ROIs on fsaverage5 vertices around the occipital pole (V1 nearest, then V2, V3,
hV4, then the category areas), using nilearn's packaged fsaverage5 mesh, so maps
drawn on fsaverage5 show them where they belong; the remaining challenge vertices
(index >= 10 242, no coordinates offline) get labels at random in the same proportions.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

__all__ = ["make_nsd_layout", "render_latent_images", "ROI_MAPPINGS", "DEFAULT_SIGNAL",
           "N_FSAVERAGE", "N_FSAVERAGE5", "SUBJECT1_VERTICES"]

#: The challenge's ROI mapping files (label -> name), as shipped with the release.
ROI_MAPPINGS = {
    "prf-visualrois": {0: "Unknown", 1: "V1v", 2: "V1d", 3: "V2v", 4: "V2d", 5: "V3v", 6: "V3d", 7: "hV4"},
    "floc-bodies": {0: "Unknown", 1: "EBA", 2: "FBA-1", 3: "FBA-2", 4: "mTL-bodies"},
    "floc-faces": {0: "Unknown", 1: "OFA", 2: "FFA-1", 3: "FFA-2", 4: "mTL-faces", 5: "aTL-faces"},
    "floc-places": {0: "Unknown", 1: "OPA", 2: "PPA", 3: "RSC"},
    "floc-words": {0: "Unknown", 1: "OWFA", 2: "VWFA-1", 3: "VWFA-2", 4: "mfs-words", 5: "mTL-words"},
    "streams": {0: "Unknown", 1: "early", 2: "midventral", 3: "midlateral", 4: "midparietal",
                5: "ventral", 6: "lateral", 7: "parietal"},
}

#: Planted signal fraction (= noise ceiling, R² units) per ROI; other vertices get ``"other"``.
DEFAULT_SIGNAL = {"V1": 0.10, "V2": 0.15, "V3": 0.20, "hV4": 0.25, "OFA": 0.30, "EBA": 0.35,
                  "OPA": 0.30, "PPA": 0.35, "FBA": 0.40, "FFA": 0.45, "other": 0.02}

#: Vertices per hemisphere of fsaverage and fsaverage5.
N_FSAVERAGE, N_FSAVERAGE5 = 163842, 10242
#: Challenge-space vertices of NSD subject 1 (lh, rh), the real per-subject shape.
SUBJECT1_VERTICES = (19004, 20544)

# ROI name (or group) -> (class, parts, stream)
_ROI_SPEC = {
    "V1": ("prf-visualrois", ("V1v", "V1d"), "early"), "V2": ("prf-visualrois", ("V2v", "V2d"), "early"),
    "V3": ("prf-visualrois", ("V3v", "V3d"), "early"), "hV4": ("prf-visualrois", ("hV4",), "midventral"),
    "EBA": ("floc-bodies", ("EBA",), "lateral"), "FBA": ("floc-bodies", ("FBA-1", "FBA-2"), "ventral"),
    "OFA": ("floc-faces", ("OFA",), "lateral"), "FFA": ("floc-faces", ("FFA-1", "FFA-2"), "ventral"),
    "OPA": ("floc-places", ("OPA",), "parietal"), "PPA": ("floc-places", ("PPA",), "ventral"),
    "RSC": ("floc-places", ("RSC",), "midparietal"), "VWFA": ("floc-words", ("VWFA-1", "VWFA-2"), "ventral"),
}
_SHARED_FRACTION = 0.5  # share of each subject's images seen by every subject (NSD: ~1000 shared)


def render_latent_images(Z, size=425, seed=0):
    """Render uint8 RGB images from latents: ``255 * sigmoid(sum_j Z[:, j] * B_j)``.

    Parameters
    ----------
    Z : ndarray (n_images, d)
        Latents (one row per image).
    size : int
        Image side in pixels (the challenge images are 425).
    seed : int
        Seed of the fixed patterns ``B_j`` (same seed, same patterns).

    Returns
    -------
    ndarray (n_images, size, size, 3) uint8
    """
    Z = np.asarray(Z, dtype=np.float32)
    if Z.ndim != 2:
        raise ValueError(f"Z must be 2-D (n_images, n_latent), got shape {Z.shape}.")
    if not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size must be an integer >= 8 pixels, got {size!r}.")
    rng = np.random.default_rng([seed, 7])
    u = np.linspace(-1, 1, size, dtype=np.float32)
    yy, xx = np.meshgrid(u, u, indexing="ij")
    B = np.empty((Z.shape[1], size, size, 3), np.float32)
    for j in range(Z.shape[1]):
        theta, freq, phase = rng.uniform(0, np.pi), rng.uniform(1.5, 6), rng.uniform(0, 2 * np.pi)
        cx, cy, width = rng.uniform(-0.6, 0.6, 2).tolist() + [rng.uniform(0.3, 0.8)]
        wave = np.cos(np.pi * freq * (xx * np.cos(theta) + yy * np.sin(theta)) + phase)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * width ** 2))
        B[j] = (wave * blob)[..., None] * rng.uniform(-1, 1, 3).astype(np.float32)
    out = np.empty((Z.shape[0], size, size, 3), np.uint8)
    for i in range(Z.shape[0]):  # one image at a time: (size, size, 3) memory, not (n, ...)
        act = np.tensordot(Z[i], B, axes=1)
        out[i] = np.round(255 / (1 + np.exp(-act))).astype(np.uint8)
    return out


def _latents(nsd_ids, n_latent, seed):
    """Latent of each NSD id: a pure function of (seed, id), so shared images are identical."""
    return np.stack([np.random.default_rng([seed, 11, int(i)]).standard_normal(n_latent) for i in nsd_ids])


def _pole_order(hemi, n):
    """The ``n`` fsaverage5 vertices nearest the occipital pole, nearest first (nilearn's mesh)."""
    try:
        from nilearn import datasets, surface
    except ImportError as exc:  # pragma: no cover - nilearn is a test/paper dependency
        raise ImportError("make_nsd_layout places ROIs on nilearn's packaged fsaverage5 mesh: "
                          "pip install nilearn") from exc
    fs = datasets.fetch_surf_fsaverage("fsaverage5")
    coords = np.asarray(surface.load_surf_mesh(fs[f"sphere_{'left' if hemi == 'lh' else 'right'}"])[0],
                        dtype=np.float64)
    coords /= np.linalg.norm(coords, axis=1, keepdims=True)
    pole = coords[np.argmin(coords[:, 1])]  # most posterior point of the sphere
    return np.argsort(-(coords @ pole), kind="stable")[:n]


def _hemisphere_labels(hemi, n_vertices, rois, roi_fraction, rng):
    """Challenge vertices (fsaverage indices) and the ROI name of each (None = no ROI)."""
    n_roi = int(round(roi_fraction * n_vertices))
    n5 = min(n_roi, N_FSAVERAGE5 // 4, n_vertices)
    near = _pole_order(hemi, n5)                        # fsaverage5 vertices, pole outwards
    far = rng.choice(np.arange(N_FSAVERAGE5, N_FSAVERAGE), n_vertices - n5, replace=False)
    # bands of equal size around the pole, in ROI order
    band = np.array_split(np.arange(n5), len(rois))
    roi_of = {}
    for r, b in zip(rois, band):
        roi_of.update({int(near[i]): r for i in b})
    far_roi = rng.integers(0, len(rois), max(n_roi - n5, 0))
    for v, r in zip(far[: len(far_roi)], far_roi):
        roi_of[int(v)] = rois[r]
    verts = np.sort(np.concatenate([near, far]))
    return verts, [roi_of.get(int(v)) for v in verts]


def make_nsd_layout(root, n_subjects=2, n_images=200, rois=("V1", "V2", "V3", "hV4", "EBA", "FBA", "OFA",
                                                               "FFA", "OPA", "PPA"),
                    seed=0, signal=None, n_vertices=SUBJECT1_VERTICES, image_size=425, n_latent=8,
                    roi_fraction=0.5):
    """Write an Algonauts-2023 / NSD-layout folder of stand-in data with a planted signal.

    See the module docstring for the generative model. The folder is read by
    :func:`lidutils.nsd.load_algonauts2023` (``root`` = the returned ``root``).

    Parameters
    ----------
    root : str or Path
        Folder to create (``subj01`` ... inside); must not hold subject folders yet.
    n_subjects : int
        Subjects ``subj01`` ... (NSD: 8).
    n_images : int
        Training images per subject (NSD: ~9 000-10 000); half are shared by all
        subjects (same NSD ids, identical files), half are the subject's own.
    rois : sequence of str
        ROIs to place, from ``V1 V2 V3 hV4 EBA FBA OFA FFA OPA PPA RSC VWFA`` (grouped
        names are written as their parts, e.g. ``V1`` -> ``V1v`` + ``V1d``).
    seed : int
        Seed of everything (latents, images, vertex choice, weights, noise).
    signal : dict, optional
        ROI -> signal fraction ``s`` in [0, 1] (the planted noise ceiling);
        ``"other"`` for vertices outside the ROIs. Default :data:`DEFAULT_SIGNAL`.
    n_vertices : (int, int)
        Challenge-space vertices of (lh, rh); default subject 1's real shape.
    image_size : int
        Side of the PNG images (the release: 425).
    n_latent : int
        Dimension ``d`` of the planted image latent.
    roi_fraction : float
        Share of the vertices inside the ROIs.

    Returns
    -------
    Bunch with ``root``, ``subjects`` (list of int), ``rois``, ``signal`` (dict used),
    and per subject (dicts keyed by subject): ``nsd_ids`` (file-name order),
    ``latents`` (n_images, d) in the same row order, ``vertex_signal`` ({hemi: s per
    challenge vertex}), ``fsaverage_index`` ({hemi: fsaverage vertex of each
    challenge vertex}), ``roi_of_vertex`` ({hemi: ROI name or "" per vertex}).
    """
    from PIL import Image

    root = Path(root)
    sig = dict(DEFAULT_SIGNAL if signal is None else signal)
    rois = list(dict.fromkeys([rois] if isinstance(rois, str) else rois))
    unknown = [r for r in rois if r not in _ROI_SPEC]
    if unknown or not rois:
        raise ValueError(f"unknown ROI(s) {unknown or rois} for the stand-in layout; choose from {sorted(_ROI_SPEC)}.")
    missing = [r for r in rois + ["other"] if r not in sig]
    if missing:
        raise ValueError(f"signal has no fraction for {missing}; give one per ROI and 'other'.")
    if any(not 0 <= float(v) <= 1 for v in sig.values()):
        raise ValueError(f"signal fractions must lie in [0, 1], got {sig}.")
    for name, val, lo in (("n_subjects", n_subjects, 1), ("n_images", n_images, 4), ("n_latent", n_latent, 1)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {val!r}.")
    n_vertices = tuple(int(v) for v in n_vertices)
    if len(n_vertices) != 2 or min(n_vertices) < 2 * len(rois) or max(n_vertices) > N_FSAVERAGE:
        raise ValueError(f"n_vertices must be (lh, rh) counts between {2 * len(rois)} and {N_FSAVERAGE}, "
                         f"got {n_vertices}.")
    if not 0 < roi_fraction <= 1:
        raise ValueError(f"roi_fraction must lie in (0, 1], got {roi_fraction!r}.")
    if any((root / f"subj{s:02d}").exists() for s in range(1, n_subjects + 1)):
        raise ValueError(f"{root} already holds subject folders; give an empty or new folder.")

    rng = np.random.default_rng(seed)
    n_shared = int(round(_SHARED_FRACTION * n_images))
    ids = rng.choice(73000, n_shared + n_subjects * (n_images - n_shared), replace=False)
    out = Bunch(root=root, subjects=list(range(1, n_subjects + 1)), rois=rois, signal=sig, nsd_ids={},
                latents={}, vertex_signal={}, fsaverage_index={}, roi_of_vertex={})
    for s in out.subjects:
        own = ids[n_shared + (s - 1) * (n_images - n_shared): n_shared + s * (n_images - n_shared)]
        nsd = np.concatenate([ids[:n_shared], own])
        nsd = nsd[rng.permutation(n_images)]               # train-NNNN order is the row order
        Z = _latents(nsd, n_latent, seed)
        sdir = root / f"subj{s:02d}"
        img_dir, fm, rm = (sdir / "training_split" / "training_images", sdir / "training_split" / "training_fmri",
                           sdir / "roi_masks")
        for d in (img_dir, fm, rm):
            d.mkdir(parents=True, exist_ok=True)
        for i, (nid, img) in enumerate(zip(nsd, render_latent_images(Z, image_size, seed))):
            Image.fromarray(img).save(img_dir / f"train-{i + 1:04d}_nsd-{nid:05d}.png")
        Zs = (Z - Z.mean(0)) / Z.std(0)
        out.nsd_ids[s], out.latents[s] = nsd, Z
        for key in ("vertex_signal", "fsaverage_index", "roi_of_vertex"):
            out[key][s] = {}
        for h, nv in zip(("lh", "rh"), n_vertices):
            verts, roi_names = _hemisphere_labels(h, nv, rois, roi_fraction, rng)
            s_v = np.array([sig[r] if r else sig["other"] for r in roi_names])
            W = rng.standard_normal((n_latent, nv))
            W /= np.linalg.norm(W, axis=0)
            Y = np.sqrt(s_v) * (Zs @ W) + np.sqrt(1 - s_v) * rng.standard_normal((n_images, nv))
            np.save(fm / f"{h}_training_fmri.npy", Y.astype(np.float32))
            np.save(fm / f"{h}_noise_ceiling.npy", s_v.astype(np.float32))
            mask = np.zeros(N_FSAVERAGE, bool)
            mask[verts] = True
            np.save(rm / f"{h}.all-vertices_fsaverage_space.npy", mask)
            for cls, mp in ROI_MAPPINGS.items():
                code = {nm: lab for lab, nm in mp.items()}
                lab = np.zeros(nv, np.int32)
                for j, r in enumerate(roi_names):
                    if r is None:
                        continue
                    rcls, parts, stream = _ROI_SPEC[r]
                    if cls == rcls:
                        lab[j] = code[parts[j % len(parts)]]
                    elif cls == "streams":
                        lab[j] = code[stream]
                np.save(rm / f"{h}.{cls}_challenge_space.npy", lab)
                full = np.zeros(N_FSAVERAGE, np.int32)  # the same labels over all of fsaverage
                full[verts] = lab
                np.save(rm / f"{h}.{cls}_fsaverage_space.npy", full)
            out.vertex_signal[s][h] = s_v
            out.fsaverage_index[s][h] = verts
            out.roi_of_vertex[s][h] = np.array([r or "" for r in roi_names], dtype=object)
        for cls, mp in ROI_MAPPINGS.items():
            np.save(rm / f"mapping_{cls}.npy", mp)
    # marks the folder as stand-in data: lidutils.book.paper_tier flags every run on it as a dry run
    (root / "STANDIN.json").write_text(json.dumps(
        {"generator": "lidutils.standins.make_nsd_layout", "stand_in": True, "seed": seed,
         "n_subjects": n_subjects, "n_images": n_images, "n_vertices": list(n_vertices), "rois": rois,
         "signal": sig, "n_latent": n_latent, "image_size": image_size}, indent=2))
    return out
