"""The driver's logic against the in-process simulated board (no Verilator build): connect, load
with read-back and commit, stream, read the bank back, retries, refusals; the board's register
behaviour follows the register declaration."""

import numpy as np
import pytest

from bfly.hw.config import EngineConfig
from bfly.hw.regmap import register_map, SAT_COUNT
from bfly.sim.model import engine_forward, random_params
from bfly.sim.words import load_plan
from bfly.sw.driver import Accelerator, DriverError, LinkError
from bfly.sw.image import WeightImage
from bfly.sw.simboard import SimulatedBoard

CONFIGS = [EngineConfig.bft(16, 4, epilogue=True), EngineConfig.bft(8, 2, data_bits=6, weight_bits=5),
           EngineConfig.bft(16, 4, lanes=4)]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.id)
def test_load_run_and_read_back(cfg):
    rng = np.random.default_rng(5)
    params = random_params(cfg, rng)
    board = SimulatedBoard(cfg, latency=31)
    acc = Accelerator(board)
    assert acc.config == cfg and acc.latency == 31
    acc.load(WeightImage(cfg, params, 0.1, 0.1))
    back = acc.read_params()
    assert all((a == b).all() for a, b in zip(back.weights, params.weights))
    assert back.shifts == [int(s) for s in params.shifts]
    fmap = rng.integers(cfg.data_min, cfg.data_max + 1, size=(cfg.n_in, 9, 11))
    out = acc.run(fmap)
    want = engine_forward(cfg, params, fmap.reshape(cfg.n_in, -1).T)
    assert (out == want.y.T.reshape(cfg.n_out, 9, 11)).all()
    counts = acc.read(acc.reg(SAT_COUNT.name), len(want.sat_counts))
    assert counts == [int(c) for c in want.sat_counts]


def test_retries_damaged_replies():
    cfg = CONFIGS[0]
    params = random_params(cfg, np.random.default_rng(6))
    board = SimulatedBoard(cfg, latency=40, corrupt_replies={0, 9, 10})
    acc = Accelerator(board)
    acc.load(WeightImage(cfg, params, 0.1, 0.1))
    assert acc.stats["retries"] == 3
    x = np.zeros((cfg.n_in, 2, 2), dtype=np.int64)
    assert (acc.run(x) == engine_forward(cfg, params, x.reshape(cfg.n_in, -1).T).y.T.reshape(-1, 2, 2)).all()


def test_gives_up_after_its_retries():
    cfg = CONFIGS[1]
    acc = Accelerator(SimulatedBoard(cfg, latency=20))
    acc.transport.corrupt_replies = set(range(acc.transport.replies, acc.transport.replies + 5))
    with pytest.raises(LinkError, match="CRC"):
        acc.read(0, 1)


def test_refuses_an_image_for_another_engine_before_writing():
    cfg = CONFIGS[0]
    other = EngineConfig.bft(16, 4, epilogue=True, weight_bits=6)
    board = SimulatedBoard(cfg, latency=40)
    acc = Accelerator(board)
    before = dict(board._words)
    with pytest.raises(DriverError, match="refused before writing anything"):
        acc.load(WeightImage(other, random_params(other, np.random.default_rng(1)), 0.1, 0.1))
    assert board._words == before


def test_register_behaviour_follows_the_declaration():
    """Read-only words refuse writes (the whole frame), a write clears a counter, unmapped words
    answer AXI_ERROR, the commit strobe reads as 0, and a window word keeps weight_bits."""
    cfg = CONFIGS[1]
    acc = Accelerator(SimulatedBoard(cfg, latency=20))
    regs = {r.name: r for r in register_map(cfg)}
    with pytest.raises(LinkError, match="AXI_ERROR"):
        acc.write(regs["CONFIG0"].offset, [0])
    unmapped = next(a for a in range(0, regs["WEIGHTS"].offset, 4)
                    if not any(r.offset <= a < r.end for r in regs.values()))
    with pytest.raises(LinkError, match="AXI_ERROR"):
        acc.read(unmapped, 1)
    assert acc.read(regs["CTRL"].offset, 1) == [0]
    acc.write(regs["WEIGHTS"].offset, [0x1F])                  # 5-bit weights: 0x1F is -1
    assert acc.read(regs["WEIGHTS"].offset, 1) == [0xFFFFFFFF]
    x = np.full((cfg.n_in, 1, 1), cfg.data_max, dtype=np.int64)
    acc.load(WeightImage(cfg, random_params(cfg, np.random.default_rng(2)), 0.1, 0.1))
    acc.run(x)
    acc.write(regs["SAT_COUNT"].offset, [123])
    assert acc.read(regs["SAT_COUNT"].offset, 1) == [0]


def test_the_plan_is_what_the_driver_writes():
    """load() writes exactly the load plan's words, in its order, then the commit."""
    cfg = CONFIGS[0]
    params = random_params(cfg, np.random.default_rng(4))
    board = SimulatedBoard(cfg, latency=40)
    writes = []
    real = board._write
    board._write = lambda cmd, addr, words: (writes.append((addr, list(words))), real(cmd, addr, words))[1]
    acc = Accelerator(board)
    acc.load(WeightImage(cfg, params, 0.1, 0.1))
    regs = {r.name: r for r in register_map(cfg)}
    flat = [(a + 4 * i, w) for a, ws in writes for i, w in enumerate(ws)]
    want = [(regs[name].offset + 4 * i, w) for name, ws in load_plan(cfg, params) for i, w in enumerate(ws)]
    assert flat[:len(want)] == want
    assert flat[len(want):] == [(regs["CTRL"].offset, 1)]
