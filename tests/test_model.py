"""The golden model against independent references: Hadamard, dense matrices, Python integers."""

import math
from fractions import Fraction

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings, strategies as st

from bfly.hw.config import EngineConfig, MAX_SHIFT
from bfly.sim.model import (round_shift, requantize, factor_apply, chain_forward, factor_dense,
                       chain_dense, chain_float, random_weights, random_shifts)


def _sylvester_weights(factor):
    """Every s x s block equal to the Sylvester Hadamard matrix: W[o, j] = H[i, j]."""
    h = scipy.linalg.hadamard(factor.s)
    o = np.arange(factor.p)
    i = (o // factor.t) % factor.r
    return h[i, :]


@pytest.mark.parametrize("radices", [[2, 2, 2, 2, 2], [4, 4, 4], [2, 4, 2], [4, 2, 4]],
                         ids=lambda r: "x".join(map(str, r)))
def test_hadamard_identity(radices):
    """docs/spec.md §1 known check: Sylvester blocks give scipy.linalg.hadamard(n) @ x exactly."""
    cfg = EngineConfig.mixed_radix(radices, data_bits=18, weight_bits=2)
    n = cfg.n_in
    weights = [_sylvester_weights(f) for f in cfg.factors]
    np.testing.assert_array_equal(chain_dense(cfg.factors, weights), scipy.linalg.hadamard(n))
    # the integer model, exact with shift 0 when nothing saturates
    rng = np.random.default_rng(0)
    x = rng.integers(-8, 8, size=(50, n))
    res = chain_forward(cfg, weights, [0] * cfg.n_stages, x)
    np.testing.assert_array_equal(res.y, x @ scipy.linalg.hadamard(n).T)
    assert res.sat_counts == [0] * cfg.n_stages


CHAINS = [
    EngineConfig.bft(16, 4),
    EngineConfig.bft(8, 2),
    EngineConfig.mixed_radix([4, 4, 3]),
    EngineConfig.from_chain([[32, 64, 2, 4, 4], [16, 32, 1, 2, 8]]),      # 64 -> 16
    EngineConfig.from_chain([[24, 12, 2, 1, 6], [24, 24, 3, 3, 2]]),     # 12 -> 24
]


@pytest.mark.parametrize("cfg", CHAINS, ids=lambda c: c.id)
def test_factors_equal_dense_product(cfg):
    """Factor by factor (gather and sum) equals the dense matrix product, for float weights."""
    rng = np.random.default_rng(1)
    weights = [rng.standard_normal((f.p, f.s)) for f in cfg.factors]
    x = rng.standard_normal((40, cfg.n_in))
    y = x
    for f, w in zip(cfg.factors, weights):
        y = factor_apply(f, w, y)
    np.testing.assert_allclose(y, chain_float(cfg.factors, weights, x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cfg", CHAINS, ids=lambda c: c.id)
def test_dense_pattern(cfg):
    """Each factor's dense matrix has exactly p*s non-zeros, at the docs/spec.md §1 indices."""
    for f in cfg.factors:
        m = factor_dense(f, np.ones((f.p, f.s)))
        assert np.count_nonzero(m) == f.p * f.s
        for o in range(f.p):
            blk, u = o // (f.r * f.t), o % f.t
            cols = sorted((blk * f.s + j) * f.t + u for j in range(f.s))
            assert list(np.flatnonzero(m[o])) == cols


def test_rounding_at_exact_ties():
    acc = np.array([5, -5, 3, -3, 7, -7, 4, -4, 6, -6])     # shift 1: halves at +-2.5, +-1.5, ...
    np.testing.assert_array_equal(round_shift(acc, 1, "floor"), [2, -3, 1, -2, 3, -4, 2, -2, 3, -3])
    np.testing.assert_array_equal(round_shift(acc, 1, "half_up"), [3, -2, 2, -1, 4, -3, 2, -2, 3, -3])
    np.testing.assert_array_equal(round_shift(acc, 1, "half_even"), [2, -2, 2, -2, 4, -4, 2, -2, 3, -3])
    # shift 2: quarter and three-quarter points are not ties
    acc = np.array([5, -5, 6, -6, 7, -7, 10, -10])
    np.testing.assert_array_equal(round_shift(acc, 2, "half_up"), [1, -1, 2, -1, 2, -2, 3, -2])
    np.testing.assert_array_equal(round_shift(acc, 2, "half_even"), [1, -1, 2, -2, 2, -2, 2, -2])
    for mode in ("floor", "half_up", "half_even"):
        np.testing.assert_array_equal(round_shift(acc, 0, mode), acc)


@pytest.mark.parametrize("mode", ["floor", "half_up", "half_even"])
def test_rounding_matches_python_fractions(mode):
    rng = np.random.default_rng(2)
    acc = rng.integers(-(1 << 20), 1 << 20, size=2000)
    for shift in [1, 2, 3, 7, 19, 21, 40, MAX_SHIFT]:
        got = round_shift(acc, shift, mode)
        want = [_round_fraction(Fraction(int(a), 1 << shift), mode) for a in acc]
        assert got.tolist() == want, (mode, shift)


def _round_fraction(v, mode):
    fl = math.floor(v)
    if mode == "floor":
        return fl
    frac = v - fl
    if frac > Fraction(1, 2) or (frac == Fraction(1, 2) and (mode == "half_up" or fl % 2)):
        return fl + 1
    return fl


def test_saturate_and_wrap_at_extremes():
    acc = np.array([127, 128, 129, -128, -129, -130, 255, 256, -256, 1000, -1000])
    sat, flag = requantize(acc, 0, 8, "floor", "saturate")
    np.testing.assert_array_equal(sat, [127, 127, 127, -128, -128, -128, 127, 127, -128, 127, -128])
    wrap, flag2 = requantize(acc, 0, 8, "floor", "wrap")
    np.testing.assert_array_equal(wrap, [127, -128, -127, -128, 127, 126, -1, 0, 0, -24, 24])
    np.testing.assert_array_equal(flag, flag2)
    np.testing.assert_array_equal(flag, [0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1])
    # 2-bit data: range [-2, 1]
    v, f = requantize(np.array([-3, -2, 1, 2]), 0, 2, "floor", "saturate")
    assert v.tolist() == [-2, -2, 1, 1] and f.tolist() == [1, 0, 0, 1]


def _python_chain(cfg, weights, shifts, x):
    """A slow, independent reference: dense integer matrices and Python-int requantization."""
    lo, hi = cfg.data_min, cfg.data_max
    rows = [list(map(int, r)) for r in x]
    sats = []
    for f, w, sh in zip(cfg.factors, weights, shifts):
        m = factor_dense(f, w).astype(np.int64)
        nxt, count = [], 0
        for r in rows:
            out = []
            for o in range(f.p):
                acc = sum(int(m[o, c]) * r[c] for c in range(f.q))
                v = _round_fraction(Fraction(acc, 1 << sh), cfg.rounding)
                if v < lo or v > hi:
                    count += 1
                    v = min(max(v, lo), hi) if cfg.overflow == "saturate" else (v - lo) % (1 << cfg.data_bits) + lo
                out.append(v)
            nxt.append(out)
        rows = nxt
        sats.append(count)
    return rows, sats


@st.composite
def chains(draw):
    n_factors = draw(st.integers(1, 3))
    q = draw(st.sampled_from([2, 3, 4, 6, 8, 12, 16]))
    rows = []
    for _ in range(n_factors):
        divisors = [d for d in range(1, q + 1) if q % d == 0]
        s = draw(st.sampled_from(divisors))
        t = draw(st.sampled_from([d for d in divisors if (q // s) % d == 0]))
        b = q // (s * t)
        r = draw(st.integers(1, 4))
        if b * r * t > 32:
            r = 1
        rows.append([b * r * t, q, r, s, t])
        q = b * r * t
    d = draw(st.integers(2, 18))
    w = draw(st.integers(2, 18))
    return EngineConfig.from_chain(rows, data_bits=d, weight_bits=w,
                                   rounding=draw(st.sampled_from(["floor", "half_up", "half_even"])),
                                   overflow=draw(st.sampled_from(["saturate", "wrap"])))


@settings(max_examples=60, deadline=None)
@given(cfg=chains(), seed=st.integers(0, 2**32 - 1))
def test_model_matches_python_reference(cfg, seed):
    """Property: over random chains, widths and modes, the vectorized model equals a Python-int
    reference built on dense matrices (outputs and saturation counts)."""
    rng = np.random.default_rng(seed)
    weights = random_weights(cfg, rng, extremes=0.3)
    shifts = random_shifts(cfg, rng)
    x = rng.integers(cfg.data_min, cfg.data_max + 1, size=(6, cfg.n_in))
    x[0] = cfg.data_min
    x[1] = cfg.data_max
    res = chain_forward(cfg, weights, shifts, x)
    rows, sats = _python_chain(cfg, weights, shifts, x)
    assert res.y.tolist() == rows
    assert res.sat_counts == sats


def test_error_against_float_is_bounded():
    """With shifts that avoid saturation, the integer model stays within the rounding error
    propagated through the chain of the float reference (scaled by the shifts)."""
    cfg = EngineConfig.bft(64, 4, data_bits=12, weight_bits=8)
    rng = np.random.default_rng(3)
    weights = [rng.integers(-32, 33, size=(f.p, f.s)) for f in cfg.factors]
    shifts = [7, 7, 7]
    x = rng.integers(-300, 301, size=(500, cfg.n_in))
    res = chain_forward(cfg, weights, shifts, x)
    assert res.sat_counts == [0, 0, 0]
    scale = 2.0 ** -sum(shifts)
    want = chain_float(cfg.factors, weights, x) * scale
    # each stage adds at most 0.5 LSB of rounding error, amplified by later stages' gain
    bound = 0.0
    for l in range(cfg.n_stages):
        later = [np.abs(w).sum(axis=1).max() * 2.0 ** -sh for w, sh in zip(weights[l + 1:], shifts[l + 1:])]
        bound += 0.5 * math.prod(later)
    err = np.abs(res.y - want).max()
    assert err <= bound
    assert err > 0          # the check is not vacuous: rounding did happen


def test_rejects_bad_inputs():
    cfg = EngineConfig.bft(16, 4)
    rng = np.random.default_rng(0)
    w = random_weights(cfg, rng)
    x = np.zeros((2, 16), dtype=np.int64)
    with pytest.raises(ValueError, match="shaped"):
        chain_forward(cfg, [w[0], w[1][:, :2]], [0, 0], x)
    with pytest.raises(ValueError, match=r"\[-128, 127\]"):
        chain_forward(cfg, [w[0] * 0 + 128, w[1]], [0, 0], x)
    with pytest.raises(ValueError, match="shift"):
        chain_forward(cfg, w, [0, 64], x)
    with pytest.raises(ValueError, match="pixels"):
        chain_forward(cfg, w, [0, 0], x + 200)


# --- epilogue (docs/spec.md §3) ------------------------------------------------------------------------

from bfly.sim.model import Epilogue, epilogue_apply, block_forward, random_epilogue


def test_epilogue_by_hand():
    cfg = EngineConfig.bft(4, 2, epilogue=True)
    y = np.array([[10, -20, 30, 127]])
    x = np.array([[1, 2, -3, 100]])
    epi = Epilogue(mult=np.array([3, -2, 1, 127]), bias=np.array([4, 0, -6, 1000]), gain=4,
                   out_shift=2, relu=False)
    # e = y + 4x = [14, -12, 18, 527]; acc = e*A + Bias = [46, 24, 12, 67929]; >> 2 half_even
    z, sat = epilogue_apply(cfg, epi, y, x)
    assert z.tolist() == [[12, 6, 3, 127]] and sat.tolist() == [[False, False, False, True]]
    epi.relu, epi.mult = True, np.array([-3, -2, 1, 1])
    z, _ = epilogue_apply(cfg, epi, y, x)
    assert z.tolist() == [[0, 6, 3, 127]]
    # identity epilogue: the block is the chain
    rng = np.random.default_rng(0)
    w, s = random_weights(cfg, rng), random_shifts(cfg, rng)
    xs = rng.integers(-128, 128, size=(20, 4))
    assert np.array_equal(block_forward(cfg, w, s, Epilogue.identity(cfg), xs).y, chain_forward(cfg, w, s, xs).y)


def test_epilogue_rejects_what_the_hardware_cannot_do():
    cfg = EngineConfig.bft(4, 2, epilogue=True)
    ones = np.ones(4, dtype=np.int64)
    for epi, msg in [(Epilogue(mult=ones, bias=ones, gain=3), "residual gain"),
                     (Epilogue(mult=ones * 128, bias=ones), "multiplier"),
                     (Epilogue(mult=ones, bias=ones * (1 << 31)), "bias"),
                     (Epilogue(mult=ones[:3], bias=ones), "shaped")]:
        with pytest.raises(ValueError, match=msg):
            epilogue_apply(cfg, epi, np.zeros((1, 4)), np.zeros((1, 4)))
    rect = EngineConfig.from_chain([[2, 4, 1, 2, 1]], epilogue=True)
    with pytest.raises(ValueError, match="n_in == n_out"):
        epilogue_apply(rect, Epilogue(mult=np.ones(2, dtype=np.int64), bias=np.zeros(2, dtype=np.int64), gain=1),
                       np.zeros((1, 2)), np.zeros((1, 4)))


@settings(max_examples=40, deadline=None)
@given(cfg=chains(), seed=st.integers(0, 2**32 - 1))
def test_epilogue_matches_python_reference(cfg, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(cfg.data_min, cfg.data_max + 1, size=(5, cfg.n_out))
    x = rng.integers(cfg.data_min, cfg.data_max + 1, size=(5, cfg.n_in))
    epi = random_epilogue(cfg, rng)
    z, sat = epilogue_apply(cfg, epi, y, x)
    for n in range(5):
        for c in range(cfg.n_out):
            e = int(y[n, c]) + (epi.gain * int(x[n, c]) if epi.gain else 0)
            v = _round_fraction(Fraction(e * int(epi.mult[c]) + int(epi.bias[c]), 1 << epi.out_shift), cfg.rounding)
            out = not cfg.data_min <= v <= cfg.data_max
            if out:
                v = min(max(v, cfg.data_min), cfg.data_max) if cfg.overflow == "saturate" \
                    else (v - cfg.data_min) % (1 << cfg.data_bits) + cfg.data_min
            if epi.relu:
                v = max(v, 0)
            assert z[n, c] == v and sat[n, c] == out


# --- the float64 path of factor_apply (bfly.sim.model.float_is_exact)

from bfly.sim.model import float_is_exact, chain_float_is_exact, check_weights   # noqa: E402
from bfly.hw.connectivity import factor_product                      # noqa: E402


@pytest.mark.parametrize("cfg", CHAINS + [EngineConfig.bft(64, 4, data_bits=18, weight_bits=18)],
                         ids=lambda c: c.id)
def test_float_path_is_bit_exact_at_the_extremes(cfg):
    # the widest operands, every sign: the float path (taken for every engine configuration)
    # equals the int64 einsum exactly
    rng = np.random.default_rng(3)
    lo, hi = cfg.data_min, cfg.data_max
    for f in cfg.factors:
        w = rng.choice([lo, hi, -1, 0, 1], size=(f.p, f.s)) if cfg.weight_bits == cfg.data_bits else \
            rng.integers(-(1 << cfg.weight_bits - 1), 1 << cfg.weight_bits - 1, (f.p, f.s))
        x = rng.choice([lo, hi, lo + 1, 0], size=(500, f.q))
        assert float_is_exact(f, w, x)
        got = factor_apply(f, w, x)
        assert got.dtype == np.int64
        assert np.array_equal(got, factor_product(f, w, x, np.einsum))


def test_past_the_bound_the_integer_path_is_used():
    # an accumulator float64 cannot hold (2**53 + 1): the bound says so, the result is still the
    # exact int64 one, and the float product would have rounded it
    from bfly.sim.model import _factor_float
    f = EngineConfig.bft(4, 2).factors[0]              # node u=0 sums channels 0 and 2
    w = np.ones((f.p, f.s), dtype=np.int64)
    x = np.zeros((3, f.q), dtype=np.int64)
    x[:, 0], x[:, 2] = (1 << 53) - 1, 2
    assert not float_is_exact(f, w, x)
    want = factor_product(f, w, x, np.einsum)
    assert want[0, 0] == (1 << 53) + 1 and float((1 << 53) + 1) != (1 << 53) + 1
    assert np.array_equal(factor_apply(f, w, x), want)
    assert not np.array_equal(_factor_float(f, w, x.astype(np.float64)).astype(np.int64), want)


@pytest.mark.parametrize("rounding", ["floor", "half_up", "half_even"])
@pytest.mark.parametrize("overflow", ["saturate", "wrap"])
@pytest.mark.parametrize("cfg", [EngineConfig.bft(64, 4), EngineConfig.mixed_radix([4, 4, 3]),
                                 EngineConfig.from_chain([[32, 64, 2, 4, 4], [16, 32, 1, 2, 8]]),
                                 EngineConfig.dense(16), EngineConfig.bft(256, 4)],
                         ids=lambda c: c.id)
@pytest.mark.parametrize("bits", [(2, 2), (8, 8), (18, 18)])
def test_both_paths_give_the_same_chain(cfg, rounding, overflow, bits):
    # the float64 chain (dense and batched factors) against the int64 one, bit for bit: every
    # shift from 0 past the accumulator width, ties, the extremes of the operands
    d, wb = bits
    cfg = EngineConfig(factors=cfg.factors, data_bits=d, weight_bits=wb, rounding=rounding,
                       overflow=overflow)
    rng = np.random.default_rng(5)
    x = rng.integers(cfg.data_min, cfg.data_max + 1, (600, cfg.n_in))
    x[::7], x[::11] = cfg.data_min, cfg.data_max
    for trial, shifts in enumerate([[0] * cfg.n_stages, [62] * cfg.n_stages,
                                    [1 + (l % 5) for l in range(cfg.n_stages)],
                                    random_shifts(cfg, rng)]):
        weights = random_weights(cfg, rng, extremes=0.3)
        assert chain_float_is_exact(cfg, check_weights(cfg, weights), x)
        a = chain_forward(cfg, weights, shifts, x)
        b = chain_forward(cfg, weights, shifts, x, allow_float=False)
        assert a.y.dtype == np.int64 and np.array_equal(a.y, b.y), trial
        assert a.sat_counts == b.sat_counts, trial
        assert all(np.array_equal(p, q) for p, q in zip(a.stages, b.stages)), trial


def test_the_float_chain_is_not_taken_past_its_bound():
    # inputs far outside the engine's range (never legal for chain_forward, which checks them)
    # would break the bound: the check says so
    cfg = EngineConfig.bft(4, 2)
    w = check_weights(cfg, random_weights(cfg, np.random.default_rng(0)))
    assert chain_float_is_exact(cfg, w, np.full((2, 4), 127))
    assert not chain_float_is_exact(cfg, w, np.full((2, 4), 1 << 50))


def test_the_chain_takes_float32_only_below_its_bound():
    # BFT(64,4) at 8 bits: every accumulator is below 4 * 128 * 128 = 2**16, exact in float32;
    # at 11 bits 4 * 2**10 * 2**10 = 2**22 still is; at 12 bits 2**24 is not: float64 (past
    # 2**52, neither: test_the_float_chain_is_not_taken_past_its_bound)
    from bfly.sim.model import chain_float_dtype
    for bits, want in [(8, np.float32), (11, np.float32), (12, np.float64), (18, np.float64)]:
        cfg = EngineConfig.bft(64, 4, data_bits=bits, weight_bits=bits)
        w = check_weights(cfg, [np.full((f.p, f.s), cfg.weight_min) for f in cfg.factors])
        x = np.full((3, cfg.n_in), cfg.data_min)
        assert chain_float_dtype(cfg, w, x) is want, bits
        a = chain_forward(cfg, w, [bits + 2] * cfg.n_stages, x)
        b = chain_forward(cfg, w, [bits + 2] * cfg.n_stages, x, allow_float=False)
        assert np.array_equal(a.y, b.y) and a.sat_counts == b.sat_counts, bits
