"""Which inputs feed each output node of a butterfly factor, and with which weight
(``docs/spec.md`` §1.1): the one definition that the golden model, the torch module and the
hardware stages use.

A factor ``(b, r, s, t)`` reads ``q = b*s*t`` channels, the row-major grid ``(b, s, t)`` (input
``(blk, j, u)`` is channel ``(blk*s + j)*t + u``), and writes ``p = b*r*t`` channels, the grid
``(b, r, t)`` (node ``(blk, i, u)`` is channel ``o = (blk*r + i)*t + u``). Node ``(blk, i, u)``
is the dot product of the ``s`` inputs ``(blk, j, u)``, ``0 <= j < s``, input ``j`` with weight
``W[o, j]`` of the factor's ``(p, s)`` weight array.

The index functions use only ``+``, ``*``, ``//`` and ``%``, so they take Python ints, NumPy arrays
and torch tensors alike: the hardware computes its wiring at elaboration time with the same code.
"""

import numpy as np

__all__ = ["input_grid", "output_grid", "node", "node_coords", "input_channel", "input_index",
           "factor_product"]


def input_grid(f):
    """``(b, s, t)``: the factor's ``q`` input channels as a row-major grid ``[blk, j, u]``."""
    return (f.b, f.s, f.t)


def output_grid(f):
    """``(b, r, t)``: the factor's ``p`` output nodes as a row-major grid ``[blk, i, u]``."""
    return (f.b, f.r, f.t)


def _flat(grid, coords):
    index = 0
    for size, c in zip(grid, coords):
        index = index * size + c
    return index


def _coords(grid, index):
    coords = []
    for size in reversed(grid[1:]):
        coords.append(index % size)
        index = index // size
    return (index, *reversed(coords))


def node(f, blk, i, u):
    """The output channel ``o`` of node ``(blk, i, u)``: ``(blk*r + i)*t + u``."""
    return _flat(output_grid(f), (blk, i, u))


def node_coords(f, o):
    """``(blk, i, u)`` of output channel ``o`` (the inverse of :func:`node`)."""
    return _coords(output_grid(f), o)


def input_channel(f, o, j):
    """The input channel that output ``o`` reads with its weight ``W[o, j]``: ``(blk*s + j)*t + u``."""
    blk, _, u = node_coords(f, o)
    return _flat(input_grid(f), (blk, j, u))


def input_index(f):
    """``(p, s)`` int64 array: element ``[o, j]`` is :func:`input_channel` ``(f, o, j)``, so
    ``x[..., input_index(f)]`` lines the inputs up with the ``(p, s)`` weights."""
    o, j = np.arange(f.p, dtype=np.int64), np.arange(f.s, dtype=np.int64)
    return input_channel(f, o[:, None], j[None, :])


def factor_product(f, weights, x, einsum):
    """``y[n, o] = sum_j W[o, j] * x[n, input_channel(o, j)]``, exact: ``(N, q)`` pixels and
    ``(p, s)`` weights -> ``(N, p)``. ``einsum`` is ``numpy.einsum`` or ``torch.einsum`` (the
    arrays' own kind); the grids make it one batched product over the ``b*t`` groups of ``s``
    inputs, ``p*s`` multiplies a pixel, without gathering ``s`` copies of the pixels."""
    n = x.shape[0]
    w = weights.reshape(*output_grid(f), f.s)                      # W[o, j] at [blk, i, u, j]
    y = einsum("bruj,nbju->nbru", w, x.reshape(n, *input_grid(f)))
    return y.reshape(n, f.p)
