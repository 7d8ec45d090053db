"""bfly synth: the YoWASP flow and its report (slow: marked long, run by make test-long)."""

import json
import random
import re

import pytest
from amaranth.hdl import Module, Cat
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from bfly.hw.config import EngineConfig
from bfly.gen.synth import synthesize, SynthError
from bfly.hw.scanshell import ScanShell


def test_unknown_target_is_refused(tmp_path):
    with pytest.raises(SynthError, match="unknown target 'xc7'"):
        synthesize(EngineConfig.bft(4, 2), target="xc7", root=tmp_path)


@pytest.mark.long
def test_synthesis_report_and_cache(tmp_path):
    cfg = EngineConfig.bft(4, 2)
    steps = []
    report = synthesize(cfg, "ecp5-85k", 50.0, root=tmp_path, progress=lambda s, d, t: steps.append(s))
    assert steps[-1] == "done" and not report["cached"]
    assert report["used"]["dsps"] == cfg.multipliers == 16
    assert 0 < report["used"]["luts"] < report["available"]["luts"]
    assert report["used"]["ffs"] > 0 and report["fmax_mhz"] > 50 and report["meets_timing"]
    again = synthesize(cfg, "ecp5-85k", 50.0, root=tmp_path)
    assert again["cached"] and again["fmax_mhz"] == report["fmax_mhz"]


def test_time_limit_stops_the_tools(tmp_path):
    with pytest.raises(SynthError, match=r"synthesis \(yosys\) did not finish within 0.001 minutes"):
        synthesize(EngineConfig.bft(4, 2), root=tmp_path, time_limit_s=0.06)
    work = tmp_path / "ecp5-85k" / "n4_k2_d8w8"
    assert not (work / "synth.json").exists()
    # the same or a shorter limit is answered from the record, without running the tools
    (work / "tools.log").unlink()
    with pytest.raises(SynthError, match=r"0.001 minutes.*in an earlier run"):
        synthesize(EngineConfig.bft(4, 2), root=tmp_path, time_limit_s=0.05)
    assert not (work / "tools.log").exists()
    # a longer limit runs them again
    with pytest.raises(SynthError, match=r"within 0.0015 minutes \(for place and route.*\); see [^(]*$"):
        synthesize(EngineConfig.bft(4, 2), root=tmp_path, time_limit_s=0.09)
    assert (work / "tools.log").exists()


@pytest.mark.long
def test_timing_ripup_reaches_nextpnr_and_the_cache_key(tmp_path):
    cfg = EngineConfig.bft(4, 2)
    plain = synthesize(cfg, "ecp5-85k", 50.0, root=tmp_path)
    ripup = synthesize(cfg, "ecp5-85k", 50.0, root=tmp_path, timing_ripup=True)
    assert not ripup["cached"] and ripup["timing_ripup"] and not plain["timing_ripup"]
    assert ripup["meets_timing"] and ripup["used"]["dsps"] == 16
    log = (tmp_path / "ecp5-85k" / cfg.id / "tools.log").read_text()
    assert "--tmg-ripup" in log


def _target_with_fallback(monkeypatch, script, marker):
    """The ecp5-85k target with ``script`` first, its own script as the fallback for ``marker``."""
    import dataclasses
    from bfly.gen import synth
    t = synth.TARGETS["ecp5-85k"]
    monkeypatch.setitem(synth.TARGETS, "ecp5-85k", dataclasses.replace(
        t, yosys_script=script, fallback=(marker, t.yosys_script)))


def test_other_yosys_failures_are_not_retried(tmp_path, monkeypatch):
    _target_with_fallback(monkeypatch, "read_verilog no_such_file.v", "A_FAULT_NOT_IN_THE_LOG")
    with pytest.raises(SynthError, match=r"synthesis \(yosys\) failed"):
        synthesize(EngineConfig.bft(4, 2), root=tmp_path)
    assert "fallback" not in (tmp_path / "ecp5-85k" / "n4_k2_d8w8" / "tools.log").read_text()


@pytest.mark.long
def test_known_yosys_fault_uses_the_fallback(tmp_path, monkeypatch):
    _target_with_fallback(monkeypatch, "log KNOWN_FAULT_MARK; read_verilog no_such_file.v",
                          "KNOWN_FAULT_MARK")
    report = synthesize(EngineConfig.bft(4, 2), "ecp5-85k", 50.0, root=tmp_path)
    assert report["fallback_script"] and "KNOWN_FAULT_MARK" not in report["yosys_script"]
    assert report["used"]["dsps"] == 16 and report["meets_timing"]
    assert "the fallback script" in (tmp_path / "ecp5-85k" / "n4_k2_d8w8" / "tools.log").read_text()


def test_scan_shell_keeps_four_pins():
    from amaranth.back import verilog
    from bfly.hw.top import BflyTop
    shell = ScanShell(BflyTop(EngineConfig.bft(4, 2)))
    text = verilog.convert(shell, name="shell", emit_src=False)
    header = text[text.index("module shell("):text.index(");", text.index("module shell("))]
    assert sorted(p.strip() for p in header[len("module shell("):].split(",")) == \
        ["clk", "rst", "scan_in", "scan_out"]
    assert shell.input_bits > 32 and shell.output_bits > 32


class _Echo(wiring.Component):
    """A stand-in core for the shell: 11 input bits, 70 output bits, a function of the inputs."""
    a: In(7)
    b: In(4)
    y: Out(70)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.y.eq(Cat(self.a, self.b) * 0x2F3D_41A7_9B05_C3E1 + self.a)
        return m


def test_scan_shell_xor_tree_is_registered_and_exact():
    # the shell's output pin is the parity of the core's outputs, registered, then one clock per
    # tree level later (70 -> 18 -> 5 -> 2 -> 1: four levels, 70 + 26 flip-flops)
    shell = ScanShell(_Echo())
    assert shell.tree_registers == 70 + 18 + 5 + 2 + 1
    rng = random.Random(5)
    bits = [rng.randrange(2) for _ in range(200)]
    seen = []

    async def bench(ctx):
        for bit in bits:
            ctx.set(shell.scan_in, bit)
            await ctx.tick()
            seen.append((ctx.get(shell._core.y), ctx.get(shell.scan_out)))

    sim = Simulator(shell)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    parities = [bin(y).count("1") & 1 for y, _ in seen]
    outs = [o for _, o in seen]
    assert outs[5:] == parities[:-5]
    assert len(set(parities)) == 2


def test_ecp5_multipliers_are_dsp_instances():
    from bfly.gen.emit import elaborate
    from bfly.hw.impl import Implementation
    cfg = EngineConfig.bft(4, 2)
    from bfly.hw.targets import primitives_in
    generic, _ = elaborate(cfg)
    ecp5, _ = elaborate(cfg, Implementation("ecp5"), hierarchy=False)
    assert "MULT18X18D" not in generic
    assert ecp5.count("MULT18X18D ") == cfg.multipliers
    assert ecp5.count('.REG_OUTPUT_CLK("CLK0")') == cfg.multipliers
    # hierarchical: the nodes share one module (no sites), instanced once per node
    shared, _ = elaborate(cfg, Implementation("ecp5"))
    assert primitives_in(shared, "ecp5-85k")["MULT18X18D"] == cfg.multipliers
    assert shared.count("MULT18X18D ") == 2


@pytest.mark.long
def test_ice40_report_counts_the_shell(tmp_path):
    cfg = EngineConfig.bft(4, 2, lanes=1)
    report = synthesize(cfg, "ice40-up5k", 12.0, root=tmp_path)
    assert report["shell"]["input_flip_flops"] > 0
    assert 0 < report["used"]["luts"] <= report["available"]["luts"]
    assert report["fmax_mhz"] > 12


def test_ecp5_multipliers_are_pinned_in_order():
    # the 85k's 156 MULT18 sites, each once, the rows as a snake; a stage's multipliers take
    # consecutive sites (node by node), and an engine past the list leaves the rest to the placer
    from bfly.gen.synth import TARGETS, synthesis_sources
    sites = TARGETS["ecp5-85k"].hw.dsp_sites
    assert len(set(sites)) == 156 and sites[0] == "X4/Y10/MULT18_0" and sites[52] == "X119/Y34/MULT18_5"
    cfg = EngineConfig.bft(8, 2)
    shared = synthesis_sources(cfg, TARGETS["ecp5-85k"])[0][f"{cfg.name}.v"]
    # every multiplier has a site of its own, so every node its own module; the flat text names
    # each multiplier by stage and node
    bels = re.findall(r'BEL = "([^"]+)" \*\)\s*MULT18X18D', shared)
    assert sorted(sites.index(b) for b in bels) == list(range(cfg.multipliers))
    from bfly.hw.targets import engine_verilog
    text, _ = engine_verilog(cfg, "ecp5-85k", hierarchy=False)
    pins = re.findall(r'BEL = "([^"]+)" \*\)\s*MULT18X18D #\(.*?\)\s*(prod_\d+_\d+)_dsp', text, re.S)
    assert sorted(sites.index(b) for b, _ in pins) == list(range(cfg.multipliers))
    modules = [(m.start(), m.group(1)) for m in re.finditer(r"\nmodule (\S+)", text)]
    for m in re.finditer(r'BEL = "([^"]+)" \*\)\s*MULT18X18D #\(.*?\)\s*prod_(\d+)_(\d+)_dsp', text, re.S):
        stage = int([name for start, name in modules if start < m.start()][-1].rsplit("stage", 1)[1])
        node, j = int(m.group(2)), int(m.group(3))
        assert sites.index(m.group(1)) == stage * 16 + node * 2 + j     # 8 nodes of 2 per stage


@pytest.mark.parametrize("target", ["ecp5-85k", "ice40-up5k"])
def test_synthesis_reads_the_file_bfly_gen_target_writes(target, tmp_path, capsys):
    # one code path: the engine yosys reads is the bfly gen --target file, byte for byte; the
    # scan shell is a file of its own that instantiates the engine's module by name
    from bfly.gen.cli import main
    from bfly.gen.synth import TARGETS, synthesis_sources
    cfg = EngineConfig.bft(8, 2)
    assert main(["gen", "--n", "8", "--k", "2", "--target", target, "-o", str(tmp_path / "t")]) == 0
    assert main(["gen", "--n", "8", "--k", "2", "-o", str(tmp_path / "g")]) == 0
    written = (tmp_path / "t" / f"{cfg.name}.v").read_text()
    files, top, _, shell = synthesis_sources(cfg, TARGETS[target])
    assert list(files) == [f"{cfg.name}.v", f"{cfg.name}_shell.v"] and top == f"{cfg.name}_shell"
    assert files[f"{cfg.name}.v"] == written
    assert re.search(rf"^  {cfg.name} core \(", files[f"{cfg.name}_shell.v"], re.M)
    assert f"module {cfg.name}(" not in files[f"{cfg.name}_shell.v"]
    man = json.loads((tmp_path / "t" / "manifest.json").read_text())
    generic = (tmp_path / "g" / f"{cfg.name}.v").read_text()
    assert "target" not in json.loads((tmp_path / "g" / "manifest.json").read_text())
    if target == "ecp5-85k":
        from bfly.hw.targets import engine_verilog
        flat, _ = engine_verilog(cfg, target, hierarchy=False)
        ffs = len(re.findall(r"^  TRELLIS_FF #\(", flat, re.M))
        assert ffs > 0 and written != generic
        assert man["target"] == {
            "name": "ecp5-85k", "family": "ecp5",
            "primitives": {"TRELLIS_FF": ffs, "MULT18X18D": cfg.multipliers},
            "simulation_models": [
                {"primitives": ["TRELLIS_FF"], "origin": "yosys-share", "path": "ecp5/cells_sim.v"},
                {"primitives": ["MULT18X18D"], "origin": "bfly-tests",
                 "path": "tests/ecp5/mult18x18d_sim.v"}]}
        assert "DCCA rst_buffer" in files[f"{cfg.name}_shell.v"]
    else:
        # the iCE40 flow infers its DSPs from generic Verilog
        assert written == generic
        assert man["target"] == {"name": "ice40-up5k", "family": "ice40", "primitives": {},
                                 "simulation_models": []}


def test_gen_targets_are_the_synthesis_targets():
    from bfly.gen.cli import build_parser
    from bfly.gen.synth import TARGETS
    gen = build_parser()._subparsers._group_actions[0].choices["gen"]
    action = next(a for a in gen._actions if a.dest == "target")
    assert action.choices == list(TARGETS) and action.default is None
    assert all(t.hw.name == name for name, t in TARGETS.items())
