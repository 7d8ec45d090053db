"""One butterfly factor folded in time: ``lanes`` output nodes per clock, each with ``simd``
multipliers, so a pixel takes ``interval = (p / lanes) * (s / simd)`` clocks in the stage
(``cfg.stage_fold``). The arithmetic is the fully parallel stage's (``hw/stage.py``), the same
requantization (``docs/spec.md`` §2); with ``simd < s`` (the dense MVAU shape) each node adds
``s / simd`` partial sums in an accumulator before rounding.

Schedule. ``i_valid`` is one pulse per pixel; ``i_data`` then stays still for ``interval`` clocks
(the previous stage holds its output), and the next pulse comes ``interval`` or more clocks later.
Clock ``c`` of a pixel is phase ``c = chunk * folds + fold``: lane ``j`` works on one output node
per chunk with inputs ``fold*simd ... fold*simd + simd - 1`` of that node. The ``r`` nodes of a
factor that read the same inputs (same block and ``u``) go to one lane in consecutive chunks when
every size is a power of two, so each lane reads each of its input channels in one multiplexer
input only (``n`` channel wires into a stage rather than ``n * k``); otherwise lane ``j`` takes
nodes ``j * chunks ... (j + 1) * chunks - 1``. Per phase:

1. the inputs of every lane are selected from ``i_data`` (a multiplexer over the phases, in two
   registered levels) and
   each lane's own copy of the weight address is registered (``OPERAND_CYCLES``: the phase
   counter does not fan out to every memory); then the weights are read from the lane's memory
   (its read register, then one beside it: a block RAM's clock-to-out is most of a clock);
2. products ``x * w``: operands registered again, then the product (``hw/mult.py``: on an ECP5
   the registers inside a ``MULT18X18D``);
3. adder tree, one register per level (``ceil(log2 simd)``); with folds, the accumulator;
4. requantization (``Requantizer.latency`` registers), then the chunk is shifted into its lane's chain of
   registers; with the last chunk the whole output pixel is loaded into ``o_data`` (held until the
   next pixel) and ``o_valid`` pulses.

Weights. Each lane keeps its weights in one memory of two banks (active and shadow), one word per
phase holding ``simd`` weights. Host writes go to the shadow bank (one weight at a time, a byte
lane of the word). ``load_stb`` (high in the cycle before the first pixel of the new bank arrives)
swaps the banks; a pixel in progress keeps the bank it arrived with. When it is done the stage
copies the new active bank into the new shadow bank in ``interval`` clocks, so the shadow bank
again holds what was written (the register map's contract). ``commit_cycles`` is how long after ``load_stb`` the stage is busy with a commit; no
host write or read may arrive then (the register bank holds both while a commit propagates: the
copy shares the read-back port).
"""

from amaranth.hdl import Module, Signal, Value, Cat, Const, Array, Mux, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from .arith import pipelined_sum, tree_levels, delay, divmod_const, two_level_select, READ_CYCLES
from .mult import MULT_CYCLES
from .impl import Implementation
from .requant import Requantizer
from .stage import stage_signature
from .connectivity import node, input_channel

__all__ = ["FoldedStage", "OPERAND_CYCLES"]

# clocks from a phase to the multipliers' operands: the weight address registered (a copy per
# lane), then the weight read from memory and registered again; meanwhile the inputs are selected
# in two registered levels (and copied once more per lane where lanes share a multiplexer)
OPERAND_CYCLES = 3


def _phase_select(m, sources, phase, name, first_bits):
    """``sources[phase]`` two clocks later, as a multiplexer over only the bits of ``phase`` that
    change the choice (a lane often reads the same channel in several phases, or a dense engine's
    slot the same few channels in every chunk: fewer inputs, fewer wires from the pixel
    register), in two registered levels: the low ``first_bits`` of those bits choose within
    groups, the rest (registered alongside) among the groups."""
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


class FoldedStage(wiring.Component):
    """Stage ``index`` of the chain of ``cfg``, folded as ``cfg.stage_fold(index)`` says.

    Ports as :class:`bfly.hw.stage.ButterflyStage`; ``i_data`` must stay still for ``interval`` clocks
    after ``i_valid``, and ``o_data`` holds each result until the next ``o_valid``. ``impl`` and
    ``first_dsp`` as for a parallel stage (the multipliers numbered lane by lane).
    """

    def __init__(self, cfg, index, impl=None, first_dsp=0):
        self._cfg = cfg
        self._index = index
        self._impl = impl or Implementation()
        self._first_dsp = first_dsp
        f = self._factor = cfg.factors[index]
        self._lanes, self._simd, self._interval = cfg.stage_fold(index)
        self._folds = f.s // self._simd
        self._chunks = f.p // self._lanes
        # each lane takes whole groups of the ``r`` nodes that read the same inputs, one after
        # another (every size a power of two); otherwise nodes go lane-major
        sizes = (f.r, f.s, f.t, f.b, self._lanes, self._chunks, self._simd)
        self._grouped = (all(v & (v - 1) == 0 for v in sizes) and self._chunks % f.r == 0
                         and (f.b * f.t) % self._lanes == 0 and f.b * f.t > 1)
        super().__init__(stage_signature(cfg, index))

    @property
    def factor(self):
        return self._factor

    @property
    def interval(self):
        return self._interval

    @property
    def multipliers(self):
        """Multipliers in the stage: ``simd`` per lane."""
        return self._lanes * self._simd

    def _node(self, lane, chunk):
        """The output node that ``lane`` computes in ``chunk`` (a Python int)."""
        f = self._factor
        if not self._grouped:
            return lane * self._chunks + chunk
        group_in_lane, i = divmod(chunk, f.r)
        blk, u = divmod(lane * (f.b * f.t // self._lanes) + group_in_lane, f.t)
        return node(f, blk, i, u)

    def _decode(self, addr):
        """``(lane, word, slot)`` in the weight memories of weight ``addr`` (index ``o*s + j``):
        the inverse of :meth:`_node`, then word ``chunk * folds + j // simd``, slot ``j % simd``."""
        f = self._factor
        o, j = divmod_const(addr, f.s)
        if self._grouped:
            # connectivity.node_coords of o in bits: every size is a power of two
            lt, lr = (f.t - 1).bit_length(), (f.r - 1).bit_length()
            u, i, blk = o[:lt], o[lt:lt + lr], o[lt + lr:]
            group = Cat(u, blk)
            split = (f.b * f.t // self._lanes - 1).bit_length()
            lane, chunk = group[split:], Cat(i, group[:split])
        else:
            lane, chunk = divmod_const(o, self._chunks)
        fold, slot = divmod_const(j, self._simd)
        if self._folds & (self._folds - 1) == 0:
            word = Cat(fold[:(self._folds - 1).bit_length()], chunk)
        else:
            word = chunk * self._folds + fold
        return lane, word, slot

    @property
    def _to_acc(self):
        """Clocks from a phase to its accumulated sum at the rounding step."""
        return OPERAND_CYCLES + MULT_CYCLES + tree_levels(self._simd) + (1 if self._folds > 1 else 0)

    @property
    def latency(self):
        """Clocks from ``i_valid`` to ``o_valid``."""
        return self._to_acc + Requantizer.latency + 1 + self._interval - 1

    #: clocks from ``params.raddr`` to ``params.rdata``
    read_cycles = READ_CYCLES

    @property
    def commit_cycles(self):
        """Clocks after ``load_stb`` until the shadow bank is whole again: the last old pixel
        reads its bank for up to ``interval`` clocks, then the copy takes ``interval`` (and the
        read's two registers)."""
        return 2 * self._interval + 3

    def elaborate(self, platform):
        m = Module()
        cfg, f, impl = self._cfg, self._factor, self._impl
        d, wb = cfg.data_bits, cfg.weight_bits
        L, S, II, F, R = self._lanes, self._simd, self._interval, self._folds, self._chunks

        # --- phase counters: phase (memory word), fold and chunk of the current clock. Each rests
        # at 0 between pixels (it wraps after the last phase, and the next pixel comes `interval`
        # or more clocks later), so the phase is a register, not a function of i_valid; each lane
        # has its own copy of the phase register (no fan-out of one counter across the device)
        ph = Signal(range(II), name="phase")
        fold = Signal(range(F), name="fold")
        chunk = Signal(range(R), name="chunk")
        running = Signal()
        active = Signal()
        ph_next = Signal.like(ph, name="phase_next")
        last_phase = ph == II - 1
        # the phase after ph_next, registered: ph_next is then one LUT per bit (it feeds a copy
        # beside every lane and multiplexer), not an adder with `active` on its carry chain (the
        # increment is of ph_next, into this one register)
        ph_inc = Signal.like(ph, name="phase_inc", init=1 % II)
        m.d.comb += [active.eq(self.i.valid | running),
                     ph_next.eq(Mux(active, ph_inc, ph))]
        m.d.sync += [ph.eq(ph_next), ph_inc.eq(Mux(ph_next == II - 1, 0, ph_next + 1))]
        lane_ph = [impl.local_copy(m, ph_next, f"phase_{j}") for j in range(L)]
        with m.If(active):
            m.d.sync += running.eq(~last_phase)
            with m.If(fold == F - 1):
                m.d.sync += [fold.eq(0), chunk.eq(Mux(chunk == R - 1, 0, chunk + 1))]
            with m.Else():
                m.d.sync += fold.eq(fold + 1)
        last_hold = Signal()
        with m.If(self.i.valid):
            m.d.sync += last_hold.eq(self.i.payload.last)

        def word_addr(bank, index):
            """Word ``index`` of bank ``bank`` (bank 1 is the upper half): a concatenation when
            ``interval`` is a power of two."""
            if II & (II - 1) == 0:
                return Cat(Value.cast(index)[:(II - 1).bit_length()], bank)
            return Mux(bank, II, 0) + index

        # --- banks: a commit swaps them at once, but each pixel keeps the bank it arrived with
        # (a pixel arriving in the cycle of load_stb is an old one); the swap state survives a reset
        sel = Signal(reset_less=True)             # the active bank
        pix_sel = Signal(reset_less=True)         # the bank of the pixel in progress
        bank = Signal()
        m.d.comb += bank.eq(Mux(self.i.valid, sel, pix_sel))
        with m.If(self.i.valid):
            m.d.sync += pix_sel.eq(sel)
        with m.If(self.load_stb):
            m.d.sync += sel.eq(~sel)
        # the new shift applies from the first pixel that arrives after the commit
        shift_pending = Signal(reset_less=True)
        with m.If(self.load_stb):
            m.d.sync += shift_pending.eq(1)
        with m.Elif(self.i.valid):
            m.d.sync += shift_pending.eq(0)
        new_bank_arrives = self.i.valid & shift_pending
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
        # the copied word is written 2 clocks after its read (the memory's read register, then
        # the lane's register beside it)
        copy_wr_0 = Signal(reset_less=True)
        copy_addr_0 = Signal(range(2 * II), reset_less=True)
        m.d.sync += [copy_wr_0.eq(copying), copy_addr_0.eq(word_addr(~sel, copy_ph))]
        copy_wr = delay(m, copy_wr_0, 1, "copy_wr", reset_less=True)
        copy_addr = delay(m, copy_addr_0, 1, "copy_addr", reset_less=True)

        w_lane, w_word, w_slot = self._decode(self.params.addr)
        r_lane, r_word, r_slot = self._decode(self.params.raddr)
        # read-back (READ_CYCLES): the memory's read register, the lane's, the slot selected in
        # each lane, then the lane; each lane selects its slot with a copy of its own, beside its
        # memory (one register for all lanes was an 8 ns route across the device)
        assert READ_CYCLES == 4
        r_slot_0 = delay(m, r_slot, 1, "r_slot")
        r_lane_1 = delay(m, r_lane, 3, "r_lane")

        weights, r_words = [], []
        for j in range(L):
            mem = Memory(shape=unsigned(S * wb), depth=2 * II, init=[])
            m.submodules[f"wmem_{j}"] = mem
            wp = mem.write_port(granularity=wb)
            dp = mem.read_port(transparent_for=())       # datapath: the active bank
            # the copy after a commit, else host read-back of the shadow bank (the register bank
            # holds reads while a commit is busy)
            cp = mem.read_port(transparent_for=())
            # the lane's weight address, registered (from the lane's own phase register, so no
            # two lanes' address registers are alike and synthesis keeps them apart)
            waddr = Signal(range(2 * II), name=f"waddr_{j}", reset_less=True)
            m.d.sync += waddr.eq(word_addr(bank, lane_ph[j]))
            m.d.comb += [
                dp.addr.eq(waddr),
                cp.addr.eq(Mux(copying, word_addr(sel, copy_ph), word_addr(~sel, r_word))),
            ]
            # both read ports registered again beside the memory
            w_q = Signal(S * wb, name=f"wq_{j}", reset_less=True)
            c_q = Signal(S * wb, name=f"cq_{j}", reset_less=True)
            m.d.sync += [w_q.eq(dp.data), c_q.eq(cp.data)]
            with m.If(copy_wr):
                m.d.comb += [wp.addr.eq(copy_addr), wp.data.eq(c_q), wp.en.eq((1 << S) - 1)]
            with m.Else():
                m.d.comb += [
                    wp.addr.eq(word_addr(~sel, w_word)),
                    wp.data.eq(Cat([self.params.data] * S)),
                    wp.en.eq(Mux(self.params.en & (w_lane == j), Const(1, S) << w_slot, 0)),
                ]
            weights.append([w_q[i * wb:(i + 1) * wb].as_signed() for i in range(S)])
            r_words.append(c_q)
        r_bytes = []
        for j, word in enumerate(r_words):
            b = Signal(wb, name=f"r_byte_{j}", reset_less=True)
            r_slot_1 = impl.local_copy(m, r_slot_0, f"r_slot_{j}")
            m.d.sync += b.eq(Array(word[i * wb:(i + 1) * wb] for i in range(S))[r_slot_1])
            r_bytes.append(b)
        m.d.sync += self.params.rdata.eq(Array(r_bytes)[r_lane_1])

        # --- operand selection: lane j, slot i reads one input channel per phase
        xs = [Signal(signed(d), name=f"x_{c}") for c in range(f.q)]
        m.d.comb += [x.eq(self.i.payload.data[c]) for c, x in enumerate(xs)]
        # lanes that read the same channels in every phase (all of them in a dense engine: each
        # fold's inputs go to every PE) share one multiplexer, and each lane takes its own
        # registered copy of its output: one wire per channel into the multiplexer, not one per lane
        def channels(j, i):
            chans = []
            for c in range(II):
                ck, fd = divmod(c, F)
                chans.append(input_channel(f, self._node(j, ck), fd * S + i))
            return tuple(chans)

        chans_of = {(j, i): channels(j, i) for j in range(L) for i in range(S)}
        readers = {}
        for (j, i), chans in chans_of.items():
            readers.setdefault(chans, []).append(j)
        selected = {}
        for k, (chans, lanes) in enumerate(readers.items()):
            # each multiplexer's own copy of the phase (its select bits reach every bit of it)
            mux_ph = impl.local_copy(m, ph_next, f"phase_mux_{k}")
            x_sel = _phase_select(m, [xs[c] for c in chans], mux_ph, f"xsel_{lanes[0]}_{chans[0]}",
                                  impl.first_select_bits)
            selected[chans] = (x_sel, len(lanes) > 1)
        accs = []
        for j in range(L):
            products = []
            for i in range(S):
                x_sel, shared = selected[chans_of[j, i]]
                if shared:
                    x_sel = impl.local_copy(m, x_sel, f"xcopy_{j}_{i}")
                x_op = delay(m, x_sel, OPERAND_CYCLES - 2 - shared, f"xop_{j}_{i}", reset_less=True)
                products.append(impl.product(m, x_op, weights[j][i], f"prod_{j}_{i}",
                                             self._first_dsp + j * S + i))
            total = pipelined_sum(m, products, f"tree_{j}")
            if F > 1:
                first = delay(m, fold == 0, OPERAND_CYCLES + MULT_CYCLES + tree_levels(S), f"first_{j}",
                              reset_less=True)
                acc = Signal(signed(cfg.acc_bits(self._index)), name=f"acc_{j}", reset_less=True)
                m.d.sync += acc.eq(Mux(first, 0, acc) + total)
                total = acc
            accs.append(total)

        # --- requantization; the shift of a new bank is loaded just before its first sum rounds.
        # The next commit may come in between (the pixel entered just before it), so a commit
        # keeps the shift of the bank it makes active apart from the other's, and the load takes
        # the one of the pixel's bank
        m.submodules.requant = rq = Requantizer(cfg, cfg.acc_bits(self._index), L, impl, slots=True)
        lead = self._to_acc - 1 - rq.load_lead
        m.d.comb += [
            rq.shadow_shift.eq(self.shadow_shift),
            rq.commit.eq(self.load_stb), rq.commit_slot.eq(~sel),
            rq.load.eq(delay(m, new_bank_arrives, lead, "shift_load", reset_less=True)),
            rq.load_slot.eq(delay(m, sel, lead, "shift_bank", reset_less=True)),
        ]
        m.d.comb += [rq.acc[j].eq(acc) for j, acc in enumerate(accs)]
        outs, sat_flags = [rq.o[j] for j in range(L)], [rq.sat[j] for j in range(L)]

        # --- tags travel with the phase to the requantizer's output (a clock ahead, so each
        # lane can take its own registered copy of the enables below)
        tag_delay = self._to_acc + Requantizer.latency
        assert tag_delay >= 2
        done_early = delay(m, active & (fold == F - 1), tag_delay - 2, "done")
        chunk_early = delay(m, chunk, tag_delay - 2, "done_chunk", reset_less=True)
        complete_early = done_early & (chunk_early == R - 1)
        done_soon = delay(m, done_early, 1, "done_soon")
        chunk_soon = delay(m, chunk_early, 1, "done_chunk_soon", reset_less=True)
        complete_soon = done_soon & (chunk_soon == R - 1)
        done, complete = Signal(name="done"), Signal(name="complete")
        m.d.sync += [done.eq(done_soon), complete.eq(complete_soon)]
        done_last = delay(m, Mux(self.i.valid, self.i.payload.last, last_hold), tag_delay, "done_last",
                          reset_less=True)

        # --- assembly: each lane shifts its chunks 0 .. R-2 into a register chain of its own
        # (short local routes, no fan-out of a result to every chunk register); the last chunk
        # completes the pixel, when chunk ck is at position R-2-ck of the chain. Each lane's
        # shift and load enables are its own copies (hundreds of flip-flops per lane); the load
        # enable goes to the lane's output registers through one more copy per load_group nodes
        # (they feed the next stage, so they spread further than the lane; each copy is named by
        # its first chunk)
        chains = [[Signal(signed(d), name=f"asm_{j}_{k}", reset_less=True) for k in range(R - 1)]
                  for j in range(L)]
        chunks = [[chains[j][R - 2 - ck] for j in range(L)] for ck in range(R - 1)] + [outs]
        for j, (chain, out) in enumerate(zip(chains, outs)):
            with m.If(impl.local_copy(m, done_soon, f"shift_en_{j}")):
                m.d.sync += [a.eq(b) for a, b in zip(chain, [out] + chain[:-1])]
            load_lane = impl.local_copy(m, complete_early, f"load_lane_{j}")
            group = impl.load_group
            for g in range(0, R, group):
                with m.If(impl.local_copy(m, load_lane, f"load_en_{j}_{g}")):
                    m.d.sync += [self.o.payload.data[self._node(j, ck)].eq(chunks[ck][j])
                                 for ck in range(g, min(R, g + group))]
        m.d.sync += self.o.valid.eq(complete)
        with m.If(complete):
            m.d.sync += self.o.payload.last.eq(done_last)

        counted = [Signal(name=f"satv_{j}") for j in range(L)]
        m.d.comb += [c.eq(flag & done) for c, flag in zip(counted, sat_flags)]
        m.d.comb += self.o_sat_count.eq(pipelined_sum(m, counted, "satcount"))
        return m
