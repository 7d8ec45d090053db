"""The register bank (``hw/regs.py``) in Amaranth's simulator, for what the AXI tests cannot reach
in a few thousand clocks: a saturation counter's carry into its high half and its stop at all
ones."""

import numpy as np
from amaranth.sim import Simulator

from bfly.hw.config import EngineConfig
from bfly.hw.regmap import register_map
from bfly.hw.axi import WRITE_SETUP
from bfly.hw.engine import ButterflyEngine
from bfly.hw.regs import RegisterBank, SAT_COUNT_BITS


def test_saturation_count_carries_and_stops_at_all_ones():
    # a stage's count of up to 2**15 - 1 a clock (the widest the bank takes with a carry at most
    # every other clock): read back with the stream still at checkpoints across several carries
    # into the high half, past 2**32 - 1 (all ones, and it stays so), then cleared by a write
    cfg = EngineConfig.bft(16, 4)
    top = (1 << 15) - 1
    dut = RegisterBank(cfg, 20, range(top + 1), ButterflyEngine(cfg).param_read_cycles)
    word = {r.name: r.offset // 4 for r in register_map(cfg)}["SAT_COUNT"]
    rng = np.random.default_rng(4)
    limit = (1 << SAT_COUNT_BITS) - 1
    got, want = [], []

    async def read(ctx):
        ctx.set(dut.bus.r_addr, word)
        ctx.set(dut.bus.r_stb, 1)
        await ctx.tick()
        ctx.set(dut.bus.r_stb, 0)
        while not ctx.get(dut.bus.r_ack):
            await ctx.tick()
        return ctx.get(dut.bus.r_data)

    async def count(ctx, values):
        for v in values:
            ctx.set(dut.sat_counts[0], int(v))
            await ctx.tick()
        ctx.set(dut.sat_counts[0], 0)
        for _ in range(4):
            await ctx.tick()

    async def bench(ctx):
        total = 0

        async def checkpoint(values):
            nonlocal total
            await count(ctx, values)
            total += int(np.sum(values))
            got.append(await read(ctx))
            want.append(min(total, limit))

        # small steps, then full counts back to back over the first carries into the high half
        for _ in range(3):
            await checkpoint(rng.integers(0, top + 1, 5))
        for _ in range(4):
            await checkpoint(np.full(3, top))
        # to just below all ones, then past it, then more
        await checkpoint(np.full((limit - total) // top - 1, top))
        await checkpoint(np.full(3, top))
        await checkpoint(rng.integers(0, 9, 4))
        # a write clears it
        ctx.set(dut.bus.w_addr, word)
        ctx.set(dut.bus.w_data, 0)
        for _ in range(WRITE_SETUP):
            await ctx.tick()
        ctx.set(dut.bus.w_stb, 1)
        await ctx.tick()
        ctx.set(dut.bus.w_stb, 0)
        await count(ctx, [7, top])
        got.append(await read(ctx))
        want.append(7 + top)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert want[-3] == want[-2] == limit and want[-4] < limit      # the checkpoints as meant
    assert got == want
