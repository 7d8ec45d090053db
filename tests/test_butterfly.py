"""Torch butterfly modules against the golden model's float reference and dense matrices."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from bfly.hw.config import EngineConfig
from bfly.sim.model import chain_float, factor_dense
from bfly.sw.butterfly import (ButterflyTransform, BFTConv2d, pointwise_chain, replace_pointwise,
                          parameter_groups, eq9_bound, _factor_matrix)

CHAINS = [
    EngineConfig.bft(16, 4).factors,
    EngineConfig.mixed_radix([4, 4, 3]).factors,
    EngineConfig.from_chain([[32, 64, 2, 4, 4], [16, 32, 1, 2, 8]]).factors,
    tuple(pointwise_chain(24, 40, 4)),
    tuple(pointwise_chain(40, 24, 4)),
]


@pytest.mark.parametrize("factors", CHAINS, ids=lambda f: f"{f[0].q}to{f[-1].p}_{len(f)}")
def test_forward_equals_dense_and_golden_float(factors):
    torch.manual_seed(0)
    bt = ButterflyTransform(factors).double()
    x = torch.randn(7, 3, bt.n_in, dtype=torch.float64)
    y = bt(x)
    m = bt.dense_matrix()
    torch.testing.assert_close(y, x @ m.T)
    weights = [w.detach().numpy() for w in bt.weights]
    np.testing.assert_allclose(y.reshape(-1, bt.n_out).detach().numpy(),
                               chain_float(factors, weights, x.reshape(-1, bt.n_in).numpy()),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("factors", CHAINS, ids=lambda f: f"{f[0].q}to{f[-1].p}_{len(f)}")
def test_gradients_equal_dense_product(factors):
    torch.manual_seed(1)
    bt = ButterflyTransform(factors).double()
    x = torch.randn(11, bt.n_in, dtype=torch.float64)
    g = torch.randn(11, bt.n_out, dtype=torch.float64)
    (bt(x) * g).sum().backward()
    got = [w.grad.clone() for w in bt.weights]
    # independent path: the product of scattered factor matrices
    ws = [w.detach().clone().requires_grad_(True) for w in bt.weights]
    m = None
    for f, w in zip(bt.factors, ws):
        fm = _factor_matrix(f, w)
        m = fm if m is None else fm @ m
    ((x @ m.T) * g).sum().backward()
    for a, b in zip(got, ws):
        torch.testing.assert_close(a, b.grad)


@pytest.mark.parametrize("factors", CHAINS, ids=lambda f: f"{f[0].q}to{f[-1].p}_{len(f)}")
def test_each_factor_has_the_butterfly_pattern(factors):
    bt = ButterflyTransform(factors)
    for f, w in zip(bt.factors, bt.weights):
        m = factor_dense(f, w.detach().numpy())
        assert np.count_nonzero(m) == f.p * f.s
        assert np.array_equal(m != 0, factor_dense(f, np.ones((f.p, f.s))) != 0)


def test_residual_and_drop_in_conv():
    torch.manual_seed(2)
    conv = BFTConv2d(16, 16, k=4, bias=True, residual=True).double()
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(2, 16, 5, 6, dtype=torch.float64)
    m = conv.transform.dense_matrix()
    want = nn.functional.conv2d(x, m[:, :, None, None], conv.bias)
    torch.testing.assert_close(conv(x), want)
    # the residual is part of the dense matrix: B + I
    no_res = ButterflyTransform(conv.transform.factors).double()
    no_res.load_state_dict(conv.transform.state_dict())
    torch.testing.assert_close(m, no_res.dense_matrix() + torch.eye(16, dtype=torch.float64))


@pytest.mark.parametrize("c_in,c_out", [(16, 16), (48, 48), (24, 40), (40, 24), (8, 64), (64, 8), (7, 7)])
def test_pointwise_chain_mixes_every_channel(c_in, c_out):
    chain = pointwise_chain(c_in, c_out, 4)
    cfg = EngineConfig(factors=tuple(chain))
    assert (cfg.n_in, cfg.n_out) == (c_in, c_out)
    pattern = None
    for f in chain:
        m = factor_dense(f, np.ones((f.p, f.s)))
        pattern = m if pattern is None else m @ pattern
    assert (pattern > 0).all(), "some output does not depend on some input"
    assert cfg.n_weights < c_in * c_out or c_in * c_out <= 64


@pytest.mark.parametrize("n,k", [(64, 4), (256, 4), (64, 2)])
def test_eq9_initialization_statistics(n, k):
    """Mean absolute entry of the product matrix is near the Xavier target x/2 (paper, eq. 8)."""
    target = math.sqrt(6.0 / (2 * n)) / 2
    means = []
    for seed in range(5):
        torch.manual_seed(seed)
        bt = ButterflyTransform(EngineConfig.bft(n, k))
        means.append(bt.dense_matrix().abs().mean().item())
    assert abs(np.mean(means) / target - 1) < 0.15, (np.mean(means), target)
    L = round(math.log(n, k))
    x = math.sqrt(6.0 / (2 * n))
    assert eq9_bound(EngineConfig.bft(n, k).factors) == pytest.approx(x ** (1 / L) * 2 ** ((L - 1) / L))


def test_replace_pointwise_and_parameter_groups():
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 32, 1), nn.ReLU(),
                          nn.Sequential(nn.Conv2d(32, 32, 1, bias=False), nn.Conv2d(32, 32, 3, padding=1, groups=32)))
    assert replace_pointwise(model, k=4) == 2
    assert isinstance(model[1], BFTConv2d) and isinstance(model[3][0], BFTConv2d)
    assert isinstance(model[0], nn.Conv2d) and isinstance(model[3][1], nn.Conv2d)
    assert model(torch.randn(1, 3, 8, 8)).shape == (1, 32, 8, 8)
    groups = parameter_groups(model, 1e-4)
    assert groups[0]["weight_decay"] == 0.0 and groups[1]["weight_decay"] == 1e-4
    butterfly_ids = {id(p) for p in groups[0]["params"]}
    assert butterfly_ids == {id(w) for m in (model[1], model[3][0]) for w in m.transform.weights}
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(list(model.parameters()))
