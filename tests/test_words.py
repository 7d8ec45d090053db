"""Word layouts of SPEC §4."""

import numpy as np

from bfly.sim.words import pack_pixels, unpack_pixels, stream_bits


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
