"""cocotb testbench of the generated engine top (``hw/top.py``), run under Verilator.

The configuration and stimulus are a :class:`bfly.sim.api.SimRequest` that
:func:`bfly.sim.api.simulate` wrote into the run directory, the testbench's working directory;
each test writes its summary there too (:func:`bfly.sim.api.summary_path`).

Every output word and every ``SAT_COUNT`` is compared with the golden model by equality. A
cycle monitor records, at each clock edge, which pixels enter and leave and when a ``COMMIT``
write completes, so each pixel is checked against the bank that was active when it entered.
"""

import itertools
import json
import logging
import time
import warnings
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge, ReadOnly, ClockCycles, First
from cocotbext.axi import (AxiStreamBus, AxiStreamSource, AxiStreamSink, AxiStreamFrame,
                           AxiLiteBus, AxiLiteMaster, AxiResp)

from bfly.hw.regmap import (register_map, config_from_words, BFLY_ID, ID, CONFIG0, CONFIG1, CONFIG2,
                            CONFIG3, CTRL, FACTOR, SAT_COUNT, WEIGHTS)
from bfly.hw.csr import WORD_BITS, WORD_MASK
from bfly.sim.api import SimRequest, summary_path, progress_path
from bfly.sim.model import engine_forward, random_params
from bfly.sim.words import pack_pixels, unpack_pixels, param_words, load_plan
from bfly.sim import harness

WORD_BYTES = WORD_BITS // 8

# cocotbext-axi 0.1.28 still calls APIs that cocotb 2 deprecates; they work, so keep logs readable
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext\.axi")


# cocotb runs the testbench in the run directory, where simulate() left the request
RUN_DIR = Path.cwd()
REQUEST, LATENCY = SimRequest.read(RUN_DIR)


def _write_summary(test, summary):
    summary_path(RUN_DIR, test).write_text(json.dumps(summary) + "\n")


def _write_progress(done, total):
    """The pixels checked so far, for a caller that shows progress (written whole, then renamed)."""
    tmp = progress_path(RUN_DIR).with_suffix(".tmp")
    tmp.write_text(json.dumps({"done": done, "total": total}))
    tmp.replace(progress_path(RUN_DIR))


class Monitor:
    """Cycle-exact log of the stream handshakes and completed COMMIT writes."""

    def __init__(self, dut, ctrl_offset):
        self.dut = dut
        self.ctrl_offset = ctrl_offset
        self.bank = 0            # commits completed so far; a reset keeps the banks
        self.clear()
        cocotb.start_soon(self._run())

    def clear(self):
        self.inputs = []         # (edge, bank) per accepted pixel
        self.outputs = []        # edge per delivered pixel

    async def _run(self):
        dut = self.dut
        edge, aw, prev_bvalid = 0, None, 0
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            edge += 1
            # values seen now are those of the cycle that ends at the next edge (edge + 1)
            bvalid = int(dut.s_axil_bvalid.value)
            if bvalid and not prev_bvalid and aw == (self.ctrl_offset, 1):
                self.bank += 1   # the write took effect at this edge: later pixels use it
            prev_bvalid = bvalid
            if int(dut.s_axil_awvalid.value) and int(dut.s_axil_awready.value):
                commit = CTRL.unpack(int(dut.s_axil_wdata.value))["commit"]
                aw = (int(dut.s_axil_awaddr.value), commit)
            if int(dut.s_axis_tvalid.value) and int(dut.s_axis_tready.value):
                self.inputs.append((edge + 1, self.bank))
            if int(dut.m_axis_tvalid.value) and int(dut.m_axis_tready.value):
                self.outputs.append(edge + 1)


class TB:
    def __init__(self, dut, fast=False):
        self.dut = dut
        self.request = REQUEST
        self.cfg = REQUEST.cfg
        self.latency = LATENCY
        self.seed = REQUEST.seed
        self.rng = np.random.default_rng(self.seed)
        self.log = logging.getLogger("cocotb.tb")
        self.log.info("configuration %s, seed %d", self.cfg.id, self.seed)
        self.regs = {r.name: r for r in register_map(self.cfg)}

        # the bus models drive the engine's stream (ext) and a monitor logs every clock; a
        # fast-path test has neither (no Python in the clock: only cocotb's clock, in C) and
        # hands the stream to the harness's own source and sink
        Clock(dut.clk, harness.CLOCK_NS, unit="ns").start()
        dut.ext.value = 0 if fast else 1
        dut.start.value = 0
        dut.mark.value = 0
        if not fast:
            self.source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.clk,
                                          dut.rst, byte_lanes=1)
            self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.clk, dut.rst,
                                      byte_lanes=1)
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
        for bus in ("s_axis", "m_axis", "s_axil"):
            # bus models log every transaction; a reset's flushed frame is expected here
            logging.getLogger(f"cocotb.{dut._name}.{bus}").setLevel(logging.ERROR)

        self.monitor = None if fast else Monitor(dut, self.regs[CTRL.name].offset)
        self.harness_time = [0.0, 0]     # seconds and clocks the fast path's runs took
        self.banks = []          # BlockParams per commit: bank k is self.banks[k - 1]
        self.n_sat = self.regs[SAT_COUNT.name].count

    # --- infrastructure

    async def reset(self, cycles=4):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, cycles)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)
        if self.monitor:
            self.monitor.clear()

    def set_pauses(self, idle_prob, stall_prob):
        def pauses(p):
            rng = np.random.default_rng(self.rng.integers(1 << 32))
            return (bool(rng.random() < p) for _ in itertools.count()) if p > 0 else None
        self.source.set_pause_generator(pauses(idle_prob))
        self.sink.set_pause_generator(pauses(stall_prob))

    def addr(self, name, index=0):
        reg = self.regs[name]
        assert 0 <= index < reg.count, f"{name}[{index}] out of range"
        return reg.offset + 4 * index

    def param_addr(self, i):
        """Byte address of word ``i`` of the parameter window (WEIGHTS, EPI_MULT, EPI_BIAS)."""
        return self.regs[WEIGHTS.name].offset + WORD_BYTES * i

    async def write_word(self, addr, value, expect=AxiResp.OKAY):
        resp = await self.axil.write(addr, (value & WORD_MASK).to_bytes(WORD_BYTES, "little"))
        assert resp.resp == expect, f"write 0x{addr:x}: {resp.resp!r}"

    async def read_word(self, addr, expect=AxiResp.OKAY):
        resp = await self.axil.read(addr, WORD_BYTES)
        assert resp.resp == expect, f"read 0x{addr:x}: {resp.resp!r}"
        return int.from_bytes(resp.data, "little")

    async def write(self, name, value, index=0, expect=AxiResp.OKAY):
        await self.write_word(self.addr(name, index), value, expect)

    async def read(self, name, index=0, expect=AxiResp.OKAY):
        return await self.read_word(self.addr(name, index), expect)

    async def write_bank(self, params):
        """Write a bank (:class:`bfly.sim.model.BlockParams`) into the shadow registers, not committed."""
        for name, words in load_plan(self.cfg, params):
            for i, word in enumerate(words):
                await self.write_word(self.regs[name].offset + 4 * i, word)

    async def commit(self, params):
        self.banks.append(params)
        await self.write(CTRL.name, CTRL.pack(commit=1))

    def random_bank(self):
        return random_params(self.cfg, self.rng, calm=self.request.calm)

    def commit_points(self, n, commits):
        """``commits`` random pixel counts, sorted, in the middle 80% of a stream of ``n``: where
        commits land while it flows."""
        return np.sort(self.rng.integers(n // 10, n - n // 10, size=commits))

    def random_pixels(self, n):
        cfg = self.cfg
        x = self.rng.integers(cfg.data_min, cfg.data_max + 1, size=(n, cfg.n_in))
        pick = self.rng.random(x.shape) < 0.05
        x[pick] = self.rng.choice([cfg.data_min, cfg.data_max], size=int(pick.sum()))
        return x

    async def timed_commit(self, params):
        """Commit ``params`` with no cycle monitor running: returns the clock (the harness's
        ``cycle``) in which the write's response came, from which on entering pixels use it."""
        dut = self.dut

        async def watch():
            while True:
                await RisingEdge(dut.clk)
                await ReadOnly()
                if int(dut.s_axil_bvalid.value):
                    return int(dut.cycle.value)

        watcher = cocotb.start_soon(watch())
        await self.commit(params)
        cycle = await watcher
        await RisingEdge(dut.clk)          # out of the read-only phase the watcher ended in
        return cycle

    async def fast_run(self, pixels, last, idle, stall, commit_at=()):
        """Stream ``pixels`` through the harness's source and sink (no Python in the clock),
        with ``last`` flags; for each ``(pixel count, bank)`` of ``commit_at`` (in order), write
        the bank into the shadow registers while the stream runs and commit it once that many
        pixels have entered.

        Returns ``(outputs, out_last, accept_cycles, out_cycles, commit_cycles)``."""
        dut, cfg = self.dut, self.cfg
        harness.write_source(RUN_DIR / harness.SOURCE_FILE, cfg, pixels, last)
        dut.n_pixels.value = len(pixels)
        dut.src_seed.value = int(self.rng.integers(1, 1 << 32))
        dut.sink_seed.value = int(self.rng.integers(1, 1 << 32))
        dut.idle_level.value = harness.level(idle)
        dut.stall_level.value = harness.level(stall)
        dut.mark.value = (1 << 32) - 1
        for name in (harness.ACCEPT_FILE, harness.SINK_FILE):
            (RUN_DIR / name).unlink(missing_ok=True)
        await RisingEdge(dut.clk)
        dut.start.value = 1
        await RisingEdge(dut.clk)
        dut.start.value = 0
        while int(dut.done.value) or not int(dut.running.value):    # until the start is taken
            await RisingEdge(dut.clk)
        t0, clock0 = time.perf_counter(), int(dut.cycle.value)
        done = RisingEdge(dut.done)
        commit_cycles = []
        for at, bank in commit_at:
            await self.write_bank(bank)
            dut.mark.value = int(at)
            await RisingEdge(dut.clk)
            if not int(dut.at_mark.value):
                await First(RisingEdge(dut.at_mark), done)
            commit_cycles.append(await self.timed_commit(bank))
            dut.mark.value = (1 << 32) - 1
        if not int(dut.done.value):
            await done
        assert int(dut.in_count.value) == int(dut.out_count.value) == len(pixels)
        self.harness_time[0] += time.perf_counter() - t0
        self.harness_time[1] += int(dut.cycle.value) - clock0
        accepts = harness.read_accepts(RUN_DIR / harness.ACCEPT_FILE)
        out_cycles, out_last, got = harness.read_sink(RUN_DIR / harness.SINK_FILE, cfg)
        return got, out_last, accepts, out_cycles, commit_cycles

    # --- scoreboard

    def expected(self, pixels, banks_of_pixels):
        """Golden-model outputs and per-stage saturation counts for pixels and their banks."""
        cfg = self.cfg
        y = np.zeros((len(pixels), cfg.n_out), dtype=np.int64)
        sat = np.zeros(self.n_sat, dtype=np.int64)
        for b in np.unique(banks_of_pixels):
            rows = banks_of_pixels == b
            assert b >= 1, "a pixel entered before any commit"
            res = engine_forward(cfg, self.banks[b - 1], pixels[rows])
            y[rows] = res.y
            sat += res.sat_counts
        return y, sat

    def compare(self, got, want):
        """Return ``None`` when equal, else a description of the first mismatch."""
        if got.shape != want.shape:
            return {"pixel": min(len(got), len(want)), "why": f"{len(got)} pixels out, {len(want)} expected"}
        bad = np.argwhere(got != want)
        if len(bad) == 0:
            return None
        p, c = (int(v) for v in bad[0])
        return {"pixel": p, "channel": c, "expected": int(want[p, c]), "got": int(got[p, c]),
                "mismatches": int(len(bad))}

    async def stream(self, pixels, frame_sizes, commits=0):
        """Send ``pixels`` in frames; with ``commits``, commit new random banks while they flow.

        The next bank is written to the shadow registers ahead of time, and committed as soon as
        the input has taken a random share of the pixels, so commits land inside the stream
        (mid-frame or between frames). Returns ``(outputs, frame_lengths_out, bank_of_each_pixel)``.
        """
        n = len(pixels)
        start_count = len(self.monitor.inputs)

        async def committer(next_bank):
            targets = self.commit_points(n, commits)
            for k, target in enumerate(targets):
                while len(self.monitor.inputs) - start_count < target:
                    await RisingEdge(self.dut.clk)
                await self.commit(next_bank)
                if k + 1 < commits:
                    next_bank = self.random_bank()
                    await self.write_bank(next_bank)

        task = None
        if commits:
            next_bank = self.random_bank()
            await self.write_bank(next_bank)
            task = cocotb.start_soon(committer(next_bank))
        words = pack_pixels(pixels, self.cfg.data_bits)
        start = 0
        for size in frame_sizes:
            await self.source.send(AxiStreamFrame(words[start:start + size]))
            start += size
        out_words, lengths = [], []
        for _ in frame_sizes:
            frame = await self.sink.recv()
            out_words.extend(frame.tdata)
            lengths.append(len(frame.tdata))
        if task is not None:
            await task
        banks = np.array([b for _, b in self.monitor.inputs[start_count:start_count + n]], dtype=np.int64)
        got = unpack_pixels(out_words, self.cfg.n_out, self.cfg.data_bits)
        return got, lengths, banks

    async def sat_counts(self):
        return [await self.read(SAT_COUNT.name, l) for l in range(self.n_sat)]

    async def clear_sat_counts(self):
        for l in range(self.n_sat):
            await self.write(SAT_COUNT.name, 0, l)


def _frame_sizes(rng, total, frames):
    cuts = np.sort(rng.choice(np.arange(1, total), size=min(frames, total) - 1, replace=False))
    return [int(v) for v in np.diff(np.concatenate([[0], cuts, [total]]))]


@cocotb.test()
async def test_registers(dut):
    """ID and CONFIG describe the configuration; shadow registers read back; bad addresses fail."""
    tb = TB(dut)
    await tb.reset()
    cfg = tb.cfg
    assert await tb.read(ID.name) == BFLY_ID
    # software can rebuild the whole configuration from the read-only words
    config = [await tb.read(r.name) for r in (CONFIG0, CONFIG1, CONFIG2)]
    factors = [await tb.read(FACTOR.name, l) for l in range(cfg.n_stages)]
    rebuilt, latency = config_from_words(*config, factors, name=cfg.name,
                                         config3=await tb.read(CONFIG3.name))
    assert rebuilt == cfg, f"rebuilt {rebuilt.to_dict()} from the CONFIG words"
    assert latency == tb.latency
    bank = tb.random_bank()
    await tb.write_bank(bank)
    words = param_words(cfg, bank)
    for i in sorted({int(i) for i in tb.rng.integers(0, len(words), size=32)} | {0, len(words) - 1}):
        raw = await tb.read_word(tb.param_addr(i))
        assert raw == words[i], f"parameter word {i} reads {raw:#x}, wrote {words[i]:#x}"
    for name, values in load_plan(cfg, bank)[1:]:       # the scalar registers after the window
        for i, v in enumerate(values):
            assert await tb.read(name, i) == v, f"{name}[{i}]"
    # writes to read-only registers and reads of unmapped words answer SLVERR
    await tb.write(ID.name, 0, expect=AxiResp.SLVERR)
    unmapped = next(a for a in range(0, tb.regs[WEIGHTS.name].offset, 4)
                    if not any(r.offset <= a < r.end for r in tb.regs.values()))
    await tb.read_word(unmapped, expect=AxiResp.SLVERR)
    await tb.write_word(unmapped, 0, expect=AxiResp.SLVERR)
    assert await tb.read(ID.name) == BFLY_ID


@cocotb.test()
async def test_stream(dut):
    """Random banks, pixels with extremes, idle input cycles, output stalls, several frames and
    commits while the stream runs: every output word and every SAT_COUNT equals the model."""
    tb = TB(dut)
    await tb.reset()
    cfg = tb.cfg
    req = tb.request
    n, frames, commits = req.pixels, req.frames, req.commits
    idle, stall = req.idle_prob, req.stall_prob

    bank = tb.random_bank()
    await tb.write_bank(bank)
    await tb.commit(bank)
    await tb.clear_sat_counts()
    tb.set_pauses(idle, stall)
    pixels = tb.random_pixels(n)
    sizes = _frame_sizes(tb.rng, n, frames)
    got, lengths, banks = await tb.stream(pixels, sizes, commits=commits)
    want, want_sat = tb.expected(pixels, banks)
    mismatch = tb.compare(got, want)
    sat = await tb.sat_counts()
    cycles = tb.monitor.outputs[-1] - tb.monitor.inputs[-n][0]
    result = {"config": cfg.id, "seed": tb.seed, "pixels": n, "cycles": cycles,
              "frames": len(sizes), "banks_used": int(len(np.unique(banks))),
              "sat_counts": sat, "expected_sat_counts": [int(v) for v in want_sat],
              "mismatch": mismatch, "frames_ok": lengths == sizes}
    _write_summary("test_stream", result)
    assert mismatch is None, f"first mismatch: {mismatch}"
    assert lengths == sizes, f"frame lengths out {lengths}, in {sizes}"
    assert sat == [int(v) for v in want_sat], f"SAT_COUNT {sat}, model {list(want_sat)}"
    # writing a SAT_COUNT clears it
    await tb.write(SAT_COUNT.name, 0, 0)
    assert await tb.read(SAT_COUNT.name, 0) == 0


@cocotb.test()
async def test_throughput(dut):
    """With no stalls the input takes one pixel every ``interval`` clocks (1 when fully parallel),
    the last of N pixels leaves (N - 1) * interval + latency clocks after the first enters, and a
    pixel entering at clock c leaves at c + latency."""
    tb = TB(dut)
    await tb.reset()
    n = tb.request.throughput_pixels
    bank = tb.random_bank()
    await tb.write_bank(bank)
    await tb.commit(bank)
    tb.set_pauses(0, 0)
    pixels = tb.random_pixels(n)
    got, _, banks = await tb.stream(pixels, [n])
    want, _ = tb.expected(pixels, banks)
    assert tb.compare(got, want) is None
    ins = [e for e, _ in tb.monitor.inputs]
    outs = tb.monitor.outputs
    step = tb.cfg.interval
    assert ins == list(range(ins[0], ins[0] + n * step, step)), \
        f"the input did not accept one pixel every {step} clocks"
    assert [o - i for i, o in zip(ins, outs)] == [tb.latency] * n, \
        f"latency {sorted(set(o - i for i, o in zip(ins, outs)))}, manifest says {tb.latency}"
    assert outs[-1] - ins[0] == (n - 1) * step + tb.latency


@cocotb.test()
async def test_reset_mid_stream(dut):
    """A reset in the middle of a frame drops the stream, keeps the loaded bank, and the next
    frame is correct."""
    tb = TB(dut)
    await tb.reset()
    bank = tb.random_bank()
    await tb.write_bank(bank)
    await tb.commit(bank)
    tb.set_pauses(0.1, 0.3)
    cfg = tb.cfg
    first = tb.random_pixels(200)
    await tb.source.send(AxiStreamFrame(pack_pixels(first, cfg.data_bits)))
    await ClockCycles(dut.clk, int(tb.rng.integers(20, 120)))
    await tb.reset()
    tb.sink.clear()
    second = tb.random_pixels(150)
    got, lengths, banks = await tb.stream(second, [150])
    assert (banks == 1).all()
    want, _ = tb.expected(second, banks)
    assert tb.compare(got, want) is None, tb.compare(got, want)
    assert lengths == [150]


@cocotb.test(skip=REQUEST.params is None or REQUEST.inputs is None)
async def test_image(dut):
    """A given bank (the request's ``params``, e.g. a quantized block's) on given integer pixels
    (``inputs``): loaded through AXI4-Lite, read back, committed, streamed in ``frames`` frames
    with the request's idle and stall probabilities; every output equals the golden model's."""
    tb = TB(dut)
    req = tb.request
    params, pixels = req.params, req.inputs
    await tb.reset()
    await tb.write_bank(params)
    words = param_words(tb.cfg, params)
    for i in range(0, len(words), max(1, len(words) // 50)):
        assert await tb.read_word(tb.param_addr(i)) == words[i], f"parameter word {i} reads back wrong"
    await tb.commit(params)
    await tb.clear_sat_counts()
    tb.set_pauses(req.idle_prob, req.stall_prob)
    got, lengths, banks = await tb.stream(pixels, _frame_sizes(tb.rng, len(pixels), req.frames))
    want, want_sat = tb.expected(pixels, banks)
    mismatch = tb.compare(got, want)
    sat = await tb.sat_counts()
    _write_summary("test_image", {"pixels": len(pixels), "mismatch": mismatch, "sat_counts": sat,
                                  "expected_sat_counts": [int(v) for v in want_sat],
                                  "outputs_nonzero": int(np.count_nonzero(got))})
    assert mismatch is None, f"first mismatch: {mismatch}"
    assert sat == [int(v) for v in want_sat]


@cocotb.test()
async def test_fast_stream(dut):
    """The fast path: ``fast_pixels`` random pixels (with extremes) through the harness's source and
    sink, in ``frames`` frames, idle input and stalled output clocks from the harness's seeded
    generators, ``commits`` new banks committed while the stream runs. Every output word, every
    ``last`` and every SAT_COUNT equals the golden model's for the bank each pixel entered with;
    none lost, duplicated or reordered."""
    tb = TB(dut, fast=True)
    await tb.reset()
    cfg, req = tb.cfg, tb.request
    n = req.fast_pixels
    bank = tb.random_bank()
    await tb.write_bank(bank)
    await tb.commit(bank)
    await tb.clear_sat_counts()
    ends = np.cumsum(_frame_sizes(tb.rng, n, req.frames)) - 1 if n else np.zeros(0, int)
    commits = tb.commit_points(n, req.commits) if n else np.zeros(0, int)
    want_sat = np.zeros(tb.n_sat, dtype=np.int64)
    mismatch, lasts_ok, cycles = None, True, 0
    wall = time.perf_counter()
    for lo in range(0, n, harness.CHUNK_PIXELS):
        hi = min(n, lo + harness.CHUNK_PIXELS)
        pixels = tb.random_pixels(hi - lo)
        last = np.isin(np.arange(lo, hi), ends)
        plan = [(int(at - lo), tb.random_bank()) for at in commits[(commits >= lo) & (commits < hi)]]
        got, out_last, accepts, out_cycles, commit_cycles = await tb.fast_run(
            pixels, last, req.idle_prob, req.stall_prob, plan)
        # the bank of each pixel: the one committed last before the clock it entered in
        bank_of = np.full(len(accepts), len(tb.banks) - len(commit_cycles), dtype=np.int64)
        for c in commit_cycles:
            bank_of[accepts >= c] += 1
        want, sat = tb.expected(pixels, bank_of) if len(accepts) == len(pixels) else (None, 0)
        want_sat += sat
        if want is None:
            mismatch = {"pixel": lo + len(accepts), "why": f"{len(accepts)} of {len(pixels)} pixels entered"}
        else:
            mismatch = tb.compare(got, want)
            if mismatch is not None:
                mismatch["pixel"] += lo
        lasts_ok = lasts_ok and np.array_equal(out_last, last)
        if len(accepts) and len(out_cycles):
            cycles += int(out_cycles[-1] - accepts[0])
        _write_progress(hi, n)
        if mismatch is not None or not lasts_ok:
            break
    wall = time.perf_counter() - wall
    sat = await tb.sat_counts()
    result = {"config": cfg.id, "seed": tb.seed, "pixels": n, "cycles": cycles,
              "run_seconds": wall, "harness_seconds": tb.harness_time[0],
              "harness_clocks": tb.harness_time[1], "frames": len(ends),
              "banks_used": 1 + len(commits), "sat_counts": sat,
              "expected_sat_counts": [int(v) for v in want_sat], "mismatch": mismatch,
              "frames_ok": bool(lasts_ok), "path": "fast"}
    _write_summary("test_fast_stream", result)
    assert mismatch is None, f"first mismatch: {mismatch}"
    assert lasts_ok, "the output's last flags differ from the input's"
    assert sat == [int(v) for v in want_sat], f"SAT_COUNT {sat}, model {list(want_sat)}"
