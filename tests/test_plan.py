"""``bfly plan``: the lanes of a network's engines chosen to fit one device together."""

import itertools
import json

import numpy as np
import pytest

from cliutil import run
from bfly.gen import plan as planner
from bfly.gen.plan import plan_network, lanes_options, estimate, netlist_estimate, PlanError
from bfly.hw.config import EngineConfig

# small engines (fast to elaborate): a residual one, an expansion, a reduction
ENGINES = [EngineConfig.bft(8, 2, epilogue=True), EngineConfig.from_chain([[16, 8, 2, 1, 1]], epilogue=True),
           EngineConfig.bft(4, 2)]
LOADS = [64, 64, 16]


def test_options_run_from_parallel_to_folded():
    opts = lanes_options(EngineConfig.bft(16, 4, epilogue=True))
    assert [c.lanes for c in opts] == [0, 8, 4, 2, 1]
    assert [c.interval for c in opts] == [1, 2, 4, 8, 16]


def test_the_dsps_are_counted_as_synthesis_maps_them():
    """A residual engine's epilogue products are wider than 18 bits: two DSPs each, as yosys maps
    them (docs/network.md: BFT(16,4) with the epilogue and 4 lanes, 32 in the chain and 32 for
    16 products); in LUTs, none. The formula and the netlist's count agree."""
    cfg = EngineConfig.bft(16, 4, epilogue=True, lanes=4)
    assert estimate(cfg)["dsps"] == 64
    assert estimate(cfg, epilogue_products="lut")["dsps"] == 32
    for c in [lanes_options(e)[-1] for e in ENGINES] + [ENGINES[2]]:
        for products in ("dsp", "lut") if c.epilogue else ("dsp",):
            assert estimate(c, epilogue_products=products)["dsps"] == \
                netlist_estimate(c, epilogue_products=products)["dsps"], (c.id, products)


def _scaled_device(monkeypatch, dsps, luts):
    monkeypatch.setitem(planner.DEVICES, "small", {**planner.DEVICES["ecp5-85k"], "dsps": dsps,
                                                   "luts": luts, "ffs": luts})
    monkeypatch.setattr(planner, "BOARD_RESERVE", {"luts": 0, "ffs": 0})


def test_the_plan_fits_and_balances(monkeypatch):
    _scaled_device(monkeypatch, dsps=40, luts=45000)
    plan = plan_network(ENGINES, LOADS, "small")
    _check_plan(plan)


@pytest.mark.long
def test_no_plan_that_fits_is_faster(monkeypatch):
    """Every combination of lanes and epilogue products, by the same estimates (21
    elaborations): none that fits is faster than the plan."""
    _scaled_device(monkeypatch, dsps=40, luts=45000)
    plan = plan_network(ENGINES, LOADS, "small")
    # no choice of lanes that fits (by the same estimates) is faster
    fits = []
    for combo in itertools.product(*map(lanes_options, ENGINES)):
        for products in itertools.product(*(("dsp", "lut") if c.epilogue else ("dsp",) for c in combo)):
            ests = [netlist_estimate(c, "small", p) for c, p in zip(combo, products)]
            if all(sum(e[k] for e in ests) <= plan["budget"][k] for k in plan["budget"]):
                fits.append(min(estimate(c)["pixels_per_s"] / l for c, l in zip(combo, LOADS)))
    assert plan["inputs_per_s"] == max(fits)


def _check_plan(plan):
    assert all(plan["used"][k] <= plan["budget"][k] for k in plan["budget"])
    rates = [e["inputs_per_s"] for e in plan["engines"]]
    assert plan["inputs_per_s"] == min(rates) == rates[plan["bound_by"]]
    for e, cfg, load in zip(plan["engines"], ENGINES, LOADS):
        assert e["config"]["chain"] == cfg.chain_rows()
        assert e["inputs_per_s"] == e["estimate"]["pixels_per_s"] / load
        assert e["estimate"]["model"].startswith("netlist")
    return plan


def test_a_target_rate_takes_the_fewest_dsps(monkeypatch):
    _scaled_device(monkeypatch, dsps=156, luts=83640)
    full = plan_network(ENGINES, LOADS, "small")
    quarter = plan_network(ENGINES, LOADS, "small", target_inputs_per_s=full["inputs_per_s"] / 4)
    assert quarter["meets_target"] and quarter["inputs_per_s"] >= full["inputs_per_s"] / 4
    assert quarter["used"]["dsps"] < full["used"]["dsps"]
    far = plan_network(ENGINES, LOADS, "small", target_inputs_per_s=full["inputs_per_s"] * 100)
    assert not far["meets_target"] and far["inputs_per_s"] == full["inputs_per_s"]


def test_a_device_too_small_is_one_clear_error(monkeypatch):
    _scaled_device(monkeypatch, dsps=4, luts=1000)
    with pytest.raises(PlanError, match="do not fit the small together even folded"):
        plan_network(ENGINES, LOADS, "small")
    with pytest.raises(PlanError, match="no resource model for 'ice40-up5k'"):
        plan_network(ENGINES, LOADS, "ice40-up5k")


def test_plan_from_the_command_line(capsys, tmp_path):
    from pathlib import Path
    spec = f"{Path(__file__).with_name('own_net.py')}:Shared"
    np.save(tmp_path / "calib.npy", np.random.default_rng(0).normal(size=(6, 8, 5, 5)).astype(np.float32))
    code, _, err = run(capsys, "export", spec, "--calib", tmp_path / "calib.npy", "-o", tmp_path / "net")
    assert code == 0, err
    code, out, err = run(capsys, "plan", tmp_path / "net", "-o", tmp_path / "plan.json")
    assert code == 0, err
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert f"{plan['inputs_per_s']:,.0f} inputs/s" in out and len(plan["engines"]) == 1
    # the plan's engines are what build and sim-board make, folded as planned
    import argparse
    from bfly.gen.cli.common import CONFIG_KEYS
    from bfly.gen.cli.deploy import board_engines
    args = argparse.Namespace(network=str(tmp_path / "net"), plan=str(tmp_path / "plan.json"),
                              **{k: None for k in CONFIG_KEYS})
    assert [c.to_dict() for c in board_engines(args)[0]] == [e["config"] for e in plan["engines"]]
    # a plan for other engines, a plan without its network, options beside --network: refused
    other = dict(plan, engines=[dict(plan["engines"][0], config=EngineConfig.bft(8, 2, data_bits=6).to_dict())])
    (tmp_path / "other.json").write_text(json.dumps(other))
    for argv, message in [
        (["--network", tmp_path / "net", "--plan", tmp_path / "other.json"], "was made for other engines"),
        (["--plan", tmp_path / "plan.json"], "--plan goes with --network"),
        (["--network", tmp_path / "net", "--lanes", "2"], "leave out --lanes"),
        (["--network", tmp_path / "missing"], "no such file"),
        (["--network", tmp_path / "missing", "--plan", tmp_path / "plan.json"], "no such file"),
    ]:
        code, _, err = run(capsys, "build", *argv, "-o", tmp_path / "b")
        assert code == 2 and message in err and err.count("\n") == 1, err
        assert not (tmp_path / "b").exists()


def test_memories_count_as_block_ram_or_lut_ram():
    """A 64-deep memory is block RAM, one per read port (as yosys maps BFT(256,4)'s folded weight
    memories: docs/network.md); a 16-deep one LUT RAM."""
    from amaranth.back import rtlil
    from amaranth.hdl import Module, Signal
    from amaranth.lib.memory import Memory
    from bfly.gen.plan import netlist_counts
    m = Module()
    addr, out = Signal(6), Signal(32)
    m.submodules.deep = deep = Memory(shape=32, depth=64, init=[])
    m.submodules.shallow = shallow = Memory(shape=32, depth=16, init=[])
    for mem in (deep, shallow):
        w = mem.write_port()
        m.d.comb += [w.addr.eq(addr), w.data.eq(addr), w.en.eq(1)]
    ports = [deep.read_port(), deep.read_port(), shallow.read_port()]
    for p in ports:
        m.d.comb += p.addr.eq(addr)
    m.d.comb += out.eq(ports[0].data ^ ports[1].data ^ ports[2].data)
    counts = netlist_counts(rtlil.convert(m, ports=[addr, out]))
    assert counts["brams"] == 2 * 1 and counts["memory"] == 2 * 32
