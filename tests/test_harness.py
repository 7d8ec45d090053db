"""The fast stream harness's Verilog and files (sim/harness.py), without a simulator."""

import re

import numpy as np

from bfly.hw.config import EngineConfig
from bfly.hw.targets import engine_verilog
from bfly.sim import harness


def test_every_engine_port_reaches_the_engine():
    cfg = EngineConfig.bft(4, 2)
    _, top = engine_verilog(cfg)
    text = harness.harness_verilog(top, cfg.name)
    inst = re.search(rf"{cfg.name} engine \((.*?)\);", text, re.S).group(1)
    connected = set(re.findall(r"\.(\w+)\(", inst))
    assert connected == set(top.signature.members) | {"clk", "rst"}
    # the stream ports go through the source/sink multiplexers, the others straight through
    for name in top.signature.members:
        if not name.startswith(("s_axis_", "m_axis_")):
            assert f".{name}({name})" in inst


def test_source_and_sink_files_round_trip(tmp_path):
    cfg = EngineConfig.bft(16, 4, data_bits=5, weight_bits=11)     # n_in == n_out: one layout
    rng = np.random.default_rng(0)
    x = rng.integers(cfg.data_min, cfg.data_max + 1, size=(50, cfg.n_in))
    last = rng.random(50) < 0.2
    harness.write_source(tmp_path / "src.bin", cfg, x, last)
    rec = np.fromfile(tmp_path / "src.bin", dtype="<u4").reshape(50, -1)
    # the sink's format: 64-bit clock, last, then the word's pieces, as harness.cpp writes it
    cycles = np.arange(50, dtype=np.uint64) * 3 + (1 << 33)
    sink = np.concatenate([(cycles & 0xFFFFFFFF)[:, None], (cycles >> np.uint64(32))[:, None],
                           rec[:, -1:].astype(np.uint64), rec[:, :-1].astype(np.uint64)], axis=1)
    sink.astype("<u4").tofile(tmp_path / "out.bin")
    got_cycles, got_last, got = harness.read_sink(tmp_path / "out.bin", cfg)
    np.testing.assert_array_equal(got, x)
    np.testing.assert_array_equal(got_last, last)
    np.testing.assert_array_equal(got_cycles, cycles.astype(np.int64))


def test_levels_are_probabilities_in_sixteen_bits():
    bits = harness.LEVEL_BITS               # the harness compares 16 bits of its generators
    assert bits == 16
    assert harness.level(0) == 0
    assert harness.level(0.5) == 1 << (bits - 1)
    assert harness.level(0.99999999) == (1 << bits) - 1
