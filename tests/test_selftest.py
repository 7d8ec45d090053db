"""The board's on-chip self-test: its pixels and checksum in NumPy against a plain reading of
their definition (hw/selftest_map.py), then the real RTL on the simulated board, 10**6 pixels
bit-exact, and a wrong weight caught."""

import numpy as np
import pytest

from boardsim import running_board
from cliutil import run
from bfly.hw.config import EngineConfig
from bfly.hw.regmap import WEIGHTS, CTRL
from bfly.hw.selftest_map import lane_seed
from bfly.sim.model import random_params
from bfly.sim.selftest import selftest_pixels, selftest_checksum, xorshift32, lanes_for
from bfly.sw.driver import Accelerator, SerialTransport
from bfly.sw.image import WeightImage

CFG = EngineConfig.bft(16, 4, epilogue=True)


def _plain_pixels(cfg, seed, count):
    """Pixel i: the low n_in*data_bits bits of the generators' states after i + 1 steps."""
    states = [lane_seed(seed, j) for j in range(lanes_for(cfg))]
    out = []
    for _ in range(count):
        states = [xorshift32(s) for s in states]
        word = sum(s << (32 * j) for j, s in enumerate(states))
        px = []
        for ch in range(cfg.n_in):
            v = word >> (ch * cfg.data_bits) & ((1 << cfg.data_bits) - 1)
            px.append(v - (1 << cfg.data_bits) if v >> (cfg.data_bits - 1) else v)
        out.append(px)
    return np.array(out)


def _plain_checksum(cfg, y):
    c = 0
    for row in y:
        word = sum((int(v) & ((1 << cfg.data_bits) - 1)) << (ch * cfg.data_bits) for ch, v in enumerate(row))
        f = 0
        while word:
            f ^= word & 0xFFFFFFFF
            word >>= 32
        c = ((c << 1 | c >> 31) & 0xFFFFFFFF) ^ f
    return c


@pytest.mark.parametrize("cfg", [CFG, EngineConfig.bft(8, 2, data_bits=6), EngineConfig.bft(4, 2, data_bits=13)],
                         ids=lambda c: c.id)
def test_the_numpy_model_is_the_definition(cfg):
    for seed in (0, 1, 0xDEADBEEF):
        # more than one block of the fast path (4096 states)
        want = _plain_pixels(cfg, seed, 5000)
        assert np.array_equal(selftest_pixels(cfg, seed, 5000), want)
    y = np.random.default_rng(3).integers(cfg.data_min, cfg.data_max + 1, size=(300, cfg.n_out))
    assert selftest_checksum(cfg, y) == _plain_checksum(cfg, y)
    assert selftest_checksum(cfg, y[:0]) == 0


def test_a_million_pixels_on_chip_and_a_wrong_weight(capsys, tmp_path):
    rng = np.random.default_rng(11)
    image = WeightImage(CFG, random_params(CFG, rng, calm=True), 0.1, 0.1)
    image.save(tmp_path / "w.bfly")
    with running_board(CFG) as url:
        code, _, err = run(capsys, "load", "--port", url, tmp_path / "w.bfly")
        assert code == 0, err
        code, out, err = run(capsys, "selftest", "--port", url, "--pixels", 1_000_000, "--seed", 5,
                             "--check", tmp_path / "w.bfly")
        assert code == 0 and out.startswith("PASS 1000000 pixels bit-exact, 1.000 pixels/clock"), out + err
        # one weight changed on the board and committed: the image no longer describes it
        acc = Accelerator(SerialTransport(url))
        w = int(image.params.weights[0][0, 0])
        acc.write(acc.reg(WEIGHTS.name), [(w + 1 if w < CFG.weight_max else w - 1) & 0xFFFFFFFF])
        acc.write(acc.reg(CTRL.name), [CTRL.pack(commit=1)])
        acc.transport.close()
        code, out, err = run(capsys, "selftest", "--port", url, "--pixels", 20_000,
                             "--check", tmp_path / "w.bfly")
        assert code == 1 and out.startswith("FAIL 20000 of 20000 pixels out, checksum"), out + err
        # against the bank read back (what the board now holds) it passes again
        code, out, err = run(capsys, "selftest", "--port", url, "--pixels", 20_000)
        assert code == 0 and "read back from the board's shadow bank" in out, out + err


def test_a_board_without_the_self_test_says_so():
    """A board built before the self-test refuses its registers (AXI_ERROR): one clear error."""
    from bfly.sw.driver import DriverError
    from bfly.sw.simboard import SimulatedBoard
    acc = Accelerator(SimulatedBoard(CFG, latency=40))
    with pytest.raises(DriverError, match="this board has no self-test"):
        acc.selftest(100)
