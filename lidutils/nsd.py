"""Voxel/vertex-level fMRI loaders for the paper tier (Natural Scenes Dataset).

Two entry points, both returning a :class:`sklearn.utils.Bunch` whose ``fmri``
field maps ROI name -> ``(n_images, n_voxels)`` float32 array:

- :func:`load_algonauts2023`: the openly downloadable NSD subset in the
  **Algonauts 2023 challenge layout** (Gifford et al. 2023, arXiv:2301.03198;
  data from Allen et al. 2022, Nat Neurosci 25:116-126). Expected layout
  (exactly the folder the challenge zip unpacks to)::

      <root>/                               # e.g. algonauts_2023_challenge_data/
        subj01/ ... subj08/
          training_split/
            training_images/                # train-0001_nsd-00013.png, ... (425x425 RGB)
            training_fmri/
              lh_training_fmri.npy          # (n_images, n_lh_vertices) float32
              rh_training_fmri.npy          # (n_images, n_rh_vertices) float32
          roi_masks/
            lh.prf-visualrois_challenge_space.npy   # (n_lh_vertices,) integer label per vertex
            lh.floc-bodies_challenge_space.npy      # ... floc-faces, floc-places,
            ...                                     #     floc-words, streams; same for rh.
            mapping_prf-visualrois.npy              # dict {label: ROI name}, np.save'd
            mapping_floc-bodies.npy                 #   (load with allow_pickle=True)
            ...
            lh.all-vertices_fsaverage_space.npy     # (163842,) bool: challenge vertices on fsaverage

  Row ``i`` of both fMRI arrays is the response to the ``i``-th image in
  lexicographic file-name order (the names are zero-padded, so this is also the
  ``train-NNNN`` order). Responses are betas z-scored within NSD session and
  averaged over the (up to 3) repeats of each image. Label 0 in every mask is
  "Unknown" (vertex outside the ROI class). Standard mappings:

  ============== ==========================================================
  ROI class      labels 1..n
  ============== ==========================================================
  prf-visualrois V1v, V1d, V2v, V2d, V3v, V3d, hV4
  floc-bodies    EBA, FBA-1, FBA-2, mTL-bodies
  floc-faces     OFA, FFA-1, FFA-2, mTL-faces, aTL-faces
  floc-places    OPA, PPA, RSC
  floc-words     OWFA, VWFA-1, VWFA-2, mfs-words, mTL-words
  streams        early, midventral, midlateral, midparietal, ventral, lateral, parietal
  ============== ==========================================================

  The mapping files are read, not assumed, so a re-labelled copy also works.
  The grouped names of :data:`ROI_GROUPS` (``"V1"`` = V1v + V1d, ``"FBA"`` =
  FBA-1 + FBA-2, ...) and ``"all"`` (every vertex) are accepted too.

- :func:`load_nsd_betas`: your own NSD betas already cut to the images you use,
  as an ``.npy``/``.npz`` (or ``.h5``/``.hdf5`` with ``h5py`` installed) array
  of shape ``(n_images, n_voxels)`` - or ``(n_repeats, n_images, n_voxels)``
  for single-trial betas, which keeps the repeats for
  :func:`lidutils.encoding.split_half_noise_ceiling` - plus ROI masks over the
  voxel axis. NSD's volumetric ``betas_sessionNN.hdf5`` must first be cut to
  your images and flattened (``betas.reshape(len(betas), -1)`` and
  ``mask.ravel()`` with the same memory order).

Mapping files are pickles (that is how the challenge ships them): load only
files you trust.
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

ROI_CLASSES = ("prf-visualrois", "floc-bodies", "floc-faces", "floc-places", "floc-words", "streams")

#: Grouped ROI names accepted by :func:`load_algonauts2023` (union of the parts).
ROI_GROUPS = {
    "V1": ("V1v", "V1d"),
    "V2": ("V2v", "V2d"),
    "V3": ("V3v", "V3d"),
    "FBA": ("FBA-1", "FBA-2"),
    "FFA": ("FFA-1", "FFA-2"),
    "VWFA": ("VWFA-1", "VWFA-2"),
}

#: Default ROIs: the visual hierarchy from V1 to the body/face/place areas.
DEFAULT_ROIS = ("V1", "V2", "V3", "hV4", "OFA", "FFA", "EBA", "FBA", "OPA", "PPA")

HEMIS = ("lh", "rh")

_LAYOUT = (
    "expected layout: <root>/subjNN/training_split/training_images/*.png, "
    "<root>/subjNN/training_split/training_fmri/{lh,rh}_training_fmri.npy (images x vertices), "
    "<root>/subjNN/roi_masks/{lh,rh}.<class>_challenge_space.npy and "
    "<root>/subjNN/roi_masks/mapping_<class>.npy, <class> in " + ", ".join(ROI_CLASSES)
    + " (see the lidutils.nsd docstring or docs/paper_tier.md)"
)
_IMAGE_NAME = re.compile(r"^train-(\d+)_nsd-(\d+)\.png$")


def default_nsd_root():
    """``$LIDUTILS_NSD_DIR``, else ``$LIDUTILS_DATA_DIR/algonauts_2023_challenge_data``, else None."""
    if os.environ.get("LIDUTILS_NSD_DIR"):
        return Path(os.environ["LIDUTILS_NSD_DIR"])
    if os.environ.get("LIDUTILS_DATA_DIR"):
        return Path(os.environ["LIDUTILS_DATA_DIR"]) / "algonauts_2023_challenge_data"
    return None


def _require(path, what):
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}; {_LAYOUT}.")
    return path


def _load_array(path, what):
    path = _require(path, what)
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # truncated file, wrong format, pickled object array...
        raise ValueError(f"could not read {what} {path} as a numeric .npy array ({exc}); {_LAYOUT}.") from exc


def _load_mapping(path):
    path = _require(path, "ROI mapping file")
    try:
        obj = np.load(path, allow_pickle=True)
        mapping = obj.item() if isinstance(obj, np.ndarray) and obj.dtype == object and obj.ndim == 0 else obj
    except Exception as exc:
        raise ValueError(f"could not read ROI mapping {path} ({exc}); {_LAYOUT}.") from exc
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise ValueError(
            f"ROI mapping {path} must hold a dict {{integer label: ROI name}} saved with "
            f"np.save(path, mapping) (allow_pickle), got {type(mapping).__name__}; {_LAYOUT}."
        )
    try:
        return {int(k): v for k, v in mapping.items()}
    except (TypeError, ValueError) as exc:
        raise ValueError(f"ROI mapping {path} has non-integer labels ({exc}).") from exc


def _check_labels(labels, path, n_vertices):
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iuf" or labels.shape[0] != n_vertices:
        raise ValueError(
            f"ROI mask {path} must be a 1-D integer label per vertex of length {n_vertices} "
            f"(the number of columns of the matching training_fmri array), got dtype "
            f"{labels.dtype} and shape {labels.shape}; {_LAYOUT}."
        )
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
            raise ValueError(f"ROI mask {path} holds non-integer labels; {_LAYOUT}.")
        labels = labels.astype(np.int64)
    return labels


def load_algonauts2023(root=None, subject=1, rois=DEFAULT_ROIS, hemis=HEMIS, dtype=np.float32):
    """Load one subject of the NSD subset in the Algonauts 2023 challenge layout.

    Parameters
    ----------
    root : str or Path, optional
        Folder holding ``subj01`` ... ``subj08`` (see the module docstring for the
        exact layout). Default: :func:`default_nsd_root` (``$LIDUTILS_NSD_DIR`` or
        ``$LIDUTILS_DATA_DIR/algonauts_2023_challenge_data``).
    subject : int
        Subject number 1-8 (folder ``subjNN``).
    rois : sequence of str or "all"
        ROI names from the mapping files (``"V1v"``, ``"EBA"``, ``"FFA-1"``,
        ``"early"``...), grouped names of :data:`ROI_GROUPS` (``"V1"``, ``"FBA"``...),
        or ``"all"`` for every vertex. Vertices of all ``hemis`` are concatenated
        (lh first). A ROI with no vertex in this subject is left out with a warning.
    hemis : sequence of {"lh", "rh"}
        Hemispheres to use.
    dtype : numpy dtype
        Output dtype of the responses (float32 default: an NSD subject is ~1.6 GB).

    Returns
    -------
    Bunch with
        ``fmri`` : dict ROI name -> ndarray (n_images, n_vertices_in_roi);
        ``roi_names`` : list of the ROIs returned, in request order;
        ``vertices`` : dict ROI name -> {hemi: int index array into that hemisphere's columns};
        ``image_paths`` : list of Path, row order of ``fmri``;
        ``nsd_ids`` : int array, NSD 0-based image id parsed from ``train-NNNN_nsd-NNNNN.png``
        (-1 where the name does not follow that pattern);
        ``subject``, ``hemis``, ``root``;
        ``noise_ceiling`` : dict ROI name -> per-vertex noise ceiling (R² units, same
        column order as ``fmri``) when ``training_fmri/{lh,rh}_noise_ceiling.npy`` exist
        (not part of the release: see :func:`ncsnr_to_noise_ceiling`), else None;
        ``fsaverage_index`` : {hemi: fsaverage vertex of each challenge-space vertex}
        from ``roi_masks/<hemi>.all-vertices_fsaverage_space.npy`` when present, else
        None (``vertices[roi][hemi]`` indexes into it; fsaverage indices < 10 242 are
        the fsaverage5 vertices).

    Raises
    ------
    FileNotFoundError
        A folder or file of the layout is missing (the message names the path).
    ValueError
        A file is malformed (wrong shape, wrong row count, not a label mask, mapping
        not a dict) or a ROI name is unknown (the message lists the valid names).
    """
    if root is None:
        root = default_nsd_root()
        if root is None:
            raise FileNotFoundError(
                "no NSD folder given: pass root=... or set LIDUTILS_NSD_DIR to the unpacked "
                f"Algonauts 2023 challenge data; {_LAYOUT}."
            )
    root = Path(root)
    if isinstance(subject, bool) or not isinstance(subject, (int, np.integer)) or subject < 1:
        raise ValueError(f"subject must be a positive integer (1-8 for NSD), got {subject!r}.")
    hemis = tuple(hemis)
    if not hemis or any(h not in HEMIS for h in hemis) or len(set(hemis)) != len(hemis):
        raise ValueError(f"hemis must be a non-empty subset of {HEMIS}, got {hemis!r}.")
    sdir = _require(root / f"subj{int(subject):02d}", f"subject folder for subject {subject}")
    img_dir = _require(sdir / "training_split" / "training_images", "training image folder")
    image_paths = sorted(img_dir.glob("*.png"), key=lambda p: p.name)
    if not image_paths:
        raise FileNotFoundError(f"no .png images in {img_dir}; {_LAYOUT}.")
    nsd_ids = np.array([int(m.group(2)) if (m := _IMAGE_NAME.match(p.name)) else -1
                        for p in image_paths], dtype=np.int64)

    fmri_h = {}
    for h in hemis:
        path = sdir / "training_split" / "training_fmri" / f"{h}_training_fmri.npy"
        arr = _load_array(path, f"{h} training fMRI")
        if arr.ndim != 2 or arr.dtype.kind not in "fiu":
            raise ValueError(f"{path} must be a 2-D numeric (images x vertices) array, got "
                             f"dtype {arr.dtype} shape {arr.shape}; {_LAYOUT}.")
        if arr.shape[0] != len(image_paths):
            raise ValueError(
                f"{path} has {arr.shape[0]} rows but {img_dir} holds {len(image_paths)} .png "
                "images: rows must be the images in file-name order (one row per image)."
            )
        fmri_h[h] = arr

    if isinstance(rois, str):
        rois = (rois,)
    rois = list(dict.fromkeys(rois))
    if not rois:
        raise ValueError("rois is empty: name at least one ROI, e.g. rois=('V1', 'FFA').")

    # ROI name -> (class, label), read from the mapping files that are needed.
    mappings, name_to_class = {}, {}

    def lookup(name):
        if name in name_to_class:
            return name_to_class[name]
        for cls in ROI_CLASSES:
            if cls not in mappings:
                mappings[cls] = _load_mapping(sdir / "roi_masks" / f"mapping_{cls}.npy")
                for lab, nm in mappings[cls].items():
                    if lab != 0:
                        name_to_class.setdefault(nm, (cls, lab))
            if name in name_to_class:
                return name_to_class[name]
        known = sorted(name_to_class) + sorted(ROI_GROUPS) + ["all"]
        raise ValueError(f"unknown ROI {name!r} for subject {subject}; valid names: {known}.")

    label_cache = {}

    def labels(h, cls):
        if (h, cls) not in label_cache:
            path = sdir / "roi_masks" / f"{h}.{cls}_challenge_space.npy"
            label_cache[h, cls] = _check_labels(_load_array(path, f"{h} {cls} ROI mask"), path,
                                                fmri_h[h].shape[1])
        return label_cache[h, cls]

    fmri, vertices, empty, ceilings = {}, {}, [], {}
    nc_h = {}  # optional per-vertex noise ceiling next to the betas (not in the challenge release)
    for h in hemis:
        path = sdir / "training_split" / "training_fmri" / f"{h}_noise_ceiling.npy"
        if path.exists():
            nc = _load_array(path, f"{h} noise ceiling")
            if nc.shape != (fmri_h[h].shape[1],):
                raise ValueError(f"{path} must hold one noise ceiling (R² units) per vertex, shape "
                                 f"({fmri_h[h].shape[1]},), got {nc.shape}.")
            nc_h[h] = nc
    fs_index = {}
    for h in hemis:
        path = sdir / "roi_masks" / f"{h}.all-vertices_fsaverage_space.npy"
        if path.exists():
            fs_index[h] = _fsaverage_index(path, fmri_h[h].shape[1])
    for roi in rois:
        parts = ROI_GROUPS.get(roi, (roi,))
        idx = {}
        for h in hemis:
            if roi == "all":
                idx[h] = np.arange(fmri_h[h].shape[1])
                continue
            sel = np.zeros(fmri_h[h].shape[1], dtype=bool)
            for part in parts:
                cls, lab = lookup(part)
                sel |= labels(h, cls) == lab
            idx[h] = np.flatnonzero(sel)
        if sum(len(i) for i in idx.values()) == 0:
            empty.append(roi)
            continue
        vertices[roi] = idx
        fmri[roi] = np.concatenate([np.asarray(fmri_h[h][:, idx[h]], dtype=dtype) for h in hemis], axis=1)
        if len(nc_h) == len(hemis):
            ceilings[roi] = np.concatenate([np.asarray(nc_h[h][idx[h]], dtype=np.float64) for h in hemis])
    if empty:
        warnings.warn(f"ROI(s) {empty} have no vertex in subject {subject} ({'+'.join(hemis)}); "
                      "left out of the result.", stacklevel=2)
    if not fmri:
        raise ValueError(f"none of the ROIs {rois} has a vertex in subject {subject}.")
    return Bunch(fmri=fmri, roi_names=list(fmri), vertices=vertices, image_paths=image_paths,
                 nsd_ids=nsd_ids, subject=int(subject), hemis=list(hemis), root=root,
                 noise_ceiling=ceilings or None, fsaverage_index=fs_index or None)


def _fsaverage_index(path, n_vertices):
    """fsaverage vertex of each challenge-space vertex, from ``<hemi>.all-vertices_fsaverage_space.npy``."""
    mask = np.asarray(_load_array(path, "fsaverage vertex mask"))
    if mask.ndim != 1 or mask.dtype.kind not in "biuf":
        raise ValueError(f"{path} must be a 1-D mask over the fsaverage vertices, got dtype {mask.dtype} "
                         f"shape {mask.shape}; {_LAYOUT}.")
    idx = np.flatnonzero(mask)
    if idx.size != n_vertices:
        raise ValueError(f"{path} marks {idx.size} fsaverage vertices but the training fMRI has "
                         f"{n_vertices} columns: the mask must mark exactly the challenge-space vertices.")
    return idx


def ncsnr_to_noise_ceiling(ncsnr, n_repeats=3):
    """NSD noise ceiling in R² units from the noise-ceiling SNR (Allen et al. 2022, Methods).

    .. math:: NC = \\frac{\\mathrm{ncsnr}^2}{\\mathrm{ncsnr}^2 + 1/n}

    is the share of the variance of responses averaged over ``n`` repeats that is
    signal, i.e. the largest R² a model can reach on those averages (NSD reports it
    in percent: ``100 * NC``). Save it per challenge vertex as
    ``training_split/training_fmri/{lh,rh}_noise_ceiling.npy`` to have
    :func:`load_algonauts2023` return it (``noise_ceiling``).

    Parameters
    ----------
    ncsnr : array-like
        NSD's ``ncsnr`` per vertex (>= 0).
    n_repeats : int or array-like
        Repeats averaged per image (3 for most NSD images).
    """
    ncsnr = np.asarray(ncsnr, dtype=np.float64)
    if np.any(ncsnr < 0) or not np.all(np.isfinite(ncsnr)):
        raise ValueError("ncsnr must be finite and >= 0 (NSD's noise-ceiling SNR, one value per vertex).")
    n = np.asarray(n_repeats, dtype=np.float64)
    if np.any(n < 1):
        raise ValueError(f"n_repeats must be >= 1, got {n_repeats!r}.")
    return ncsnr ** 2 / (ncsnr ** 2 + 1.0 / n)


def _read_betas(path, key):
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"betas file not found: {path}; expected an .npy/.npz/.h5 array of shape "
            "(n_images, n_voxels) or (n_repeats, n_images, n_voxels)."
        )
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, mmap_mode="r", allow_pickle=False)
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if key is None:
                if len(z.files) == 1:
                    key = z.files[0]
                elif "betas" in z.files:
                    key = "betas"
                else:
                    raise ValueError(f"{path} holds arrays {z.files}; pass key=... to choose the betas.")
            if key not in z.files:
                raise ValueError(f"{path} has no array {key!r}; it holds {z.files}.")
            return z[key]
    if suffix in (".h5", ".hdf5"):
        try:
            import h5py
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(f"reading {path} needs h5py: pip install h5py "
                              "(or save the betas as .npy).") from exc
        with h5py.File(path, "r") as f:
            key = key or ("betas" if "betas" in f else None)
            if key is None or key not in f:
                raise ValueError(f"{path}: pass key=... naming the betas dataset; it holds {list(f)}.")
            return f[key][()]
    raise ValueError(f"unsupported betas file {path}: use .npy, .npz or .h5/.hdf5.")


def _read_masks(masks, n_vox, mapping):
    """Return dict name -> int index array over the voxel axis."""
    source = "masks"
    if masks is None:
        return {"all": np.arange(n_vox)}
    if isinstance(masks, (str, Path)):
        source = Path(masks)
        if not source.exists():
            raise FileNotFoundError(f"mask file not found: {source}; expected an .npz of named boolean "
                                    "masks or an .npy integer label per voxel (0 = none).")
        if source.suffix.lower() == ".npz":
            with np.load(source, allow_pickle=False) as z:
                masks = {k: z[k] for k in z.files}
        elif source.suffix.lower() == ".npy":
            lab = np.load(source, allow_pickle=False)
            masks = lab
        else:
            raise ValueError(f"unsupported mask file {source}: use .npz (named masks) or .npy (labels).")
    if isinstance(masks, np.ndarray) and not isinstance(masks, dict):
        lab = np.asarray(masks)
        if lab.ndim != 1 or lab.shape[0] != n_vox or lab.dtype.kind not in "iu":
            raise ValueError(f"label mask {source} must be a 1-D integer array of length {n_vox} "
                             f"(one label per voxel, 0 = none), got dtype {lab.dtype} shape {lab.shape}. "
                             "Flatten volumes with .ravel() in the same order as the betas.")
        mapping = mapping or {}
        return {mapping.get(int(v), f"label_{int(v)}"): np.flatnonzero(lab == v)
                for v in np.unique(lab) if v != 0}
    if not isinstance(masks, dict) or not masks:
        raise ValueError("masks must be None, a non-empty dict {name: mask}, a label array or a file path.")
    out = {}
    for name, m in masks.items():
        m = np.asarray(m)
        if m.dtype == bool:
            if m.shape != (n_vox,):
                raise ValueError(f"mask {name!r} in {source} has shape {m.shape} but the betas have "
                                 f"{n_vox} voxels; flatten volumetric masks with .ravel().")
            idx = np.flatnonzero(m)
        elif m.ndim == 1 and m.dtype.kind in "iu":
            if m.size and (m.min() < 0 or m.max() >= n_vox):
                raise ValueError(f"mask {name!r} in {source} has voxel indices outside [0, {n_vox}).")
            idx = m.astype(np.int64)
        else:
            raise ValueError(f"mask {name!r} in {source} must be a boolean mask of length {n_vox} or "
                             f"a 1-D integer index array, got dtype {m.dtype} shape {m.shape}.")
        if idx.size == 0:
            raise ValueError(f"mask {name!r} in {source} selects no voxel.")
        out[str(name)] = idx
    return out


def load_nsd_betas(path, masks=None, key=None, mapping=None, dtype=np.float32):
    """Load image x voxel betas and cut them into ROIs.

    Parameters
    ----------
    path : str or Path
        ``.npy``, ``.npz`` (``key`` or the only array or ``"betas"``) or ``.h5``/``.hdf5``
        (needs ``h5py``; dataset ``key`` or ``"betas"``). Shape ``(n_images, n_voxels)``
        (e.g. betas averaged over repeats) or ``(n_repeats, n_images, n_voxels)``
        (single-trial betas, repeat-major).
    masks : None, dict, ndarray or path
        ``None``: one ROI ``"all"``. A dict ``{name: boolean mask (n_voxels,) or integer
        indices}``; an ``.npz`` file of such arrays; or an integer label per voxel
        (array or ``.npy`` file, 0 = no ROI) whose labels are named by ``mapping``.
    key : str, optional
        Array/dataset name inside ``.npz``/``.h5`` files.
    mapping : dict, optional
        ``{label: ROI name}`` for label masks (default names ``label_<n>``).
    dtype : numpy dtype
        Output dtype.

    Returns
    -------
    Bunch with ``fmri`` (dict ROI -> (n_images, n_roi_voxels), the mean over repeats
    for 3-D input), ``fmri_repeats`` (dict ROI -> (n_repeats, n_images, n_roi_voxels),
    only for 3-D input, else None), ``roi_names``, ``voxels`` (dict ROI -> index
    array), ``n_images``, ``path``.
    """
    betas = _read_betas(path, key)
    if betas.dtype.kind not in "fiu" or betas.ndim not in (2, 3):
        raise ValueError(f"betas in {path} must be numeric with shape (n_images, n_voxels) or "
                         f"(n_repeats, n_images, n_voxels), got dtype {betas.dtype} shape {betas.shape}.")
    n_vox = betas.shape[-1]
    rois = _read_masks(masks, n_vox, mapping)
    fmri, reps = {}, ({} if betas.ndim == 3 else None)
    for name, idx in rois.items():
        block = np.asarray(betas[..., idx], dtype=dtype)
        if not np.all(np.isfinite(block)):
            raise ValueError(f"ROI {name!r} of {path} holds NaN/inf betas (voxels outside the brain?); "
                             "drop those voxels from the mask.")
        if betas.ndim == 3:
            reps[name] = block
            fmri[name] = block.mean(0, dtype=np.float64).astype(dtype)
        else:
            fmri[name] = block
    return Bunch(fmri=fmri, fmri_repeats=reps, roi_names=list(fmri), voxels=rois,
                 n_images=int(betas.shape[-2]), path=Path(path))
