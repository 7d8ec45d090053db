"""The Implementation: the physical choices passed to the blocks (hw/impl.py)."""

import re

import pytest
from amaranth.back import verilog

from bfly.hw.config import EngineConfig
from bfly.hw.impl import Implementation
from bfly.hw.scanshell import ScanShell
from bfly.hw.targets import HARDWARE_TARGETS
from bfly.hw.hier import instance_counts
from bfly.hw.top import BflyTop, elaborate

PRIMITIVES = ("MULT18X18D", "TRELLIS_FF", "DCCA")
_PIN = re.compile(r'BEL = "([^"]+)" \*\)\s*MULT18X18D #\(.*?\)\s*prod_(\d+)(?:_(\d+))?_dsp', re.S)


def _pins(text):
    """``{(stage, a, b): site}`` of the pinned multipliers in the flat Verilog ``text``: node
    ``a``'s ``prod_a_b`` in a parallel stage's module, ``prod_b`` in a folded stage's lane ``a``."""
    modules = [(m.start(), m.group(1)) for m in re.finditer(r"\nmodule (\S+)", text)]
    pins = {}
    for m in _PIN.finditer(text):
        module = [name for start, name in modules if start < m.start()][-1]
        stage = int(re.search(r"stage(\d+)", module).group(1))
        lane = re.search(r"lane_(\d+)", module)
        a, b = (int(lane.group(1)), int(m.group(2))) if lane else (int(m.group(2)), int(m.group(3)))
        pins[stage, a, b] = m.group(1)
    return pins


def _sites(text):
    return sorted(re.findall(r'BEL = "([^"]+)" \*\)\s*MULT18X18D', text))


def test_sites_by_index():
    impl = Implementation("ecp5", ["s0", "s1", "s2"])
    assert impl.dsp_sites == ("s0", "s1", "s2")
    assert [impl.dsp_site(i) for i in range(5)] == ["s0", "s1", "s2", None, None]
    assert Implementation().dsp_site(0) is None
    with pytest.raises(ValueError, match="non-negative"):
        impl.dsp_site(-1)


def test_a_short_site_list_pins_the_first_multipliers_only():
    # 2 stages of 4 nodes x 2 multipliers: multiplier stage*8 + node*2 + j takes site of that index
    cfg = EngineConfig.bft(4, 2)
    sites = [f"X{i}/Y10/MULT18_0" for i in range(5)]
    text, _ = elaborate(cfg, Implementation("ecp5", sites), hierarchy=False)
    assert text.count("MULT18X18D ") == cfg.multipliers == 16
    assert _pins(text) == {(i // 8, i % 8 // 2, i % 2): sites[i] for i in range(5)}
    # hierarchical: the pinned nodes have modules of their own, the others share one
    shared, _ = elaborate(cfg, Implementation("ecp5", sites))
    assert _sites(shared) == sorted(sites)
    assert instance_counts(shared, ["MULT18X18D"]) == {"MULT18X18D": 16}
    # (nodes of sites 0-1, 2-3, 4 and none, and all the others: 4 modules of 2)
    assert shared.count("MULT18X18D ") == 4 * 2


def test_folded_multipliers_are_numbered_lane_by_lane():
    cfg = EngineConfig.bft(16, 4, lanes=4)
    sites = HARDWARE_TARGETS["ecp5-85k"].dsp_sites
    text, _ = elaborate(cfg, Implementation("ecp5", sites), hierarchy=False)
    assert _sites(elaborate(cfg, Implementation("ecp5", sites))[0]) == _sites(text)
    want, first = {}, 0
    for l in range(cfg.n_stages):
        lanes, simd, _ = cfg.stage_fold(l)
        want.update({(l, j, i): sites[first + j * simd + i] for j in range(lanes) for i in range(simd)})
        first += lanes * simd
    assert first == cfg.multipliers and _pins(text) == want


def test_generic_implementation_makes_no_primitives():
    cfg = EngineConfig.bft(16, 4, lanes=4)
    generic, top = elaborate(cfg, Implementation(dsp_sites=["X4/Y10/MULT18_0"]))
    shell = verilog.convert(ScanShell(top, instance=cfg.name), name="shell", emit_src=False)
    ecp5_shell = verilog.convert(ScanShell(top, instance=cfg.name, impl=Implementation("ecp5")),
                                 name="shell", emit_src=False)
    for text in (generic, shell):
        assert [p for p in PRIMITIVES if p in text] == [] and "BEL" not in text
    assert generic == elaborate(cfg)[0]
    assert ecp5_shell.count("DCCA ") == 1


def test_one_implementation_elaborates_twice_alike():
    # it holds no state: the second design takes the same sites as the first
    impl = HARDWARE_TARGETS["ecp5-85k"].implementation()
    cfg = EngineConfig.bft(8, 2)
    first, _ = elaborate(cfg, impl)
    second, _ = elaborate(cfg, impl)
    assert first == second and len(_sites(first)) == cfg.multipliers


@pytest.mark.parametrize("cfg, field, value", [
    (EngineConfig.bft(16, 4), "copy_group", 3),
    (EngineConfig.bft(16, 4), "mirror_depth", 8),
    (EngineConfig.bft(16, 4), "write_branching", 8),
    (EngineConfig.bft(16, 4), "fifo_slice_bits", 12),
    (EngineConfig.bft(16, 4), "fifo_first_copy_slices", 2),
    (EngineConfig.bft(16, 4, lanes=4), "take_group", 5),
    (EngineConfig.bft(16, 4, lanes=4), "load_group", 3),
    (EngineConfig.dense(8, lanes=2, simd=2), "first_select_bits", 1),
    (EngineConfig.bft(16, 4, lanes=4), "fifo_group_slices", 3),
], ids=lambda v: v.id if isinstance(v, EngineConfig) else str(v))
def test_every_group_size_reaches_its_block(cfg, field, value):
    default, _ = elaborate(cfg)
    tuned, _ = elaborate(cfg, Implementation(**{field: value}))
    assert tuned != default


@pytest.mark.parametrize("kwargs, message", [
    ({"family": "xc7"}, "primitive family"),
    ({"copy_group": 0}, "copy_group must be a positive integer"),
    ({"mirror_depth": 12}, "mirror_depth must be a power of two"),
    ({"write_branching": 1}, "write_branching must be at least 2"),
    ({"epilogue_products": "dsp48"}, "epilogue_products must be one of"),
])
def test_bad_plans_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Implementation(**kwargs)


def test_target_implementations():
    ecp5 = HARDWARE_TARGETS["ecp5-85k"].implementation()
    assert ecp5.family == "ecp5" and len(ecp5.dsp_sites) == 156
    assert HARDWARE_TARGETS["ice40-up5k"].implementation() == Implementation()
    assert BflyTop(EngineConfig.bft(4, 2), ecp5).engine.implementation is ecp5


@pytest.mark.parametrize("a_bits, b_bits", [(4, 3), (5, 5), (2, 4)])
def test_shift_add_product_is_the_product(a_bits, b_bits):
    """Every pair of signed operands: the LUT product equals ``a * b``."""
    from amaranth.hdl import Module, Signal, signed
    from amaranth.sim import Simulator
    from bfly.hw.mult import shift_add_product
    m = Module()
    a, b = Signal(signed(a_bits)), Signal(signed(b_bits))
    p = Signal(signed(a_bits + b_bits))
    m.d.comb += p.eq(shift_add_product(a, b))
    got = []

    async def tb(ctx):
        for x in range(-(1 << a_bits - 1), 1 << a_bits - 1):
            for y in range(-(1 << b_bits - 1), 1 << b_bits - 1):
                ctx.set(a, x)
                ctx.set(b, y)
                got.append((x, y, ctx.get(p)))
    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
    assert all(v == x * y for x, y, v in got) and len(got) == 1 << (a_bits + b_bits)


def test_lut_epilogue_has_no_multiplication():
    """With epilogue_products="lut" the epilogue's products are logic: the generic Verilog has
    only the chain's multiplications."""
    cfg = EngineConfig.bft(4, 2, epilogue=True)
    dsp, _ = elaborate(cfg, hierarchy=False)
    lut, _ = elaborate(cfg, Implementation(epilogue_products="lut"), hierarchy=False)
    assert dsp.count(" * ") == cfg.n_weights + cfg.n_out and lut.count(" * ") == cfg.n_weights
