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

from .rsatools import check_rdms as _check_rdms
from .rsatools import noise_ceiling  # noqa: F401  (re-exported: lidutils.datasets.noise_ceiling)
from .cache import default_cache_dir, file_sha256, hash_key, save_json

__all__ = [
    "DataError", "UPSTREAM", "registry", "fetch_file", "fetch_files", "load_algonauts92",
    "load_imagenet_sample", "load_rdm_dataset", "load_images", "noise_ceiling",
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


def _resolve_data_dir(data_dir):
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
    mirror = _resolve_data_dir(data_dir)
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
        from .cache import atomic_path
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
def _image_array(path, size=None):
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        if size is not None:
            im = im.resize((size[1], size[0]), Image.BICUBIC)
        return np.asarray(im, dtype=np.uint8)


def load_images(paths, size=None):
    """Load image files as one uint8 RGB array.

    Parameters
    ----------
    paths : list of str or Path
    size : int or (height, width), optional
        Resize every image (bicubic) to this size. Required when the images do not
        all have the same size.

    Returns
    -------
    ndarray of shape (N, H, W, 3), uint8
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("load_images got an empty list of paths.")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ValueError(f"{len(missing)} image file(s) not found, e.g. {missing[0]!r}.")
    if isinstance(size, int):
        size = (size, size)
    arrays = [_image_array(p, size) for p in paths]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(
            f"images have different sizes ({sorted(shapes)[:3]}...); pass size=(height, width) to resize them."
        )
    return np.stack(arrays)


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


def load_rdm_dataset(path, image_dir, roi=None, categories=None):
    """Your own RDM data set, returned in the same shape as :func:`load_algonauts92`.

    Parameters
    ----------
    path : str or Path
        ``.npz`` file with key ``rdms``: (n_subjects, N, N) or (N, N), symmetric with
        zero diagonal; or, for several regions, keys ``rdms_<region>`` (lower area
        first, in the file's order).
    image_dir : str or Path
        Folder with exactly N image files; image i is the i-th file in sorted
        name order.
    roi : str, optional
        Label stored in the result.
    categories : DataFrame or path to a CSV, optional
        N rows of per-image labels.

    Returns
    -------
    Bunch
        ``images`` (uint8 (N, H, W, 3) when all images have the same size, else a
        list of uint8 arrays), ``image_paths``, ``rdms`` (the first region),
        ``regions`` ({region: rdms}), ``categories``, ``roi``, ``description``.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"RDM file {str(path)!r} does not exist.")
    with np.load(path, allow_pickle=False) as z:
        keys = ["rdms"] if "rdms" in z.files else [k for k in z.files if k.startswith("rdms_")]
        if not keys:
            raise ValueError(f"{str(path)!r} has no key 'rdms' nor 'rdms_<region>' (keys: {z.files}); save it "
                             "with np.savez(path, rdms=R) or, for several regions, np.savez(path, rdms_V1=R1, rdms_IT=R2).")
        regions = {(roi or "user") if k == "rdms" else k[5:]: _check_rdms(z[k], name=k) for k in keys}
    rdms = next(iter(regions.values()))
    shapes = {r.shape[1:] for r in regions.values()}
    if len(shapes) != 1:
        raise ValueError(f"{str(path)!r}: the regions' RDMs differ in size {sorted(shapes)}; all must use the same images.")
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise ValueError(f"image folder {str(image_dir)!r} does not exist.")
    image_paths = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    N = rdms.shape[1]
    if len(image_paths) != N:
        raise ValueError(
            f"the RDMs are {N}x{N} but {str(image_dir)!r} holds {len(image_paths)} images "
            f"({', '.join(IMAGE_EXTENSIONS)}); there must be exactly one image per RDM row."
        )
    arrays = [_image_array(p) for p in image_paths]
    images = np.stack(arrays) if len({a.shape for a in arrays}) == 1 else arrays
    if categories is not None and not isinstance(categories, pd.DataFrame):
        categories = pd.read_csv(categories)
    if categories is not None and len(categories) != N:
        raise ValueError(f"categories has {len(categories)} rows, expected one per image ({N}).")
    return Bunch(images=images, image_paths=image_paths, rdms=rdms, regions=regions, categories=categories,
                 roi=roi, description=f"RDM data set from {path.name}: {len(regions)} region(s), "
                                      f"{rdms.shape[0]} subject(s), {N} images.")


