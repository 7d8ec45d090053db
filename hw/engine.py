"""The butterfly engine: the chain of stages between two streams, fully parallel.

One whole pixel is accepted per clock and one leaves per clock after ``latency`` cycles.
The pipeline is free-running (no global stall enable): an output FIFO holds everything that can be
in flight, and ``i_stream.ready`` is a credit check (pixels accepted and not yet delivered must
fit in the FIFO), so output stalls never lose, duplicate or reorder a pixel and throughput returns
to one pixel per clock as soon as a stall ends.

Double-buffered parameters: ``commit_stb`` (one cycle) starts a wavefront down a delay line that
loads each stage's active bank exactly when the first pixel accepted after the commit reaches
that stage, so every pixel is computed with the bank that was active when it entered.
"""

from amaranth.hdl import Module, Signal, Cat, signed
from amaranth.lib import wiring, data, stream, fifo
from amaranth.lib.wiring import In, Out

from gen.regmap import SHIFT_BITS
from .stage import ButterflyStage

__all__ = ["ButterflyEngine", "pixel_layout"]


def _in_range(value, lo, hi):
    """``lo <= value < hi`` without a constant comparison (a lint warning) when ``lo`` is 0."""
    return (value < hi) if lo == 0 else ((value >= lo) & (value < hi))


def pixel_layout(channels, data_bits):
    return data.StructLayout({
        "data": data.ArrayLayout(signed(data_bits), channels),
        "last": 1,
    })


class ButterflyEngine(wiring.Component):
    """The chain of ``cfg`` between ``i_stream`` and ``o_stream`` (payload: ``data``, ``last``).

    Parameter ports (driven by the register bank): the shadow weight port (``w_addr``, ``w_data``,
    ``w_en``; ``r_addr`` with ``r_data`` one cycle later), indexed in register-map order (stage,
    then ``o*s + j``) and routed to the stage that holds the weight; ``shadow_shifts``;
    ``commit_stb``. ``commit_busy`` is high while a commit propagates (the shadow bank must not
    change then); ``sat_counts`` gives, per stage, the saturations of the pixel leaving that
    stage this cycle.
    """

    def __init__(self, cfg):
        self._cfg = cfg
        self._stages = [ButterflyStage(cfg, l) for l in range(cfg.n_stages)]
        offsets, off = [], 1   # the input register is cycle 1
        for st in self._stages:
            offsets.append(off)
            off += st.latency
        self._offsets = offsets
        self._pipeline_depth = off - 1
        super().__init__({
            "i_stream": In(stream.Signature(pixel_layout(cfg.n_in, cfg.data_bits))),
            "o_stream": Out(stream.Signature(pixel_layout(cfg.n_out, cfg.data_bits))),
            "w_addr": In(range(cfg.n_weights)),
            "w_data": In(signed(cfg.weight_bits)),
            "w_en": In(1),
            "r_addr": In(range(cfg.n_weights)),
            "r_data": Out(signed(cfg.weight_bits)),
            "shadow_shifts": In(data.ArrayLayout(SHIFT_BITS, cfg.n_stages)),
            "commit_stb": In(1),
            "commit_busy": Out(1),
            "sat_counts": Out(data.ArrayLayout(range(max(f.p for f in cfg.factors) + 1),
                                               cfg.n_stages)),
            "busy": Out(1),
        })

    @property
    def fifo_depth(self):
        """A pixel counts against the credit for ``latency`` cycles, so with one pixel entering and
        one leaving per clock ``latency`` are outstanding: one more entry keeps ``ready`` high."""
        return self.latency + 1

    @property
    def latency(self):
        """Clocks from a pixel's input handshake to its output handshake with no stall.

        The input register and every stage (``pipeline_depth``), then the FIFO: one edge to write,
        two to reach the output register of ``SyncFIFOBuffered`` (its memory read is synchronous).
        """
        return self._pipeline_depth + 3

    @property
    def stages(self):
        return list(self._stages)

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg

        # --- input register and credit check
        in_data = Signal(data.ArrayLayout(signed(cfg.data_bits), cfg.n_in), reset_less=True)
        in_valid = Signal()
        in_last = Signal()
        occupancy = Signal(range(self.fifo_depth + 1))   # accepted, not yet delivered
        in_hs = self.i_stream.valid & self.i_stream.ready
        out_hs = self.o_stream.valid & self.o_stream.ready
        m.d.comb += self.i_stream.ready.eq(occupancy < self.fifo_depth)
        m.d.sync += [
            occupancy.eq(occupancy + in_hs - out_hs),
            in_valid.eq(in_hs),
            in_data.eq(self.i_stream.payload.data),
            in_last.eq(self.i_stream.payload.last),
        ]
        m.d.comb += self.busy.eq(occupancy != 0)

        # --- commit wavefront: bit i is the commit seen i+1 cycles ago. Reset-less, so a commit
        # that started always reaches every stage and the banks never end up mixed.
        commit_line = Signal(self._offsets[-1], reset_less=True)
        m.d.sync += commit_line.eq(Cat(self.commit_stb, commit_line[:-1]))
        m.d.comb += self.commit_busy.eq(commit_line.any())

        # --- the chain
        prev_data, prev_valid, prev_last = in_data, in_valid, in_last
        r_stage = Signal(range(cfg.n_stages))       # which stage the registered read came from
        for l, (st, off, w_base) in enumerate(zip(self._stages, self._offsets, cfg.weight_offsets())):
            m.submodules[f"stage{l}"] = st
            n_w = st.factor.n_weights
            w_here = _in_range(self.w_addr, w_base, w_base + n_w)
            with m.If(_in_range(self.r_addr, w_base, w_base + n_w)):
                m.d.sync += r_stage.eq(l)
            with m.If(r_stage == l):
                m.d.comb += self.r_data.eq(st.r_data)
            m.d.comb += [
                st.w_addr.eq(self.w_addr - w_base),
                st.w_data.eq(self.w_data),
                st.w_en.eq(self.w_en & w_here),
                st.r_addr.eq(self.r_addr - w_base),
                st.i_data.eq(prev_data),
                st.i_valid.eq(prev_valid),
                st.i_last.eq(prev_last),
                st.shadow_shift.eq(self.shadow_shifts[l]),
                # stage l's input register holds the pixel accepted off cycles ago
                st.load_stb.eq(commit_line[off - 1]),
                self.sat_counts[l].eq(st.o_sat_count),
            ]
            prev_data, prev_valid, prev_last = st.o_data, st.o_valid, st.o_last

        # --- output FIFO (never full: the credit check bounds what is in flight)
        m.submodules.out_fifo = out_fifo = fifo.SyncFIFOBuffered(
            width=cfg.n_out * cfg.data_bits + 1, depth=self.fifo_depth)
        m.d.comb += [
            out_fifo.w_en.eq(prev_valid),
            out_fifo.w_data.eq(Cat(prev_data.as_value(), prev_last)),
            self.o_stream.valid.eq(out_fifo.r_rdy),
            self.o_stream.payload.eq(out_fifo.r_data),
            out_fifo.r_en.eq(self.o_stream.ready),
        ]
        return m
