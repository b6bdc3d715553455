"""Brain data and image sets: hash-checked fetchers in the style of nilearn.

Every data file the project uses is listed, with its SHA-256, in the packaged
registry ``lidutils/registry/data.txt`` (path relative to the data root, hash).
A file is obtained in one of two ways:

* **Mirror** — when ``data_dir=`` is given or ``$LIDUTILS_DATA_DIR`` is set, the
  file is read from ``<data_dir>/<path>`` (e.g.
  ``algonauts2019_92/images/image_01.jpg``). The mirror is treated as
  read-only: nothing is ever written into it. A missing file or a file whose
  SHA-256 differs from the registry raises :class:`DataError`; a corrupted file
  is never used.
* **Download** — otherwise the file is fetched with :mod:`pooch` from its pinned
  upstream address (see :data:`UPSTREAM`) into
  ``lidutils.cache.default_cache_dir() / "data"`` and checked against the same
  SHA-256. Without network access this fails with a message that says how to
  point ``LIDUTILS_DATA_DIR`` at a local mirror.

Hashing the 1000 ImageNet-sample photos (107 MB) on every call would be slow, so a
file whose hash has been checked once is recorded in a small JSON *stamp* in the
cache folder (``<cache>/data/verified/<key>.json``, written atomically), keyed by
its absolute path, size and modification time (ns). Any change to the file
(size or mtime) invalidates its stamp and the hash is checked again. The stamp
lives in the (writable) cache, never in the mirror; if the cache is not
writable the hashes are simply checked on every call.

``categories.csv`` (category flags of the 92 images) has no direct upstream
file: it was produced from ``Kriegeskorte_Neuron2008_supplementalData.mat``
(``categoryVectors``) of rsagroup/rsatoolbox. Its content is eight contiguous
index ranges, which are embedded below (:data:`ALGONAUTS92_CATEGORY_RANGES`);
when no mirror is configured the CSV is rebuilt from them and checked against
the registry hash (the rebuilt bytes are identical to the mirror file).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

from lidutils.cache import atomic_path, default_cache_dir, file_sha256, hash_key, save_json
from lidutils.rsatools import check_rdms as _check_rdms, noise_ceiling

__all__ = [
    "DataError", "UPSTREAM", "registry", "fetch_file", "fetch_files", "load_algonauts92",
    "load_imagenet_sample", "load_rdm_dataset", "load_images", "noise_ceiling", "IMAGE_POLICY", "RDM_POLICY",
]

DATA_ENV = "LIDUTILS_DATA_DIR"

#: Pinned upstream commits (raw GitHub addresses) of the data files.
UPSTREAM = {
    "net2brain": "https://raw.githubusercontent.com/cvai-roig-lab/Net2Brain/"
                 "617fa7bcec4a18b9f81cab66b6665f9f8347a803/",
    "imagenet_sample": "https://raw.githubusercontent.com/EliSchwartz/imagenet-sample-images/"
                       "bc69043e2862758a1906c6a24a792bb28c6bb2ff/",
    "rsatoolbox": "https://raw.githubusercontent.com/rsagroup/rsatoolbox/"
                  "f1f83cadb7243492a1aae7460466e0f0140b20ac/demos/92imageData/",
}

#: 1-based inclusive image-index ranges of the Kriegeskorte et al. (2008) category
#: vectors (``categoryVectors`` in rsatoolbox's ``Kriegeskorte_Neuron2008_supplementalData.mat``).
ALGONAUTS92_CATEGORY_RANGES = {
    "animate": [(1, 48)], "inanim": [(49, 92)],
    "human": [(1, 24)], "nonhumani": [(25, 48)],
    "body": [(1, 12), (25, 36)], "face": [(13, 24), (37, 48)],
    "natObj": [(49, 71)], "artiObj": [(72, 92)],
}

ROIS = ("EVC", "IT")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class DataError(RuntimeError):
    """A data file is missing, corrupted (hash mismatch) or cannot be downloaded."""


# --------------------------------------------------------------------------- registry
@functools.lru_cache(maxsize=1)
def registry():
    """``{relative path: sha256}`` of every known data file (packaged registry)."""
    reg = {}
    text = (Path(__file__).parent / "registry" / "data.txt").read_text()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rel, digest = line.split()
            reg[rel] = digest
    return reg


def _upstream_url(rel):
    """Upstream address of a registry path (module constants, so tests can redirect them)."""
    top, _, name = rel.partition("/")
    if top == "algonauts2019_92":
        if name.startswith("images/"):
            return UPSTREAM["net2brain"] + "input_data/stimuli_data/92images/" + name[len("images/"):]
        if name.endswith(".npz"):
            return UPSTREAM["net2brain"] + "input_data/brain_data/92images/" + name
        return None  # categories.csv: rebuilt locally, see module docstring
    if top == "imagenet_sample_1000":
        return UPSTREAM["imagenet_sample"] + name
    return None


def resolve_data_dir(data_dir):
    if data_dir is None:
        data_dir = os.environ.get(DATA_ENV) or None
    if data_dir is None:
        return None
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise DataError(
            f"data mirror {str(data_dir)!r} (from data_dir= or ${DATA_ENV}) is not a folder. "
            f"Point it at a copy of the project's data mirror, or unset ${DATA_ENV} to download."
        )
    return data_dir


# --------------------------------------------------------------------------- verified stamps
class _Stamps:
    """Record of files whose SHA-256 was already checked (path, size, mtime_ns -> sha256)."""

    def __init__(self, root):
        self.root = Path(root).resolve()
        self.path = default_cache_dir() / "data" / "verified" / f"{hash_key(str(self.root))}.json"
        self.entries = {}
        self.dirty = False
        try:
            import json
            self.entries = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}

    @staticmethod
    def _sig(path):
        st = os.stat(path)
        return [st.st_size, st.st_mtime_ns]

    def ok(self, path, digest):
        e = self.entries.get(str(Path(path).resolve()))
        return e is not None and e[:2] == self._sig(path) and e[2] == digest

    def add(self, path, digest):
        self.entries[str(Path(path).resolve())] = self._sig(path) + [digest]
        self.dirty = True

    def save(self):
        if self.dirty:
            try:
                save_json(self.path, self.entries)
            except OSError:  # read-only cache: hashes are re-checked next time
                pass
            self.dirty = False


def _check_hash(path, expected, where):
    actual = file_sha256(path)
    if actual != expected:
        raise DataError(
            f"{where} file {str(path)!r} is corrupted: SHA-256 {actual} differs from the "
            f"registry's {expected}. It was not used. Replace it with a fresh copy "
            f"(or delete it from the cache so it is downloaded again)."
        )


def _categories_csv_bytes():
    cols = list(ALGONAUTS92_CATEGORY_RANGES)
    lines = ["image," + ",".join(cols)]
    for i in range(1, 93):
        flags = (int(any(a <= i <= b for a, b in ALGONAUTS92_CATEGORY_RANGES[c])) for c in cols)
        lines.append(f"image_{i:02d}.jpg," + ",".join(map(str, flags)))
    return ("\r\n".join(lines) + "\r\n").encode()


def fetch_files(rels, data_dir=None, progress=False):
    """Local, hash-verified paths of registry files (mirror, or download into the cache).

    Parameters
    ----------
    rels : list of str
        Paths relative to the data root, as listed in :func:`registry`.
    data_dir : str or Path, optional
        Read-only mirror; default ``$LIDUTILS_DATA_DIR``; if neither, download.
    progress : bool
        Show a pooch progress bar when downloading.

    Returns
    -------
    list of Path
    """
    reg = registry()
    unknown = [r for r in rels if r not in reg]
    if unknown:
        raise ValueError(f"unknown data file(s) {unknown[:3]}; known files are listed in lidutils/registry/data.txt.")
    mirror = resolve_data_dir(data_dir)
    root = mirror if mirror is not None else default_cache_dir() / "data"
    stamps = _Stamps(root)
    out = []
    try:
        for rel in rels:
            path = root / rel
            if mirror is not None:
                if not path.is_file():
                    raise DataError(
                        f"{rel!r} is missing from the data mirror {str(mirror)!r}. Complete the mirror, "
                        f"point ${DATA_ENV} at a complete copy, or unset it to download from upstream."
                    )
                if not stamps.ok(path, reg[rel]):
                    _check_hash(path, reg[rel], "mirror")
                    stamps.add(path, reg[rel])
            elif not (path.is_file() and stamps.ok(path, reg[rel])):
                _download(rel, reg[rel], root, progress)
                stamps.add(path, reg[rel])
            out.append(path)
    finally:
        stamps.save()
    return out


def fetch_file(rel, data_dir=None):
    """Local, hash-verified path of one registry file; see :func:`fetch_files`."""
    return fetch_files([rel], data_dir)[0]


def _download(rel, digest, root, progress):
    import pooch

    path = root / rel
    url = _upstream_url(rel)
    if url is None:  # categories.csv: rebuilt from the embedded ranges
        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(_categories_csv_bytes())
        _check_hash(path, digest, "rebuilt")
        return
    try:
        pooch.retrieve(url, known_hash=f"sha256:{digest}", fname=path.name, path=path.parent,
                       progressbar=progress)
    except ValueError as err:  # pooch: hash mismatch of the downloaded file
        raise DataError(f"download of {url} does not match the registry hash: {err}") from err
    except Exception as err:  # network errors (requests.ConnectionError, HTTPError, timeouts...)
        raise DataError(
            f"could not download {rel!r} from {url} ({type(err).__name__}: {err}). No local data "
            f"mirror is configured: set the environment variable {DATA_ENV}=/path/to/mirror "
            f"(a folder holding {rel.split('/')[0]}/...) or pass data_dir=... to use a local copy."
        ) from err


# --------------------------------------------------------------------------- images
#: Largest side of the common image size (see :data:`IMAGE_POLICY`).
MAX_IMAGE_SIDE = 512

#: How every image set is loaded (:func:`load_images`, :func:`load_rdm_dataset`); stated
#: in each data set's ``description`` and in the book's page on bringing your own data.
IMAGE_POLICY = (
    "Each image file is decoded with PIL, turned upright by its EXIF orientation and converted to "
    "8-bit RGB (grey repeated to three channels, palette images expanded, transparency composited "
    "on white, 16-bit images scaled to 8 bits). A set whose images all have the same size, with "
    f"the shorter side at most {MAX_IMAGE_SIDE} px, is kept as it is; otherwise every image is "
    "resized (bicubic, antialiased) so its shorter side is S and centre-cropped to S x S, with "
    f"S = the smallest shorter side in the set, at most {MAX_IMAGE_SIDE} px (the resize-and-centre-crop "
    "of the models' own preprocessing). Every consumer (zoo probe, ImageNet models, pixel and Gabor "
    "baselines) sees this one array."
)


def _unreadable(path, err):
    return ValueError(f"cannot read image {str(path)!r} ({type(err).__name__}: {err}); re-save it as PNG or "
                      "JPEG, or remove it from the folder (and its row and column from the RDMs).")


def _read_image(path):
    """One file -> PIL RGB image (EXIF orientation applied); an unreadable file names itself."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            im.load()
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):  # 16-bit / 32-bit grey -> 8 bits
                a = np.asarray(im, dtype=np.float64)
                top = 65535.0 if mode.startswith("I;16") else (a.max() if a.max() > 255 else 255.0)
                a = np.clip(a, 0, None) / max(top, 1e-12) * 255.0
                im = Image.fromarray(np.round(a).astype(np.uint8), mode="L")
            elif mode == "P" and "transparency" in im.info or mode in ("LA", "PA", "La", "RGBa"):
                im = im.convert("RGBA")
            if im.mode == "RGBA":  # composite transparency on white
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im)
            return im.convert("RGB"), mode
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise _unreadable(path, err) from err


def _upright_size(path):
    """(width, height) of an image file after its EXIF orientation, read from the header only."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise _unreadable(path, err) from err
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _fit(im, size):
    """Resize so the image covers ``size`` = (height, width), keeping its aspect ratio, then centre-crop."""
    from PIL import Image

    h, w = size
    W, H = im.size
    scale = max(h / H, w / W)
    rw, rh = max(w, round(W * scale)), max(h, round(H * scale))
    if (rw, rh) != (W, H):
        im = im.resize((rw, rh), Image.BICUBIC)
    left, top = (rw - w) // 2, (rh - h) // 2
    return im.crop((left, top, left + w, top + h))


def load_images(paths, size=None, return_info=False):
    """Load image files as one uint8 RGB array, following :data:`IMAGE_POLICY`.

    Every file is converted to 8-bit RGB (grey, palette, RGBA, 16-bit). Images of one
    size (shorter side at most :data:`MAX_IMAGE_SIDE`) are kept as they are;
    otherwise each is resized (bicubic) so that its shorter side is S and
    centre-cropped to S x S, S = min(smallest shorter side, ``MAX_IMAGE_SIDE``).

    Parameters
    ----------
    paths : list of str or Path
    size : int or (height, width), optional
        Bring every image to this size instead (resized to cover it, aspect ratio
        kept, then centre-cropped).
    return_info : bool
        Also return a dict: ``sizes`` (original (width, height) -> count), ``modes``
        (original PIL mode -> count), ``shape`` (the common (H, W)), ``resized``
        (whether any image was resized or cropped) and ``note`` (one sentence for a
        record).

    Returns
    -------
    ndarray of shape (N, H, W, 3), uint8 (and the info dict with ``return_info``)

    Raises
    ------
    ValueError
        A file is missing or cannot be read (the message names it).
    """
    from collections import Counter

    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("load_images got an empty list of paths.")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ValueError(f"{len(missing)} image file(s) not found, e.g. {missing[0]!r}.")
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    sizes = Counter(_upright_size(p) for p in paths)  # (width, height), from the headers
    if size is None:
        (w0, h0), = sizes if len(sizes) == 1 else [(0, 0)]
        if len(sizes) == 1 and min(w0, h0) <= MAX_IMAGE_SIDE:
            target = None
        else:
            side = min(MAX_IMAGE_SIDE, min(min(s) for s in sizes))
            target = (side, side)
    else:
        target = tuple(int(s) for s in size)
    X, modes = None, Counter()
    for i, p in enumerate(paths):  # decoded one at a time: a folder of large photos fits in memory
        im, mode = _read_image(p)
        modes[mode] += 1
        a = np.asarray(_fit(im, target) if target is not None else im, dtype=np.uint8)
        if X is None:
            X = np.empty((len(paths),) + a.shape, dtype=np.uint8)
        X[i] = a
    if not return_info:
        return X
    shape = X.shape[1:3]
    listed = ", ".join(f"{c} at {w}x{h}" for (w, h), c in sizes.most_common(4)) + (", ..." if len(sizes) > 4 else "")
    note = f"{len(paths)} images ({listed} px, width x height)"
    note += (f", resized (shorter side) and centre-cropped to {shape[1]}x{shape[0]} px" if target is not None
             else ", used at their size")
    converted = {m: c for m, c in modes.items() if m != "RGB"}
    if converted:
        note += "; converted to RGB: " + ", ".join(f"{c} {m}" for m, c in converted.items())
    note += "."
    info = dict(sizes=dict(sizes), modes=dict(modes), shape=tuple(shape), resized=target is not None, note=note)
    return X, info


def _category_frame(csv_path):
    df = pd.read_csv(csv_path)
    return df


def load_algonauts92(roi="IT", data_dir=None):
    """Algonauts 2019 92-image set: images and 15 subjects' fMRI RDMs.

    Cichy, Pantazis & Oliva (2014); Cichy et al. (2019), arXiv:1905.05675; images
    and categories from Kriegeskorte et al. (2008). RDM entry (i, j) is
    1 - Pearson r between the voxel patterns of images i and j.

    Parameters
    ----------
    roi : {"IT", "EVC"}
        Inferior temporal cortex or early visual cortex.
    data_dir : str or Path, optional
        Read-only mirror (default ``$LIDUTILS_DATA_DIR``); otherwise download.

    Returns
    -------
    Bunch
        ``images`` uint8 (92, 175, 175, 3); ``image_paths`` (92 Paths);
        ``rdms`` float64 (15, 92, 92), validated symmetric with zero diagonal;
        ``categories`` DataFrame (92 rows: image + 8 0/1 flags); ``roi``;
        ``description``.
    """
    roi = str(roi).upper()
    if roi not in ROIS:
        raise ValueError(f"roi must be one of {ROIS}, got {roi!r}.")
    imgs = [f"algonauts2019_92/images/image_{i:02d}.jpg" for i in range(1, 93)]
    rels = [f"algonauts2019_92/fmri_{roi}_RDMs.npz", "algonauts2019_92/categories.csv"] + imgs
    paths = fetch_files(rels, data_dir)
    with np.load(paths[0], allow_pickle=False) as z:
        rdms = _check_rdms(z["Net_RDM"], name=f"fmri_{roi}_RDMs")
    return Bunch(
        images=load_images(paths[2:]), image_paths=paths[2:], rdms=rdms,
        categories=_category_frame(paths[1]), roi=roi,
        description=(
            f"Algonauts 2019 92-image set, {roi}: fMRI RDMs (1 - Pearson r) of 15 subjects over "
            "92 object images (Cichy et al. 2014; Kriegeskorte et al. 2008 categories)."
        ),
    )


def load_imagenet_sample(data_dir=None):
    """1000 natural photos, one per ImageNet-1k class (EliSchwartz/imagenet-sample-images).

    Images are not loaded (they have different sizes); pass ``image_paths`` to
    :func:`lidutils.features.extract`. These photos are likely ImageNet
    *training* images: use them for representations, not as an accuracy test.

    Returns
    -------
    Bunch
        ``image_paths`` (1000 Paths, sorted by class index), ``labels`` int64
        ImageNet-1k class indices 0..999 (timm's synset order), ``synsets``,
        ``class_names`` (first name of each class) and ``description``.
    """
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    index = {s: i for i, s in enumerate(info.label_names())}
    rels = sorted((r for r in registry() if r.startswith("imagenet_sample_1000/")),
                  key=lambda r: index[Path(r).name.split("_")[0]])
    paths = fetch_files(rels, data_dir)
    synsets = [p.name.split("_")[0] for p in paths]
    labels = np.array([index[s] for s in synsets], dtype=np.int64)
    return Bunch(
        image_paths=paths, labels=labels, synsets=synsets,
        class_names=[info.index_to_description(int(i)).split(",")[0].strip() for i in labels],
        description="ImageNet sample: one photo per ImageNet-1k class (EliSchwartz/imagenet-sample-images).",
    )


# --------------------------------------------------------------------------- own RDM sets
#: Asymmetry accepted as rounding: max |R - R.T| up to this fraction of the largest |entry|.
RDM_SYMMETRY_RTOL = 1e-3

#: How an RDM file is read (:func:`load_rdm_dataset`); stated in the description of the
#: data set and in the book's page on bringing your own data.
RDM_POLICY = (
    "An .npz file with key 'rdms' (one region) or keys 'rdms_<region>' (several regions, lower area "
    "first); a .npy file is read as key 'rdms'. Each key holds (n_subjects, N, N) square RDMs, one "
    "subject's (N, N) RDM, one condensed upper-triangle vector of length N(N-1)/2 (the order of "
    "scipy.spatial.distance.pdist / squareform, as rsatoolbox stores them) or (n_subjects, N(N-1)/2) "
    "condensed vectors. The diagonal may be 0 or NaN: it is ignored (as RSA ignores it) and set to 0. "
    f"Asymmetry up to rounding (max |R - R.T| at most {RDM_SYMMETRY_RTOL:g} of the largest entry) is "
    "averaged away. Refused, with the key, subject and entry named: NaN or inf off the diagonal, a "
    "non-zero diagonal (e.g. a similarity matrix), asymmetry beyond rounding, a vector length that is "
    "not N(N-1)/2, fewer than 3 images, regions of different N, and an N that differs from the number "
    "of images."
)


def _condensed_to_square(v, key, where):
    """(n, P) condensed upper triangles (row-major, i < j, as squareform) -> (n, N, N)."""
    P = v.shape[1]
    N = int(round((1 + np.sqrt(1 + 8 * P)) / 2))
    if N * (N - 1) // 2 != P:
        lo = int((1 + np.sqrt(1 + 8 * P)) / 2)
        hint = f" It has {int(np.sqrt(P))}^2 entries: reshape a flattened matrix to (N, N)." \
            if int(np.sqrt(P)) ** 2 == P else ""
        raise ValueError(
            f"{where}: key {key!r} holds vectors of length {P}, which is not a condensed RDM length N(N-1)/2 "
            f"(N={lo}: {lo * (lo - 1) // 2}, N={lo + 1}: {(lo + 1) * lo // 2}).{hint} Save the upper triangle "
            "with scipy.spatial.distance.squareform(R, checks=False), or the square (N, N) matrices.")
    out = np.zeros((v.shape[0], N, N))
    iu = np.triu_indices(N, k=1)
    out[:, iu[0], iu[1]] = v
    out[:, iu[1], iu[0]] = v
    return out


def _rdm_stack(a, key, where):
    """One key's array -> ((n_subjects, N, N) float64 symmetric with zero diagonal, its form in words)."""
    a = np.asarray(a)
    if a.dtype.kind not in "fiub":
        raise ValueError(f"{where}: key {key!r} holds {a.dtype} values, not numbers; save float RDMs "
                         "(np.savez(path, rdms=np.asarray(R, dtype=float))).")
    a = a.astype(np.float64)
    if a.ndim == 1:
        a = _condensed_to_square(a[None], key, where)
        form = f"one condensed vector (N={a.shape[1]})"
    elif a.ndim == 2 and a.shape[0] == a.shape[1]:
        form, a = f"one subject's {a.shape[0]}x{a.shape[1]} RDM", a[None]
    elif a.ndim == 2:
        a = _condensed_to_square(a, key, where)
        form = f"{a.shape[0]} subjects' condensed vectors (N={a.shape[1]})"
    elif a.ndim == 3 and a.shape[1] == a.shape[2]:
        form = f"{a.shape[0]} subject(s)' {a.shape[1]}x{a.shape[2]} RDMs"
    else:
        raise ValueError(
            f"{where}: key {key!r} has shape {a.shape}; an RDM set must be square (n_subjects, N, N) matrices, "
            "one (N, N) matrix, a condensed vector of length N(N-1)/2 or (n_subjects, N(N-1)/2) condensed vectors.")
    S, N = a.shape[0], a.shape[1]
    if N < 3:
        raise ValueError(f"{where}: key {key!r} has N={N} images; RSA needs at least 3.")
    off = ~np.eye(N, dtype=bool)
    bad = ~np.isfinite(a) & off
    if bad.any():
        s, i, j = (int(x) for x in np.argwhere(bad)[0])
        pairs = int(np.triu(bad[s] | bad[s].T, k=1).sum())
        raise ValueError(
            f"{where}: key {key!r}, subject {s}: {pairs} off-diagonal pair(s) are "
            f"NaN or inf, the first R[{i}, {j}] = {a[s, i, j]}. RSA needs every pair: fill them in (e.g. with "
            "the other subjects' mean) or drop that image from every RDM and from the image folder.")
    scale = max(np.abs(a[:, off]).max(), np.finfo(float).tiny)
    diag = np.diagonal(a, axis1=1, axis2=2)
    nonzero = np.isfinite(diag) & (np.abs(diag) > 1e-8 * max(1.0, scale))
    if nonzero.any():
        s, i = (int(x) for x in np.argwhere(nonzero)[0])
        hint = (" It looks like a similarity matrix (ones on the diagonal): pass 1 - R."
                if np.allclose(diag[s][np.isfinite(diag[s])], 1, atol=1e-6) else
                " If the diagonal holds something else (e.g. a split-half reliability), set it to 0 with "
                "np.fill_diagonal(R, 0) first.")
        raise ValueError(
            f"{where}: key {key!r}, subject {s}: the diagonal must be 0 or NaN (an image's dissimilarity with "
            f"itself; it is ignored), but R[{i}, {i}] = {diag[s, i]:.4g}.{hint}")
    a[:, np.arange(N), np.arange(N)] = 0.0
    asym = np.abs(a - a.transpose(0, 2, 1))
    if asym.max() > RDM_SYMMETRY_RTOL * scale:
        s, i, j = (int(x) for x in np.unravel_index(asym.argmax(), asym.shape))
        raise ValueError(
            f"{where}: key {key!r}, subject {s}: the RDM is not symmetric beyond rounding: R[{i}, {j}] = "
            f"{a[s, i, j]:.4g} but R[{j}, {i}] = {a[s, j, i]:.4g} (tolerance {RDM_SYMMETRY_RTOL:g} of the largest "
            "entry). If the difference is noise, save (R + R.T) / 2; if rows and columns are different "
            "measurements (e.g. two halves of the data), it is not an RDM for RSA.")
    return _check_rdms((a + a.transpose(0, 2, 1)) / 2, name=key), form


def _read_rdm_file(path, roi):
    """RDM file -> ({region: (n, N, N)}, {region: form in words})."""
    where = repr(str(path))
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise ValueError(f"cannot read RDM file {where} with numpy ({err}); save it with np.savez(path, rdms=R) "
                         "(several regions: np.savez(path, rdms_V1=R1, rdms_IT=R2)).") from err
    arrays = {"rdms": z} if isinstance(z, np.ndarray) else None
    try:
        if arrays is None:
            keys = ["rdms"] if "rdms" in z.files else [k for k in z.files if k.startswith("rdms_")]
            if not keys:
                raise ValueError(
                    f"{where} has no key 'rdms' nor 'rdms_<region>' (keys: {z.files}); save it with "
                    "np.savez(path, rdms=R) or, for several regions, np.savez(path, rdms_V1=R1, rdms_IT=R2).")
            arrays = {}
            for k in keys:
                try:
                    arrays[k] = z[k]
                except ValueError as err:  # object arrays with allow_pickle=False
                    raise ValueError(f"{where}: key {k!r} cannot be read without pickle ({err}); it holds Python "
                                     "objects (e.g. a list of arrays): save one numeric array per key.") from err
    finally:
        if not isinstance(z, np.ndarray):
            z.close()
    regions, forms = {}, {}
    for k, arr in arrays.items():
        region = (roi or "user") if k == "rdms" else k[5:]
        regions[region], forms[region] = _rdm_stack(arr, k, where)
    sizes = {r: R.shape[1] for r, R in regions.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"{where}: the regions' RDMs differ in size (N per region: {sizes}); all must use the "
                         "same images in the same order.")
    return regions, forms


def _natural_key(name):
    import re

    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def load_rdm_dataset(path, image_dir, roi=None, categories=None):
    """Your own RDM data set, returned in the same shape as :func:`load_algonauts92`.

    RDMs are read following :data:`RDM_POLICY`, images following :data:`IMAGE_POLICY`;
    both are stated in ``description``.

    Parameters
    ----------
    path : str or Path
        ``.npz`` file with key ``rdms`` or, for several regions, keys ``rdms_<region>``
        (lower area first, in the file's order); a ``.npy`` file is read as ``rdms``.
        Each holds (n_subjects, N, N) RDMs, one (N, N) RDM, or condensed
        upper-triangle vectors (N(N-1)/2,) / (n_subjects, N(N-1)/2) in
        ``scipy.spatial.distance.squareform`` order. The diagonal may be 0 or NaN
        (ignored); asymmetry up to :data:`RDM_SYMMETRY_RTOL` of the largest entry is
        averaged away.
    image_dir : str or Path
        Folder with exactly N image files (extensions :data:`IMAGE_EXTENSIONS`; names
        starting with ``.`` are ignored); image i is the i-th file in sorted name order.
    roi : str, optional
        Label stored in the result (and the region name of key ``rdms``).
    categories : DataFrame or path to a CSV, optional
        N rows of per-image labels.

    Returns
    -------
    Bunch
        ``images`` uint8 (N, H, W, 3) (one array, :data:`IMAGE_POLICY`), ``image_paths``,
        ``rdms`` (the first region, float64 (n_subjects, N, N)), ``regions``
        ({region: rdms}), ``rdm_forms`` ({region: the form it was stored in}),
        ``image_info`` (:func:`load_images` ``return_info``), ``image_policy``,
        ``rdm_policy``, ``categories``, ``roi``, ``description``.

    Raises
    ------
    ValueError
        A missing or unreadable file or image, or RDMs that break :data:`RDM_POLICY`;
        the message names the file, key, subject or entry and the fix.
    """
    import warnings

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"RDM file {str(path)!r} does not exist.")
    regions, forms = _read_rdm_file(path, roi)
    rdms = next(iter(regions.values()))
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise ValueError(f"image folder {str(image_dir)!r} does not exist.")
    image_paths = sorted(p for p in image_dir.iterdir()
                         if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file())
    N = rdms.shape[1]
    if len(image_paths) != N:
        others = sorted(p.name for p in image_dir.iterdir() if p not in image_paths)
        raise ValueError(
            f"the RDMs in {str(path)!r} are {N}x{N} ({'; '.join(f'{r}: {f}' for r, f in forms.items())}) but "
            f"{str(image_dir)!r} holds {len(image_paths)} images ({', '.join(IMAGE_EXTENSIONS)})"
            + (f"; ignored there: {others[:5]}{' ...' if len(others) > 5 else ''}" if others else "")
            + "; there must be exactly one image per RDM row (image i = the i-th file in name order).")
    names = [p.name for p in image_paths]
    natural = sorted(names, key=_natural_key)
    if natural != names:
        i = next(i for i, (a, b) in enumerate(zip(names, natural)) if a != b)
        warnings.warn(
            f"images in {str(image_dir)!r} are numbered without zero padding: in name order (RDM row order) "
            f"{names[i]!r} comes at row {i}, before {natural[i]!r}. If your RDM rows follow the numbers, "
            "rename the files with zero padding (e.g. im2.png -> im02.png).", stacklevel=2)
    images, info = load_images(image_paths, return_info=True)
    if categories is not None and not isinstance(categories, pd.DataFrame):
        categories = pd.read_csv(categories)
    if categories is not None and len(categories) != N:
        raise ValueError(f"categories has {len(categories)} rows, expected one per image ({N}).")
    stored = "; ".join(f"{r}: {f}" for r, f in forms.items())
    return Bunch(
        images=images, image_paths=image_paths, rdms=rdms, regions=regions, rdm_forms=forms, image_info=info,
        image_policy=IMAGE_POLICY, rdm_policy=RDM_POLICY, categories=categories, roi=roi,
        description=(f"RDM data set from {path.name}: {len(regions)} region(s) ({stored}), {N} images. "
                     f"Images: {info['note']} Policy: {IMAGE_POLICY} RDMs: {RDM_POLICY}"),
    )
