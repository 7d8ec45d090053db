"""The engine's output FIFO. The engine's credit check never lets more pixels be in flight than
it holds, so the write side has no full flag. The read side is first-word-fall-through with the
stream rules of ``amaranth.lib.stream``.

The word is wide (``n`` channels) and the FIFO sits at the far end of the pipeline, so no
handshake reaches thousands of bits through logic:

- the word is cut into slices, each with its own memory and pointers, and the slices into groups,
  each with its own copy of the control (with ``every_clock=True`` a group is one slice). A
  copy's state registers read only each other and the handshakes, so no two copies are alike and
  synthesis keeps them apart (a register that copies another is merged with its twins);
- the writer's ``w.valid`` reaches a first copy per few slices (the implementation's
  ``fifo_first_copy_slices``), then each group's
  own toggle register, and the group writes a clock later (the data registered twice on its
  way) when its toggle register has changed: the last stage's valid fans out to a few
  registers, not to every slice's write enable;
- every load enable of a wide register is itself a register, decided a clock ahead from the
  state the clock will end in. With ``every_clock=True`` (an engine that takes a pixel every
  clock) each group has two output registers used in turn, and ``r.payload`` is the one at the
  head (the select is a register): one holds the word being offered while the other is loaded,
  so a word leaves every clock. With ``every_clock=False`` (a folded engine, a pixel every
  ``interval`` clocks) there is one output register, loaded only when it will be empty, so a
  word is read every second clock at most.
"""

from amaranth.hdl import Module, Signal, Mux, Shape, Value, Cat
from amaranth.lib import wiring, stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .arith import delay
from . import hier
from .impl import Implementation

__all__ = ["OutputFIFO"]


class OutputFIFO(wiring.Component):
    """``depth`` words of ``shape`` (a shape or layout) between the stream ``w`` (always ready:
    ``w.valid`` must never be high when ``depth`` words are held, the writer's credit check) and
    the stream ``r``. A word written at clock ``c`` is offered on ``r`` from clock
    ``c + LATENCY`` if the words before it have been read. With
    ``every_clock=False`` a word is read every second clock at most. ``impl`` (a
    :class:`bfly.hw.impl.Implementation`, by default generic) sizes the slices and copy groups."""

    LATENCY = 4

    def __init__(self, shape, depth, every_clock=True, impl=None):
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth!r}")
        self._width, self._depth, self._every_clock = Shape.cast(shape).width, depth, every_clock
        self._impl = impl = impl or Implementation()
        # an engine that writes every clock has a copy of the control per slice
        self._group = 1 if every_clock else impl.fifo_group_slices
        super().__init__({
            "w": In(stream.Signature(shape, always_ready=True)),
            "r": Out(stream.Signature(shape)),
        })

    def elaborate(self, platform):
        m = Module()
        impl = self._impl
        w_data, r_data = Value.cast(self.w.payload), Value.cast(self.r.payload)
        # with two output registers, the memory never holds all `depth` words: while it holds
        # a word, one register is full (an emptied register is loaded a clock after the read),
        # except in the clock after a word enters an empty FIFO, when one word is held. So it
        # is a word smaller (32 rather than 33 for BFT(16,4): two 16-word LUT RAMs, not three)
        depth = self._depth - 1 if self._every_clock and self._depth > 1 else self._depth

        slices = [(lo, min(self._width, lo + impl.fifo_slice_bits))
                  for lo in range(0, self._width, impl.fifo_slice_bits)]
        for g in range(0, len(slices), self._group):
            if g % impl.fifo_first_copy_slices == 0:
                # a copy of w.valid per fifo_first_copy_slices slices, between the writer and them
                w_en_first = impl.local_copy(m, self.w.valid, f"w_en_first_{g}", reset=True)
            group = slices[g:g + self._group]
            base = group[0][0]
            # (a repeated block, hw/hier.py: a group of slices and its copy of the control)
            outs = hier.inline(
                m, f"group_{g}", "fifo_group",
                (depth, self._every_clock, tuple((lo - base, hi - base) for lo, hi in group)),
                lambda mm, ins, tag, group=group, base=base:
                    self._group_logic(mm, ins, tag, group, base, depth),
                g, w_en_first=w_en_first, w_data=w_data[base:group[-1][1]], r_ready=self.r.ready)
            if g == 0:
                m.d.comb += self.r.valid.eq(outs["r_rdy"])
            m.d.comb += r_data[base:group[-1][1]].eq(outs["r_data"])
        return m

    def _group_logic(self, m, ins, g, group, base, depth):
        """Group ``g`` (None in a shared module) of the slices ``group`` (bit ranges of the word,
        the first at ``base``): its write enable, its copy of the control and its slices'
        memories and output registers. Returns ``r_rdy`` (its copy of ``r.valid``) and
        ``r_data``, its bits of ``r.payload``."""
        tag = "g" if g is None else f"g{g}"
        off = 0 if g is None else base

        def bump(ptr):
            return Mux(ptr == depth - 1, 0, ptr + 1)

        # the group's write enable, a clock after the first copy: its toggle register has changed
        toggle, toggled = Signal(name=f"w_toggle_{tag}"), Signal(name=f"w_toggled_{tag}")
        m.d.sync += [toggle.eq(toggle ^ ins["w_en_first"]), toggled.eq(toggle)]
        w_en = Signal(name=f"w_en_{tag}")
        m.d.comb += w_en.eq(toggle ^ toggled)
        r_rdy, loads, pop, taken = self._control(m, w_en, tag, ins["r_ready"])
        pieces = []
        for lo, hi in group:
            lo_n = lo - base + off      # the slice's name: its first bit in the word
            mem = Memory(shape=hi - lo, depth=depth, init=[])
            m.submodules[f"storage_{lo_n}"] = mem
            wp = mem.write_port()
            rp = mem.read_port(domain="comb")
            w_ptr = Signal(range(depth), name=f"w_ptr_{lo_n}")
            r_ptr = Signal(range(depth), name=f"r_ptr_{lo_n}")
            word = delay(m, ins["w_data"][lo - base:hi - base], 2, f"w_data_{lo_n}", reset_less=True)
            m.d.comb += [wp.addr.eq(w_ptr), wp.data.eq(word), wp.en.eq(w_en),
                         rp.addr.eq(r_ptr)]
            with m.If(w_en):
                m.d.sync += w_ptr.eq(bump(w_ptr))
            outs = [Signal(hi - lo, name=f"r_data_{lo_n}_{i}", reset_less=True)
                    for i in range(len(loads))]
            for out, load in zip(outs, loads):
                with m.If(load):
                    m.d.sync += out.eq(rp.data)
            with m.If(pop):
                m.d.sync += r_ptr.eq(bump(r_ptr))
            if len(outs) == 1:
                pieces.append(outs[0])
            else:
                # the slice's own copy of the group's head (a toggle register of its own,
                # so synthesis keeps it apart): it selects 16 bits, not the group's 128
                head = Signal(name=f"head_{lo_n}")
                m.d.sync += head.eq(head ^ taken)
                pieces.append(Mux(head, outs[1], outs[0]))
        return {"r_rdy": r_rdy, "r_data": Cat(*pieces)}

    def _control(self, m, w_en, tag, r_ready):
        """One copy of the control: ``(r_rdy, loads, pop, taken)``; ``loads`` has a load enable (a
        register) per output register and ``pop`` is high when any of them is (the memory's read
        pointer moves on); with two output registers, ``taken`` is high in the clocks the word
        offered is read (the head register changes then)."""
        # words in the memory (not in an output register), and "not empty", registered
        level = Signal(range(self._depth + 1), name=f"level_{tag}")
        nonempty = Signal(name=f"nonempty_{tag}")
        pop = Signal(name=f"pop_{tag}")       # a word goes from the memory to an output register
        grow, shrink = Signal(name=f"grow_{tag}"), Signal(name=f"shrink_{tag}")
        # the sums and compares are of the level register alone; the handshakes only choose
        nonempty_next = Signal(name=f"nonempty_next_{tag}")
        m.d.comb += [grow.eq(w_en & ~pop), shrink.eq(pop & ~w_en),
                     nonempty_next.eq(Mux(grow, 1, Mux(shrink, level != 1, nonempty)))]
        m.d.sync += [level.eq(Mux(grow, level + 1, Mux(shrink, level - 1, level))),
                     nonempty.eq(nonempty_next)]
        r_rdy = Signal(name=f"r_rdy_{tag}")
        if not self._every_clock:
            # the output register takes a word when it will be empty and the memory will hold
            # one: decided a clock ahead
            full = Signal(name=f"full_{tag}")
            full_next = Mux(pop, 1, full & ~r_ready)
            m.d.sync += [full.eq(full_next), pop.eq(~full_next & nonempty_next)]
            m.d.comb += r_rdy.eq(full)
            return r_rdy, [pop], pop, None
        # two output registers in turn: `head` offers its word, `tail` is the next to fill
        full = [Signal(name=f"full{i}_{tag}") for i in range(2)]
        loads = [Signal(name=f"load{i}_{tag}") for i in range(2)]
        head, tail = Signal(name=f"head_{tag}"), Signal(name=f"tail_{tag}")
        taken = Signal(name=f"taken_{tag}")
        m.d.comb += [r_rdy.eq(Mux(head, full[1], full[0])), taken.eq(r_rdy & r_ready),
                     pop.eq(loads[0] | loads[1])]
        full_next = [Mux(loads[i], 1, full[i] & ~(taken & (head == i))) for i in range(2)]
        tail_next = tail ^ pop
        m.d.sync += [head.eq(head ^ taken), tail.eq(tail_next)]
        for i in range(2):
            m.d.sync += [full[i].eq(full_next[i]),
                         loads[i].eq(nonempty_next & ~full_next[i] & (tail_next == i))]
        return r_rdy, loads, pop, taken
