"""Fashion-MNIST loader (hashes of the decompressed files), split, nested data subsets, label noise."""
from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from lidutils.book import zoo, zoo_training
from lidutils.datasets import DataError
from lidutils.loaders import FASHION_FILES, _read_verified_idx, load_fashion_mnist

pytestmark = pytest.mark.skipif(
    not __import__("os").environ.get("LIDUTILS_DATA_DIR"),
    reason="needs the data mirror (LIDUTILS_DATA_DIR) holding fashion_mnist/")

LABELS = "fashion_mnist/t10k-labels-idx1-ubyte"


@pytest.fixture(scope="module")
def mirror():
    from pathlib import Path
    import os

    return Path(os.environ["LIDUTILS_DATA_DIR"])


@pytest.fixture(scope="module")
def fashion():
    return zoo.ZooData(None, None, dataset="fashion-mnist")


def _copy_test_files(mirror, dst):
    (dst / "fashion_mnist").mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(mirror / "fashion_mnist" / name, dst / "fashion_mnist" / name)
    return dst / "fashion_mnist" / "t10k-labels-idx1-ubyte.gz"


def test_loader_verifies_and_parses(mirror):
    images, labels, info = load_fashion_mnist(return_info=True, data_dir=mirror)
    assert images.shape == (70_000, 28, 28) and images.dtype == np.uint8 and labels.dtype == np.int64
    assert labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]      # the publisher's first labels
    assert info["is_test"].sum() == 10_000 and not info["is_test"][:60_000].any()
    assert np.bincount(labels[info["is_test"]]).tolist() == [1000] * 10
    assert np.bincount(labels[~info["is_test"]]).tolist() == [6000] * 10
    x, y = load_fashion_mnist(split="test", data_dir=mirror)
    np.testing.assert_array_equal(x, images[60_000:])
    assert len(FASHION_FILES) == 4


def test_corrupted_file_is_named(mirror, tmp_path):
    path = _copy_test_files(mirror, tmp_path)
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[100] = (raw[100] + 1) % 10                        # one label changed, still a valid IDX file
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz.*decompressed SHA-256"):
        load_fashion_mnist(split="test", data_dir=tmp_path)
    # a different gzip encoding of the *same* content is accepted: the hash is of the decompressed bytes
    raw[100] = gzip.decompress((mirror / f"{LABELS}.gz").read_bytes())[100]
    path.write_bytes(gzip.compress(bytes(raw), compresslevel=1))
    assert _read_verified_idx(LABELS, data_dir=tmp_path).shape == (10_000,)


def test_truncated_and_missing_files_are_named(mirror, tmp_path):
    path = _copy_test_files(mirror, tmp_path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz.*truncated or corrupted"):
        _read_verified_idx(LABELS, data_dir=tmp_path)
    path.unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz is missing"):
        _read_verified_idx(LABELS, data_dir=tmp_path)
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist(split="val")


def test_standard_split_no_test_image_in_train(fashion):
    assert len(fashion.train_idx) == 60_000 and len(fashion.test_idx) == 10_000
    assert not set(fashion.train_idx) & set(fashion.test_idx)
    flat = (fashion.raw.reshape(len(fashion.raw), -1).numpy() * 255).round().astype(np.uint8)
    train = {r.tobytes() for r in flat[fashion.train_idx]}
    assert not any(r.tobytes() in train for r in flat[fashion.test_idx])
    assert np.bincount(fashion.labels[fashion.test_idx]).tolist() == [1000] * 10
    assert np.bincount(fashion.labels[fashion.eval_idx]).tolist() == [100] * 10   # stratified eval subset


def test_data_subsets_nested_and_stratified(fashion):
    sizes = [500, 1400, 4000, 30_000]
    subsets = [zoo_training._train_subset(zoo.ZooEntry("mlp", 8, 1, n_train=n, seed=1), fashion)[0] for n in sizes]
    for small, large, n in zip(subsets, subsets[1:], sizes):
        assert len(small) == n and set(small) <= set(large)              # a larger subset contains the smaller
        assert set(small) <= set(fashion.train_idx)
    for idx, n in zip(subsets, sizes):
        counts = np.bincount(fashion.labels[idx], minlength=10)
        assert counts.max() - counts.min() <= 2, counts                  # stratified prefix
    other = zoo_training._train_subset(zoo.ZooEntry("mlp", 8, 1, n_train=500, seed=2), fashion)[0]
    assert len(set(other) & set(subsets[0])) < 100                       # another seed, another subset
    with pytest.raises(ValueError, match="exceeds"):
        zoo_training._train_subset(zoo.ZooEntry("mlp", 8, 1, n_train=60_001), fashion)


@pytest.mark.parametrize("noise", [0.2, 0.4])
def test_label_noise_realised_as_specified(fashion, noise):
    idx, clean, noisy = zoo_training._train_subset(zoo.ZooEntry("mlp", 8, 1, n_train=4000, label_noise=noise), fashion)
    np.testing.assert_array_equal(clean, fashion.labels[idx])
    wrong = noisy != clean
    assert wrong.sum() == round(noise * 4000)                            # exactly the stated fraction
    # symmetric: the wrong labels spread over the other classes
    off = (noisy[wrong] - clean[wrong]) % 10
    assert off.min() >= 1 and np.bincount(off, minlength=10)[1:].min() > 0.5 * wrong.sum() / 9
    # the same seed gives the same noise; the clean subset is the clean entry's subset
    idx0, _, noisy0 = zoo_training._train_subset(zoo.ZooEntry("mlp", 8, 1, n_train=4000), fashion)
    np.testing.assert_array_equal(idx, idx0)
    assert (noisy0 == clean).all()
