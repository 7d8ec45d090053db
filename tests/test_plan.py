"""``bfly plan``: the lanes of a network's engines chosen to fit one device together."""

import json

import pytest

from cliutil import run
from bfly.gen import plan as planner
from bfly.gen.plan import plan_network, lanes_options, estimate, PlanError
from bfly.hw.config import EngineConfig
from bfly.sw.export import engine_configs


def _loads(export):
    cfgs = engine_configs(export)
    return cfgs, [sum(l["pixels_per_input"] for l in export.layers if l["engine"] == e)
                  for e in range(len(cfgs))]


def test_options_run_from_parallel_to_folded():
    opts = lanes_options(EngineConfig.bft(16, 4, epilogue=True))
    assert [c.lanes for c in opts] == [0, 8, 4, 2, 1]
    assert [c.interval for c in opts] == [1, 2, 4, 8, 16]


def test_the_dsps_are_counted_as_synthesis_maps_them():
    """A residual engine's epilogue products are wider than 18 bits: two DSPs each (yosys mapped
    64 MULT18X18D for this engine: 32 in the chain, 32 for 16 products); in LUTs, none."""
    cfg = EngineConfig.bft(16, 4, epilogue=True, lanes=4)
    assert estimate(cfg)["dsps"] == 64
    assert estimate(cfg, epilogue_products="lut")["dsps"] == 32
    assert estimate(EngineConfig.bft(16, 4, epilogue=True).__class__.from_chain(
        [[64, 16, 4, 1, 16]], epilogue=True))["dsps"] == 64 + 64       # no residual: one each


def test_the_plan_fits_and_balances(own_net):
    export = own_net[-1]
    cfgs, loads = _loads(export)
    plan = plan_network(cfgs, loads)
    dev = planner.DEVICES["ecp5-85k"]
    assert plan["used"]["dsps"] <= dev["dsps"]
    rates = [e["inputs_per_s"] for e in plan["engines"]]
    assert plan["inputs_per_s"] == min(rates) == rates[plan["bound_by"]]
    for e, cfg in zip(plan["engines"], cfgs):
        assert e["config"]["chain"] == cfg.chain_rows()
        assert e["inputs_per_s"] == e["estimate"]["pixels_per_s"] / e["pixels_per_input"]
    # no other choice of lanes fits with a higher rate
    best = max(min(estimate(c)["pixels_per_s"] / l for c, l in zip(combo, loads))
               for combo in __import__("itertools").product(*map(lanes_options, cfgs))
               if sum(estimate(c, epilogue_products="lut")["dsps"] for c in combo) <= dev["dsps"])
    assert plan["inputs_per_s"] >= best


def test_a_target_rate_takes_the_fewest_dsps(own_net):
    cfgs, loads = _loads(own_net[-1])
    full = plan_network(cfgs, loads)
    half = plan_network(cfgs, loads, target_inputs_per_s=full["inputs_per_s"] / 4)
    assert half["meets_target"] and half["inputs_per_s"] >= full["inputs_per_s"] / 4
    assert half["used"]["dsps"] < full["used"]["dsps"]
    far = plan_network(cfgs, loads, target_inputs_per_s=full["inputs_per_s"] * 100)
    assert not far["meets_target"] and far["inputs_per_s"] == full["inputs_per_s"]


def test_a_device_too_small_is_one_clear_error(own_net, monkeypatch):
    cfgs, loads = _loads(own_net[-1])
    monkeypatch.setitem(planner.DEVICES, "tiny", {**planner.DEVICES["ecp5-85k"], "dsps": 4})
    with pytest.raises(PlanError, match="do not fit the tiny together even folded"):
        plan_network(cfgs, loads, "tiny")
    with pytest.raises(PlanError, match="no resource model for 'ice40-up5k'"):
        plan_network(cfgs, loads, "ice40-up5k")


def test_plan_from_the_command_line(capsys, tmp_path, own_net):
    spec, weights, calib, *_ = own_net
    code, _, err = run(capsys, "export", spec, "--weights", weights, "--calib", calib, "-o", tmp_path / "net")
    assert code == 0, err
    code, out, err = run(capsys, "plan", tmp_path / "net", "-o", tmp_path / "plan.json")
    assert code == 0, err
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert f"{plan['inputs_per_s']:,.0f} inputs/s" in out and len(plan["engines"]) == 3
    # a plan for another network is refused before anything is built
    other = dict(plan, engines=plan["engines"][:2])
    (tmp_path / "other.json").write_text(json.dumps(other))
    code, _, err = run(capsys, "build", "--network", tmp_path / "net", "--plan", tmp_path / "other.json",
                       "-o", tmp_path / "b")
    assert code == 2 and "was made for other engines" in err and not (tmp_path / "b").exists()
