"""Word layouts of docs/spec.md §4."""

import numpy as np
import pytest

from bfly.hw.config import EngineConfig
from bfly.hw.regmap import register_map, param_window
from bfly.sim.model import random_params
from bfly.sim.words import pack_pixels, unpack_pixels, stream_bits, param_words, split_param_words


def test_channel_zero_in_the_low_bits():
    words = pack_pixels(np.array([[1, -1, 0, -128]]), 8)
    assert words == [0x80_00_FF_01]
    assert stream_bits(4, 8) == 32
    assert stream_bits(3, 5) == 16       # 15 bits padded to whole bytes


def test_round_trip_odd_widths():
    rng = np.random.default_rng(0)
    for bits, channels in [(5, 48), (11, 3), (2, 7), (18, 16)]:
        x = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=(40, channels))
        words = pack_pixels(x, bits)
        assert all(w < 1 << stream_bits(channels, bits) for w in words)
        np.testing.assert_array_equal(unpack_pixels(words, channels, bits), x)


WINDOW_CONFIGS = [EngineConfig.bft(16, 4), EngineConfig.mixed_radix([4, 3], epilogue=True),
                  EngineConfig.from_chain([[24, 12, 2, 1, 6], [24, 24, 3, 3, 2]], epilogue=True,
                                          weight_bits=5)]


@pytest.mark.parametrize("cfg", WINDOW_CONFIGS, ids=lambda c: c.id)
def test_parameter_window_order(cfg):
    """docs/spec.md §4: stage l's word o*s + j after the p*s words of the stages before it, then
    A_c, then Bias_c; the register map's windows are the same blocks."""
    params = random_params(cfg, np.random.default_rng(3))
    words = param_words(cfg, params)
    assert len(words) == cfg.n_params == param_window(cfg)[1]
    first = 0
    for l, f in enumerate(cfg.factors):
        assert cfg.param_blocks()[l] == (first, f.p * f.s)
        for o in range(f.p):
            for j in range(f.s):
                assert words[first + o * f.s + j] == int(params.weights[l][o, j]) & 0xFFFFFFFF
        first += f.p * f.s
    regs = {r.name: r for r in register_map(cfg)}
    base = param_window(cfg)[0]
    assert regs["WEIGHTS"].offset == 4 * base and regs["WEIGHTS"].count == first
    if cfg.epilogue:
        assert cfg.param_blocks()[-1] == (first, 2 * cfg.n_out)
        epi = params.epilogue
        for c in range(cfg.n_out):
            assert words[first + c] == int(epi.mult[c]) & 0xFFFFFFFF
            assert words[first + cfg.n_out + c] == int(epi.bias[c]) & 0xFFFFFFFF
        assert regs["EPI_MULT"].offset == 4 * (base + first)
        assert regs["EPI_BIAS"].offset == 4 * (base + first + cfg.n_out)
    assert len(cfg.param_blocks()) == cfg.n_stages + int(cfg.epilogue)
    weights, mult, bias = split_param_words(cfg, words)
    for w, back in zip(params.weights, weights):
        np.testing.assert_array_equal(back, w)
    if cfg.epilogue:
        np.testing.assert_array_equal(mult, params.epilogue.mult)
        np.testing.assert_array_equal(bias, params.epilogue.bias)
    else:
        assert mult is None and bias is None


def test_parameter_window_refuses_wrong_sizes():
    cfg = WINDOW_CONFIGS[1]
    params = random_params(cfg, np.random.default_rng(4))
    params.weights[1] = params.weights[1][:-1]
    with pytest.raises(ValueError, match="blocks of"):
        param_words(cfg, params)
    with pytest.raises(ValueError, match=f"has {cfg.n_params} words, not {cfg.n_params - 1}"):
        split_param_words(cfg, [0] * (cfg.n_params - 1))


@pytest.mark.parametrize("data_bits", [2, 5, 8, 12, 16, 32])
@pytest.mark.parametrize("channels", [1, 3, 16])
def test_u32_pieces_match_the_bus_word(data_bits, channels):
    """The fast path's vectorized packing gives the bus word of pack_pixels, in 32-bit pieces."""
    from bfly.sim.words import pack_u32, unpack_u32
    rng = np.random.default_rng(data_bits * 100 + channels)
    x = rng.integers(-(1 << (data_bits - 1)), 1 << (data_bits - 1), size=(40, channels))
    pieces = (stream_bits(channels, data_bits) + 31) // 32
    words = pack_u32(x, data_bits, pieces)
    assert [sum(int(v) << (32 * i) for i, v in enumerate(row)) for row in words] == pack_pixels(x, data_bits)
    np.testing.assert_array_equal(unpack_u32(words, channels, data_bits), x)
