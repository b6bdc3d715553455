"""Training image sets of the model zoo: Fashion-MNIST and Animal-MNIST.

Both return uint8 images ``(n, 28, 28)`` and int64 labels ``(n,)``, ready for
:func:`lidutils.book.zoo.train_zoo` (``dataset="fashion-mnist"`` or ``"animal-mnist"``).

Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017, arXiv:1708.07747; MIT)
    70 000 grey product images, 10 classes (:data:`FASHION_CLASSES`), the standard
    split of 60 000 training and 10 000 test images (6000 / 1000 per class). The
    four IDX files are listed in the packaged registry
    (``lidutils/registry/data.txt``) with the SHA-256 of their **decompressed**
    bytes: gzip archives of the same content differ byte-wise (the data mirror's
    ``.gz`` files were recompressed by the distribution that packaged them), the
    IDX content does not. The ``.gz`` file is read from the mirror
    (``$LIDUTILS_DATA_DIR/fashion_mnist/<name>.gz`` or ``data_dir=``), or
    downloaded once with :mod:`pooch` from the publisher (checked against the
    publisher's MD5 of the archive) into ``default_cache_dir() / "data"``; either
    way it is decompressed in memory and the decompressed bytes are hashed on
    every load (about 0.1 s) before anything is parsed. A truncated, corrupted or
    substituted file raises :class:`lidutils.datasets.DataError` naming it.

Animal-MNIST (PyPI ``animal-mnist`` 0.4, MIT)
    10 000 white-on-black animal silhouettes, 10 classes (:data:`CLASS_NAMES`),
    read from the gzip-pickled arrays shipped in the package (its own loader
    imports TensorFlow), with a numpy-only unpickler.

Exact duplicate images are removed before any split (:func:`deduplicate`), so no
test image has a copy in the training set.
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import pickle
import zlib
from pathlib import Path

import numpy as np

from lidutils.cache import default_cache_dir
from lidutils.datasets import DATA_ENV, DataError, registry, resolve_data_dir

__all__ = ["CLASS_NAMES", "FASHION_CLASSES", "FASHION_FILES", "deduplicate", "load_animal_mnist",
           "load_fashion_mnist"]

CLASS_NAMES = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse",
               "sheep", "zebra")  # Animal-MNIST label order (alphabetical; checked visually)
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                   "Bag", "Ankle boot")

#: IDX file (registry path, decompressed) -> publisher's MD5 of its ``.gz`` archive.
FASHION_FILES = {
    "fashion_mnist/train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "fashion_mnist/train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
    "fashion_mnist/t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
    "fashion_mnist/t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
}
#: Publisher's address of the ``.gz`` archives (``<url><name>.gz``).
FASHION_URL = "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/"


# --------------------------------------------------------------------------- duplicates

def deduplicate(images, labels):
    """Remove exact duplicate images before any split.

    Policy: of a group of identical images with one label, the first is kept; a
    group whose copies carry *different* labels is removed entirely (its label is
    ambiguous, and keeping any one copy would be arbitrary).

    Returns
    -------
    images, labels : arrays without duplicates (original order of the kept rows)
    info : dict
        ``n_in``, ``n_out``, ``n_removed``, ``n_duplicate_groups``,
        ``n_conflicting_groups``, ``n_conflicting_removed``, ``kept_index``.
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if len(images) != len(labels):
        raise ValueError(f"images and labels differ in length: {len(images)} vs {len(labels)}.")
    flat = np.ascontiguousarray(images.reshape(len(images), -1))
    rows = flat.view(np.dtype((np.void, flat.dtype.itemsize * flat.shape[1]))).ravel()
    _, first, inv, counts = np.unique(rows, return_index=True, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    # a group conflicts when its labels are not all equal
    lab_min = np.full(len(first), np.iinfo(np.int64).max)
    lab_max = np.full(len(first), np.iinfo(np.int64).min)
    np.minimum.at(lab_min, inv, labels.astype(np.int64))
    np.maximum.at(lab_max, inv, labels.astype(np.int64))
    conflict = lab_min != lab_max
    keep = np.zeros(len(images), dtype=bool)
    keep[first[~conflict]] = True
    kept = np.flatnonzero(keep)
    info = {
        "n_in": int(len(images)), "n_out": int(len(kept)), "n_removed": int(len(images) - len(kept)),
        "n_duplicate_groups": int((counts > 1).sum()),
        "n_conflicting_groups": int(conflict.sum()),
        "n_conflicting_removed": int(counts[conflict].sum()),
        "kept_index": kept,
    }
    return images[kept], labels[kept], info


# --------------------------------------------------------------------------- Fashion-MNIST

def _parse_idx(raw, where):
    """IDX bytes (big-endian magic ``0 0 0x08 ndim``, ``ndim`` uint32 sizes, uint8 data) -> array."""
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08":
        raise DataError(f"{where} is not an IDX file of unsigned bytes (magic {raw[:4].hex()}).")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{where} holds {data.size} values, its header says {shape}.")
    return data.reshape(shape)


def _gz_path(rel, data_dir, progress):
    """Local ``.gz`` archive of a Fashion-MNIST file: the mirror's, or the publisher's (downloaded once)."""
    mirror = resolve_data_dir(data_dir)
    if mirror is not None:
        path = mirror / f"{rel}.gz"
        if not path.is_file():
            raise DataError(f"{rel}.gz is missing from the data mirror {str(mirror)!r}. Complete the mirror, "
                            f"point ${DATA_ENV} at a complete copy, or unset it to download from upstream.")
        return path
    import pooch

    folder = default_cache_dir() / "data" / Path(rel).parent
    name = f"{Path(rel).name}.gz"
    url = FASHION_URL + name
    try:
        return Path(pooch.retrieve(url, known_hash=f"md5:{FASHION_FILES[rel]}", fname=name, path=folder,
                                   progressbar=progress))
    except ValueError as err:  # pooch: MD5 of the downloaded archive differs from the publisher's
        raise DataError(f"download of {url} does not match the publisher's MD5: {err}") from err
    except Exception as err:  # network errors
        raise DataError(
            f"could not download {name} from {url} ({type(err).__name__}: {err}). No local data mirror is "
            f"configured: set {DATA_ENV}=/path/to/mirror (a folder holding fashion_mnist/{name}) or pass "
            "data_dir=...") from err


def _read_verified_idx(rel, data_dir=None, progress=False):
    """Decompress ``<rel>.gz``, check the SHA-256 of the decompressed bytes, parse the IDX array."""
    path = _gz_path(rel, data_dir, progress)
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError; truncated -> EOFError
        raise DataError(f"{str(path)!r} is not a complete gzip file ({type(err).__name__}: {err}); it is "
                        "truncated or corrupted. Replace it with a fresh copy (or delete it from the cache "
                        "so it is downloaded again).") from err
    digest = hashlib.sha256(raw).hexdigest()
    expected = registry()[rel]
    if digest != expected:
        raise DataError(f"{str(path)!r} is corrupted: its decompressed SHA-256 {digest} differs from the "
                        f"registry's {expected}. It was not used. Replace it with a fresh copy (or delete it "
                        "from the cache so it is downloaded again).")
    return _parse_idx(raw, repr(str(path)))


def load_fashion_mnist(split="all", deduplicate_images=True, data_dir=None, return_info=False, progress=False):
    """Fashion-MNIST images and labels, hash-verified on their decompressed bytes.

    Parameters
    ----------
    split : {"all", "train", "test"}
        ``"all"``: the 60 000 training images followed by the 10 000 test images
        (``info["is_test"]`` marks the test rows).
    deduplicate_images : bool
        Remove exact duplicates (:func:`deduplicate`; the first copy, i.e. the
        training copy, is kept).
    data_dir : path, optional
        Read-only data mirror holding ``fashion_mnist/*.gz``; default
        ``$LIDUTILS_DATA_DIR``; with neither, the archives are downloaded.
    return_info : bool
        Also return a dict: :func:`deduplicate`'s counts and ``is_test`` (bool per row).

    Returns
    -------
    images : uint8 (n, 28, 28)
    labels : int64 (n,)
    info : dict, only with ``return_info=True``
    """
    if split not in ("all", "train", "test"):
        raise ValueError(f"split must be 'all', 'train' or 'test', got {split!r}.")
    parts = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
    xs, ys, test = [], [], []
    for name in ("train", "test") if split == "all" else (split,):
        x = _read_verified_idx(f"fashion_mnist/{parts[name][0]}", data_dir, progress)
        y = _read_verified_idx(f"fashion_mnist/{parts[name][1]}", data_dir, progress).astype(np.int64)
        if len(x) != len(y):
            raise DataError(f"Fashion-MNIST {name} images and labels differ in number: {len(x)} vs {len(y)}.")
        xs.append(x)
        ys.append(y)
        test.append(np.full(len(y), name == "test"))
    images, labels, is_test = np.concatenate(xs), np.concatenate(ys), np.concatenate(test)
    info = {"n_in": len(images), "n_out": len(images), "n_removed": 0}
    if deduplicate_images:
        images, labels, info = deduplicate(images, labels)
        is_test = is_test[info["kept_index"]]
    info["is_test"] = is_test
    return (images, labels, info) if return_info else (images, labels)


# --------------------------------------------------------------------------- Animal-MNIST

class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can only rebuild numpy arrays (the package ships pickles)."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the Animal-MNIST files")


def _animal_mnist_dir():
    spec = importlib.util.find_spec("animal_mnist")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "Animal-MNIST is not installed. Install it without its TensorFlow dependency: "
            "pip install --no-deps animal-mnist==0.4")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "Animal_MNIST"


def load_animal_mnist(deduplicate_images=True, return_info=False):
    """Animal-MNIST images and labels, exact duplicates removed.

    10 000 uint8 images (28, 28), white silhouettes on black, labels 0-9 in
    ``CLASS_NAMES`` order, 1000 per class; 284 images are exact copies of another
    image (same label), so 9 716 remain.

    Returns
    -------
    images : uint8 (n, 28, 28)
    labels : int64 (n,)
    info : dict, only with ``return_info=True`` (see :func:`deduplicate`)
    """
    folder = _animal_mnist_dir()
    arrays = []
    for name in ("animal_data_version_3.gz", "animal_label_version_3.gz"):
        with gzip.open(folder / name, "rb") as f:
            arrays.append(np.asarray(_NumpyOnlyUnpickler(io.BytesIO(f.read())).load()))
    images, labels = arrays[0].astype(np.uint8), arrays[1].astype(np.int64)
    info = {"n_in": len(images), "n_out": len(images), "n_removed": 0}
    if deduplicate_images:
        images, labels, info = deduplicate(images, labels)
    return (images, labels, info) if return_info else (images, labels)
