"""The engine's output FIFO in Amaranth's simulator: words come out in order, once each, with the
stream rules (a word held while valid and not ready), at the rate each mode promises, and a
reset in the middle of traffic leaves it empty and consistent."""

import random

import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from bfly.hw.outfifo import OutputFIFO

WIDTH, DEPTH = 16 * 17 + 8, 5     # 18 slices (the last one narrow) in three groups


def _run(every_clock, ready_p, write_p, clocks=600, reset_at=None, seed=0):
    """Random writes (never more than DEPTH held) and random readiness; returns the words read,
    the words written after the last reset, and the clocks of the reads."""
    dut = OutputFIFO(WIDTH, DEPTH, every_clock=every_clock)
    top = Module()
    top.domains.sync = cd = ClockDomain()
    top.submodules.dut = dut
    rng = random.Random(seed)
    log = {"read": [], "written": [], "read_at": [], "full_clocks": 0}

    async def bench(ctx):
        held = 0
        for clock in range(clocks):
            if clock == reset_at:
                # the neighbours go on handshaking in the clock of the reset
                ctx.set(dut.w.valid, rng.random() < write_p)
                ctx.set(dut.r.ready, 1)
                ctx.set(cd.rst, 1)
                await ctx.tick()
                ctx.set(cd.rst, 0)
                held, log["read"], log["written"], log["read_at"] = 0, [], [], []
                continue
            write = held < DEPTH and rng.random() < write_p
            log["full_clocks"] += held == DEPTH
            word = rng.getrandbits(WIDTH)
            ready = rng.random() < ready_p
            ctx.set(dut.w.valid, write)
            ctx.set(dut.w.payload, word)
            ctx.set(dut.r.ready, ready)
            valid, data = ctx.get(dut.r.valid), ctx.get(dut.r.payload)
            await ctx.tick()
            if valid and ready:
                log["read"].append(data)
                log["read_at"].append(clock)
                held -= 1
            if write:
                log["written"].append(word)
                held += 1
            # the stream rule: a valid word not taken is still there, unchanged
            if valid and not ready:
                assert ctx.get(dut.r.valid) == 1 and ctx.get(dut.r.payload) == data
        ctx.set(dut.w.valid, 0)
        ctx.set(dut.r.ready, 1)
        for _ in range(4 * DEPTH):
            valid, data = ctx.get(dut.r.valid), ctx.get(dut.r.payload)
            await ctx.tick()
            if valid:
                log["read"].append(data)

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return log


@pytest.mark.parametrize("every_clock", [True, False])
# (0.2, 1.0) keeps the FIFO full most of the time, with the reader's gaps at random (the
# two-register mode's memory is a word smaller than `depth`)
@pytest.mark.parametrize("ready_p,write_p", [(1.0, 1.0), (0.5, 0.7), (0.9, 0.3), (0.2, 1.0)])
def test_words_in_order(every_clock, ready_p, write_p):
    log = _run(every_clock, ready_p, write_p, seed=int(ready_p * 10 + write_p * 100))
    assert len(log["written"]) > 50
    assert log["read"] == log["written"]
    if write_p == 1.0 and ready_p < 1.0:
        assert log["full_clocks"] > 100      # it was full (DEPTH words held) that often


@pytest.mark.parametrize("every_clock", [True, False])
def test_rate(every_clock):
    """Always ready and always written: a word every clock, or every second clock."""
    log = _run(every_clock, 1.0, 1.0, clocks=200)
    gaps = {b - a for a, b in zip(log["read_at"][10:], log["read_at"][11:])}
    assert gaps == ({1} if every_clock else {2})


@pytest.mark.parametrize("every_clock", [True, False])
@pytest.mark.parametrize("reset_at", range(150, 158))
def test_reset_in_traffic(every_clock, reset_at):
    log = _run(every_clock, 0.6, 0.8, clocks=300, reset_at=reset_at, seed=3)
    assert len(log["written"]) > 50
    assert log["read"] == log["written"]
