"""Quick checks of the engine in Amaranth's simulator (the Verilated top is checked in test_rtl)."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from bfly.hw.config import EngineConfig
from bfly.hw.axi import WRITE_SPACING
from bfly.hw.regmap import SHIFT_BITS
from bfly.hw.engine import ButterflyEngine
from bfly.hw.impl import Implementation
from bfly.hw.requant import PREP_CYCLES, REGS_LEAD, REQUANT_CYCLES, MASK_LAG, ShiftRegisters, Requantizer
from bfly.sim.model import engine_forward, random_params, requantize as requantize_model
from bfly.sim.words import param_words, scalar_registers

CONFIGS = [
    EngineConfig.bft(16, 4, rounding="floor"),
    EngineConfig.bft(16, 4, rounding="half_up", overflow="wrap"),
    EngineConfig.bft(8, 2, rounding="half_even", data_bits=5, weight_bits=11),
    EngineConfig.mixed_radix([2, 3, 2], data_bits=6, weight_bits=4, overflow="wrap"),
    EngineConfig.from_chain([[8, 16, 1, 2, 4], [12, 8, 3, 2, 2]]),       # 16 -> 8 -> 12
    EngineConfig.bft(16, 4, epilogue=True),
    EngineConfig.bft(8, 2, epilogue=True, rounding="floor", overflow="wrap", data_bits=6, weight_bits=9),
    EngineConfig.from_chain([[8, 16, 1, 2, 4]], epilogue=True, rounding="half_up"),  # no residual
    # 640 weights in one stage: writes reach them through three levels of registered copies, and
    # the commit comes as soon after the last write as the register bus allows (slow in this
    # simulator: `make test-long`; test_rtl runs the configuration's Verilog in every suite)
    pytest.param(EngineConfig.from_chain([[40, 16, 40, 16, 1]], rounding="half_up"),
                 marks=pytest.mark.long),
    # folded: lanes output nodes per clock; simd < s adds partial sums over several clocks
    EngineConfig.bft(16, 4, lanes=4, rounding="floor"),
    EngineConfig.mixed_radix([2, 3, 2], lanes=4, data_bits=6, weight_bits=4, overflow="wrap"),
    EngineConfig.from_chain([[8, 16, 1, 2, 4], [12, 8, 3, 2, 2]], lanes=6),   # stages of 4 and 6 lanes
    EngineConfig.dense(8, lanes=2, simd=4, rounding="half_up"),
    EngineConfig.dense(6, n_out=5, lanes=1, simd=3, data_bits=7, weight_bits=5),
]


def _set_scalars(ctx, dut, cfg, bank):
    regs = scalar_registers(cfg, bank)
    for l, v in enumerate(regs["SHIFT"]):
        ctx.set(dut.shadow_shifts[l], v)
    if cfg.epilogue:
        ctx.set(dut.shadow_epi_ctrl, regs["EPI_CTRL"][0])
        ctx.set(dut.shadow_out_shift, regs["OUT_SHIFT"][0])


# params.en of each write: address and data a clock before and after the strobe (as the register bank
# holds them), and the next write or the commit WRITE_SPACING clocks after it at the soonest (as on
# the register bus, whose writes are that far apart)
WRITE_EN = (0, 1) + (0,) * (WRITE_SPACING - 1)


async def _write(ctx, dut, addr, value):
    """One parameter write, as the register bank makes it (``WRITE_EN``)."""
    ctx.set(dut.params.addr, addr)
    ctx.set(dut.params.data, value)
    for en in WRITE_EN:
        ctx.set(dut.params.en, en)
        await ctx.tick()


async def _read(ctx, dut, addr):
    """One parameter read: the answer ``param_read_cycles`` clocks after the address."""
    ctx.set(dut.params.raddr, addr)
    for _ in range(dut.param_read_cycles):
        await ctx.tick()
    return ctx.get(dut.params.rdata) & 0xFFFFFFFF


async def _load(ctx, dut, cfg, bank, flat=None):
    flat = param_words(cfg, bank) if flat is None else flat
    for i, v in enumerate(flat):
        await _write(ctx, dut, i, v)
    if bank is not None:
        _set_scalars(ctx, dut, cfg, bank)
    # read back one weight per stage through the registered read port
    for i in range(0, len(flat), max(1, len(flat) // 7)):
        assert await _read(ctx, dut, i) == flat[i]


def _run(cfg, banks, pixels, stall_every=0, impl=None):
    """Stream ``pixels``; commit bank k+1 after pixel ``k * len // len(banks)``. Returns outputs,
    the bank of each pixel, the measured latency and the saturation total per stage."""
    dut = ButterflyEngine(cfg, impl)
    out, entered, left, bank_of = [], [], [], []
    n_counts = cfg.n_stages + int(cfg.epilogue)
    sat_total = np.zeros(n_counts, dtype=np.int64)
    switch_at = [k * len(pixels) // len(banks) for k in range(1, len(banks))]

    async def tb(ctx):
        await _load(ctx, dut, cfg, banks[0])
        ctx.set(dut.commit_stb, 1)
        await ctx.tick()
        ctx.set(dut.commit_stb, 0)
        bank, i, cycle = 0, 0, 0
        while len(out) < len(pixels):
            if bank < len(banks) - 1 and i >= switch_at[bank] and not ctx.get(dut.commit_busy):
                bank += 1
                flat = param_words(cfg, banks[bank])
                # the shadow shifts must be still for two clocks before the commit (as through
                # the register bank, where register writes are WRITE_SPACING clocks apart)
                _set_scalars(ctx, dut, cfg, banks[bank])
                # write the shadow while pixels are in flight (held by the output), then commit
                ctx.set(dut.i_stream.valid, 0)
                ctx.set(dut.o_stream.ready, 0)
                for a, v in enumerate(flat):
                    ctx.set(dut.params.addr, a)
                    ctx.set(dut.params.data, v)
                    for en in WRITE_EN:
                        ctx.set(dut.params.en, en)
                        for l in range(n_counts):
                            sat_total[l] += ctx.get(dut.sat_counts[l])
                        await ctx.tick()
                        cycle += 1
                ctx.set(dut.params.en, 0)
                ctx.set(dut.commit_stb, 1)
            else:
                ctx.set(dut.commit_stb, 0)
            ready_out = not (stall_every and cycle % stall_every == 0)
            ctx.set(dut.o_stream.ready, ready_out)
            if i < len(pixels):
                ctx.set(dut.i_stream.valid, 1)
                ctx.set(dut.i_stream.payload.last, int(i == len(pixels) - 1))
                for c in range(cfg.n_in):
                    ctx.set(dut.i_stream.payload.data[c], int(pixels[i, c]))
            else:
                ctx.set(dut.i_stream.valid, 0)
            if ctx.get(dut.o_stream.valid) and ready_out:
                out.append([ctx.get(dut.o_stream.payload.data[c]) for c in range(cfg.n_out)])
                left.append(cycle)
            if i < len(pixels) and ctx.get(dut.i_stream.ready):
                # a commit raised this cycle applies from the next accepted pixel on
                bank_of.append(bank if not ctx.get(dut.commit_stb) else bank - 1)
                entered.append(cycle)
                i += 1
            for l in range(n_counts):
                sat_total[l] += ctx.get(dut.sat_counts[l])
            await ctx.tick()
            cycle += 1
            ctx.set(dut.commit_stb, 0)
        for _ in range(dut.latency + 8):        # let the saturation counts drain
            for l in range(n_counts):
                sat_total[l] += ctx.get(dut.sat_counts[l])
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    latencies = sorted(set(o - e for e, o in zip(entered, left))) if not stall_every else None
    return np.array(out), np.array(bank_of), latencies, sat_total, dut.latency


def _assert_matches_model(cfg, banks, pixels, out, bank_of, sat):
    """Each pixel's output equals the golden model's with the bank it entered with, and the
    saturation counts add up to the model's."""
    want = np.zeros_like(out)
    want_sat = np.zeros(cfg.n_stages + int(cfg.epilogue), dtype=np.int64)
    for b, bank in enumerate(banks):
        rows = bank_of == b
        res = engine_forward(cfg, bank, pixels[rows])
        want[rows] = res.y
        want_sat += res.sat_counts
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(sat, want_sat)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.id)
def test_engine_matches_model(cfg):
    rng = np.random.default_rng(7)
    banks = [random_params(cfg, rng) for _ in range(3)]
    # enough pixels that some enter after the last commit's writes and meet no hold
    count = max(90, 2 * ButterflyEngine(cfg).latency)
    pixels = rng.integers(cfg.data_min, cfg.data_max + 1, size=(count, cfg.n_in))
    pixels[::11] = cfg.data_max
    pixels[::13] = cfg.data_min
    out, bank_of, latencies, sat, latency = _run(cfg, banks, pixels)
    assert latencies[0] == latency     # pixels not held back by the commit writes
    assert len(set(bank_of.tolist())) == 3          # every bank was used
    _assert_matches_model(cfg, banks, pixels, out, bank_of, sat)


# other group sizes than the defaults, all of them odd: the physical plan never changes a value
TUNED = Implementation(take_group=5, copy_group=3, load_group=3, first_select_bits=1,
                       mirror_depth=8, write_branching=3, fifo_slice_bits=12, fifo_group_slices=3,
                       fifo_first_copy_slices=2, epilogue_products="lut")


@pytest.mark.parametrize("cfg", [EngineConfig.bft(16, 4, epilogue=True, rounding="half_even"),
                                 EngineConfig.bft(16, 4, lanes=4, rounding="half_even")],
                         ids=lambda c: c.id)
def test_tuned_implementation_matches_model(cfg):
    rng = np.random.default_rng(9)
    banks = [random_params(cfg, rng) for _ in range(2)]
    pixels = rng.integers(cfg.data_min, cfg.data_max + 1, size=(60, cfg.n_in))
    out, bank_of, latencies, sat, latency = _run(cfg, banks, pixels, stall_every=5, impl=TUNED)
    assert latency == ButterflyEngine(cfg).latency
    assert len(set(bank_of.tolist())) == 2
    _assert_matches_model(cfg, banks, pixels, out, bank_of, sat)


def test_output_stalls_lose_nothing():
    cfg = EngineConfig.bft(16, 4)
    rng = np.random.default_rng(8)
    bank = random_params(cfg, rng)
    pixels = rng.integers(cfg.data_min, cfg.data_max + 1, size=(120, cfg.n_in))
    out, _, _, _, _ = _run(cfg, [bank], pixels, stall_every=3)
    np.testing.assert_array_equal(out, engine_forward(cfg, bank, pixels).y)


@pytest.mark.parametrize("cfg", [EngineConfig.bft(16, 4, lanes=4), EngineConfig.dense(6, n_out=5, lanes=1, simd=3)],
                         ids=lambda c: c.id)
def test_folded_shadow_survives_commits(cfg):
    """A folded stage swaps its two banks at a commit and copies the new active bank into the
    shadow one: reading back after commits returns what was written, also after a partial
    update of one weight."""
    rng = np.random.default_rng(3)
    flat = param_words(cfg, random_params(cfg, rng))
    dut = ButterflyEngine(cfg)
    got = {}

    async def commit(ctx):
        ctx.set(dut.commit_stb, 1)
        await ctx.tick()
        ctx.set(dut.commit_stb, 0)
        await ctx.tick()
        while ctx.get(dut.commit_busy):
            await ctx.tick()

    async def read_all(ctx):
        return [await _read(ctx, dut, i) for i in range(len(flat))]

    async def tb(ctx):
        await _load(ctx, dut, cfg, None, flat)
        await commit(ctx)
        got["after_commit"] = await read_all(ctx)
        await _write(ctx, dut, 5, flat[5] ^ 1)
        await commit(ctx)
        await commit(ctx)
        got["after_update"] = await read_all(ctx)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert got["after_commit"] == flat
    assert got["after_update"] == flat[:5] + [flat[5] ^ 1] + flat[6:]


@pytest.mark.parametrize("cfg", [EngineConfig.bft(16, 4, lanes=4, rounding="half_even"),
                                 EngineConfig.dense(8, lanes=2, simd=4, rounding="half_up")],
                         ids=lambda c: c.id)
def test_folded_commit_right_after_a_pixel(cfg):
    """A commit that reaches a folded stage while the first pixel after the previous commit is
    still on its way to the rounding step (0 to 12 clocks after it entered) leaves that pixel its
    own bank's weights and shifts; the next pixel takes the new bank's. Every bank has shifts
    unlike the one before it."""
    rng = np.random.default_rng(11)
    gaps = list(range(13))
    banks = [random_params(cfg, rng)]
    while len(banks) < len(gaps) + 1:
        bank = random_params(cfg, rng)
        if all(a != b for a, b in zip(bank.shifts, banks[-1].shifts)):
            banks.append(bank)
    pixels = rng.integers(cfg.data_min, cfg.data_max + 1, size=(len(gaps) + 1, cfg.n_in))
    dut = ButterflyEngine(cfg)
    out = []

    async def tick(ctx):
        # outputs are taken here only (the FIFO holds them while _load reads back)
        ctx.set(dut.o_stream.ready, 1)
        if ctx.get(dut.o_stream.valid):
            out.append([ctx.get(dut.o_stream.payload.data[c]) for c in range(cfg.n_out)])
        await ctx.tick()
        ctx.set(dut.o_stream.ready, 0)

    async def commit(ctx):
        ctx.set(dut.commit_stb, 1)
        await tick(ctx)
        ctx.set(dut.commit_stb, 0)

    async def tb(ctx):
        await _load(ctx, dut, cfg, banks[0])
        await commit(ctx)
        for i, gap in enumerate(gaps + [None]):
            while ctx.get(dut.commit_busy):
                await tick(ctx)
            if gap is not None:         # the next bank into the shadow, no pixel in between
                await _load(ctx, dut, cfg, banks[i + 1])
            # pixel i: the first since bank i's commit; bank i + 1's commit `gap` clocks after it
            ctx.set(dut.i_stream.valid, 1)
            for c in range(cfg.n_in):
                ctx.set(dut.i_stream.payload.data[c], int(pixels[i, c]))
            while not ctx.get(dut.i_stream.ready):
                await tick(ctx)
            if gap == 0:
                ctx.set(dut.commit_stb, 1)
            await tick(ctx)
            ctx.set(dut.i_stream.valid, 0)
            ctx.set(dut.commit_stb, 0)
            if gap:
                for _ in range(gap - 1):
                    await tick(ctx)
                await commit(ctx)
        for _ in range(dut.latency + 2):
            await tick(ctx)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    want = [engine_forward(cfg, bank, pixels[i:i + 1]).y[0] for i, bank in enumerate(banks)]
    assert len(out) == len(pixels)
    for i, gap in enumerate(gaps):
        assert out[i] == want[i].tolist(), f"commit {gap} clocks after pixel {i}"
    assert out[-1] == want[-1].tolist()


@pytest.mark.parametrize("acc_bits", [9, 20, 63, 70])
@pytest.mark.parametrize("rounding", ["floor", "half_up", "half_even"])
def test_shift_constants_for_every_shift(acc_bits, rounding):
    # every 6-bit shift: the active shift (clamped to acc_bits), rounding constant and low-bit
    # mask a commit takes PREP_CYCLES clocks after the shadow shift was written (the shadow may
    # change again right after the commit); the mask lands MASK_LAG clocks after the others
    m = Module()
    shadow, commit, load = Signal(SHIFT_BITS), Signal(), Signal()
    regs = ShiftRegisters(m, rounding, acc_bits, shadow, commit, load, "t")
    got = []

    async def bench(ctx):
        for v in list(range(1 << SHIFT_BITS)) + [5, 63, 0, 17]:
            ctx.set(shadow, v)
            for _ in range(PREP_CYCLES):
                await ctx.tick()
            ctx.set(commit, 1)
            await ctx.tick()
            ctx.set(commit, 0)
            ctx.set(shadow, (v * 7 + 3) % 64)
            ctx.set(load, 1)
            await ctx.tick()
            ctx.set(load, 0)
            early_mask = ctx.get(regs.low_mask)
            shift, rnd = ctx.get(regs.shift), ctx.get(regs.rnd_const)
            for _ in range(MASK_LAG):
                await ctx.tick()
            got.append((v, shift, rnd, early_mask, ctx.get(regs.low_mask)))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    for i, (v, shift, rnd, early_mask, mask) in enumerate(got):
        c = min(v, acc_bits)
        half = 1 << (c - 1) if c else 0
        assert shift == c, v
        assert rnd == (0 if rounding == "floor" else half), v
        assert mask == (1 << c) - 1, v
        if i:       # still the previous bank's mask a clock after the load
            assert early_mask == got[i - 1][4], v


@pytest.mark.parametrize("data_bits", [2, 5])
@pytest.mark.parametrize("rounding", ["floor", "half_up", "half_even"])
@pytest.mark.parametrize("overflow", ["saturate", "wrap"])
def test_requantize_across_bank_changes(data_bits, rounding, overflow):
    # 9-bit accumulators (a random 96 of the 512 per bank, ties and the extremes next to each
    # bank change) under every shift (past the accumulator width too), the shift changing bank
    # as a commit changes it: each pixel is requantized with its own bank's shift, against the
    # golden model
    acc_bits, shifts, run = 9, list(range(0, 13)) + [5, 0, 1], 96
    cfg = EngineConfig.bft(4, 2, data_bits=data_bits, rounding=rounding, overflow=overflow)
    rng = np.random.default_rng(7)
    accs = [rng.permutation(np.arange(-(1 << (acc_bits - 1)), 1 << (acc_bits - 1)))[:run]
            for _ in shifts]
    for block, shift in zip(accs, shifts):      # the pixels next to each bank change
        block[[2, -3]] = [-(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1]
        if 0 < shift < acc_bits:                # ties: the remainder exactly half
            k = rng.integers(-(1 << (acc_bits - 1 - shift)), 1 << (acc_bits - 1 - shift), 4)
            block[[0, 1, -2, -1]] = k * (1 << shift) + (1 << (shift - 1))
    dut = Requantizer(cfg, acc_bits, 1)
    shadow, commit, load, acc = dut.shadow_shift, dut.commit, dut.load, dut.acc[0]
    assert dut.latency == REQUANT_CYCLES and dut.load_lead == REGS_LEAD
    got = []

    async def bench(ctx):
        # pixel i of bank b is on `acc` at clock b * run + i (after a lead-in); its bank's load
        # is REGS_LEAD + 1 clocks before its first pixel, its commit PREP_CYCLES + more before
        lead = PREP_CYCLES + REGS_LEAD + 4
        seq = [0] * lead + [int(a) for block in accs for a in block] + [0] * (REQUANT_CYCLES + 1)
        loads = {lead + b * run - REGS_LEAD - 1: b for b in range(len(shifts))}
        for t, value in enumerate(seq):
            ctx.set(load, t in loads)
            ctx.set(commit, (t + 1) in loads)
            nxt = loads.get(t + 1 + PREP_CYCLES + 1)
            if nxt is not None:
                ctx.set(shadow, shifts[nxt])
            ctx.set(acc, value)
            await ctx.tick()
            if t >= lead + REQUANT_CYCLES - 1:      # (the value of the next clock)
                got.append((ctx.get(dut.o[0]), ctx.get(dut.sat[0])))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    for b, (shift, block) in enumerate(zip(shifts, accs)):
        want, oor = requantize_model(block, shift, cfg.data_bits, rounding, overflow)
        part = got[b * run:(b + 1) * run]
        assert [g[0] for g in part] == want.tolist(), shift
        assert [bool(g[1]) for g in part] == oor.tolist(), shift
