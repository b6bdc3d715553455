"""Differentiable mini-batch penalties on an embedding: local dimension and a norm control.

The intervention experiment (``notebooks/06_intervention``, :mod:`lidutils.intervention`)
adds ``lam * batch_penalty(emb, kind, k)`` to a network's training loss, where ``emb``
is the mini-batch's penultimate-layer embedding (:mod:`lidutils.zoo` does this when a
:class:`~lidutils.zoo.ZooEntry` has ``penalty_weight != 0``). ``lam > 0`` pushes the
penalised quantity down, ``lam < 0`` up.

``kind="lid"``: the batch Levina–Bickel estimate
---------------------------------------------------
For each row :math:`x_i` of the batch (:math:`B` rows), let
:math:`s_{i,1} \\le \\dots \\le s_{i,K}` be its :math:`K` smallest squared Euclidean
distances to the *other* rows of the batch (the point itself excluded) and

.. math::

    T_{ij} = \\sqrt{s_{ij} + \\varepsilon}, \\qquad
    \\varepsilon = \\varepsilon_{\\mathrm{rel}} \\cdot
        \\operatorname{sg}\\Bigl(\\frac{1}{BK}\\sum_{i,j} s_{ij}\\Bigr),

    \\hat m(x_i) = \\Bigl[\\frac{1}{K-1}\\sum_{j=1}^{K-1}\\log\\frac{T_{iK}}{T_{ij}}\\Bigr]^{-1},
    \\qquad
    \\mathrm{LID}_{\\mathrm{batch}} = \\frac{1}{B}\\sum_i \\hat m(x_i),

with :math:`\\operatorname{sg}` = stop-gradient, and :math:`\\hat m` capped at
``LID_CAP`` = 1000 (a row whose neighbours are all equidistant, e.g. copies of one
point, would otherwise give an infinite estimate; the gradient is 0 there). With :math:`\\varepsilon = 0` this is
exactly :func:`lidutils.lid_mle` on the batch's rows (mean over points). The small
relative :math:`\\varepsilon` (default ``1e-6`` of the mean squared neighbour distance,
so the estimate stays scale invariant) keeps the logarithm and the gradient of the
square root finite when two rows coincide (ReLU embeddings can collapse); on
distinct points it changes the estimate by a relative amount of order
:math:`\\varepsilon_{\\mathrm{rel}}`. The neighbour *selection* (top-k) is piecewise
constant, so the estimate is differentiable almost everywhere (except where two
neighbour distances tie), like the MLE itself.

``kind="norm"``: a dimension-unrelated control
----------------------------------------------
With :math:`r_i = \\sqrt{\\lVert x_i\\rVert^2 + \\varepsilon}` the embedding norms,

.. math::

    N_{\\mathrm{batch}} = \\frac{\\operatorname{sd}_i(r_i)}{\\operatorname{mean}_i(r_i)},

the coefficient of variation of the norms (population sd). It acts only on the
*radial* distribution of the batch (it is zero when all points lie on one sphere
around the origin, which costs at most one dimension), not on how the points are
arranged locally, and, like the LID estimate, it is scale invariant, so its
gradient shrinks and grows with :math:`1/\\text{scale}` exactly as the LID
penalty's does. (The plain mean norm was tried first: its gradient has the constant
Frobenius norm :math:`1/\\sqrt B`, so a weight matched to the LID penalty on trained
embeddings drove the ReLU embeddings of every network to zero, test accuracy at
chance, 0.100 — a control that destroys the network says nothing.)

"Same magnitude" is defined as **the same gradient norm on the embeddings**:
:func:`matched_weight` returns the weight
:math:`\\lambda_N = \\lambda \\cdot \\operatorname{mean}_b\\lVert\\nabla_X \\mathrm{LID}_{\\mathrm{batch}}(X_b)\\rVert_F
/ \\operatorname{mean}_b\\lVert\\nabla_X N_{\\mathrm{batch}}(X_b)\\rVert_F` over reference
batches (the unregularised networks' evaluation embeddings in the experiment), so
that both penalties push the embedding equally hard per step.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["batch_penalty", "PENALTIES", "penalty_gradient_norm", "matched_weight"]

#: Known penalty kinds.
PENALTIES = ("lid", "norm")

EPS_REL = 1e-6
#: Per-point cap of the batch estimate: a row whose k neighbours all lie at the same
#: distance (e.g. copies of one point) has an infinite MLE; it is capped here.
LID_CAP = 1000.0


def _check_emb(emb):
    if not isinstance(emb, torch.Tensor):
        raise ValueError(f"emb must be a torch.Tensor (B, D) so gradients can flow, got {type(emb).__name__}; "
                         "wrap arrays with torch.as_tensor.")
    if emb.ndim != 2:
        raise ValueError(f"emb must be 2-D (batch, features), got shape {tuple(emb.shape)}; "
                         "flatten the embedding first.")
    if not emb.is_floating_point():
        raise ValueError(f"emb must be a floating-point tensor, got {emb.dtype}.")


def _lid_batch(emb, k, eps_rel):
    """Per-row smoothed Levina–Bickel MLE inside the batch (see the module docstring)."""
    B = emb.shape[0]
    k = min(int(k), B - 1)
    if k < 2:
        return None
    norms = (emb * emb).sum(1)
    sq = (norms[:, None] + norms[None, :] - 2.0 * (emb @ emb.T)).clamp_min(0.0)
    eye = torch.eye(B, dtype=torch.bool, device=emb.device)
    sq = sq.masked_fill(eye, float("inf"))
    s, _ = torch.topk(sq, k, dim=1, largest=False, sorted=True)  # ascending, self excluded
    eps = eps_rel * s.detach().mean().clamp_min(torch.finfo(s.dtype).tiny)
    logt = 0.5 * torch.log(s + eps)
    logratio = logt[:, k - 1:k] - logt[:, :k - 1]  # log(T_K / T_j), j < K
    return 1.0 / (logratio.sum(1) / (k - 1)).clamp_min(1.0 / LID_CAP)


def batch_penalty(emb, kind="lid", k=10, eps_rel=EPS_REL):
    """Differentiable mini-batch penalty of an embedding: local ID or mean norm.

    Parameters
    ----------
    emb : torch.Tensor of shape (B, D)
        The mini-batch's embeddings (rows = images), part of the autograd graph.
    kind : {"lid", "norm"}
        ``"lid"``: mean smoothed Levina–Bickel MLE over the batch with each row's
        ``k`` nearest *other* rows of the batch as its neighbours (module
        docstring); ``"norm"``: coefficient of variation of the embedding norms
        (the control, module docstring).
    k : int
        Neighbours per row for ``"lid"`` (``k >= 2``). A batch with fewer than
        ``k + 1`` rows (a training loop's last, short batch) uses ``k = B - 1``;
        a batch of fewer than 3 rows gives a zero penalty (still in the graph).
        Ignored for ``"norm"``.
    eps_rel : float
        Relative smoothing :math:`\\varepsilon_{\\mathrm{rel}}` (>= 0).

    Returns
    -------
    torch.Tensor
        Scalar, same dtype and device as ``emb``.
    """
    _check_emb(emb)
    if kind not in PENALTIES:
        raise ValueError(f"unknown penalty kind {kind!r}; choose one of {PENALTIES}.")
    if not eps_rel >= 0:
        raise ValueError(f"eps_rel must be >= 0, got {eps_rel!r}.")
    if kind == "norm":
        sq = (emb * emb).sum(1)
        eps = eps_rel * sq.detach().mean().clamp_min(torch.finfo(emb.dtype).tiny)
        r = torch.sqrt(sq + eps)
        return r.std(correction=0) / r.mean()
    if int(k) != k or k < 2:
        raise ValueError(f"k={k!r}: the LID penalty compares the K-th neighbour distance with closer "
                         "ones and needs an integer k >= 2 (e.g. 10).")
    m = _lid_batch(emb, int(k), eps_rel)
    if m is None:
        return emb.sum() * 0.0
    return m.mean()


def penalty_gradient_norm(emb, kind="lid", k=10):
    """Frobenius norm of the gradient of :func:`batch_penalty` with respect to ``emb``.

    ``emb`` : array-like or tensor (B, D), treated as a constant batch (a leaf).
    Returns ``(value, grad_norm)`` as floats.
    """
    x = torch.as_tensor(np.asarray(emb) if not isinstance(emb, torch.Tensor) else emb.detach())
    x = x.to(torch.float32).clone().requires_grad_(True)
    v = batch_penalty(x, kind, k)
    (g,) = torch.autograd.grad(v, x)
    return float(v.detach()), float(torch.linalg.norm(g))


def matched_weight(emb, lam, k=10, batch_size=128, seed=0):
    """Weight of the norm penalty whose embedding gradient matches ``lam`` x the LID penalty's.

    .. math::

        \\lambda_N = \\lambda \\cdot
        \\frac{\\operatorname{mean}_b \\lVert\\nabla_X \\mathrm{LID}_{\\mathrm{batch}}(X_b)\\rVert_F}
             {\\operatorname{mean}_b \\lVert\\nabla_X N_{\\mathrm{batch}}(X_b)\\rVert_F}

    over disjoint random batches :math:`X_b` of ``batch_size`` rows of ``emb``
    (e.g. the unregularised networks' evaluation embeddings).

    Parameters
    ----------
    emb : array-like (N, D) or list of such arrays (pooled: one ratio over all batches)
    lam : float
    k, batch_size, seed : as in training (``batch_size`` rows per batch, ``N >= batch_size``).

    Returns
    -------
    float
    """
    arrays = emb if isinstance(emb, (list, tuple)) else [emb]
    rng = np.random.default_rng(seed)
    g_lid, g_norm = [], []
    for X in arrays:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or len(X) < batch_size:
            raise ValueError(f"each emb must be 2-D with >= batch_size={batch_size} rows, got {X.shape}.")
        order = rng.permutation(len(X))
        for i in range(0, len(X) - batch_size + 1, batch_size):
            b = X[order[i:i + batch_size]]
            g_lid.append(penalty_gradient_norm(b, "lid", k)[1])
            g_norm.append(penalty_gradient_norm(b, "norm", k)[1])
    return float(lam) * float(np.mean(g_lid)) / float(np.mean(g_norm))
