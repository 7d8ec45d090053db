"""Generated files: determinism, manifest, register map, C header, lint, no partial output."""

import json
import os
import re
import subprocess
from pathlib import Path

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
    # every field, with its position, access and codes, in both
    declared = {r.name: r for r in register_map(CFG)}
    prefix = CFG.name.upper()
    for r in regs:
        reg = declared[r["name"]]
        assert r["array"] == reg.array
        assert ((f"#define {prefix}_{r['name']}_COUNT {r['count']}u" in header)
                == (r["name"] in ("FACTOR", "SHIFT", "SAT_COUNT", "WEIGHTS")))
        assert [(f["name"], f["lsb"], f["width"]) for f in r["fields"]] == \
            [(f.name, f.lsb, f.width) for f in reg.fields]
        for f in r["fields"]:
            name = f"{prefix}_{r['name']}_{f['name'].upper()}"
            assert f"#define {name}_SHIFT {f['lsb']}u" in header
            assert f"#define {name}_MASK 0x{((1 << f['width']) - 1) << f['lsb']:08X}u" in header
            for code, value in (f["enum"] or {}).items():
                assert f"#define {name}_{code.upper()} {value}u" in header
    fields = {(r["name"], f["name"]): f for r in regs for f in r["fields"]}
    assert fields["CONFIG0", "rounding"]["enum"] == {"floor": 0, "half_up": 1, "half_even": 2}
    assert fields["CONFIG0", "overflow"]["enum"] == {"saturate": 0, "wrap": 1}
    assert (fields["CTRL", "commit"]["access"], fields["SAT_COUNT", "count"]["access"]) == ("wo", "rw_clear")


def test_header_compiles(outputs, tmp_path):
    src = tmp_path / "use.c"
    src.write_text(f'#include "{CFG.name}_regs.h"\n'
                   f"unsigned a = {CFG.name.upper()}_WEIGHTS_ADDR(3);\n"
                   f"unsigned b = ({CFG.name.upper()}_CONFIG0_ROUNDING_HALF_EVEN << "
                   f"{CFG.name.upper()}_CONFIG0_ROUNDING_SHIFT) & {CFG.name.upper()}_CONFIG0_ROUNDING_MASK;\n"
                   f"int main(void) {{ return 0; }}\n")
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


def test_readme_register_table_is_generated():
    """The README's register table is the declarations' (``python -m bfly.gen.emit --readme``)."""
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    start, end = emit.README_MARKERS
    block = text.split(start + "\n", 1)[1].split(end, 1)[0]
    assert block == emit.regmap_markdown(emit.README_EXAMPLE)
    assert emit.readme_with_regmap(text) == text
    for r in register_map(emit.README_EXAMPLE):
        row = next(l for l in block.splitlines() if l.startswith(f"| `{r.name}"))
        assert f"`0x{r.offset:03X}`" in row and f"| {r.access} | {r.count} |" in row
        assert all(f"`{f.span()}` {f.name}" in row for f in r.fields), r.name


def test_readme_update_refuses_missing_markers(tmp_path, capsys):
    with pytest.raises(ValueError, match="regmap:start"):
        emit.readme_with_regmap("no table here\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{emit.README_MARKERS[0]}\nold\n{emit.README_MARKERS[1]}\ntail\n")
    assert emit.main(["--readme", str(readme), "--check"]) == 1
    assert emit.main(["--readme", str(readme)]) == 0
    assert readme.read_text() == (f"intro\n{emit.README_MARKERS[0]}\n{emit.regmap_markdown()}"
                                  f"{emit.README_MARKERS[1]}\ntail\n")
    assert emit.main(["--readme", str(readme), "--check"]) == 0
    assert emit.main(["--readme", str(tmp_path / "missing.md")]) == 2
    assert "error:" in capsys.readouterr().err
