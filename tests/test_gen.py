"""Generated files: determinism, manifest, register map, C header, lint, no partial output."""

import json
import os
import re
import subprocess

import pytest

import bfly.gen.emit as emit
from bfly.hw.config import EngineConfig
from bfly.gen.emit import write_outputs
from bfly.hw.regmap import register_map
from bfly.sim.runner import verilator_env

CFG = EngineConfig.from_chain([[32, 64, 2, 4, 4], [16, 32, 1, 2, 8]], data_bits=5, weight_bits=11)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    a = tmp_path_factory.mktemp("a") / "out"
    b = tmp_path_factory.mktemp("b") / "out"
    write_outputs(CFG, a)
    write_outputs(CFG, b)
    return a, b


# The kinds of warning `verilator --lint-only -Wall` prints for Amaranth's Verilog, and why each
# is harmless (docs/design.md, "Tool notes", says the same to users).
LINT_WARNINGS = {
    "WIDTHEXPAND": "Amaranth extends operands implicitly",
    "WIDTHTRUNC": "Amaranth truncates operands implicitly",
    "PROCASSINIT": "registers are declared with their initial value and assigned in processes",
    "UNUSEDSIGNAL": "intermediate wires and unused port bits (awprot) are kept",
    "CASEINCOMPLETE": "the register decoder's casez has no default",
    "DECLFILENAME": "submodules are named <top>.<child> inside the top's file",
}


def test_same_configuration_same_bytes(outputs):
    a, b = outputs
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted([f"{CFG.name}.v", "manifest.json", "regmap.json", f"{CFG.name}_regs.h"])
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert str(a.parent) not in (a / f"{CFG.name}.v").read_text()     # no absolute paths


def test_manifest(outputs):
    man = json.loads((outputs[0] / "manifest.json").read_text())
    assert man["top"] == CFG.name
    c = man["config"]
    assert (c["data_bits"], c["weight_bits"], c["rounding"], c["overflow"]) == (5, 11, "half_even", "saturate")
    assert c["chain"] == [[32, 64, 2, 4, 4], [16, 32, 1, 2, 8]]
    ports = {p["name"]: p for p in man["ports"]}
    assert ports["s_axis_tdata"]["width"] == 320 and ports["s_axis_tdata"]["direction"] == "input"
    assert ports["m_axis_tdata"]["width"] == 80 and ports["m_axis_tdata"]["direction"] == "output"
    for name in ("clk", "rst", "s_axis_tvalid", "s_axis_tready", "s_axis_tlast", "m_axis_tlast",
                 "s_axil_awaddr", "s_axil_wdata", "s_axil_bresp", "s_axil_rdata"):
        assert name in ports
    assert man["multipliers"] == CFG.multipliers == 32 * 4 + 16 * 2
    # the input register, the stages, then the output FIFO (its write enable's two copies, the
    # memory, an output register)
    assert man["latency_cycles"] == 1 + sum(s["latency_cycles"] for s in man["stages"]) + 4
    assert man["tools"]["amaranth"]
    assert "target" not in man          # generic Verilog (bfly gen without --target)
    assert EngineConfig.from_dict(c) == CFG


def test_regmap_and_header_agree(outputs):
    rm = json.loads((outputs[0] / "regmap.json").read_text())
    header = (outputs[0] / f"{CFG.name}_regs.h").read_text()
    regs = rm["registers"]
    assert [r["name"] for r in regs] == [r.name for r in register_map(CFG)]
    spans = sorted((r["offset"], r["offset"] + 4 * r["count"]) for r in regs)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:])), "overlap"
    assert {r["name"] for r in regs} >= {"ID", "CONFIG0", "CTRL", "STATUS", "SHIFT", "WEIGHTS", "SAT_COUNT"}
    weights = next(r for r in regs if r["name"] == "WEIGHTS")
    assert weights["count"] == CFG.n_weights
    for r in regs:
        m = re.search(rf"#define {CFG.name.upper()}_{r['name']} 0x([0-9A-F]+)u", header)
        assert m and int(m.group(1), 16) == r["offset"], r["name"]


def test_header_compiles(outputs, tmp_path):
    src = tmp_path / "use.c"
    src.write_text(f'#include "{CFG.name}_regs.h"\n'
                   f"unsigned a = {CFG.name.upper()}_WEIGHTS_ADDR(3);\nint main(void) {{ return 0; }}\n")
    subprocess.run(["cc", "-Wall", "-Werror", "-I", str(outputs[0]), "-c", str(src), "-o",
                    str(tmp_path / "use.o")], check=True)


@pytest.mark.parametrize("cfg", [CFG, EngineConfig.bft(16, 4, epilogue=True, rounding="floor", overflow="wrap")],
                         ids=lambda c: c.id)
def test_verilator_lint_only_documented_warnings(cfg, tmp_path):
    """verilator --lint-only -Wall: no errors, and only the warnings of LINT_WARNINGS (all caused by
    the style of Amaranth's Verilog output)."""
    write_outputs(cfg, tmp_path)
    env = {**os.environ, **verilator_env()}
    res = subprocess.run(["verilator", "--lint-only", "-Wall", str(tmp_path / f"{cfg.name}.v")],
                         capture_output=True, text=True, env=env)
    errors = [l for l in res.stderr.splitlines()
              if l.startswith("%Error") and not l.startswith("%Error: Exiting due to")]
    assert errors == []
    seen = set(re.findall(r"%Warning-([A-Z0-9_]+)", res.stderr))
    assert seen, "lint printed no warning at all: is -Wall still applied?"
    assert seen <= set(LINT_WARNINGS), f"lint warnings not in LINT_WARNINGS: {seen - set(LINT_WARNINGS)}"


def test_failed_run_leaves_no_output(tmp_path, monkeypatch):
    def broken(cfg):
        raise RuntimeError("disk full")
    monkeypatch.setattr(emit, "c_header", broken)
    with pytest.raises(RuntimeError):
        write_outputs(CFG, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_existing_directory_keeps_other_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    write_outputs(EngineConfig.bft(4, 2), out)
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "manifest.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
