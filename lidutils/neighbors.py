"""Exact k-nearest-neighbour search by blockwise GEMM in torch.

Squared Euclidean distances are computed block of rows by block of rows as

.. math:: \\lVert x_i - x_j \\rVert^2 = \\lVert x_i \\rVert^2 + \\lVert x_j \\rVert^2 - 2\\, x_i^\\top x_j ,

so the work is one matrix product per block (fast on CPU BLAS and on GPUs) and
memory stays within ``memory_budget`` bytes: only a ``(block, N)`` slab of
distances exists at any time, never the full ``N x N`` matrix.

Two paths give the same result (indices equal up to exact ties, distances to
about 1e-14 relative):

* **float32 search, float64 re-rank** (on CUDA, and on the CPU when the
  candidates are few, ``k + margin <= N / 64``): the product runs in float32,
  the ``c = k + margin`` best candidates of each row are re-measured in float64
  as :math:`\\sum_d (x_{id} - x_{jd})^2` and re-sorted. A row is accepted only
  when no point outside its candidates can beat its ``k``-th float64 distance
  despite float32 rounding (see :func:`float32_error_bound`):

  .. math:: T^2_{(k)}(x_i) < \\tilde d^2_{(c)}(x_i) - E_i ,

  with :math:`\\tilde d^2_{(c)}` the largest float32 candidate value and
  :math:`E_i = c_D(\\lVert x_i\\rVert^2 + \\max_j \\lVert x_j\\rVert^2)` a rigorous bound on the
  float32 error of every entry of the row, the max over the points with
  :math:`\\lVert x_j\\rVert \\le \\lVert x_i\\rVert + T_{(k)}` (the others are farther than
  :math:`T_{(k)}` by the triangle inequality).
  Rows that fail (rare: near-ties across the margin) are searched again in
  float64.
* **float64 search** (the CPU with many candidates, where re-measuring them
  would cost more than the float64 product saves).
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from lidutils._device import resolve_device, to_numpy, to_tensor
from lidutils._validation import check_k, check_representation

DEFAULT_MEMORY_BUDGET = 512 * 2**20  # bytes for one distance slab
TILE_ROWS = 4096  # tile side of the symmetric float32 search (wide rows: fast topk)
REFINE_BLOCK_BYTES = 2**20  # gathered candidates per float64 re-measure step (fits L2)

_U32 = 2.0 ** -24  # unit roundoff of float32
_U64 = 2.0 ** -53


def knn(X, k, device="auto", memory_budget=DEFAULT_MEMORY_BUDGET, duplicates="ignore"):
    """Exact k nearest neighbours of every row of ``X`` among the other rows.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Points; NaN/inf raise ``ValueError``.
    k : int
        Number of neighbours, ``1 <= k < n_samples``; the point itself is excluded.
    device : {"auto", "cpu", "cuda"} or torch.device
        ``"auto"`` uses CUDA when available.
    memory_budget : int
        Bytes allowed for one block of the distance matrix (default 512 MiB);
        N = 100 000 points then need about 0.5 GiB beyond the data itself.
    duplicates : {"ignore", "error", "drop"}
        Policy for exact duplicate rows (see :func:`lidutils._validation.handle_duplicates`).
        kNN itself is well defined with duplicates (distance 0), so the default is
        ``"ignore"``; LID estimators default to ``"error"``.

    Returns
    -------
    dist : ndarray of shape (n_samples, k), float64
        Euclidean distances to the neighbours, ascending along each row.
    idx : ndarray of shape (n_samples, k), int64
        Row indices of the neighbours.
    """
    X = check_representation(X, duplicates=duplicates)
    k = check_k(k, X.shape[0])
    dev = resolve_device(device)
    dist, idx = knn_tensor(to_tensor(X, dev, torch.float64), k, memory_budget)
    return to_numpy(dist), to_numpy(idx)


def float32_error_bound(n_features):
    """Constant :math:`c` of the float32 error bound :math:`E_{ij} \\le c\\,(\\lVert x_i\\rVert^2 + \\lVert x_j\\rVert^2)`.

    For centred float64 points :math:`x` rounded to float32 (:math:`\\hat x = x(1+\\delta)`,
    :math:`|\\delta| \\le u = 2^{-24}`), the float32 value
    :math:`\\mathrm{fl}(\\lVert\\hat x_j\\rVert^2 - 2\\hat x_i^\\top \\hat x_j) + \\lVert x_i\\rVert^2`
    differs from :math:`\\lVert x_i - x_j\\rVert^2` by at most

    .. math::

        (3\\gamma_{D+2} + 4u)(1+u)^2 (\\lVert x_i\\rVert + \\lVert x_j\\rVert)^2
        \\le c\\,(\\lVert x_i\\rVert^2 + \\lVert x_j\\rVert^2),

    :math:`\\gamma_n = nu/(1-nu)`: the dot product and the squared norms, whatever
    the summation order of the BLAS (Higham 2002, eq. 3.5), plus the rounding of
    the inputs and the exact :math:`\\lVert x_i\\rVert^2` added in place of
    :math:`\\lVert\\hat x_i\\rVert^2`. Returns ``inf`` when :math:`(D+2)u \\ge 1/2`, where float32 gives
    no guarantee (the float64 search is then used).
    """
    nu = (n_features + 2) * _U32
    if nu >= 0.5:
        return float("inf")
    gamma = nu / (1 - nu)
    # (a + b)^2 <= 2 (a^2 + b^2); 1.01 absorbs the (1 + u) factors and float64 rounding
    return 1.01 * 2.0 * (3.0 * gamma + 4.0 * _U32)


@contextlib.contextmanager
def _full_float32_matmul():
    """Run float32 products in true float32 (no TF32/bf16), as the error bound assumes."""
    old = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(old)


def knn_tensor(X, k, memory_budget=DEFAULT_MEMORY_BUDGET, refine=None, margin=None,
               return_stats=False):
    """Core of :func:`knn` on a validated 2-D tensor; returns float64 ``(dist, idx)`` tensors.

    Parameters
    ----------
    X : tensor of shape (n, D)
    k : int
    memory_budget : int
        Bytes for one ``(block, n)`` slab of the distance matrix.
    refine : bool, optional
        ``True``: float32 search with verified float64 re-rank; ``False``: float64
        search. Default: ``True`` on CUDA, and on the CPU when ``64 (k + margin) <= n``.
    margin : int, optional
        Extra float32 candidates per row, default ``max(8, k // 4)``. A smaller margin
        only makes the float64 fallback more frequent, never the result different.
    return_stats : bool
        Also return ``{"fallback_rows": int, "path": "float32" | "float64"}``.
    """
    n, n_features = X.shape
    exact = X.double()
    exact = exact - exact.mean(0, keepdim=True)  # translation-invariant; less cancellation
    if margin is None:
        margin = max(8, k // 4)
    if refine is None:
        refine = X.device.type != "cpu" or 64 * (k + margin) <= n
    if not np.isfinite(float32_error_bound(n_features)):
        refine = False
    stats = {"fallback_rows": 0, "path": "float32" if refine else "float64"}
    sq64 = (exact * exact).sum(1)
    if refine:
        with _full_float32_matmul():
            dist, idx, failed = _search_float32(exact, sq64, k, margin, memory_budget)
        if failed.numel():
            stats["fallback_rows"] = int(failed.numel())
            fd, fi = _search_float64(exact, sq64, k, memory_budget, rows=failed, margin=margin)
            dist[failed], idx[failed] = fd, fi
    else:
        dist, idx = _search_float64(exact, sq64, k, memory_budget)
    dist = dist.clamp_min_(0).sqrt_()
    return (dist, idx, stats) if return_stats else (dist, idx)


def _block_rows(n_rows, n_cols, itemsize, memory_budget):
    """Rows per ``(block, n_cols)`` slab that fit ``memory_budget`` bytes (at least 1)."""
    return max(1, min(n_rows, int(memory_budget // (n_cols * itemsize))))


def _search_float32(exact, sq64, k, margin, memory_budget):
    """float32 search of ``k + margin`` candidates, float64 re-rank, per-row check.

    The float32 distance matrix is symmetric, so only the tiles on and above the
    diagonal are computed (half the GEMM of a row-block search): each tile's
    candidates are merged into the running best of its rows and, transposed, of
    its columns. Returns squared float64 distances ``(n, k)``, indices, and the
    rows that failed the check :math:`T^2_{(k)} < \\tilde d^2_{(c)} - E_i`.
    """
    n = exact.shape[0]
    dev = exact.device
    X = exact.float()
    sq = (X * X).sum(1)
    c = min(n - 1, k + margin)
    # tiles >= 64 c wide keep topk on its fast partial-sort path; two tiles fit the budget
    tile = max(1, min(n, max(TILE_ROWS, 64 * c), int((memory_budget / 8) ** 0.5)))
    starts = list(range(0, n, tile))
    pieces = {a: [] for a in starts}  # per row block: (values, indices) of its tiles

    def reduce(a):  # keep the c best of a row block's pieces
        if dev.type == "cpu":  # small arrays: numpy, no thread start-up on a busy CPU
            vals = np.concatenate([v.numpy() for v, _ in pieces[a]], 1)
            idx = np.concatenate([i.numpy() for _, i in pieces[a]], 1)
            if vals.shape[1] > c:
                order = np.argpartition(vals, c - 1, axis=1)[:, :c]
                vals = np.take_along_axis(vals, order, 1)
                idx = np.take_along_axis(idx, order, 1)
            pieces[a] = [(torch.from_numpy(vals), torch.from_numpy(idx))]
            return
        vals = torch.cat([v for v, _ in pieces[a]], 1)
        idx = torch.cat([i for _, i in pieces[a]], 1)
        if vals.shape[1] > c:
            vals, order = torch.topk(vals, c, dim=1, largest=False, sorted=False)
            idx = torch.gather(idx, 1, order)
        pieces[a] = [(vals, idx)]

    def add(a, d2, offset):
        vals, idx = torch.topk(d2, min(c, d2.shape[1]), dim=1, largest=False, sorted=False)
        pieces[a].append((vals, idx + offset))
        if len(pieces[a]) >= 8:  # bounds memory at 8 (tile, c) pieces per row block
            reduce(a)

    for a in starts:
        ra = slice(a, min(n, a + tile))
        for b in starts[starts.index(a):]:
            rb = slice(b, min(n, b + tile))
            d2 = torch.addmm(sq[None, rb], X[ra], X[rb].T, beta=1.0, alpha=-2.0)
            d2 += sq[ra, None]
            if a == b:
                d2.fill_diagonal_(float("inf"))  # exclude self
            add(a, d2, b)
            if a != b:
                add(b, d2.T.contiguous(), a)  # topk on a strided view is 2x slower
        reduce(a)  # row block a is complete: its tiles left of the diagonal came earlier
    best = torch.cat([pieces[a][0][0] for a in starts])
    best_idx = torch.cat([pieces[a][0][1] for a in starts])
    edge = best.max(1).values.double()  # c-th smallest float32 value of each row
    exact_d2, cand = _refine(exact, 0, best_idx, memory_budget)
    if c < n - 1:  # points outside the candidates exist: check none can enter
        # E_i = c (|x_i|^2 + max |x_j|^2) over the points j that could be closer than T_k:
        # |x_j| > |x_i| + T_k puts j beyond T_k whatever float32 says, so an outlier's
        # large norm does not inflate the bound of every row
        reach = ((sq64.sqrt() + exact_d2[:, k - 1].clamp_min(0).sqrt()) * (1 + 1e-9)) ** 2
        err = float32_error_bound(exact.shape[1]) * (sq64 + torch.minimum(reach, sq64.max()))
        failed = torch.nonzero(~(exact_d2[:, k - 1] < edge - err)).flatten()
    else:
        failed = torch.empty(0, dtype=torch.int64, device=dev)
    return exact_d2[:, :k].contiguous(), cand[:, :k].contiguous(), failed


def _search_float64(exact, sq64, k, memory_budget, rows=None, margin=0):
    """float64 GEMM search of the given rows (all by default); squared distances.

    With ``margin > 0`` the ``k + margin`` best candidates are re-measured as
    differences (as the float32 path does), so fallback rows match it.
    """
    n = exact.shape[0]
    rows = torch.arange(n, device=exact.device) if rows is None else rows
    n_cand = min(n - 1, k + margin)
    block = _block_rows(len(rows), n, 8, memory_budget)
    dists, idxs = [], []
    for s in range(0, len(rows), block):
        r = rows[s:s + block]
        d2 = torch.addmm(sq64[None, :], exact[r], exact.T, beta=1.0, alpha=-2.0)
        d2[torch.arange(len(r), device=exact.device), r] = float("inf")  # exclude self
        # unsorted selection, then sort only the selected: cheaper than a sorted topk
        cand_d2, cand = torch.topk(d2, n_cand, dim=1, largest=False, sorted=False)
        del d2
        if margin:
            cand_d2, cand = _refine(exact, r, cand, memory_budget)
        else:
            cand_d2, cand = _sort_rows(cand_d2 + sq64[r, None], cand)
        dists.append(cand_d2[:, :k])
        idxs.append(cand[:, :k])
    return torch.cat(dists), torch.cat(idxs)


def _refine(exact, rows, cand, memory_budget):
    """Re-measure candidates as :math:`\\sum_d (x_{id} - x_{jd})^2` in float64 and re-sort.

    ``rows`` is the first row index of a contiguous block or a tensor of row indices.
    Sub-blocks of at most 1 MiB of gathered candidates stay in cache. On the CPU the
    loop runs in numpy (single-threaded small operations: torch's threaded ones were
    2-10x slower on a busy machine).
    """
    b, c = cand.shape
    d = exact.shape[1]
    if isinstance(rows, int):
        rows = torch.arange(rows, rows + b, device=exact.device)
    step = max(1, int(min(memory_budget, REFINE_BLOCK_BYTES) // (c * d * 8)))
    if exact.device.type == "cpu":
        Xn, cn, rn = exact.numpy(), cand.numpy(), rows.numpy()
        outn = np.empty((b, c))
        for s in range(0, b, step):
            diff = np.take(Xn, cn[s:s + step], axis=0)
            diff -= Xn[rn[s:s + step], None, :]
            np.einsum("bcd,bcd->bc", diff, diff, out=outn[s:s + step])
        out = torch.from_numpy(outn)
    else:
        out = torch.empty(b, c, dtype=torch.float64, device=exact.device)
        for s in range(0, b, step):
            cs = cand[s:s + step]
            diff = exact.index_select(0, cs.reshape(-1)).view(cs.shape[0], c, d)
            diff -= exact[rows[s:s + step], None, :]
            out[s:s + step] = (diff * diff).sum(2)
    return _sort_rows(out, cand)


def _sort_rows(vals, idx):
    """Sort each row of ``vals`` ascending and carry ``idx`` along."""
    vals, order = torch.sort(vals, dim=1)
    return vals, torch.gather(idx, 1, order)
