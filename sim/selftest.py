"""The self-test's pixels and checksum in NumPy (``hw/selftest_map.py`` defines them; the board's
``hw/selftest.py`` makes them at full clock): what a run of ``n`` pixels from ``seed`` must give.

Both are linear over GF(2), which makes them fast for millions of pixels: a generator's states
come a block at a time (the xorshift32 step taken ``BLOCK`` times is one 32 x 32 bit matrix,
applied to the previous block), and the checksum is the XOR of every folded pixel rotated by its
distance from the end.
"""

import numpy as np

from bfly.hw.selftest_map import XORSHIFT, lane_seed

__all__ = ["selftest_pixels", "selftest_checksum", "xorshift32", "lanes_for"]

BLOCK = 4096
_MASK = 0xFFFFFFFF


def xorshift32(x):
    """One step of the generator (a Python int or a uint32 array)."""
    a, b, c = XORSHIFT
    x = x ^ (x << a) & _MASK
    x = x ^ (x >> b)
    return x ^ (x << c) & _MASK


def lanes_for(cfg):
    """32-bit generators a pixel of ``cfg`` takes."""
    return -(-cfg.n_in * cfg.data_bits // 32)


def _states(seed, count):
    """The first ``count`` states after the start (state after 1, 2, ... steps) of a generator
    starting at ``seed``, as uint32."""
    first = np.empty(min(BLOCK, count), dtype=np.uint64)
    x = seed
    for i in range(len(first)):
        x = xorshift32(x)
        first[i] = x
    if count <= BLOCK:
        return first.astype(np.uint32)
    # the matrix of BLOCK steps: the image of each unit vector
    columns = []
    for bit in range(32):
        v = 1 << bit
        for _ in range(BLOCK):
            v = xorshift32(v)
        columns.append(np.uint64(v))
    out = np.empty(-(-count // BLOCK) * BLOCK, dtype=np.uint64)
    out[:BLOCK] = first
    prev = first
    for start in range(BLOCK, len(out), BLOCK):
        nxt = np.zeros(BLOCK, dtype=np.uint64)
        for bit, col in enumerate(columns):
            nxt ^= ((prev >> np.uint64(bit)) & np.uint64(1)) * col
        out[start:start + BLOCK] = nxt
        prev = nxt
    return out[:count].astype(np.uint32)


def selftest_pixels(cfg, seed, count):
    """``(count, n_in)`` signed integers: the pixels a run from ``seed`` feeds the engine."""
    lanes = np.stack([_states(lane_seed(seed, j), count) for j in range(lanes_for(cfg))], axis=1)
    d = cfg.data_bits
    out = np.empty((count, cfg.n_in), dtype=np.int64)
    for ch in range(cfg.n_in):
        lo = ch * d
        word, off = divmod(lo, 32)
        v = lanes[:, word].astype(np.uint64) >> np.uint64(off)
        if off + d > 32:
            v |= lanes[:, word + 1].astype(np.uint64) << np.uint64(32 - off)
        v &= np.uint64((1 << d) - 1)
        s = v.astype(np.int64)
        out[:, ch] = np.where(s >= 1 << (d - 1), s - (1 << d), s)
    return out


def selftest_checksum(cfg, outputs):
    """The checksum of ``(N, n_out)`` signed output pixels, in order (0 for none)."""
    y = np.asarray(outputs, dtype=np.int64)
    if len(y) == 0:
        return 0
    d = cfg.data_bits
    bits = y & ((1 << d) - 1)
    folded = np.zeros(len(y), dtype=np.uint64)
    for ch in range(cfg.n_out):
        lo = ch * d
        off = lo % 32
        v = bits[:, ch].astype(np.uint64)
        folded ^= (v << np.uint64(off)) & np.uint64(_MASK)
        if off + d > 32:
            folded ^= v >> np.uint64(32 - off)
    # c = rotl(c, 1) ^ f for each pixel: pixel k ends rotated by (N - 1 - k) mod 32
    r = (np.arange(len(y) - 1, -1, -1) % 32).astype(np.uint64)
    rotated = ((folded << r) | (folded >> ((np.uint64(32) - r) % np.uint64(32)))) & np.uint64(_MASK)
    rotated = np.where(r == 0, folded, rotated)
    return int(np.bitwise_xor.reduce(rotated))
