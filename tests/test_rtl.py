"""The generated Verilog under Verilator, driven by cocotb (sim/tb_engine.py), compared with the
golden model by equality. One Verilator build per configuration, cached in build/sim/<id>/.

The engine Verilog for an FPGA target too (``bfly gen --target ecp5-85k``: multipliers as
``MULT18X18D`` instances, kept ``TRELLIS_FF`` register copies), the netlist that synthesis places
and routes, through the same testbench: yosys's ``share/ecp5/cells_sim.v`` simulates the
flip-flops, ``tests/ecp5/mult18x18d_sim.v`` the DSPs (yosys has only a blackbox of them).
"""

from pathlib import Path

import pytest

from bfly.hw.config import ConfigError, EngineConfig
from bfly.hw.targets import primitives_in
from bfly.sim.api import ALL_TESTS, SimRequest, simulate
from bfly.sim.runner import build, build_dir_for

# Every rounding mode and both overflow modes appear; widths 8/8 and odd pairs (5/11, 7/13); the
# epilogue with and without its residual path. (configuration, pixels through cocotb's bus
# models, pixels through the fast path)
RTL_CONFIGS = [
    (EngineConfig.bft(8, 2, rounding="floor"), 1500, 150_000),
    (EngineConfig.bft(16, 4), 1500, 150_000),
    (EngineConfig.mixed_radix([8, 2], rounding="half_up", overflow="wrap"), 1500, 150_000),  # 8-input nodes
    (EngineConfig.mixed_radix([4, 3], data_bits=7, weight_bits=13), 1500, 150_000),
    (EngineConfig.from_chain([[32, 64, 2, 4, 4], [16, 32, 1, 2, 8]], data_bits=5, weight_bits=11,
                             rounding="half_up", overflow="wrap", epilogue=True), 1500, 100_000),  # 64 -> 16
    (EngineConfig.bft(16, 4, epilogue=True), 1500, 150_000),             # epilogue with residual
    (EngineConfig.bft(16, 4, rounding="half_even", overflow="wrap", data_bits=5, weight_bits=11),
     1500, 150_000),
    # folded: 4 lanes (4 clocks per pixel), with the epilogue and its residual behind the folded
    # chain; the dense MVAU baseline, PE 4 x SIMD 8 (8 clocks per pixel)
    (EngineConfig.bft(16, 4, lanes=4, rounding="half_up", epilogue=True), 800, 50_000),
    (EngineConfig.dense(16, lanes=4, simd=8), 500, 25_000),
    # 640 weights in one stage, reached through three levels of registered copies
    (EngineConfig.from_chain([[40, 16, 40, 16, 1]], rounding="half_up"), 500, 50_000),
]


def _check(cfg, pixels, fast_pixels, seed, tmp_path, **request):
    """Run the random tests on ``cfg`` (``request``: more :class:`SimRequest` fields, such as
    ``target`` and ``models``) and check them; return the two stream results (bus models, fast
    path)."""
    fields = dict(frames=5, commits=2, stall_prob=0.3, idle_prob=0.2)
    req = SimRequest(cfg, pixels=pixels, fast_pixels=fast_pixels, seed=seed, **{**fields, **request})
    res = simulate(req, run_dir=tmp_path, log=tmp_path / "sim.log")
    assert res.failures == 0, f"{res.failures} of {res.tests} cocotb tests failed; log: {res.log}"
    assert res.tests == len(ALL_TESTS) and res.passed
    results = res.summaries["test_stream"], res.summaries["test_fast_stream"]
    for result, n in zip(results, (pixels, fast_pixels)):
        assert result["pixels"] == n and result["mismatch"] is None and result["frames_ok"]
        assert result["banks_used"] >= 2, "no commit landed inside the stream"
    return results


# wider engines, whose Verilator builds take a minute each: `make test-long`
LONG_CONFIGS = [
    (EngineConfig.bft(64, 4), 1500, 200_000),
    (EngineConfig.bft(64, 8, rounding="half_up", overflow="wrap"), 1200, 200_000),
    (EngineConfig.mixed_radix([4, 4, 3], data_bits=7, weight_bits=13), 1500, 200_000),
]


@pytest.mark.parametrize("cfg,pixels,fast", RTL_CONFIGS, ids=[c.id for c, *_ in RTL_CONFIGS])
def test_rtl_bit_exact(cfg, pixels, fast, tmp_path):
    results = _check(cfg, pixels, fast, seed=sum(map(ord, cfg.id)) % 1000, tmp_path=tmp_path)
    assert sum(sum(r["sat_counts"]) for r in results) > 0, "the stimulus never saturated: the check is weak"


def test_suite_covers_folded_engines():
    assert {c.is_dense for c, *_ in RTL_CONFIGS if c.interval > 1} == {True, False}


def test_suite_covers_enough_pixels():
    # test_stream + test_throughput (300) + test_reset_mid_stream (150 checked) per configuration,
    # and 10**6 through the fast path, with stalls on both sides
    assert sum(p + 300 + 150 for _, p, _ in RTL_CONFIGS) >= 10_000
    assert sum(f for *_, f in RTL_CONFIGS) >= 1_000_000
    assert sum(LONG_SCALE * f for *_, f in RTL_CONFIGS) + sum(f for *_, f in LONG_CONFIGS) >= 10_000_000
    modes = {(c.rounding, c.overflow) for c, *_ in RTL_CONFIGS}
    assert {r for r, _ in modes} == {"floor", "half_up", "half_even"}
    assert {o for _, o in modes} == {"saturate", "wrap"}
    assert {c.has_residual for c, *_ in RTL_CONFIGS if c.epilogue} == {True, False}


LONG_SCALE = 10


@pytest.mark.long
@pytest.mark.parametrize("cfg,pixels,fast", RTL_CONFIGS + LONG_CONFIGS,
                         ids=[c.id for c, *_ in RTL_CONFIGS + LONG_CONFIGS])
def test_rtl_long(cfg, pixels, fast, tmp_path):
    long_config = any(cfg is c for c, *_ in LONG_CONFIGS)
    _check(cfg, 20 * pixels, fast if long_config else LONG_SCALE * fast, seed=12345,
           tmp_path=tmp_path, frames=40, commits=8, throughput_pixels=5000)


MULT18X18D_MODEL = Path(__file__).resolve().parent / "ecp5" / "mult18x18d_sim.v"

# one parallel engine, one folded (4 lanes: 4 clocks per pixel); the test's stimulus saturates
TARGET_CONFIGS = [
    (EngineConfig.bft(16, 4), 600, 20_000),
    (EngineConfig.bft(16, 4, lanes=4, rounding="half_up"), 300, 5_000),
]


@pytest.mark.parametrize("cfg,pixels,fast", TARGET_CONFIGS, ids=[c.id for c, *_ in TARGET_CONFIGS])
def test_ecp5_netlist_bit_exact(cfg, pixels, fast, tmp_path):
    results = _check(cfg, pixels, fast, seed=sum(map(ord, cfg.id)) % 1000, tmp_path=tmp_path,
                     target="ecp5-85k", models=[MULT18X18D_MODEL])
    assert sum(sum(r["sat_counts"]) for r in results) > 0, "the stimulus never saturated: the check is weak"
    # what ran is the vendor-primitive netlist
    simulated = (build_dir_for(cfg, target="ecp5-85k") / f"{cfg.name}.v").read_text()
    used = primitives_in(simulated, "ecp5-85k")
    assert used["MULT18X18D"] == cfg.multipliers and used["TRELLIS_FF"] > 0


def test_a_primitive_without_a_model_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"ecp5-85k Verilog of n4_k2_d8w8 instantiates "
                                          r"MULT18X18D: pass a simulation model"):
        build(EngineConfig.bft(4, 2), target="ecp5-85k", log=tmp_path / "build.log")
