"""The butterfly engine: the chain of stages (and the optional epilogue) between two streams,
fully parallel.

One whole pixel is accepted per clock and one leaves per clock after ``latency`` cycles.
The pipeline is free-running (no global stall enable): an output FIFO holds everything that can be
in flight, and ``i_stream.ready`` is a credit check (pixels accepted and not yet delivered must
fit in the FIFO), so output stalls never lose, duplicate or reorder a pixel and throughput returns
to one pixel per clock as soon as a stall ends.

Double-buffered parameters: ``commit_stb`` (one cycle) starts a wavefront down a delay line that
loads each stage's active bank exactly when the first pixel accepted after the commit reaches
that stage, so every pixel is computed with the bank that was active when it entered.
"""

from amaranth.hdl import Module, Signal, Cat, Mux, signed
from amaranth.lib import wiring, data
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .regmap import SHIFT_BITS, param_window
from .arith import in_range, delay
from .axi import WRITE_SPACING
from .epilogue import Epilogue, EPI_CTRL_BITS
from .folded import FoldedStage
from .impl import Implementation
from .outfifo import OutputFIFO
from .ports import ParamPort, pixel_layout, pixel_stream
from .requant import Requantizer
from .stage import ButterflyStage

__all__ = ["ButterflyEngine"]


class ButterflyEngine(wiring.Component):
    """The chain of ``cfg`` between ``i_stream`` and ``o_stream`` (payload: ``data``, ``last``).

    Parameter ports (driven by the register bank): ``params``, the shadow parameter window (a
    :class:`bfly.hw.ports.ParamPort`: ``addr`` and ``data`` still from a clock before ``en`` to a
    clock after it; ``en`` pulses ``WRITE_SPACING`` or more clocks apart, and ``commit_stb`` comes
    ``WRITE_SPACING`` or more clocks after the last of them, as on the register bus: a weight
    reaches a parallel stage's shadow register through a tree of registered copies, up to
    ``WRITE_SPACING + 2`` clocks after ``en``; ``raddr`` with
    ``rdata`` ``param_read_cycles`` clocks later, sign-extended), indexed as
    the register map lays it out: every stage's weights (stage, then ``o*s + j``), then the
    epilogue's ``A_c`` and ``Bias_c``; ``shadow_shifts``, and with an epilogue ``shadow_epi_ctrl``
    and ``shadow_out_shift``; ``commit_stb``. The shadow shifts (and epilogue control) must hold
    still for ``Requantizer.prep_cycles`` clocks before ``commit_stb``: their derived constants are
    computed ahead (the register bank guarantees it, its writes being ``WRITE_SPACING`` clocks
    apart).
    ``commit_busy`` is high while a commit propagates (the shadow bank must not change then); ``sat_counts`` gives, per stage (and the epilogue),
    the saturations of the pixel leaving it this cycle.

    ``impl`` (a :class:`bfly.hw.impl.Implementation`, by default generic Verilog) makes the
    physical choices of every block; the multipliers are numbered stage by stage for its DSP sites.
    """

    def __init__(self, cfg, impl=None):
        self._cfg = cfg
        self._impl = impl = impl or Implementation()
        stage = FoldedStage if cfg.interval > 1 else ButterflyStage
        self._stages, first_dsp = [], 0
        for l in range(cfg.n_stages):
            self._stages.append(stage(cfg, l, impl, first_dsp))
            first_dsp += self._stages[-1].multipliers
        self._epilogue = Epilogue(cfg, impl) if cfg.epilogue else None
        # the blocks in pipeline order: the stages, then the epilogue
        self._blocks = blocks = self._stages + ([self._epilogue] if self._epilogue else [])
        offsets, off = [], 0     # cycles from the input register to each block's input
        for b in blocks:
            offsets.append(off)
            off += b.latency
        self._offsets = offsets
        self._pipeline_depth = off
        # a folded engine takes a pixel into a register loaded every clock, then into the input
        # register that its first stage reads for `interval` clocks (its load enable, one per
        # group of channels, is then a register: a handshake fans out to a few copies only)
        self._take_cycles = 1 if cfg.interval > 1 else 0
        # a commit is busy until the last block has loaded (and a folded stage copied) its bank
        self._commit_span = self._take_cycles + max(
            [off + 1] + [o + 1 + b.commit_cycles for b, o in zip(blocks, offsets)])
        if Requantizer.prep_cycles > WRITE_SPACING:
            raise ValueError(f"the requantizers need the shadow shifts still for "
                             f"{Requantizer.prep_cycles} clocks before a commit; register writes "
                             f"are only {WRITE_SPACING} apart")
        _, n_params = param_window(cfg)
        counters = len(blocks)
        ports = {
            "i_stream": In(pixel_stream(cfg.n_in, cfg.data_bits)),
            "o_stream": Out(pixel_stream(cfg.n_out, cfg.data_bits)),
            "params": In(ParamPort(n_params, 32)),
            "shadow_shifts": In(data.ArrayLayout(SHIFT_BITS, cfg.n_stages)),
            "commit_stb": In(1),
            "commit_busy": Out(1),
            "sat_counts": Out(data.ArrayLayout(range(max(f.p for f in cfg.factors) + 1), counters)),
            "busy": Out(1),
        }
        if cfg.epilogue:
            ports["shadow_epi_ctrl"] = In(EPI_CTRL_BITS)
            ports["shadow_out_shift"] = In(SHIFT_BITS)
        super().__init__(ports)

    @property
    def fifo_depth(self):
        """A pixel counts against the credit for ``latency`` cycles, so with one pixel entering and
        one leaving every ``interval`` clocks ``ceil(latency / interval)`` are outstanding: one more
        entry keeps ``ready`` high, and one more covers the clock by which the credit learns of a
        delivery late (the output handshake is registered before it is counted)."""
        return -(-self.latency // self._cfg.interval) + 2

    @property
    def interval(self):
        """Clocks per pixel: one pixel enters (and leaves) every ``interval`` clocks at most."""
        return self._cfg.interval

    @property
    def latency(self):
        """Clocks from a pixel's input handshake to its output handshake with no stall.

        The input register is loaded at the handshake (a folded engine's a clock later,
        ``take_cycles``); then every stage and the epilogue (``pipeline_depth``); then the
        output FIFO (``OutputFIFO.LATENCY``: written, then loaded into its output register).
        """
        return 1 + self._take_cycles + self._pipeline_depth + OutputFIFO.LATENCY

    @property
    def _block_read_cycles(self):
        return max(b.read_cycles for b in self._blocks)

    @property
    def param_read_cycles(self):
        """Clocks from ``params.raddr`` to ``params.rdata``: the address decoded into a register,
        the slowest block's read, then the block's word chosen into a register."""
        return 1 + self._block_read_cycles + 1

    @property
    def stages(self):
        return list(self._stages)

    @property
    def epilogue(self):
        return self._epilogue

    @property
    def implementation(self):
        return self._impl

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        in_data, in_valid, in_last = self._take(m)
        commit_line = self._commit_wavefront(m)
        blocks = self._blocks
        self._route_params(m, blocks)

        # --- the chain, then the epilogue, then the output FIFO
        source = pixel_stream(cfg.n_in, cfg.data_bits, always_ready=True).create(path=("in",))
        m.d.comb += [source.valid.eq(in_valid), source.payload.data.eq(in_data),
                     source.payload.last.eq(in_last)]
        prev = source
        for l, (b, off) in enumerate(zip(blocks, self._offsets)):
            m.submodules[f"stage{l}" if l < cfg.n_stages else "epilogue"] = b
            wiring.connect(m, prev, b.i)
            m.d.comb += [
                # block l's input register holds the pixel taken into the input register `off`
                # cycles ago
                b.load_stb.eq(commit_line[off + self._take_cycles]),
                self.sat_counts[l].eq(b.o_sat_count),
            ]
            if l < cfg.n_stages:
                m.d.comb += b.shadow_shift.eq(self.shadow_shifts[l])
            else:
                m.d.comb += [b.shadow_ctrl.eq(self.shadow_epi_ctrl),
                             b.shadow_shift.eq(self.shadow_out_shift)]
                if cfg.has_residual:
                    m.d.comb += b.i_x.eq(self._delayed_input(m, in_data, off))
            prev = b.o

        # (never full: the credit check bounds what is in flight)
        m.submodules.out_fifo = out_fifo = OutputFIFO(pixel_layout(cfg.n_out, cfg.data_bits),
                                                      self.fifo_depth, every_clock=cfg.interval == 1,
                                                      impl=self._impl)
        wiring.connect(m, prev, out_fifo.w)
        wiring.connect(m, out_fifo.r, wiring.flipped(self.o_stream))
        return m

    def _take(self, m):
        """The input register and the credit check: ``(data, valid, last)`` of the pixel taken."""
        cfg, impl = self._cfg, self._impl
        in_data = Signal(data.ArrayLayout(signed(cfg.data_bits), cfg.n_in), reset_less=True)
        in_valid = Signal()
        in_last = Signal()
        occupancy = Signal(range(self.fifo_depth + 1))   # accepted, not yet delivered
        in_hs = self.i_stream.valid & self.i_stream.ready
        # a delivery counts a clock late (a register beside the FIFO's output), so the credit
        # is conservative for that clock
        out_hs = Signal(name="out_hs")
        m.d.sync += out_hs.eq(self.o_stream.valid & self.o_stream.ready)
        # credit, registered: next cycle's occupancy is this one's -1, 0 or +1, so the compares
        # are made on the register and only a multiplexer follows the handshakes
        credit = Signal(init=1)
        depth = self.fifo_depth
        m.d.sync += credit.eq(Mux(in_hs & ~out_hs, occupancy < depth - 1,
                                  Mux(out_hs & ~in_hs, 1, occupancy < depth)))
        if cfg.interval > 1:
            # a folded engine takes a pixel at most every `interval` clocks
            cooldown = Signal(range(cfg.interval))
            idle = Signal(init=1)            # cooldown == 0, registered
            with m.If(in_hs):
                m.d.sync += [cooldown.eq(cfg.interval - 1), idle.eq(0)]
            with m.Elif(cooldown != 0):
                m.d.sync += [cooldown.eq(cooldown - 1), idle.eq(cooldown == 1)]
            m.d.comb += self.i_stream.ready.eq(credit & idle)
        else:
            m.d.comb += self.i_stream.ready.eq(credit)
        m.d.sync += occupancy.eq(occupancy + in_hs - out_hs)
        payload = self.i_stream.payload
        if cfg.interval > 1:
            # held: a folded first stage reads it for `interval` clocks; taken first into a
            # register loaded every clock, then by groups of channels, each group's load enable
            # its own registered copy of the handshake
            raw = Signal.like(in_data, name="in_raw", reset_less=True)
            raw_last = Signal(name="in_raw_last", reset_less=True)
            taken = Signal(name="in_taken")
            m.d.sync += [raw.eq(payload.data), raw_last.eq(payload.last), taken.eq(in_hs),
                         in_valid.eq(taken)]
            with m.If(taken):
                m.d.sync += in_last.eq(raw_last)
            group = impl.take_group
            for g, lo in enumerate(range(0, cfg.n_in, group)):
                with m.If(impl.local_copy(m, in_hs, f"take_{g}")):
                    m.d.sync += [in_data[c].eq(raw[c]) for c in range(lo, min(cfg.n_in, lo + group))]
        else:                   # taken every clock (in_valid says which): no enable to fan out
            m.d.sync += [in_data.eq(payload.data), in_last.eq(payload.last), in_valid.eq(in_hs)]
        m.d.comb += self.busy.eq(occupancy != 0)

        return in_data, in_valid, in_last

    def _commit_wavefront(self, m):
        """``commit_line``: bit i is the commit seen i+1 cycles ago."""
        # it spans the whole pipeline, so the shadow bank stays still until every block has
        # loaded from it; it is reset-less, so a commit that started always completes and the
        # banks never end up mixed
        commit_line = Signal(self._commit_span, reset_less=True)
        m.d.sync += commit_line.eq(Cat(self.commit_stb, commit_line[:-1]))
        # registered: equal to commit_line.any() in every cycle (a commit never starts while one
        # is busy: the register bank holds it), set by a commit and cleared as the wavefront
        # leaves the line, without a wide OR; reset-less as the line is
        busy = Signal(name="commit_busy_r", reset_less=True)
        m.d.sync += busy.eq(self.commit_stb | (busy & ~commit_line[-1]))
        m.d.comb += self.commit_busy.eq(busy)
        return commit_line

    def _route_params(self, m, blocks):
        """The parameter window: writes and reads go to the block that holds the parameter."""
        cfg = self._cfg
        bases = cfg.param_blocks()                # one per stage, then the epilogue's
        p = self.params
        # addresses are decoded into registers first: the address must be still for a clock
        # before the strobe and address and data for a clock after it (the register bank holds
        # them): the write lands a clock after the strobe, registered next to the block; a read
        # answers param_read_cycles clocks after its address (one to decode, the blocks' own read
        # cycles, then the block's word is chosen into a register: the blocks are spread over
        # the device)
        read = self._block_read_cycles
        r_block = Signal(range(len(blocks)))     # which block the read came from
        r_block_late = delay(m, r_block, read - 1, "r_block")
        for i, (b, (lo, count)) in enumerate(zip(blocks, bases)):
            w_hit = Signal(name=f"w_hit_{i}")
            w_en = Signal(name=f"w_en_{i}")
            w_addr = Signal.like(b.params.addr, name=f"w_addr_{i}")
            r_addr = Signal.like(b.params.raddr, name=f"r_addr_{i}")
            w_data = Signal.like(b.params.data, name=f"w_data_{i}", reset_less=True)
            w_in_block = in_range(p.addr, lo, lo + count)
            m.d.sync += [w_hit.eq(w_in_block), w_en.eq(p.en & w_hit)]
            with m.If(w_in_block):                 # (a copy of its own, as the data)
                m.d.sync += w_addr.eq(p.addr - lo)
            # each block's own copy of the data, loaded only while the address is in its block
            # (so no two copies are the same register and synthesis keeps them apart): a
            # shorter route to each block. The data is held from a clock before the strobe to a
            # clock after it, so the copy holds it when w_en rises; the strobe is not in its enable
            with m.If(w_hit):
                m.d.sync += w_data.eq(p.data[:len(w_data)])
            # each block's read address is loaded only by reads of its own parameters (so the
            # blocks' address registers, and what they decode, are not one register)
            with m.If(in_range(p.raddr, lo, lo + count)):
                m.d.sync += [r_block.eq(i), r_addr.eq(p.raddr - lo)]
            with m.If(r_block_late == i):
                m.d.sync += p.rdata.eq(delay(m, b.params.rdata, read - b.read_cycles,
                                             f"r_data_{i}", reset_less=True))
            m.d.comb += [
                b.params.addr.eq(w_addr),
                b.params.data.eq(w_data),
                b.params.en.eq(w_en),
                b.params.raddr.eq(r_addr),
            ]


    def _delayed_input(self, m, in_data, cycles):
        """``in_data`` delayed by ``cycles`` clocks, through a memory (block RAM on an FPGA):
        written every clock, read at the same address with a registered, non-transparent port,
        so a word comes out ``depth + 1`` clocks after it went in."""
        depth = cycles - 1
        m.submodules.x_delay = mem = Memory(shape=len(in_data.as_value()), depth=depth, init=[])
        wr = mem.write_port()
        rd = mem.read_port(transparent_for=())
        ptr = Signal(range(depth), reset_less=True)
        m.d.sync += ptr.eq(Mux(ptr == depth - 1, 0, ptr + 1))
        m.d.comb += [wr.addr.eq(ptr), wr.data.eq(in_data.as_value()), wr.en.eq(1), rd.addr.eq(ptr)]
        return rd.data
