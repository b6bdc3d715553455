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
    np.testing.assert_array_equal(i32.numpy(), i64.numpy())  # no ties in continuous data


# ----------------------------------------------------------------------------- float32 search, float64 re-rank
def _reference(X, k):
    """Exact kNN by direct differences (scipy cdist), ties broken by index."""
    from scipy.spatial.distance import cdist

    D = cdist(X, X)
    np.fill_diagonal(D, np.inf)
    idx = np.argsort(D, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(D, idx, 1), idx


def assert_same_knn(X, dist, idx, k):
    """Distances equal the exact ones to 1e-12; indices equal up to exact ties: every
    returned index is at its returned distance, so the sets differ only within ties."""
    ref_d1, ref_i1 = _reference(X, k + 1)
    ref_d, ref_i = ref_d1[:, :k], ref_i1[:, :k]
    scale = ref_d.max()
    np.testing.assert_allclose(dist, ref_d, rtol=1e-12, atol=1e-12 * scale)
    own = np.linalg.norm(X[idx] - X[:, None, :], axis=-1)
    np.testing.assert_allclose(own, dist, rtol=1e-12, atol=1e-12 * scale)
    assert not (idx == np.arange(len(X))[:, None]).any()
    assert (np.sort(idx, 1)[:, 1:] != np.sort(idx, 1)[:, :-1]).all()  # no repeats
    untied = (np.diff(ref_d1, axis=1) > 1e-9 * scale).all(1)  # incl. the (k+1)-th
    np.testing.assert_array_equal(idx[untied], ref_i[untied])


def _search(X, k, **kw):
    from lidutils.neighbors import knn_tensor

    d, i, stats = knn_tensor(torch.as_tensor(X), k, refine=True, return_stats=True, **kw)
    return d.numpy(), i.numpy(), stats


@pytest.mark.parametrize("D", [3, 30, 300])
def test_float32_search_exact_random(D):
    rng = np.random.default_rng(D)
    X = rng.normal(size=(900, D)) * rng.uniform(0.1, 3, size=D) + 50.0  # offset: cancellation
    d, i, stats = _search(X, 10, memory_budget=300_000)  # several tiles
    assert stats["path"] == "float32"
    assert_same_knn(X, d, i, 10)


def test_float32_search_duplicates():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(300, 20))
    X = np.concatenate([base, base[:40], base[:10]])  # pairs and triples of exact copies
    d, i, _ = _search(X, 6, memory_budget=200_000)
    assert_same_knn(X, d, i, 6)
    assert (d[:40, 0] == 0).all() and (d[:10, 1] == 0).all()


def test_float32_search_clustered_near_ties():
    """Tight clusters on a lattice: many exact ties and near-ties of 1e-7 relative,
    below float32 resolution, where the float32 ranking alone is wrong."""
    rng = np.random.default_rng(2)
    grid = np.stack(np.meshgrid(*[np.arange(4.0)] * 3), -1).reshape(-1, 3)  # 64 lattice points
    X = np.concatenate([grid + 1e-7 * rng.normal(size=grid.shape) for _ in range(6)])
    X = np.concatenate([X, 1e3 + rng.normal(size=(200, 3))])  # a far cluster: large norms
    X = np.c_[X, np.zeros((len(X), 5))]
    d, i, stats = _search(X, 12, margin=2)
    assert_same_knn(X, d, i, 12)
    assert stats["fallback_rows"] > 0  # the check caught rows float32 cannot order


def test_float32_search_forced_fallback():
    """margin=0 leaves no room: every row fails the check and is searched in float64."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(500, 40))
    d, i, stats = _search(X, 7, margin=0)
    assert stats["fallback_rows"] == 500
    assert_same_knn(X, d, i, 7)
    d2, i2, stats2 = _search(X, 7)
    assert stats2["fallback_rows"] == 0
    np.testing.assert_array_equal(i2, i)
    np.testing.assert_allclose(d2, d, rtol=1e-14)


def test_float32_error_bound_holds():
    """The bound used by the check covers the float32 error actually made."""
    from lidutils.neighbors import float32_error_bound

    rng = np.random.default_rng(5)
    for D in (2, 50, 300):
        X = rng.normal(size=(400, D)) * 10.0 ** rng.uniform(-2, 2, size=D)
        X -= X.mean(0)
        x32 = torch.as_tensor(X, dtype=torch.float32)
        sq32 = (x32 * x32).sum(1)
        approx = (torch.addmm(sq32[None], x32, x32.T, beta=1.0, alpha=-2.0) + sq32[:, None]).double()
        exact = ((X[:, None] - X[None]) ** 2).sum(-1)
        sq = (X * X).sum(1)
        err = np.abs(approx.numpy() - exact)
        assert (err <= float32_error_bound(D) * (sq[:, None] + sq[None])).all()
    assert float32_error_bound(10**8) == float("inf")


def test_matmul_precision_restored():
    old = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        rng = np.random.default_rng(6)
        X = rng.normal(size=(300, 10))
        d, i, _ = _search(X, 5)
        assert_same_knn(X, d, i, 5)
        assert torch.get_float32_matmul_precision() == "medium"
    finally:
        torch.set_float32_matmul_precision(old)


def test_knn_default_path_is_float32_and_exact():
    """Through the public knn: N >= 64 (k + margin) takes the float32 path on the CPU."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(1200, 300))
    d, i = knn(X, 5)
    assert_same_knn(X, d, i, 5)


def test_float32_search_outlier_does_not_force_fallback():
    """A far outlier's norm only enters the error bound of the rows it could reach."""
    rng = np.random.default_rng(10)
    X = rng.normal(size=(1500, 100))
    X[0] *= 1000.0
    d, i, stats = _search(X, 8)
    assert stats["fallback_rows"] <= 1  # without the reach limit: every row fell back
    assert_same_knn(X, d, i, 8)
