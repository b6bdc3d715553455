"""Shared test fixtures: small synthetic data with known intrinsic dimension."""
from __future__ import annotations

import os

# The suite runs as two xdist workers on the project's two cores, and its slow tests start
# processes of their own (notebook kernels, grading runs, book builds): one math thread in every
# one of them. Set before numpy and torch load (and inherited by those processes), because two
# workers each spinning two OpenMP/BLAS threads cost the suite 20 % of its time (measured:
# 481 s -> 389 s wall, 830 -> 690 CPU-s) and made small float64 SVDs up to 47x slower.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


def _sphere(rng, n, d):
    z = rng.normal(size=(n, d + 1))
    return z / np.linalg.norm(z, axis=1, keepdims=True)  # uniform on S^d in R^(d+1)


def _cube(rng, n, d):
    return rng.uniform(size=(n, d))  # uniform in [0, 1]^d


def _torus(rng, n, d):
    theta = rng.uniform(0, 2 * np.pi, size=(n, d))  # flat torus (S^1)^d in R^(2d)
    return np.concatenate([np.cos(theta), np.sin(theta)], axis=1)


_MANIFOLDS = {"sphere": _sphere, "cube": _cube, "torus": _torus}


def make_rotated_manifold(kind, n, d, D, seed=0):
    """Uniform sample of a d-dim ``kind`` ("sphere", "cube", "torus"), isometrically
    embedded in R^D by a random orthonormal map (so distances are preserved)."""
    rng = np.random.default_rng(seed)
    Z = _MANIFOLDS[kind](rng, n, d)
    if D < Z.shape[1]:
        raise ValueError(f"D={D} is smaller than the embedding dimension {Z.shape[1]}.")
    Q, _ = np.linalg.qr(rng.normal(size=(D, Z.shape[1])))  # D x m, orthonormal columns
    return Z @ Q.T


@pytest.fixture
def rotated_manifold():
    """Factory fixture: ``rotated_manifold(kind, n, d, D, seed=0)`` -> (n, D) array."""
    return make_rotated_manifold


#: The slowest modules (module fixtures of minutes), longest first. With ``--dist loadscope``
#: (the Makefile's) a module is one unit of work handed to whichever test process is free, in
#: collection order: starting the long ones first lets the two processes end together instead
#: of one running the notebooks' smoke run alone at the end.
SLOW_FIRST = ("tests/book/test_notebooks.py", "tests/book/test_course.py", "tests/test_models.py")


def pytest_collection_modifyitems(config, items):
    rank = {m: i for i, m in enumerate(SLOW_FIRST)}
    items.sort(key=lambda it: rank.get(it.nodeid.split("::")[0], len(rank)))  # stable: the rest keep their order
