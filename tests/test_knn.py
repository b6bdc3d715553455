"""Tests of the exact blockwise-GEMM neighbour search (lidutils.neighbors)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

from lidutils.neighbors import knn


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(700, 30)) * rng.uniform(0.1, 3, size=30) + 10.0


def test_matches_sklearn(data):
    dist, idx = knn(data, 15)
    ref_d, ref_i = NearestNeighbors(n_neighbors=15, algorithm="brute").fit(data).kneighbors()
    assert dist.dtype == np.float64 and idx.dtype == np.int64
    assert dist.shape == idx.shape == (700, 15)
    np.testing.assert_allclose(dist, ref_d, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(idx, ref_i)
    assert (np.diff(dist, axis=1) >= 0).all()
    assert not (idx == np.arange(700)[:, None]).any()


def test_all_neighbours(data):
    X = data[:50]
    dist, idx = knn(X, 49)
    full = np.linalg.norm(X[:, None] - X[None], axis=-1)
    np.testing.assert_allclose(dist, np.take_along_axis(full, idx, 1), rtol=1e-10)
    np.testing.assert_allclose(dist, np.sort(full, axis=1)[:, 1:], rtol=1e-10)


def test_small_memory_budget_same_result(data):
    ref = knn(data, 10)
    # 8 bytes x 700 columns x 7 rows: blocks of 7 rows -> 100 blocks
    tiny = knn(data, 10, memory_budget=8 * 700 * 7)
    np.testing.assert_allclose(tiny[0], ref[0], rtol=1e-12)  # BLAS may round per block
    np.testing.assert_array_equal(tiny[1], ref[1])
    one_row = knn(data[:100], 5, memory_budget=1)
    np.testing.assert_array_equal(one_row[1], knn(data[:100], 5)[1])


def test_float32_and_tensor_input(data):
    ref_d, ref_i = knn(data.astype(np.float32).astype(np.float64), 5)
    d32, i32 = knn(data.astype(np.float32), 5)
    assert d32.dtype == np.float64
    np.testing.assert_array_equal(i32, ref_i)
    np.testing.assert_allclose(d32, ref_d, rtol=1e-9)
    dt, it = knn(torch.as_tensor(data), 5)
    np.testing.assert_array_equal(it, knn(data, 5)[1])


def test_errors(data):
    with pytest.raises(ValueError, match="k <= 699"):
        knn(data, 700)
    with pytest.raises(ValueError, match=">= 1"):
        knn(data, 0)
    with pytest.raises(ValueError, match="integer"):
        knn(data, 3.0)
    X = data.copy()
    X[5, 2] = np.inf
    with pytest.raises(ValueError, match="1 row"):
        knn(X, 3)
    with pytest.raises(ValueError, match="2-D"):
        knn(data.reshape(700, 5, 6), 3)
    with pytest.raises(ValueError, match="numeric"):
        knn(np.array([["a", "b"], ["c", "d"], ["e", "f"]]), 1)
    dup = np.concatenate([data, data[:2]])
    with pytest.raises(ValueError, match="2 exact duplicate"):
        knn(dup, 3, duplicates="error")
    d, _ = knn(dup, 3)  # default "ignore": duplicates are each other's nearest neighbour
    assert d[:2, 0].max() < 1e-6


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_equals_cpu(data):
    cd, ci = knn(data, 20, device="cuda")
    d, i = knn(data, 20, device="cpu")
    np.testing.assert_array_equal(ci, i)
    np.testing.assert_allclose(cd, d, rtol=1e-10)


def test_float32_refined_path_equals_float64_path():
    """The CUDA arithmetic (float32 GEMM, float64 re-measure of candidates) run on the CPU."""
    import torch

    from lidutils.neighbors import knn_tensor

    rng = np.random.default_rng(3)
    X = torch.as_tensor(rng.normal(size=(1500, 40)) * 50 + 1000)  # large offset: cancellation
    d64, i64 = knn_tensor(X, 15, refine=False)
    d32, i32 = knn_tensor(X, 15, refine=True, memory_budget=200_000)
    np.testing.assert_allclose(d32.numpy(), d64.numpy(), rtol=1e-12)
    assert (i32.numpy() == i64.numpy()).mean() > 0.999
