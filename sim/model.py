"""The golden model: what the engine computes, bit for bit (``shared/SPEC.md`` §1-2).

Pure functions over NumPy ``int64`` arrays, vectorized over all pixels at once. Pixels are rows:
a batch of ``N`` pixels of ``q`` channels is an ``(N, q)`` array. Weights of one factor are a
``(p, s)`` array (row ``o`` holds the ``s`` weights of output ``o``), as the engine stores them.

A float reference (:func:`chain_dense`, :func:`chain_float`) sits beside the integer model.
"""

from dataclasses import dataclass

import numpy as np

from gen.config import MAX_SHIFT, ROUNDING_MODES, OVERFLOW_MODES

__all__ = [
    "round_shift", "requantize", "factor_apply", "chain_forward", "ChainResult",
    "factor_dense", "chain_dense", "chain_float", "check_weights", "check_shifts",
    "random_weights", "random_shifts",
]

# numpy's >> is undefined past the word size; every accumulator here is far below 2**61, and for
# such values any shift >= 62 gives the same result in every rounding mode as a shift of 62.
_NUMPY_SHIFT_LIMIT = 62


def round_shift(acc, shift, rounding):
    """``acc >> shift`` with the rounding of SPEC §2 (``floor``, ``half_up``, ``half_even``)."""
    if rounding not in ROUNDING_MODES:
        raise ValueError(f"rounding must be one of {ROUNDING_MODES}, not {rounding!r}")
    acc = np.asarray(acc, dtype=np.int64)
    shift = int(shift)
    if shift < 0:
        raise ValueError(f"shift must be >= 0, not {shift}")
    if shift == 0:
        return acc.copy()
    shift = min(shift, _NUMPY_SHIFT_LIMIT)
    q = acc >> shift
    if rounding == "floor":
        return q
    half = np.int64(1) << (shift - 1)
    rem = acc & ((np.int64(1) << shift) - 1)
    if rounding == "half_up":
        return q + (rem >= half)
    return q + ((rem > half) | ((rem == half) & ((q & 1) == 1)))


def requantize(acc, shift, data_bits, rounding, overflow):
    """Round-shift then saturate (or wrap) to signed ``data_bits``.

    Returns ``(values, out_of_range)``: the requantized ``int64`` array and a boolean mask of the
    outputs that saturated (or wrapped).
    """
    if overflow not in OVERFLOW_MODES:
        raise ValueError(f"overflow must be one of {OVERFLOW_MODES}, not {overflow!r}")
    v = round_shift(acc, shift, rounding)
    lo, hi = -(1 << (data_bits - 1)), (1 << (data_bits - 1)) - 1
    out_of_range = (v < lo) | (v > hi)
    if overflow == "saturate":
        v = np.clip(v, lo, hi)
    else:
        v = ((v - lo) & ((1 << data_bits) - 1)) + lo
    return v, out_of_range


def factor_apply(factor, weights, x):
    """One factor, exact: ``(N, q)`` integer pixels -> ``(N, p)`` accumulators (no rounding).

    ``y[o] = sum_j W[o, j] * x[(blk*s + j)*t + u]`` with ``o = (blk*r + i)*t + u``.
    """
    f = factor
    x = np.asarray(x)
    w4 = np.asarray(weights).reshape(f.b, f.r, f.t, f.s)          # W[o, j] at [blk, i, u, j]
    xb = x.reshape(x.shape[0], f.b, f.s, f.t)
    y = np.einsum("bruj,nbju->nbru", w4, xb)
    return y.reshape(x.shape[0], f.p)


@dataclass
class ChainResult:
    """Output of :func:`chain_forward`."""
    y: np.ndarray              # (N, n_out) int64, the last stage's requantized outputs
    sat_counts: list           # per stage: number of outputs that saturated (or wrapped)
    stages: list               # per stage: (N, p) requantized outputs (stages[-1] is y)


def check_weights(cfg, weights):
    """Check shapes and ranges of per-stage ``(p, s)`` integer weights; return them as int64."""
    if len(weights) != cfg.n_stages:
        raise ValueError(f"expected weights for {cfg.n_stages} stages, not {len(weights)}")
    out = []
    for l, (f, w) in enumerate(zip(cfg.factors, weights)):
        w = np.asarray(w)
        if w.shape != (f.p, f.s):
            raise ValueError(f"stage {l}: weights must be shaped {(f.p, f.s)}, not {w.shape}")
        if not np.issubdtype(w.dtype, np.integer):
            raise ValueError(f"stage {l}: weights must be integers, not {w.dtype}")
        if w.size and (w.min() < cfg.weight_min or w.max() > cfg.weight_max):
            raise ValueError(f"stage {l}: weights must lie in [{cfg.weight_min}, {cfg.weight_max}] "
                             f"for {cfg.weight_bits}-bit weights")
        out.append(w.astype(np.int64))
    return out


def check_shifts(cfg, shifts):
    shifts = [int(s) for s in shifts]
    if len(shifts) != cfg.n_stages:
        raise ValueError(f"expected {cfg.n_stages} shifts, not {len(shifts)}")
    for l, s in enumerate(shifts):
        if not 0 <= s <= MAX_SHIFT:
            raise ValueError(f"stage {l}: shift must be in [0, {MAX_SHIFT}], not {s}")
    return shifts


def chain_forward(cfg, weights, shifts, x):
    """The engine's chain: ``(N, n_in)`` pixels -> :class:`ChainResult` with ``(N, n_out)``.

    Each factor's exact accumulator is requantized to ``data_bits`` (SPEC §2) with the stage's
    ``shift`` and the configuration's rounding and overflow modes.
    """
    weights = check_weights(cfg, weights)
    shifts = check_shifts(cfg, shifts)
    x = np.asarray(x, dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != cfg.n_in:
        raise ValueError(f"pixels must be shaped (N, {cfg.n_in}), not {x.shape}")
    if x.size and (x.min() < cfg.data_min or x.max() > cfg.data_max):
        raise ValueError(f"pixels must lie in [{cfg.data_min}, {cfg.data_max}]")
    stages, sat_counts = [], []
    for f, w, sh in zip(cfg.factors, weights, shifts):
        acc = factor_apply(f, w, x)
        x, sat = requantize(acc, sh, cfg.data_bits, cfg.rounding, cfg.overflow)
        stages.append(x)
        sat_counts.append(int(sat.sum()))
    return ChainResult(y=x, sat_counts=sat_counts, stages=stages)


# --- float reference ------------------------------------------------------------------------------

def factor_dense(factor, weights):
    """The ``(p, q)`` dense matrix of one factor (``p*s`` non-zeros in the butterfly pattern)."""
    f = factor
    blk, i, j, u = np.meshgrid(np.arange(f.b), np.arange(f.r), np.arange(f.s), np.arange(f.t),
                               indexing="ij")
    rows = (blk * f.r + i) * f.t + u
    cols = (blk * f.s + j) * f.t + u
    w = np.asarray(weights, dtype=np.float64)
    m = np.zeros((f.p, f.q))
    m[rows.ravel(), cols.ravel()] = w[rows.ravel(), j.ravel()]
    return m


def chain_dense(factors, weights):
    """The ``(n_out, n_in)`` matrix of the whole chain: the product of its factors."""
    m = None
    for f, w in zip(factors, weights):
        d = factor_dense(f, w)
        m = d if m is None else d @ m
    return m


def chain_float(factors, weights, x):
    """Float reference of the chain without requantization: ``(N, n_in) -> (N, n_out)``."""
    return np.asarray(x, dtype=np.float64) @ chain_dense(factors, weights).T


# --- random stimulus -----------------------------------------------------------------------------

def random_weights(cfg, rng, extremes=0.1):
    """Per-stage ``(p, s)`` integer weights, uniform with a share of extreme values."""
    out = []
    for f in cfg.factors:
        w = rng.integers(cfg.weight_min, cfg.weight_max + 1, size=(f.p, f.s))
        pick = rng.random(w.shape) < extremes
        w[pick] = rng.choice([cfg.weight_min, cfg.weight_max], size=int(pick.sum()))
        out.append(w.astype(np.int64))
    return out


def random_shifts(cfg, rng):
    """Per-stage shifts: mostly near the value that keeps a stage's output in range, often a few
    bits too small (so outputs saturate), sometimes 0 or past the accumulator width."""
    shifts = []
    for l, f in enumerate(cfg.factors):
        typical = cfg.weight_bits - 1 + max(0, (f.s - 1).bit_length())
        choice = rng.random()
        if choice < 0.1:
            shift = 0
        elif choice < 0.15:
            shift = cfg.acc_bits(l) + int(rng.integers(0, 3))
        elif choice < 0.45:
            shift = typical - int(rng.integers(2, 6))
        else:
            shift = typical + int(rng.integers(-1, 2))
        shifts.append(int(np.clip(shift, 0, MAX_SHIFT)))
    return shifts
