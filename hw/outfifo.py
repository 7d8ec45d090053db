"""The engine's output FIFO. The engine's credit check never lets more pixels be in flight than
it holds, so the write side has no full flag: a valid result is written in the clock it arrives,
its write enable straight from a register (no level compare in front of the memory, whose write
enable reaches every cell of a wide word). The read side is first-word-fall-through through an
output register, with the stream rules of ``amaranth.lib.stream``.

An engine that takes a pixel every clock needs a word on the output every clock: the output
register is loaded in the clock of the reader's handshake, so ``r_en`` reaches the load enable of
every bit through logic. A folded engine delivers a pixel every ``interval`` (2 or more) clocks,
and its output is a wide word (``n`` channels): with ``every_clock=False`` the output register
takes a word only when it is empty, so the decision to load it is made a clock ahead, into a
register (no logic between a handshake and thousands of load enables); a word is then read every
second clock at most. In both modes every group of slices has its own copy of the control.
"""

from amaranth.hdl import Module, Signal, Mux
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["OutputFIFO"]


class OutputFIFO(wiring.Component):
    """``depth`` words of ``width`` bits. ``w_en`` must never be high when ``depth`` words are
    held (the writer's credit check). A word written at clock ``c`` is on ``r_data`` with
    ``r_rdy`` from clock ``c + LATENCY`` if the words before it have been read. With
    ``every_clock=False`` a word is read every second clock at most."""

    LATENCY = 2
    SLICE_BITS = 16
    GROUP_SLICES = 8

    def __init__(self, width, depth, every_clock=True):
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth!r}")
        self._width, self._depth, self._every_clock = width, depth, every_clock
        super().__init__({
            "w_data": In(width), "w_en": In(1),
            "r_data": Out(width), "r_rdy": Out(1), "r_en": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self._depth

        def bump(ptr):
            return Mux(ptr == depth - 1, 0, ptr + 1)

        # the word is cut into slices of SLICE_BITS, each with its own memory and pointers (its
        # address lines reach only its own memory cells), and the slices into groups of
        # GROUP_SLICES, each with its own copy of the control below: its state registers read
        # only each other and the handshakes, so no two groups' registers are alike and synthesis
        # keeps them apart; a handshake reaches a few registers per group, not every bit's enable
        slices = [(lo, min(self._width, lo + self.SLICE_BITS))
                  for lo in range(0, self._width, self.SLICE_BITS)]
        for g in range(0, len(slices), self.GROUP_SLICES):
            r_rdy, pop = self._control(m, f"g{g}")
            if g == 0:
                m.d.comb += self.r_rdy.eq(r_rdy)
            for lo, hi in slices[g:g + self.GROUP_SLICES]:
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

    def _control(self, m, tag):
        """One copy of the control: ``(r_rdy, pop)``, ``pop`` high in the clocks the output
        register takes the next word from the memory."""
        # words in the memory (not yet in the output register), registered "not empty"
        level = Signal(range(self._depth + 1), name=f"level_{tag}")
        nonempty = Signal(name=f"nonempty_{tag}")
        r_rdy = Signal(name=f"r_rdy_{tag}")
        pop = Signal(name=f"pop_{tag}")
        grow, shrink = Signal(name=f"grow_{tag}"), Signal(name=f"shrink_{tag}")
        # the sums and compares are of the level register alone; the handshakes only choose
        # (w_en comes from the far end of the pipeline: no carry chain after it)
        nonempty_next = Mux(grow, 1, Mux(shrink, level != 1, nonempty))
        m.d.comb += [grow.eq(self.w_en & ~pop), shrink.eq(pop & ~self.w_en)]
        m.d.sync += [level.eq(Mux(grow, level + 1, Mux(shrink, level - 1, level))),
                     nonempty.eq(nonempty_next)]
        if self._every_clock:
            # the output register takes the next word when it is empty or being read
            m.d.comb += pop.eq(nonempty & (~r_rdy | self.r_en))
        else:
            # ... when it will be empty and the memory will hold a word: decided a clock ahead
            m.d.sync += pop.eq(~((r_rdy & ~self.r_en) | pop) & nonempty_next)
        with m.If(pop):
            m.d.sync += r_rdy.eq(1)
        with m.Elif(self.r_en):
            m.d.sync += r_rdy.eq(0)
        return r_rdy, pop
