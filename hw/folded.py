"""One butterfly factor folded in time: ``lanes`` output nodes per clock, each with ``simd``
multipliers, so a pixel takes ``interval = (p / lanes) * (s / simd)`` clocks in the stage
(``cfg.stage_fold``). The arithmetic is the fully parallel stage's (``hw/stage.py``), the same
requantization (``docs/spec.md`` §2); with ``simd < s`` (the dense MVAU shape) each node adds
``s / simd`` partial sums in an accumulator before rounding.

Schedule (:class:`bfly.hw.fold.FoldSchedule`). ``i.valid`` is one pulse per pixel; ``i.payload`` then
stays still for ``interval`` clocks (the previous stage holds its output), and the next pulse comes
``interval`` or more clocks later. Clock ``c`` of a pixel is phase ``c = chunk * folds + fold``:
lane ``j`` works on one output node per chunk with inputs ``fold*simd ... fold*simd + simd - 1``
of that node (the schedule says which node, which channels, where each weight lives). Per phase:

1. the inputs of every lane are selected from ``i.payload`` (:class:`OperandSelect`: a multiplexer
   over the phases, in two registered levels) while each lane's own copy of the weight address
   is registered and the weights are read from the lane's memory (:class:`LaneWeights`: its read
   register, then one beside it: a block RAM's clock-to-out is most of a clock);
   ``operand_cycles`` in all;
2. products ``x * w`` (:class:`LaneMAC`): operands registered again, then the product
   (``hw/mult.py``: on an ECP5 the registers inside a ``MULT18X18D``);
3. adder tree, one register per level (``ceil(log2 simd)``); with folds, the accumulator;
4. requantization (``Requantizer.latency`` registers), then the chunk is shifted into its lane's
   chain of registers (:class:`OutputAssembly`); with the last chunk the whole output pixel is
   loaded into ``o.payload`` (held until the next pixel) and ``o.valid`` pulses.

Weights. Each lane keeps its weights in one memory of two banks (active and shadow), one word per
phase holding ``simd`` weights. Host writes go to the shadow bank (one weight at a time, a byte
lane of the word). ``load_stb`` (high in the cycle before the first pixel of the new bank arrives)
swaps the banks; a pixel in progress keeps the bank it arrived with. When it is done the stage
copies the new active bank into the new shadow bank in ``interval`` clocks, so the shadow bank
again holds what was written (the register map's contract; :class:`BankControl`).
``commit_cycles`` is how long after ``load_stb`` the stage is busy with a commit; no host write or
read may arrive then (the register bank holds both while a commit propagates: the
copy shares the read-back port).
"""

from amaranth.hdl import Module, Signal, Value, Cat, Const, Array, Mux, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.lib.memory import Memory

from .arith import pipelined_sum, tree_levels, delay, divmod_const, two_level_select, pack
from .mult import MULT_CYCLES
from . import hier
from .impl import Implementation
from .requant import Requantizer
from .stage import stage_signature
from .ports import pixel_stream
from .fold import FoldSchedule, is_pow2

__all__ = ["FoldedStage", "PhaseCounter", "BankControl", "LaneWeights", "OperandSelect", "LaneMAC",
           "OutputAssembly", "decode"]


def word_addr(interval, bank, index):
    """Word ``index`` of bank ``bank`` (bank 1 is the upper half) of a lane's memory: a
    concatenation when ``interval`` is a power of two."""
    if is_pow2(interval):
        return Cat(Value.cast(index)[:(interval - 1).bit_length()], bank)
    return Mux(bank, interval, 0) + index


def decode(schedule, addr):
    """``(lane, word, slot)`` in the weight memories of weight ``addr`` (index ``o*s + j``), in
    hardware: :meth:`bfly.hw.fold.FoldSchedule.placement` with bit slices where the sizes allow."""
    f = schedule.factor
    o, j = divmod_const(addr, f.s)
    fields = schedule.decode_fields()
    if fields is not None:
        # connectivity.node_coords of o in bits: every size is a power of two
        lt, lr, split = fields
        u, i, blk = o[:lt], o[lt:lt + lr], o[lt + lr:]
        group = Cat(u, blk)
        lane, chunk = group[split:], Cat(i, group[:split])
    else:
        lane, chunk = divmod_const(o, schedule.chunks)
    fold, slot = divmod_const(j, schedule.simd)
    folds = schedule.folds
    if is_pow2(folds):
        word = Cat(fold[:(folds - 1).bit_length()], chunk)
    else:
        word = chunk * folds + fold
    return lane, word, slot


def _phase_select(m, sources, phase, name, first_bits):
    """``sources[phase]`` two clocks later (``OperandSelect.SELECT_CYCLES``), as a multiplexer
    over only the bits of ``phase`` that change the choice (a lane often reads the same channel
    in several phases, or a dense engine's slot the same few channels in every chunk: fewer
    inputs, fewer wires from the pixel register), in two registered levels: the low
    ``first_bits`` of those bits choose within groups, the rest (registered alongside) among the
    groups."""
    count = len(sources)
    bits = list(range((count - 1).bit_length()))

    def consistent(kept):
        chosen = {}
        for c, src in enumerate(sources):
            key = tuple((c >> b) & 1 for b in kept)
            if chosen.setdefault(key, src) is not src:
                return False
        return True

    for b in list(bits):
        if consistent([k for k in bits if k != b]):
            bits.remove(b)
    table = [sources[0]] * (1 << len(bits))
    for c, src in enumerate(sources):
        table[sum(((c >> b) & 1) << i for i, b in enumerate(bits))] = src
    return two_level_select(m, table, Cat(Value.cast(phase)[b] for b in bits), name,
                            group=1 << min(first_bits, len(bits)))


class PhaseCounter(wiring.Component):
    """The phase (memory word), fold and chunk of the current clock of a pixel.

    Each rests at 0 between pixels (it wraps after the last phase, and the next pixel comes
    ``interval`` or more clocks later), so the phase is a register, not a function of
    ``valid``. ``phase_next`` is the phase of the next clock (``LEAD`` clocks ahead): each user
    takes its own registered copy of it, the phase of its clock (no fan-out of one counter
    across the device). ``pixel_last`` is the ``last`` flag of the pixel in progress."""

    #: clocks by which ``phase_next`` leads the phase
    LEAD = 1

    def __init__(self, interval, folds, chunks):
        self._interval, self._folds, self._chunks = interval, folds, chunks
        super().__init__({
            "valid": In(1), "last": In(1),
            "phase_next": Out(range(interval)), "fold": Out(range(folds)),
            "chunk": Out(range(chunks)), "active": Out(1), "pixel_last": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        II, F, R = self._interval, self._folds, self._chunks
        fold, chunk, active, ph_next = self.fold, self.chunk, self.active, self.phase_next
        ph = Signal(range(II), name="phase")
        running = Signal()
        last_phase = ph == II - 1
        # the phase after ph_next, registered: ph_next is then one LUT per bit (it feeds a copy
        # beside every lane and multiplexer), not an adder with `active` on its carry chain (the
        # increment is of ph_next, into this one register)
        ph_inc = Signal.like(ph, name="phase_inc", init=1 % II)
        m.d.comb += [active.eq(self.valid | running),
                     ph_next.eq(Mux(active, ph_inc, ph))]
        m.d.sync += [ph.eq(ph_next), ph_inc.eq(Mux(ph_next == II - 1, 0, ph_next + 1))]
        with m.If(active):
            m.d.sync += running.eq(~last_phase)
            with m.If(fold == F - 1):
                m.d.sync += [fold.eq(0), chunk.eq(Mux(chunk == R - 1, 0, chunk + 1))]
            with m.Else():
                m.d.sync += fold.eq(fold + 1)
        last_hold = Signal()
        with m.If(self.valid):
            m.d.sync += last_hold.eq(self.last)
        m.d.comb += self.pixel_last.eq(Mux(self.valid, self.last, last_hold))
        return m


class BankControl(wiring.Component):
    """Which weight bank is active, which one the pixel in progress reads, and the copy of the
    new active bank into the new shadow bank after a commit.

    A commit (``load_stb``) swaps the banks at once, but each pixel keeps the bank it arrived
    with (a pixel arriving in the cycle of ``load_stb`` is an old one): ``bank`` is the bank of
    this clock's pixel; ``new_bank`` marks the first pixel of a new bank. The swap state
    survives a reset. ``interval + 1`` clocks after ``load_stb`` (the last old pixel is done)
    ``copying`` reads word ``copy_ph`` of the active bank, one a clock for ``interval`` clocks;
    ``copy_wr`` and ``copy_addr`` write it into the shadow bank ``copy_lag`` clocks later (the
    weight memory's read latency)."""

    def __init__(self, interval, copy_lag):
        if copy_lag < 1:
            raise ValueError(f"copy_lag must be at least 1, not {copy_lag!r}")
        self._interval, self._copy_lag = interval, copy_lag
        super().__init__({
            "valid": In(1), "load_stb": In(1),
            "sel": Out(1), "bank": Out(1), "new_bank": Out(1),
            "copying": Out(1), "copy_ph": Out(range(interval)),
            "copy_wr": Out(1), "copy_addr": Out(range(2 * interval)),
        })

    @staticmethod
    def busy_cycles(interval, copy_lag):
        """Clocks from ``load_stb`` until the last copied word is written: ``copying`` starts
        ``interval + 1`` clocks after it and lasts ``interval`` clocks, each write ``copy_lag``
        clocks after its read."""
        return interval + 1 + interval + copy_lag

    def elaborate(self, platform):
        m = Module()
        II = self._interval
        sel = Signal(reset_less=True)             # the active bank
        pix_sel = Signal(reset_less=True)         # the bank of the pixel in progress
        m.d.comb += [self.sel.eq(sel), self.bank.eq(Mux(self.valid, sel, pix_sel))]
        with m.If(self.valid):
            m.d.sync += pix_sel.eq(sel)
        with m.If(self.load_stb):
            m.d.sync += sel.eq(~sel)
        # the new shift applies from the first pixel that arrives after the commit
        shift_pending = Signal(reset_less=True)
        with m.If(self.load_stb):
            m.d.sync += shift_pending.eq(1)
        with m.Elif(self.valid):
            m.d.sync += shift_pending.eq(0)
        m.d.comb += self.new_bank.eq(self.valid & shift_pending)
        # after the last old pixel is done (interval clocks), copy active -> shadow
        copy_wait = Signal(range(II + 1), reset_less=True)
        copying = Signal(reset_less=True)
        copy_ph = Signal(range(II), reset_less=True)
        with m.If(self.load_stb):
            m.d.sync += copy_wait.eq(II)
        with m.Elif(copy_wait != 0):
            m.d.sync += copy_wait.eq(copy_wait - 1)
        with m.If(copy_wait == 1):
            m.d.sync += [copying.eq(1), copy_ph.eq(0)]
        with m.Elif(copying):
            m.d.sync += [copy_ph.eq(copy_ph + 1), copying.eq(copy_ph != II - 1)]
        copy_wr_0 = Signal(reset_less=True)
        copy_addr_0 = Signal(range(2 * II), reset_less=True)
        m.d.sync += [copy_wr_0.eq(copying), copy_addr_0.eq(word_addr(II, ~sel, copy_ph))]
        m.d.comb += [
            self.copying.eq(copying), self.copy_ph.eq(copy_ph),
            self.copy_wr.eq(delay(m, copy_wr_0, self._copy_lag - 1, "copy_wr", reset_less=True)),
            self.copy_addr.eq(delay(m, copy_addr_0, self._copy_lag - 1, "copy_addr", reset_less=True)),
        ]
        return m


class LaneWeights(wiring.Component):
    """The weights of lane ``lane``: one memory of two banks (active and shadow), one word per
    phase holding ``simd`` weights.

    The datapath reads word ``phase`` of bank ``bank`` (``phase`` as ``PhaseCounter.phase_next``):
    the lane's own copy of the phase, the word address registered (so no two lanes' address
    registers are alike and synthesis keeps them apart), the memory's read register and one
    beside it: ``weights`` ``DATAPATH_CYCLES`` clocks after ``phase``. The second read port serves
    the copy after a commit (``copying``, ``copy_ph``: written back through ``copy_wr`` and
    ``copy_addr`` ``COPY_CYCLES`` later) and otherwise the host's read-back of the shadow bank
    (``r_word``; ``r_slot`` a clock later, ``SLOT_LAG``): ``r_byte``, ``READ_CYCLES`` clocks after
    ``r_word``. Host writes (``w_en``, ``w_word``, ``w_slot``, ``w_data``) go to a byte lane of
    the shadow bank."""

    #: the memory's read register, then one beside it (a block RAM's clock-to-out is most of a clock)
    MEMORY_CYCLES = 2
    #: the lane's copy of the phase, the address register, then the memory
    DATAPATH_CYCLES = 2 + MEMORY_CYCLES
    COPY_CYCLES = MEMORY_CYCLES
    #: the memory, then the slot selected (beside the memory, with the lane's own copy of it)
    READ_CYCLES = MEMORY_CYCLES + 1
    SLOT_LAG = MEMORY_CYCLES - 1

    def __init__(self, interval, simd, weight_bits, word_bits, slot_bits, lane, impl=None):
        self._interval, self._simd, self._wb, self._lane = interval, simd, weight_bits, lane
        self._impl = impl or Implementation()
        super().__init__({
            "phase": In(range(interval)), "bank": In(1), "sel": In(1),
            "copying": In(1), "copy_ph": In(range(interval)),
            "copy_wr": In(1), "copy_addr": In(range(2 * interval)),
            "w_en": In(1), "w_word": In(word_bits), "w_slot": In(slot_bits),
            "w_data": In(signed(weight_bits)),
            "r_word": In(word_bits), "r_slot": In(slot_bits),
            "weights": Out(data.ArrayLayout(signed(weight_bits), simd)),
            "r_byte": Out(weight_bits),
        })

    def elaborate(self, platform):
        m = Module()
        II, S, wb, impl = self._interval, self._simd, self._wb, self._impl
        sel = self.sel
        mem = Memory(shape=unsigned(S * wb), depth=2 * II, init=[])
        m.submodules.wmem = mem
        wp = mem.write_port(granularity=wb)
        dp = mem.read_port(transparent_for=())       # datapath: the active bank
        # the copy after a commit, else host read-back of the shadow bank (the register bank
        # holds reads while a commit is busy)
        cp = mem.read_port(transparent_for=())
        lane_ph = impl.local_copy(m, self.phase, "phase_lane")
        waddr = Signal(range(2 * II), name="waddr", reset_less=True)
        m.d.sync += waddr.eq(word_addr(II, self.bank, lane_ph))
        m.d.comb += [
            dp.addr.eq(waddr),
            cp.addr.eq(Mux(self.copying, word_addr(II, sel, self.copy_ph),
                           word_addr(II, ~sel, self.r_word))),
        ]
        # both read ports registered again beside the memory
        w_q = Signal(S * wb, name="wq", reset_less=True)
        c_q = Signal(S * wb, name="cq", reset_less=True)
        m.d.sync += [w_q.eq(dp.data), c_q.eq(cp.data)]
        with m.If(self.copy_wr):
            m.d.comb += [wp.addr.eq(self.copy_addr), wp.data.eq(c_q), wp.en.eq((1 << S) - 1)]
        with m.Else():
            m.d.comb += [
                wp.addr.eq(word_addr(II, ~sel, self.w_word)),
                wp.data.eq(Cat([self.w_data] * S)),
                wp.en.eq(Mux(self.w_en, Const(1, S) << self.w_slot, 0)),
            ]
        m.d.comb += self.weights.eq(w_q)
        # the slot selected with a copy of its own, beside the memory (one register for all
        # lanes would be a route across the device)
        r_byte = Signal(wb, name="r_byte", reset_less=True)
        r_slot = impl.local_copy(m, self.r_slot, "r_slot")
        m.d.sync += r_byte.eq(Array(c_q[i * wb:(i + 1) * wb] for i in range(S))[r_slot])
        m.d.comb += self.r_byte.eq(r_byte)
        return m


class OperandSelect(wiring.Component):
    """The inputs of every multiplier: lane ``j``, slot ``i`` reads channel
    ``schedule.channel(j, i, phase)`` of ``x``; ``operands`` ``cycles`` clocks after ``phase``
    (``PhaseCounter.phase_next``), in step with the weights.

    Lanes that read the same channels in every phase (all of them in a dense engine: each fold's
    inputs go to every PE) share one multiplexer (with its own copy of the phase: its select
    bits reach every bit of it), and each lane takes its own registered copy of its output: one
    wire per channel into the multiplexer, not one per lane."""

    #: the two registered levels of a multiplexer
    SELECT_CYCLES = 2

    def __init__(self, schedule, data_bits, cycles, impl=None):
        self._sched, self._d, self._cycles = schedule, data_bits, cycles
        self._impl = impl or Implementation()
        if cycles - 1 - self.SELECT_CYCLES - 1 < 0:
            raise ValueError(f"operand selection takes {self.SELECT_CYCLES + 2} clocks, not {cycles}")
        s = schedule
        super().__init__({
            "x": In(data.ArrayLayout(signed(data_bits), s.factor.q)),
            "phase": In(range(s.interval)),
            "operands": Out(data.ArrayLayout(data.ArrayLayout(signed(data_bits), s.simd), s.lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        s, impl = self._sched, self._impl
        xs = [Signal(signed(self._d), name=f"x_{c}") for c in range(s.factor.q)]
        m.d.comb += [x.eq(self.x[c]) for c, x in enumerate(xs)]
        chans_of = {(j, i): s.channels(j, i) for j in range(s.lanes) for i in range(s.simd)}
        readers = {}
        for (j, i), chans in chans_of.items():
            readers.setdefault(chans, []).append(j)
        selected = {}
        for k, (chans, lanes) in enumerate(readers.items()):
            mux_ph = impl.local_copy(m, self.phase, f"phase_mux_{k}")
            x_sel = _phase_select(m, [xs[c] for c in chans], mux_ph, f"xsel_{lanes[0]}_{chans[0]}",
                                  impl.first_select_bits)
            selected[chans] = (x_sel, len(lanes) > 1)
        pad = self._cycles - 1 - self.SELECT_CYCLES        # after the copy of the phase
        for (j, i), chans in chans_of.items():
            x_sel, shared = selected[chans]
            if shared:
                x_sel = impl.local_copy(m, x_sel, f"xcopy_{j}_{i}")
            x_op = delay(m, x_sel, pad - shared, f"xop_{j}_{i}", reset_less=True)
            m.d.comb += self.operands[j][i].eq(x_op)
        return m


class LaneMAC(wiring.Component):
    """One lane's multipliers, adder tree and (with ``folds > 1``) accumulator: ``acc``, the
    node's sum of ``x[i] * w[i]`` over its ``folds`` phases, ``latency`` clocks after the
    operands of its last phase. ``first`` marks the first fold of a node, ``lead`` clocks before
    its operands. The multipliers are ``first_dsp`` onwards, slot by slot."""

    def __init__(self, simd, folds, data_bits, weight_bits, acc_bits, lane, lead, first_dsp=0,
                 impl=None):
        self._simd, self._folds, self._acc_bits = simd, folds, acc_bits
        self._lane, self._lead, self._first_dsp = lane, lead, first_dsp
        self._impl = impl or Implementation()
        super().__init__({
            "x": In(data.ArrayLayout(signed(data_bits), simd)),
            "w": In(data.ArrayLayout(signed(weight_bits), simd)),
            "first": In(1),
            "acc": Out(signed(acc_bits)),
        })

    @staticmethod
    def latency_of(simd, folds):
        """Clocks from the operands to the sum: the products, the adder tree, the accumulator."""
        return MULT_CYCLES + tree_levels(simd) + (1 if folds > 1 else 0)

    @property
    def latency(self):
        return self.latency_of(self._simd, self._folds)

    def elaborate(self, platform):
        m = Module()
        S = self._simd
        products = [self._impl.product(m, self.x[i], self.w[i], f"prod_{i}", self._first_dsp + i)
                    for i in range(S)]
        total = pipelined_sum(m, products, "tree")
        if self._folds > 1:
            first = delay(m, self.first, self._lead + MULT_CYCLES + tree_levels(S), "first",
                          reset_less=True)
            acc = Signal(signed(self._acc_bits), name="acc", reset_less=True)
            m.d.sync += acc.eq(Mux(first, 0, acc) + total)
            total = acc
        m.d.comb += self.acc.eq(total)
        return m


class OutputAssembly(wiring.Component):
    """The output pixel from the lanes' results: ``results`` (and their saturation flags ``sat``)
    of phase ``c`` arrive ``tag_delay`` clocks after it; ``done`` (the phase completes a chunk),
    ``chunk`` and ``last`` come with the phase and travel beside the data. ``o`` is loaded with
    the last chunk (``LATENCY`` clocks after its results) and held until the next pixel;
    ``sat_count`` counts each chunk's saturations.

    Each lane shifts its chunks 0 .. R-2 into a register chain of its own (short local routes,
    no fan-out of a result to every chunk register); the last chunk completes the pixel, when
    chunk ck is at position R-2-ck of the chain. Each lane's shift and load enables are its own
    copies (hundreds of flip-flops per lane), made from tags ``EARLY`` clocks ahead; the load
    enable goes to the lane's output registers through one more copy per ``load_group`` nodes
    (they feed the next stage, so they spread further than the lane; each copy is named by its
    first chunk)."""

    LATENCY = 1
    EARLY = 2

    def __init__(self, schedule, data_bits, tag_delay, impl=None):
        if tag_delay < self.EARLY:
            raise ValueError(f"the tags need {self.EARLY} clocks of lead, not {tag_delay}")
        self._sched, self._d, self._tag_delay = schedule, data_bits, tag_delay
        self._impl = impl or Implementation()
        s = schedule
        super().__init__({
            "results": In(data.ArrayLayout(signed(data_bits), s.lanes)),
            "sat": In(s.lanes),
            "done": In(1), "chunk": In(range(s.chunks)), "last": In(1),
            "o": Out(pixel_stream(s.factor.p, data_bits, always_ready=True)),
            "sat_count": Out(range(s.lanes + 1)),
        })

    def _tags(self, m):
        """``(done_soon, complete_early, done, complete, last)``: the tags a clock ahead of the
        results (``soon``, ``early`` a clock before that) and in step with them."""
        R, tag_delay = self._sched.chunks, self._tag_delay
        done_early = delay(m, self.done, tag_delay - self.EARLY, "done")
        chunk_early = delay(m, self.chunk, tag_delay - self.EARLY, "done_chunk", reset_less=True)
        complete_early = done_early & (chunk_early == R - 1)
        done_soon = delay(m, done_early, 1, "done_soon")
        chunk_soon = delay(m, chunk_early, 1, "done_chunk_soon", reset_less=True)
        complete_soon = done_soon & (chunk_soon == R - 1)
        done, complete = Signal(name="done"), Signal(name="complete")
        m.d.sync += [done.eq(done_soon), complete.eq(complete_soon)]
        last = delay(m, self.last, tag_delay, "done_last", reset_less=True)
        return done_soon, complete_early, done, complete, last

    def elaborate(self, platform):
        m = Module()
        s, impl = self._sched, self._impl
        L, R = s.lanes, s.chunks
        done_soon, complete_early, done, complete, done_last = self._tags(m)
        outs = [self.results[j] for j in range(L)]
        chains = [[Signal(signed(self._d), name=f"asm_{j}_{k}", reset_less=True) for k in range(R - 1)]
                  for j in range(L)]
        chunks = [[chains[j][R - 2 - ck] for j in range(L)] for ck in range(R - 1)] + [outs]
        for j, (chain, out) in enumerate(zip(chains, outs)):
            with m.If(impl.local_copy(m, done_soon, f"shift_en_{j}")):
                m.d.sync += [a.eq(b) for a, b in zip(chain, [out] + chain[:-1])]
            load_lane = impl.local_copy(m, complete_early, f"load_lane_{j}")
            group = impl.load_group
            for g in range(0, R, group):
                with m.If(impl.local_copy(m, load_lane, f"load_en_{j}_{g}")):
                    m.d.sync += [self.o.payload.data[s.node(j, ck)].eq(chunks[ck][j])
                                 for ck in range(g, min(R, g + group))]
        m.d.sync += self.o.valid.eq(complete)
        with m.If(complete):
            m.d.sync += self.o.payload.last.eq(done_last)
        counted = [Signal(name=f"satv_{j}") for j in range(L)]
        m.d.comb += [c.eq(self.sat[j] & done) for j, c in enumerate(counted)]
        m.d.comb += self.sat_count.eq(pipelined_sum(m, counted, "satcount"))
        return m


class FoldedStage(wiring.Component):
    """Stage ``index`` of the chain of ``cfg``, folded as ``cfg.stage_fold(index)`` says.

    Ports as :class:`bfly.hw.stage.ButterflyStage`; ``i.payload`` must stay still for ``interval`` clocks
    after ``i.valid``, and ``o.payload`` holds each result until the next ``o.valid``. ``impl`` and
    ``first_dsp`` as for a parallel stage (the multipliers numbered lane by lane).

    Made of a :class:`PhaseCounter`, a :class:`BankControl`, a :class:`LaneWeights` and a
    :class:`LaneMAC` per lane, an :class:`OperandSelect`, the :class:`Requantizer` and an
    :class:`OutputAssembly`, on the tables of the stage's :class:`bfly.hw.fold.FoldSchedule`; its
    latencies are theirs added up.
    """

    def __init__(self, cfg, index, impl=None, first_dsp=0):
        self._cfg = cfg
        self._index = index
        self._impl = impl or Implementation()
        self._first_dsp = first_dsp
        self._factor = cfg.factors[index]
        self._schedule = FoldSchedule.of(cfg, index)
        self._lanes, self._simd, self._interval = cfg.stage_fold(index)
        super().__init__(stage_signature(cfg, index))

    @property
    def factor(self):
        return self._factor

    @property
    def schedule(self):
        return self._schedule

    @property
    def interval(self):
        return self._interval

    @property
    def multipliers(self):
        """Multipliers in the stage: ``simd`` per lane."""
        return self._lanes * self._simd

    @property
    def operand_cycles(self):
        """Clocks from a phase to the multipliers' operands: the weights' read
        (``LaneWeights.DATAPATH_CYCLES`` from the phase counter's ``phase_next``, a clock ahead)."""
        return LaneWeights.DATAPATH_CYCLES - PhaseCounter.LEAD

    @property
    def _to_acc(self):
        """Clocks from a phase to its accumulated sum at the rounding step."""
        return self.operand_cycles + LaneMAC.latency_of(self._simd, self._schedule.folds)

    @property
    def _tag_delay(self):
        """Clocks from a phase to its requantized results."""
        return self._to_acc + Requantizer.latency

    @property
    def latency(self):
        """Clocks from ``i.valid`` to ``o.valid``: the last phase's results, then the output."""
        return self._tag_delay + OutputAssembly.LATENCY + self._interval - 1

    @property
    def read_cycles(self):
        """Clocks from ``params.raddr`` to ``params.rdata``: the weight read in a lane, then the
        lane chosen."""
        return LaneWeights.READ_CYCLES + 1

    @property
    def commit_cycles(self):
        """Clocks after ``load_stb`` until the shadow bank is whole again: the last old pixel
        reads its bank for up to ``interval`` clocks, then the copy takes ``interval`` (and the
        memory's read latency)."""
        return BankControl.busy_cycles(self._interval, LaneWeights.COPY_CYCLES)

    def elaborate(self, platform):
        m = Module()
        cfg, impl, s = self._cfg, self._impl, self._schedule
        m.submodules.phase = pc = PhaseCounter(s.interval, s.folds, s.chunks)
        m.submodules.bank_ctl = bc = BankControl(s.interval, LaneWeights.COPY_CYCLES)
        m.d.comb += [pc.valid.eq(self.i.valid), pc.last.eq(self.i.payload.last),
                     bc.valid.eq(self.i.valid), bc.load_stb.eq(self.load_stb)]
        weights = self._weight_banks(m, pc, bc)
        m.submodules.operands = ops = OperandSelect(s, cfg.data_bits, LaneWeights.DATAPATH_CYCLES, impl)
        m.d.comb += [ops.x.eq(self.i.payload.data), ops.phase.eq(pc.phase_next)]
        acc_bits = cfg.acc_bits(self._index)
        accs = []
        for j in range(s.lanes):
            first = self._first_dsp + j * s.simd
            mac = LaneMAC(s.simd, s.folds, cfg.data_bits, cfg.weight_bits, acc_bits, j,
                          self.operand_cycles, first, impl)
            # (a repeated block, hw/hier.py: the lanes are alike but for their DSP sites)
            sites = tuple(impl.dsp_site(first + i) for i in range(s.simd)) if impl.ecp5 else ()
            hier.submodule(m, f"lane_{j}", mac, "lane_mac",
                           (s.simd, s.folds, acc_bits, self.operand_cycles, impl.family, sites))
            m.d.comb += [mac.x.eq(ops.operands[j]), mac.w.eq(weights[j]),
                         mac.first.eq(pc.fold == 0)]
            accs.append(mac.acc)
        rq = self._requantizer(m, bc, accs)
        m.submodules.assembly = asm = OutputAssembly(s, cfg.data_bits, self._tag_delay, impl)
        m.d.comb += [asm.results.eq(rq.o), asm.sat.eq(rq.sat),
                     asm.done.eq(pc.active & (pc.fold == s.folds - 1)), asm.chunk.eq(pc.chunk),
                     asm.last.eq(pc.pixel_last), self.o_sat_count.eq(asm.sat_count)]
        wiring.connect(m, wiring.flipped(self.o), asm.o)
        return m

    def _weight_banks(self, m, pc, bc):
        """A :class:`LaneWeights` per lane, written and read back through ``params``; returns
        each lane's weights."""
        s, impl, wb = self._schedule, self._impl, self._cfg.weight_bits
        w_lane, w_word, w_slot = decode(s, self.params.addr)
        r_lane, r_word, r_slot = decode(s, self.params.raddr)
        r_slot_lag = delay(m, r_slot, LaneWeights.SLOT_LAG, "r_slot")
        r_lane_late = delay(m, r_lane, LaneWeights.READ_CYCLES, "r_lane")
        weights, r_bytes = [], []
        for j in range(s.lanes):
            bank = LaneWeights(s.interval, s.simd, wb, len(w_word), len(w_slot), j, impl)
            hier.submodule(m, f"wbank_{j}", bank, "lane_weights", (s.interval, s.simd, impl.family))
            m.d.comb += [
                bank.phase.eq(pc.phase_next), bank.bank.eq(bc.bank), bank.sel.eq(bc.sel),
                bank.copying.eq(bc.copying), bank.copy_ph.eq(bc.copy_ph),
                bank.copy_wr.eq(bc.copy_wr), bank.copy_addr.eq(bc.copy_addr),
                bank.w_en.eq(self.params.en & (w_lane == j)), bank.w_word.eq(w_word),
                bank.w_slot.eq(w_slot), bank.w_data.eq(self.params.data),
                bank.r_word.eq(r_word), bank.r_slot.eq(r_slot_lag),
            ]
            weights.append(bank.weights)
            r_bytes.append(bank.r_byte)
        # the lane chosen, registered
        m.d.sync += self.params.rdata.eq(Array(r_bytes)[r_lane_late])
        return weights

    def _requantizer(self, m, bc, accs):
        """The requantizer of the lanes' sums. The shift of a new bank is loaded just before its
        first sum rounds; the next commit may come in between (the pixel entered just before
        it), so a commit keeps the shift of the bank it makes active apart from the other's, and
        the load takes the one of the pixel's bank."""
        cfg, impl = self._cfg, self._impl
        m.submodules.requant = rq = Requantizer(cfg, cfg.acc_bits(self._index), self._lanes, impl,
                                                slots=True)
        lead = self._to_acc - 1 - rq.load_lead
        m.d.comb += [
            rq.shadow_shift.eq(self.shadow_shift),
            rq.commit.eq(self.load_stb), rq.commit_slot.eq(~bc.sel),
            rq.load.eq(delay(m, bc.new_bank, lead, "shift_load", reset_less=True)),
            rq.load_slot.eq(delay(m, bc.sel, lead, "shift_bank", reset_less=True)),
        ]
        m.d.comb += rq.acc.eq(pack(accs, signed(cfg.acc_bits(self._index))))
        return rq
