"""The one definition of a factor's connectivity (hw/connectivity.py) against docs/spec.md §1.1,
and the model and the torch module against it."""

import numpy as np
import pytest

from bfly.hw.config import Factor
from bfly.hw.connectivity import (node, node_coords, input_channel, input_index, factor_product,
                                  input_grid, output_grid)
from bfly.sim.model import factor_dense, factor_apply

FACTORS = [Factor(b=1, r=4, s=4, t=4), Factor(b=4, r=4, s=4, t=1), Factor(b=2, r=2, s=2, t=2),
           Factor(b=2, r=3, s=5, t=2), Factor(b=3, r=1, s=4, t=2), Factor(b=1, r=6, s=1, t=3),
           Factor(b=1, r=4, s=8, t=1), Factor(b=5, r=1, s=1, t=1)]


def _spec_pairs(f):
    """docs/spec.md §1.1 written out: for every blk < b, i < r, u < t, j < s, output node
    ``(blk*r + i)*t + u`` reads input ``(blk*s + j)*t + u`` with its weight ``j``."""
    for blk in range(f.b):
        for i in range(f.r):
            for u in range(f.t):
                for j in range(f.s):
                    yield (blk, i, u, j), (blk * f.r + i) * f.t + u, (blk * f.s + j) * f.t + u


@pytest.mark.parametrize("f", FACTORS, ids=lambda f: "b{}r{}s{}t{}".format(f.b, f.r, f.s, f.t))
def test_connectivity_is_the_spec(f):
    idx = input_index(f)
    assert idx.shape == (f.p, f.s)
    assert (f.b * f.s * f.t, f.b * f.r * f.t) == (f.q, f.p)
    assert np.prod(input_grid(f)) == f.q and np.prod(output_grid(f)) == f.p
    seen = set()
    for (blk, i, u, j), o, c in _spec_pairs(f):
        assert node(f, blk, i, u) == o
        assert node_coords(f, o) == (blk, i, u)
        assert input_channel(f, o, j) == c
        assert idx[o, j] == c
        seen.add(o)
    assert seen == set(range(f.p))


@pytest.mark.parametrize("f", FACTORS, ids=lambda f: "b{}r{}s{}t{}".format(f.b, f.r, f.s, f.t))
def test_model_and_torch_follow_the_connectivity(f):
    rng = np.random.default_rng(f.p * 1000 + f.q)
    w = rng.integers(1, 100, size=(f.p, f.s))          # no zero weights: every link shows
    expected = np.zeros((f.p, f.q))
    for _, o, c in _spec_pairs(f):
        expected[o, c] = w[o, (c // f.t) % f.s]
    np.testing.assert_array_equal(factor_dense(f, w), expected)
    x = rng.integers(-50, 50, size=(7, f.q))
    y = factor_apply(f, w, x)
    np.testing.assert_array_equal(y, x @ expected.T.astype(np.int64))
    assert y.dtype == np.int64
    torch = pytest.importorskip("torch")
    yt = factor_product(f, torch.as_tensor(w), torch.as_tensor(x), torch.einsum)
    np.testing.assert_array_equal(yt.numpy(), y)
