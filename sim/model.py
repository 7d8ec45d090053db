"""The golden model: what the engine computes, bit for bit (``docs/spec.md`` §1-2).

Pure functions over NumPy ``int64`` arrays, vectorized over all pixels at once. Pixels are rows:
a batch of ``N`` pixels of ``q`` channels is an ``(N, q)`` array. Weights of one factor are a
``(p, s)`` array (row ``o`` holds the ``s`` weights of output ``o``), as the engine stores them.

A float reference (:func:`chain_dense`, :func:`chain_float`) sits beside the integer model.
"""

from dataclasses import dataclass

import numpy as np

from bfly.hw.config import MAX_SHIFT, ROUNDING_MODES, OVERFLOW_MODES
from bfly.hw.connectivity import factor_product, input_index, input_grid, output_grid
from bfly.hw.regmap import RESIDUAL_SHIFT_MAX, BIAS_BITS, epi_ctrl_word

__all__ = [
    "round_shift", "requantize", "factor_apply", "chain_forward", "ChainResult",
    "Epilogue", "check_epilogue", "epilogue_apply", "block_forward", "random_epilogue",
    "BlockParams", "engine_forward", "random_params",
    "RESIDUAL_SHIFT_MAX", "BIAS_BITS",
    "factor_dense", "chain_dense", "chain_float", "chain_float_dtype", "check_weights", "check_shifts",
    "random_weights", "random_shifts", "calm_shifts",
]

# numpy's >> is undefined past the word size; every accumulator here is far below 2**61, and for
# such values any shift >= 62 gives the same result in every rounding mode as a shift of 62.
_NUMPY_SHIFT_LIMIT = 62


def round_shift(acc, shift, rounding):
    """``acc >> shift`` with the rounding of docs/spec.md §2 (``floor``, ``half_up``, ``half_even``)."""
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


# float64 holds every integer below 2**53 in magnitude exactly (FLOAT_EXACT_LIMIT)
FLOAT_EXACT_LIMIT = 1 << 53


def _max_abs(a):
    return int(np.abs(a).max()) if a.size else 0


def _sum_bound(factor, weights, max_x):
    """The largest magnitude any accumulator of ``factor`` or any partial sum of one can have:
    ``s`` products of at most ``max|W| * max_x`` each."""
    return factor.s * _max_abs(weights) * max_x


def float_is_exact(factor, weights, x):
    """Whether :func:`factor_apply` may compute in float64 and stay exact. Every accumulator is a
    sum of ``s`` products ``W[o, j] * x[c]``; each partial sum, in whatever order a BLAS adds
    them (with or without fused multiply-adds), is a sum of some of those products, so its
    magnitude is at most ``s * max|W| * max|x|``. Below ``2**53`` every such value is an integer
    float64 holds exactly, so every multiplication and addition is exact (IEEE 754 rounds only
    results it cannot represent) and the float result equals the integer one."""
    return _sum_bound(factor, weights, _max_abs(x)) < FLOAT_EXACT_LIMIT


def factor_apply(factor, weights, x, allow_float=True):
    """One factor, exact: ``(N, q)`` integer pixels -> ``(N, p)`` accumulators (no rounding;
    float arrays are multiplied as they are).

    ``y[o] = sum_j W[o, j] * x[(blk*s + j)*t + u]`` with ``o = (blk*r + i)*t + u``
    (:mod:`bfly.hw.connectivity`). In float64 through BLAS where :func:`float_is_exact` proves
    the result exact (every engine configuration: 18-bit operands and the register map's largest
    radix stay far below the bound) and ``allow_float``, else in int64.
    """
    weights, x = np.asarray(weights), np.asarray(x)
    integers = np.issubdtype(weights.dtype, np.integer) and np.issubdtype(x.dtype, np.integer)
    if allow_float and integers and float_is_exact(factor, weights, x):
        return _factor_float(factor, weights, x.astype(np.float64)).astype(np.int64)
    return factor_product(factor, weights, x, np.einsum)


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


def chain_forward(cfg, weights, shifts, x, allow_float=True):
    """The engine's chain: ``(N, n_in)`` pixels -> :class:`ChainResult` with ``(N, n_out)``.

    Each factor's exact accumulator is requantized to ``data_bits`` (docs/spec.md §2) with the stage's
    ``shift`` and the configuration's rounding and overflow modes. With ``allow_float`` the
    chain runs in float32 or float64 where :func:`chain_float_dtype` proves it exact (every
    engine configuration), else factor by factor as :func:`factor_apply` does: the same result either
    way (False only to measure the integer path).
    """
    weights = check_weights(cfg, weights)
    shifts = check_shifts(cfg, shifts)
    x = np.asarray(x, dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != cfg.n_in:
        raise ValueError(f"pixels must be shaped (N, {cfg.n_in}), not {x.shape}")
    if x.size and (x.min() < cfg.data_min or x.max() > cfg.data_max):
        raise ValueError(f"pixels must lie in [{cfg.data_min}, {cfg.data_max}]")
    dtype = chain_float_dtype(cfg, weights, x) if allow_float else None
    if dtype is not None:
        return _chain_forward_float(cfg, weights, shifts, x, dtype)
    stages, sat_counts = [], []
    for f, w, sh in zip(cfg.factors, weights, shifts):
        acc = factor_apply(f, w, x, allow_float)
        x, sat = requantize(acc, sh, cfg.data_bits, cfg.rounding, cfg.overflow)
        stages.append(x)
        sat_counts.append(int(sat.sum()))
    return ChainResult(y=x, sat_counts=sat_counts, stages=stages)


# a float chain rounds with half a unit to spare: accumulators below 2**23 in float32 (24
# significant bits), below 2**52 in float64 (53); see chain_float_dtype
FLOAT32_CHAIN_LIMIT = 1 << 23
FLOAT_CHAIN_LIMIT = 1 << 52


def chain_float_dtype(cfg, weights, x):
    """The float type in which the whole chain may run and stay bit-exact
    (:func:`_chain_forward_float`): ``float32`` or ``float64``, or ``None`` for neither.

    Stage ``l``'s accumulators and every partial sum are at most ``s * max|W_l| * m_l`` in
    magnitude, ``m_0 = max|x|`` and, after a requantization, ``m_l = 2**(data_bits - 1)``. Below
    ``2**23`` (float32) or ``2**52`` (float64) each is an integer the type holds exactly, so the
    products and sums are exact (as :func:`float_is_exact` says); then ``acc * 2**-shift`` is
    exact (a power-of-two scaling of such an integer, far from underflow), and so is ``acc *
    2**-shift + 1/2`` for ``half_up`` (its bits span at most ``2**(limit - shift)`` down to
    ``2**-shift``: one bit fewer than the significand). ``floor``, ``rint`` (round half to
    even), comparisons, ``clip`` and ``mod`` by ``2**data_bits`` of exact integers are exact."""
    bounds, m = [], _max_abs(x)
    for f, w in zip(cfg.factors, weights):
        bounds.append(_sum_bound(f, w, m))
        m = 1 << (cfg.data_bits - 1)
    worst = max(bounds, default=0)
    if worst < FLOAT32_CHAIN_LIMIT:
        return np.float32
    return np.float64 if worst < FLOAT_CHAIN_LIMIT else None


def chain_float_is_exact(cfg, weights, x):
    """Whether the whole chain may run in floating point and stay bit-exact
    (:func:`chain_float_dtype`)."""
    return chain_float_dtype(cfg, weights, x) is not None


def _requantize_float(acc, shift, data_bits, rounding, overflow):
    """:func:`requantize` in place on float accumulators that :func:`chain_float_dtype` bounds;
    returns ``(values, number out of range)``."""
    shift = min(int(shift), _NUMPY_SHIFT_LIMIT)
    v = acc
    if shift:
        np.multiply(v, 2.0 ** -shift, out=v)
        if rounding == "floor":
            np.floor(v, out=v)
        elif rounding == "half_up":
            np.add(v, 0.5, out=v)
            np.floor(v, out=v)
        else:
            np.rint(v, out=v)                  # round half to even
    lo, hi = -(1 << (data_bits - 1)), (1 << (data_bits - 1)) - 1
    out_of_range = int(np.count_nonzero(v < lo)) + int(np.count_nonzero(v > hi))
    if overflow == "saturate":
        np.clip(v, lo, hi, out=v)
    else:
        np.subtract(v, lo, out=v)
        np.mod(v, float(1 << data_bits), out=v)
        np.add(v, lo, out=v)
    return v, out_of_range


# a factor whose inputs are at most this many times its fan-in is multiplied as a dense (q, p)
# matrix: one BLAS product of p*q multiplies per pixel beats p*s of them in b*t small batches
_DENSE_FAN_IN_RATIO = 16


def _factor_float(f, w, h):
    """``(N, q)`` float pixels ``h`` times factor ``f`` with weights ``w``: ``(N, p)``, in
    ``h``'s float type."""
    n = h.shape[0]
    if f.q <= _DENSE_FAN_IN_RATIO * f.s:
        return h @ factor_dense(f, w).T.astype(h.dtype)
    ws = w.reshape(*output_grid(f), f.s).transpose(0, 2, 3, 1).astype(h.dtype)    # [blk, u, j, i]
    acc = np.empty((n, *output_grid(f)), dtype=h.dtype)                           # [n, blk, i, u]
    np.matmul(h.reshape(n, *input_grid(f)).transpose(1, 3, 0, 2), ws, out=acc.transpose(1, 3, 0, 2))
    return acc.reshape(n, f.p)


def _chain_forward_float(cfg, weights, shifts, x, dtype):
    """:func:`chain_forward` in ``dtype`` (exact where :func:`chain_float_dtype` says so: zeros
    of a dense factor add nothing to any partial sum's bound)."""
    h = x.astype(dtype)
    stages, sat_counts = [], []
    for f, w, sh in zip(cfg.factors, weights, shifts):
        h, sat = _requantize_float(_factor_float(f, w, h), sh, cfg.data_bits, cfg.rounding,
                                   cfg.overflow)
        stages.append(h.astype(np.int64))
        sat_counts.append(sat)
    return ChainResult(y=stages[-1], sat_counts=sat_counts, stages=stages)


# --- epilogue (docs/spec.md §3) ------------------------------------------------------------------



@dataclass
class Epilogue:
    """Per-block epilogue parameters: ``z_c = act(round_shift((y_c + G x_c) A_c + Bias_c))``."""
    mult: np.ndarray           # (n_out,) A_c, signed weight_bits
    bias: np.ndarray           # (n_out,) Bias_c, signed 32-bit
    gain: int = 0              # G: 0 or +-2**g, g <= RESIDUAL_SHIFT_MAX (n_in == n_out only)
    out_shift: int = 0
    relu: bool = False

    @classmethod
    def identity(cls, cfg):
        """The epilogue of a block without one: A = 1, Bias = 0, G = 0, shift 0, no ReLU."""
        return cls(mult=np.ones(cfg.n_out, dtype=np.int64), bias=np.zeros(cfg.n_out, dtype=np.int64))


def check_epilogue(cfg, epi):
    """Check an :class:`Epilogue` against ``cfg``; return it with int64 arrays."""
    mult = np.asarray(epi.mult)
    bias = np.asarray(epi.bias)
    if mult.shape != (cfg.n_out,) or bias.shape != (cfg.n_out,):
        raise ValueError(f"epilogue multiplier and bias must be shaped ({cfg.n_out},), "
                         f"not {mult.shape} and {bias.shape}")
    for name, v, lo, hi in (("multiplier", mult, cfg.weight_min, cfg.weight_max),
                            ("bias", bias, -(1 << (BIAS_BITS - 1)), (1 << (BIAS_BITS - 1)) - 1)):
        if not np.issubdtype(v.dtype, np.integer):
            raise ValueError(f"epilogue {name} must be integers, not {v.dtype}")
        if v.size and (v.min() < lo or v.max() > hi):
            raise ValueError(f"epilogue {name} must lie in [{lo}, {hi}]")
    epi_ctrl_word(epi.relu, epi.gain)          # raises for a gain the hardware cannot apply
    if epi.gain and cfg.n_in != cfg.n_out:
        raise ValueError(f"a residual needs n_in == n_out, not {cfg.n_in} -> {cfg.n_out}")
    if not 0 <= int(epi.out_shift) <= MAX_SHIFT:
        raise ValueError(f"output shift must be in [0, {MAX_SHIFT}], not {epi.out_shift}")
    return Epilogue(mult=mult.astype(np.int64), bias=bias.astype(np.int64), gain=int(epi.gain),
                    out_shift=int(epi.out_shift), relu=bool(epi.relu))


def epilogue_apply(cfg, epi, y, x):
    """docs/spec.md §3 on chain outputs ``y`` ``(N, n_out)`` and block inputs ``x`` ``(N, n_in)``.

    Returns ``(z, out_of_range)``: the block output and the mask of outputs that saturated (or
    wrapped) in the final requantization.
    """
    epi = check_epilogue(cfg, epi)
    e = np.asarray(y, dtype=np.int64)
    if epi.gain:
        e = e + epi.gain * np.asarray(x, dtype=np.int64)
    acc = e * epi.mult + epi.bias
    z, sat = requantize(acc, epi.out_shift, cfg.data_bits, cfg.rounding, cfg.overflow)
    if epi.relu:
        z = np.maximum(z, 0)
    return z, sat


def block_forward(cfg, weights, shifts, epi, x):
    """Chain then epilogue: the engine generated with ``epilogue``. ``sat_counts`` and ``stages``
    get one more entry, the epilogue's."""
    res = chain_forward(cfg, weights, shifts, x)
    z, sat = epilogue_apply(cfg, epi, res.y, x)
    return ChainResult(y=z, sat_counts=res.sat_counts + [int(sat.sum())], stages=res.stages + [z])


def random_epilogue(cfg, rng):
    """Random epilogue parameters with extremes, in the range the hardware accepts."""
    mult = rng.integers(cfg.weight_min, cfg.weight_max + 1, size=cfg.n_out)
    mult[rng.random(cfg.n_out) < 0.1] = cfg.weight_min
    span = 1 << min(cfg.data_bits + cfg.weight_bits, BIAS_BITS - 1)
    bias = rng.integers(-span, span, size=cfg.n_out)
    bias[rng.random(cfg.n_out) < 0.05] = -(1 << (BIAS_BITS - 1))
    bias[rng.random(cfg.n_out) < 0.05] = (1 << (BIAS_BITS - 1)) - 1
    gain = 0
    if cfg.n_in == cfg.n_out and rng.random() < 0.8:
        g = int(rng.choice([0, 1, 2, 3])) if rng.random() < 0.9 else RESIDUAL_SHIFT_MAX
        gain = (1 << g) * (-1 if rng.random() < 0.2 else 1)
    typical = cfg.weight_bits - 1 + max(0, gain).bit_length() // 2
    out_shift = int(np.clip(typical + rng.integers(-2, 4), 0, MAX_SHIFT)) if rng.random() > 0.1 else 0
    return Epilogue(mult=mult.astype(np.int64), bias=bias.astype(np.int64), gain=gain,
                    out_shift=out_shift, relu=bool(rng.random() < 0.5))


@dataclass
class BlockParams:
    """Everything an engine's register bank holds for one bank: per-stage ``(p, s)`` weights,
    per-stage shifts, and the epilogue (``None`` for an engine without one)."""
    weights: list
    shifts: list
    epilogue: Epilogue = None


def save_params(path, params):
    """Write a bank (:class:`BlockParams`) to ``path`` as a NumPy ``.npz`` (the form in which a
    testbench is handed parameters)."""
    arrays = {f"w{l}": np.asarray(w, dtype=np.int64) for l, w in enumerate(params.weights)}
    arrays["shifts"] = np.asarray(params.shifts, dtype=np.int64)
    epi = params.epilogue
    if epi is not None:
        arrays.update(epi_mult=np.asarray(epi.mult, dtype=np.int64),
                      epi_bias=np.asarray(epi.bias, dtype=np.int64),
                      epi_scalars=np.array([epi.gain, epi.out_shift, int(epi.relu)], dtype=np.int64))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load_params(path):
    """The inverse of :func:`save_params`."""
    with np.load(path, allow_pickle=False) as z:
        shifts = [int(v) for v in z["shifts"]]
        weights = [z[f"w{l}"] for l in range(len(shifts))]
        epi = None
        if "epi_mult" in z:
            gain, out_shift, relu = (int(v) for v in z["epi_scalars"])
            epi = Epilogue(mult=z["epi_mult"], bias=z["epi_bias"], gain=gain,
                           out_shift=out_shift, relu=bool(relu))
    return BlockParams(weights=weights, shifts=shifts, epilogue=epi)


def engine_forward(cfg, params, x):
    """What the engine generated from ``cfg`` computes with ``params``: the chain, then the
    epilogue where ``cfg.epilogue`` (the identity epilogue if ``params`` has none)."""
    if cfg.epilogue:
        return block_forward(cfg, params.weights, params.shifts,
                             params.epilogue or Epilogue.identity(cfg), x)
    if params.epilogue is not None:
        raise ValueError(f"{cfg.id} has no epilogue in hardware, but the parameters have one")
    return chain_forward(cfg, params.weights, params.shifts, x)


def random_params(cfg, rng, calm=False):
    """A random bank (with extremes) for ``cfg``; ``calm``: with :func:`calm_shifts`, not
    random ones (that saturate often, to test saturation)."""
    weights = random_weights(cfg, rng)                  # drawn first: seeds keep their banks
    shifts = calm_shifts(cfg) if calm else random_shifts(cfg, rng)
    return BlockParams(weights=weights, shifts=shifts,
                       epilogue=random_epilogue(cfg, rng) if cfg.epilogue else None)


# --- float reference ------------------------------------------------------------------------------

def factor_dense(factor, weights):
    """The ``(p, q)`` dense matrix of one factor (``p*s`` non-zeros in the butterfly pattern):
    ``m[o, input_channel(o, j)] = W[o, j]``."""
    f = factor
    m = np.zeros((f.p, f.q))
    m[np.arange(f.p)[:, None], input_index(f)] = np.asarray(weights, dtype=np.float64)
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


def calm_shifts(cfg):
    """Per-stage shifts under which uniform random pixels and weights rarely saturate: the first
    stage's output spread about a quarter of the output range (its ``weight_bits - 1 +
    log2(s)``), later stages two bits less, as their inputs are narrower than uniform."""
    typical = [cfg.weight_bits - 1 + max(0, (f.s - 1).bit_length()) for f in cfg.factors]
    return [int(np.clip(t - (2 if l else 0), 0, MAX_SHIFT)) for l, t in enumerate(typical)]


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
