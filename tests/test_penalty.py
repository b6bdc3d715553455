"""The differentiable batch penalties (lidutils.penalty)."""
import numpy as np
import pytest
import torch

import lidutils as lu
from lidutils.penalty import batch_penalty, matched_weight, penalty_gradient_norm


def _cloud(n=128, d=6, D=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, D))


def test_lid_penalty_equals_lid_mle_on_the_batch():
    X = _cloud()
    for k in (5, 10, 20):
        v = float(batch_penalty(torch.tensor(X), "lid", k))
        ref = lu.lid_mle(X, k).mean()
        assert v == pytest.approx(ref, rel=1e-5)
    # without smoothing it is the MLE itself
    assert float(batch_penalty(torch.tensor(X), "lid", 10, eps_rel=0.0)) == pytest.approx(
        lu.lid_mle(X, 10).mean(), rel=1e-10)


def test_lid_penalty_tracks_true_dimension():
    rng = np.random.default_rng(1)
    vals = []
    for d in (2, 5, 10):
        X = rng.normal(size=(256, d)) @ np.linalg.qr(rng.normal(size=(64, 64)))[0][:d]
        vals.append(float(batch_penalty(torch.tensor(X), "lid", 20)))
    assert vals[0] < vals[1] < vals[2]
    assert vals[0] == pytest.approx(2, rel=0.25)


@pytest.mark.parametrize("kind", ["lid", "norm"])
def test_gradient_finite_and_nonzero(kind):
    X = torch.tensor(_cloud(), dtype=torch.float32, requires_grad=True)
    batch_penalty(X, kind, 10).backward()
    assert torch.isfinite(X.grad).all()
    assert float(X.grad.norm()) > 0


def test_gradient_finite_with_duplicate_and_zero_rows():
    X = _cloud().astype(np.float32)
    X[1] = X[0]
    X[2] = 0.0
    t = torch.tensor(X, requires_grad=True)
    v = batch_penalty(t, "lid", 10)
    v.backward()
    assert np.isfinite(float(v)) and torch.isfinite(t.grad).all() and float(t.grad.norm()) > 0
    t.grad = None
    batch_penalty(t, "norm").backward()
    assert torch.isfinite(t.grad).all()


def test_both_penalties_scale_invariant_and_norm_is_the_cv_of_norms():
    X = torch.tensor(_cloud())
    assert float(batch_penalty(3.7 * X, "lid")) == pytest.approx(float(batch_penalty(X, "lid")), rel=1e-9)
    assert float(batch_penalty(3.7 * X, "norm")) == pytest.approx(float(batch_penalty(X, "norm")), rel=1e-9)
    r = np.linalg.norm(X.numpy(), axis=1)
    assert float(batch_penalty(X, "norm")) == pytest.approx(r.std() / r.mean(), rel=1e-5)
    sphere = X / torch.linalg.norm(X, dim=1, keepdim=True)  # every point at radius 1: no radial spread
    assert float(batch_penalty(sphere, "norm")) == pytest.approx(0.0, abs=1e-6)
    assert float(batch_penalty(sphere, "lid")) > 1  # while its local dimension is intact


def test_descending_the_penalty_moves_lid_in_the_intended_direction():
    X0 = torch.tensor(_cloud(d=8, D=16), dtype=torch.float32)
    start = lu.lid_mle(X0.numpy().astype(np.float64), 10).mean()
    ends = {}
    for lam in (+1.0, -1.0):
        X = X0.clone().requires_grad_(True)
        opt = torch.optim.Adam([X], lr=0.02)
        for _ in range(60):
            opt.zero_grad()
            (lam * batch_penalty(X, "lid", 10)).backward()
            opt.step()
        ends[lam] = lu.lid_mle(X.detach().numpy().astype(np.float64), 10).mean()
    assert ends[+1.0] < start - 0.5
    assert ends[-1.0] > start + 0.5


def test_equidistant_neighbours_are_capped():
    X = np.repeat(_cloud(n=8), 16, axis=0)  # 16 copies of each of 8 points: all 10 neighbours at distance 0
    t = torch.tensor(X, dtype=torch.float32, requires_grad=True)
    v = batch_penalty(t, "lid", 10)
    v.backward()
    assert float(v.detach()) == pytest.approx(1000.0) and torch.isfinite(t.grad).all()


def test_short_batches():
    X = torch.tensor(_cloud(n=6), requires_grad=True)
    v = batch_penalty(X, "lid", 10)  # k clipped to B - 1 = 5
    assert float(v) == pytest.approx(lu.lid_mle(X.detach().numpy(), 5).mean(), rel=1e-5)
    z = batch_penalty(X[:2], "lid", 10)
    assert float(z) == 0.0 and z.requires_grad


def test_matched_weight_matches_gradient_norms():
    X = _cloud(n=256)
    w = matched_weight(X, 0.1, k=10, batch_size=256)
    g_lid = penalty_gradient_norm(X, "lid", 10)[1]
    g_norm = penalty_gradient_norm(X, "norm")[1]
    assert w * g_norm == pytest.approx(0.1 * g_lid, rel=1e-6)
    assert matched_weight(X, -0.2, k=10, batch_size=128) == pytest.approx(
        -2 * matched_weight(X, 0.1, k=10, batch_size=128))


def test_errors():
    X = torch.tensor(_cloud())
    with pytest.raises(ValueError, match="unknown penalty"):
        batch_penalty(X, "pr")
    with pytest.raises(ValueError, match="2-D"):
        batch_penalty(X[0], "lid")
    with pytest.raises(ValueError, match="k >= 2"):
        batch_penalty(X, "lid", 1)
    with pytest.raises(ValueError, match="torch.Tensor"):
        batch_penalty(_cloud(), "lid")
    with pytest.raises(ValueError, match="batch_size"):
        matched_weight(_cloud(n=50), 0.1, batch_size=128)
