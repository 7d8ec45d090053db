"""The engine's output FIFO. The engine's credit check never lets more pixels be in flight than
it holds, so the write side has no full flag: a valid result is written in the clock it arrives,
its write enable straight from a register (no level compare in front of the memory, whose write
enable reaches every cell of a wide word). The read side is first-word-fall-through through an
output register, with the stream rules of ``amaranth.lib.stream``.
"""

from amaranth.hdl import Module, Signal, Mux
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["OutputFIFO"]


class OutputFIFO(wiring.Component):
    """``depth`` words of ``width`` bits. ``w_en`` must never be high when ``depth`` words are
    held (the writer's credit check). A word written at clock ``c`` is on ``r_data`` with
    ``r_rdy`` from clock ``c + LATENCY`` if the words before it have been read."""

    LATENCY = 2
    SLICE_BITS = 16

    def __init__(self, width, depth):
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth!r}")
        self._width, self._depth = width, depth
        super().__init__({
            "w_data": In(width), "w_en": In(1),
            "r_data": Out(width), "r_rdy": Out(1), "r_en": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self._depth

        def bump(ptr):
            return Mux(ptr == depth - 1, 0, ptr + 1)

        # control: words in the memory (not yet in the output register), registered "not empty"
        level = Signal(range(depth + 1))
        nonempty = Signal()
        # the output register takes the next word when it is empty or being read
        pop = Signal()
        m.d.comb += pop.eq(nonempty & (~self.r_rdy | self.r_en))
        # the sums and compares are of the level register alone; the handshakes only choose
        # (w_en comes from the far end of the pipeline: no carry chain after it)
        grow, shrink = Signal(), Signal()
        m.d.comb += [grow.eq(self.w_en & ~pop), shrink.eq(pop & ~self.w_en)]
        m.d.sync += [level.eq(Mux(grow, level + 1, Mux(shrink, level - 1, level))),
                     nonempty.eq(Mux(grow, 1, Mux(shrink, level != 1, nonempty)))]
        with m.If(pop):
            m.d.sync += self.r_rdy.eq(1)
        with m.Elif(self.r_en):
            m.d.sync += self.r_rdy.eq(0)

        # data: slices of SLICE_BITS, each with its own memory and pointers (its address lines
        # reach only its own memory cells)
        for lo in range(0, self._width, self.SLICE_BITS):
            hi = min(self._width, lo + self.SLICE_BITS)
            mem = Memory(shape=hi - lo, depth=depth, init=[])
            m.submodules[f"storage_{lo}"] = mem
            wp = mem.write_port()
            rp = mem.read_port(domain="comb")
            w_ptr = Signal(range(depth), name=f"w_ptr_{lo}")
            r_ptr = Signal(range(depth), name=f"r_ptr_{lo}")
            m.d.comb += [wp.addr.eq(w_ptr), wp.data.eq(self.w_data[lo:hi]), wp.en.eq(self.w_en),
                         rp.addr.eq(r_ptr)]
            with m.If(self.w_en):
                m.d.sync += w_ptr.eq(bump(w_ptr))
            with m.If(pop):
                m.d.sync += [self.r_data[lo:hi].eq(rp.data), r_ptr.eq(bump(r_ptr))]
        return m
