"""cocotb testbench of the MULT18X18D simulation model (``mult18x18d_sim.v``), run by
``tests/test_mult18x18d.py`` on a small wrapper top (``mult_top``) that it writes per case.

The case comes from the environment as JSON in ``MULT_CASE``:

``latency``   register stages between A/B and P when every enable is high and no reset is
              asserted (checked by ``test_signed``, ``test_unsigned`` and ``test_mixed``).
``stages``    for ``test_controls``: per stage (``a``, ``b``, ``pipe``, ``out``) ``null`` when the
              stage is combinational, else ``[ce_index, rst_index]``; ``resetmode`` is "SYNC" or
              "ASYNC". The wrapper drives only some CE/RST pins (``driven_ce``, ``driven_rst``);
              the others are left open, so the model must read them as CE=1 and RST=0.

Timing: inputs are written just after a rising edge and P is read at the next falling edge, so
with L registers P read in cycle k is the product of the operands written in cycle k - L.
"""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

CASE = json.loads(os.environ.get("MULT_CASE", "{}"))
CYCLES = int(os.environ.get("MULT_CYCLES", "300"))
SEED = int(os.environ.get("MULT_SEED", "1"))

W = 18
MASK18 = (1 << W) - 1
MASK36 = (1 << 2 * W) - 1
SIGNED_EXTREMES = [-(1 << 17), (1 << 17) - 1, 0, -1, 1]
UNSIGNED_EXTREMES = [0, 1, (1 << 17) - 1, 1 << 17, MASK18]


def operand(value, signed):
    """The integer an 18-bit pattern stands for."""
    value &= MASK18
    if signed and value >> (W - 1):
        value -= 1 << W
    return value


def product(a, b, sa, sb):
    """P[35:0] of the DSP for the patterns a, b and sign flags sa, sb."""
    return (operand(a, sa) * operand(b, sb)) & MASK36


def stimulus(rng, n, signed_a, signed_b):
    """``n`` operand pairs: every pair of extremes first, then random values, a quarter of them
    extremes again."""
    ext_a = SIGNED_EXTREMES if signed_a else UNSIGNED_EXTREMES
    ext_b = SIGNED_EXTREMES if signed_b else UNSIGNED_EXTREMES
    pairs = [(a, b) for a in ext_a for b in ext_b]

    def pick(ext, signed):
        if rng.random() < 0.25:
            return rng.choice(ext)
        return rng.randint(-(1 << 17), (1 << 17) - 1) if signed else rng.randint(0, MASK18)

    while len(pairs) < n:
        pairs.append((pick(ext_a, signed_a), pick(ext_b, signed_b)))
    return [(a & MASK18, b & MASK18) for a, b in pairs[:n]]


async def start(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.A.value = 0
    dut.B.value = 0
    dut.SA.value = 0
    dut.SB.value = 0
    dut.ce.value = 0b1111
    dut.rst.value = 0
    await RisingEdge(dut.clk)


async def check_delay(dut, signed_a, signed_b, seed):
    """Every clock new operands; P must be their product ``latency`` clocks later, all 36 bits
    (the first ``latency`` reads, which still show earlier operands, are not checked)."""
    latency = CASE["latency"]
    rng = random.Random(seed)
    sent, errors = [], []
    for k, (a, b) in enumerate(stimulus(rng, CYCLES, signed_a, signed_b)):
        dut.A.value = a
        dut.B.value = b
        dut.SA.value = int(signed_a)
        dut.SB.value = int(signed_b)
        sent.append(product(a, b, signed_a, signed_b))
        await FallingEdge(dut.clk)
        got = dut.P.value.to_unsigned()
        if k >= latency and got != sent[k - latency]:
            errors.append(f"cycle {k}: P={got:#011x}, expected {sent[k - latency]:#011x}")
        await RisingEdge(dut.clk)
    assert not errors, f"{len(errors)} mismatches, first: " + "; ".join(errors[:5])


@cocotb.test()
async def test_signed(dut):
    await start(dut)
    await check_delay(dut, True, True, SEED)


@cocotb.test()
async def test_unsigned(dut):
    await start(dut)
    await check_delay(dut, False, False, SEED + 1)


@cocotb.test()
async def test_mixed(dut):
    await start(dut)
    await check_delay(dut, True, False, SEED + 2)
    await check_delay(dut, False, True, SEED + 3)


class Stage:
    """Cycle model of one register stage (``sel`` None: combinational)."""

    def __init__(self, sel, asynchronous):
        self.sel = sel
        self.asynchronous = asynchronous
        self.state = 0
        self.next = 0

    def output(self, d, ce, rst):
        """The stage's output in this cycle for input ``d``; remembers the state after the next
        rising edge (``commit``)."""
        if self.sel is None:
            return d
        e, r = ce[self.sel[0]], rst[self.sel[1]]
        self.next = 0 if r else (d if e else self.state)
        return 0 if (r and self.asynchronous) else self.state

    def commit(self):
        self.state = self.next


@cocotb.test()
async def test_controls(dut):
    """Random CE, RST and sign flags every clock against a cycle model of the four stages."""
    stages = CASE["stages"]
    asynchronous = CASE["resetmode"] == "ASYNC"
    model = {name: Stage(stages[name], asynchronous) for name in ("a", "b", "pipe", "out")}
    driven_ce, driven_rst = CASE["driven_ce"], CASE["driven_rst"]
    rng = random.Random(SEED + 10)
    await start(dut)
    for _ in range(5):      # flush what earlier tests left in the stages: all hold 0 afterwards
        await RisingEdge(dut.clk)
    errors, resets = [], 0
    for k in range(CYCLES):
        a, b = rng.randint(0, MASK18), rng.randint(0, MASK18)
        if rng.random() < 0.2:
            a = rng.choice(SIGNED_EXTREMES + UNSIGNED_EXTREMES) & MASK18
        sa, sb = rng.randint(0, 1), rng.randint(0, 1)
        # enables mostly high, resets mostly low; open pins read as CE=1, RST=0
        ce = [int(rng.random() < 0.8) if i in driven_ce else 1 for i in range(4)]
        rst = [int(rng.random() < 0.1) if i in driven_rst else 0 for i in range(4)]
        resets += sum(rst)
        dut.A.value = a
        dut.B.value = b
        dut.SA.value = sa
        dut.SB.value = sb
        dut.ce.value = sum(bit << i for i, bit in enumerate(ce))
        dut.rst.value = sum(bit << i for i, bit in enumerate(rst))
        qa = model["a"].output((sa << W) | a, ce, rst)
        qb = model["b"].output((sb << W) | b, ce, rst)
        m = product(qa & MASK18, qb & MASK18, qa >> W, qb >> W) | (((qa >> W) | (qb >> W)) << 36)
        qp = model["pipe"].output(m, ce, rst)
        expected = model["out"].output(qp, ce, rst)
        for stage in model.values():
            stage.commit()
        await FallingEdge(dut.clk)
        got = dut.P.value.to_unsigned() | (int(dut.SIGNEDP.value) << 36)
        if got != expected:
            errors.append(f"cycle {k}: {{SIGNEDP, P}}={got:#012x}, expected {expected:#012x}")
        await RisingEdge(dut.clk)
    assert resets > 0 or not driven_rst, "no reset was exercised"
    assert not errors, f"{len(errors)} mismatches, first: " + "; ".join(errors[:5])
