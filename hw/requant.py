"""Requantization in hardware (``docs/spec.md`` §2), shared by the stages and the epilogue:
round, arithmetic shift right by a run-time shift, then saturate or wrap to ``data_bits``.

Six register steps (``REQUANT_CYCLES``): the accumulator beside the requantizer, ``acc + c`` (the
rounding constant), ``>> shift`` in two steps (the multiple of 4, then the rest), the out-of-range
flag, then saturate/wrap (and an optional ReLU). One operation per step keeps each step to one
carry chain or one multiplexer tree.

``half_even`` adds half, as ``half_up`` does, and then clears the result's LSB when the remainder
was exactly half: then the bits of ``acc + half`` below the shift are all zero, and of the two
nearest results ``(acc + half) >> shift`` and the one below it, the even one is that value with
its LSB cleared. The zero test runs beside the two shift steps (in pairs of bits, then all of
them), so no step waits for a bit of the sum before it can add.
"""

from amaranth.hdl import Module, Signal, Mux, Const, Cat, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .arith import delay, pack
from . import hier
from .impl import Implementation
from .regmap import SHIFT_BITS

__all__ = ["Requantizer", "REQUANT_CYCLES", "REGS_LEAD", "PREP_CYCLES", "MASK_LAG"]

REQUANT_CYCLES = 6
# register steps from the shadow shift to the constants a commit takes
PREP_CYCLES = 4
# the active shift registers are copied next to each group of outputs, then next to each
# output, before use (hw/fanout.py; the group size is the Implementation's copy_group)
REGS_LEAD = 2
#: the low-bit mask of ``half_even`` is loaded this many clocks after the other active registers:
#: it is used on the rounded sum, that many steps after the accumulator
MASK_LAG = 2


def _all_equal(bits):
    """Whether every bit of ``bits`` is the same (a reduction, not two compares)."""
    return bits.all() | ~bits.any()


class Requantizer(wiring.Component):
    """Requantization of ``count`` signed accumulators of ``acc_bits`` to ``cfg.data_bits``
    (``cfg.rounding``, ``cfg.overflow``), with a double-buffered run-time shift.

    Ports: ``acc`` (the accumulators; ``o`` and ``sat``, the results and their out-of-range
    flags, ``latency`` clocks later); ``shadow_shift``, the shadow bank's shift (only register
    writes change it, so it is still for ``prep_cycles`` clocks before a commit reaches the
    block); ``commit`` (one clock) takes the constants derived from it as the pending bank;
    ``load`` (one clock, ``load_lead`` clocks before the cycle in which the first accumulator of
    the new bank is on ``acc``) makes the pending bank active. With ``relu``, the port ``relu``
    (an active register, changed in that same cycle) zeroes negative results. With ``slots`` (a
    folded stage, where the next commit can come before the first pixel of the pending bank has
    loaded it) there is a pending bank per weight bank: ``commit`` fills the one ``commit_slot``
    names and ``load`` takes the one ``load_slot`` names. ``impl`` (a
    :class:`bfly.hw.impl.Implementation`) makes the copies of the active registers.
    """

    latency = REQUANT_CYCLES
    prep_cycles = PREP_CYCLES
    load_lead = REGS_LEAD

    def __init__(self, cfg, acc_bits, count, impl=None, relu=False, slots=False):
        self._cfg, self._acc_bits, self._count = cfg, acc_bits, count
        self._impl = impl or Implementation()
        self._relu, self._slots = relu, slots
        ports = {
            "acc": In(data.ArrayLayout(signed(acc_bits), count)),
            "shadow_shift": In(SHIFT_BITS),
            "commit": In(1),
            "load": In(1),
            "o": Out(data.ArrayLayout(signed(cfg.data_bits), count)),
            "sat": Out(count),
        }
        if relu:
            ports["relu"] = In(1)
        if slots:
            ports.update({"commit_slot": In(1), "load_slot": In(1)})
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        slots = (self.commit_slot, self.load_slot) if self._slots else None
        regs = ShiftRegisters(m, self._cfg.rounding, self._acc_bits, self.shadow_shift, self.commit,
                              self.load, "rq", slots=slots)
        relu = None
        if self._relu:
            relu = delay(m, self.relu, REQUANT_CYCLES - 1, "relu_d", reset_less=True)
        copies, values, flags = {}, [], []
        for o in range(self._count):
            if o % self._impl.copy_group == 0:
                copies = self._group_copies(m, regs, o // self._impl.copy_group)
            # (a repeated block, hw/hier.py: one output's registers, from its group's copies)
            inputs = {"acc": self.acc[o], **copies}
            if relu is not None:
                inputs["relu"] = relu
            outs = hier.inline(m, f"rq_{o}", "requant",
                               (self._cfg.data_bits, self._cfg.rounding, self._cfg.overflow,
                                self._acc_bits, self._impl.family), self._output, o, **inputs)
            values.append(outs["out"])
            flags.append(outs["flag"])
        m.d.comb += [self.o.eq(pack(values, signed(self._cfg.data_bits))), self.sat.eq(Cat(*flags))]
        return m

    def _group_copies(self, m, regs, g):
        """The active shift, rounding constant and mask reach each output through two registered
        copies (``regs`` is loaded ``REGS_LEAD`` clocks early, the mask ``MASK_LAG`` clocks later):
        this one per group of outputs, then the output's own; the shift and constant then travel
        with the pixel (only the copies the rounding mode uses: kept registers are never
        removed)."""
        rounding = self._cfg.rounding
        used = {"shift": regs.shift}
        if rounding != "floor":
            used["rndc"] = regs.rnd_const
        if rounding == "half_even":
            used["mask"] = regs.low_mask
        return {k: self._impl.local_copy(m, v, f"rq_{k}_g{g}") for k, v in used.items()}

    def _output(self, m, ins, o):
        """One output: ``{"out": value, "flag": out_of_range}``, registered, ``REQUANT_CYCLES``
        clocks after ``ins["acc"]``, from its group's copies of the active registers
        (``ins["shift"]``, ``"rndc"``, ``"mask"``) and the ReLU's (``"relu"``); names carry ``o``."""
        cfg, impl, acc_bits = self._cfg, self._impl, self._acc_bits
        d, name = cfg.data_bits, "rq"
        o = "" if o is None else o
        acc, relu = ins["acc"], ins.get("relu")
        shape = range(acc_bits + 1)
        shift_0 = impl.local_copy(m, ins["shift"], f"{name}_shift_{o}")
        rnd_0 = 0 if cfg.rounding == "floor" else impl.local_copy(m, ins["rndc"], f"{name}_rndc_{o}")
        shift_1, shift_2, shift_3 = (Signal(shape, name=f"{name}_shift_{o}_{i}", reset_less=True)
                                     for i in (1, 2, 3))
        rnd_1 = Signal(unsigned(acc_bits), name=f"{name}_rnd_{o}_1", reset_less=True)
        m.d.sync += [shift_1.eq(shift_0), shift_2.eq(shift_1), shift_3.eq(shift_2), rnd_1.eq(rnd_0)]
        # step 1: the accumulator, beside the requantizer (the adder tree is across the device)
        acc_1 = Signal(signed(acc_bits), name=f"{name}_acc_{o}", reset_less=True)
        m.d.sync += acc_1.eq(acc)
        # step 2: round
        rounded = Signal(signed(acc_bits + 1), name=f"{name}_rnd_{o}", reset_less=True)
        m.d.sync += rounded.eq(acc_1 + rnd_1)
        # steps 3 and 4: shift by the multiple of 4, then by the rest
        coarse = Signal(signed(acc_bits + 1), name=f"{name}_shc_{o}", reset_less=True)
        m.d.sync += coarse.eq(rounded >> Cat(Const(0, 2), shift_2[2:]))
        shifted = Signal(signed(acc_bits + 1), name=f"{name}_shr_{o}", reset_less=True)
        m.d.sync += shifted.eq(coarse >> shift_3[:2])
        # beside the fine shift: are the coarse value's bits from d + 2 up all equal? Those hold
        # the result's bits from d + 2 - (fine shift) up, so step 5 then only compares the
        # result's bits d - 1 .. d + 2 (one LUT level rather than a reduction after a mux)
        split = d + 2
        high_equal = None
        if split < acc_bits:
            high_equal = Signal(name=f"{name}_hieq_{o}", reset_less=True)
            m.d.sync += high_equal.eq(_all_equal(coarse[split:]))
        exact = Const(0, 1)
        if cfg.rounding == "half_even":
            mask = impl.local_copy(m, ins["mask"], f"{name}_mask_{o}")
            exact = self._exact_half(m, o, rounded, mask)
        # step 5: out of range? The bits from d-1 up are not all equal (those up to d + 2 here,
        # the rest in the flag of step 4 when there are more); the low bits and the sign travel
        # beside the flag
        fits = _all_equal(shifted[d - 1:split + 1])
        if high_equal is not None:
            fits &= high_equal
        out_of_range = Signal(name=f"{name}_oor_{o}", reset_less=True)
        low = Signal(signed(d), name=f"{name}_low_{o}", reset_less=True)
        neg = Signal(name=f"{name}_neg_{o}", reset_less=True)
        # (half_even: an exact half takes the even result, the LSB cleared; no data_bits >= 2
        # result leaves the range by that)
        m.d.sync += [out_of_range.eq(~fits),
                     low.eq(Cat(shifted[0] & ~exact, shifted[1:d])), neg.eq(shifted[-1])]
        # step 6: saturate or wrap (and ReLU); the flag stays in step with the value
        flag = Signal(name=f"{name}_sat_{o}", reset_less=True)
        m.d.sync += flag.eq(out_of_range)
        value = Signal(signed(d), name=f"{name}_val_{o}")
        if cfg.overflow == "saturate":
            m.d.comb += value.eq(Mux(out_of_range, Mux(neg, cfg.data_min, cfg.data_max), low))
        else:
            m.d.comb += value.eq(low)
        out = Signal(signed(d), name=f"{name}_out_{o}", reset_less=True)
        m.d.sync += out.eq(value if relu is None else Mux(relu & value[-1], 0, value))
        return {"out": out, "flag": flag}

    def _exact_half(self, m, o, rounded, mask):
        """``half_even``, beside the shift steps: was the remainder exactly half, the rounded sum's
        bits below the shift all zero (and the shift not 0)? Each pair of bits, then all of
        them."""
        acc_bits, name = self._acc_bits, "rq"
        zero = Signal(-(-acc_bits // 2), name=f"{name}_zero_{o}", reset_less=True)
        nonzero_shift = Signal(name=f"{name}_sh0_{o}", reset_less=True)
        m.d.sync += [zero.eq(Cat(~(rounded[i:i + 2] & mask[i:i + 2]).any()
                                 for i in range(0, acc_bits, 2))),
                     nonzero_shift.eq(mask[0])]
        exact = Signal(name=f"{name}_exact_{o}", reset_less=True)
        m.d.sync += exact.eq(nonzero_shift & zero.all())
        return exact


class ShiftRegisters:
    """The active shift of one requantization point and the constants derived from it.

    ``shadow`` is the shadow bank's shift (a ``SHIFT_BITS`` register that only register writes
    change, so it is still for at least ``PREP_CYCLES`` clocks before a commit reaches this
    block). The derived constants are computed from it ahead of time, in ``PREP_CYCLES`` register
    steps (off the critical path); ``commit`` (one cycle) takes them as the pending bank, and
    ``load`` (one cycle, ``REGS_LEAD`` cycles before the cycle before the first accumulator of
    the new bank reaches the :class:`Requantizer`'s ``acc``) makes the pending bank active. Shifts at or past the accumulator width
    all give the result of a shift of ``acc_bits`` (0 or the sign), so the shifter only needs
    ``range(acc_bits + 1)``.

    ``low_mask`` (bits below the shift, for ``half_even``) is loaded ``MASK_LAG`` clocks after the
    others, so it changes bank in step with the rounded sums it is used on.

    ``slots`` (a folded stage, where the next commit can come before the first pixel of the
    pending bank has loaded it): a pair ``(commit_slot, load_slot)`` of 1-bit values, one pending
    bank per weight bank; ``commit`` fills the one ``commit_slot`` names and ``load`` takes the
    one ``load_slot`` names.
    """

    def __init__(self, m, rounding, acc_bits, shadow, commit, load, name, slots=None):
        self.acc_bits = acc_bits
        self.shape = range(acc_bits + 1)

        def regs(stage):
            return (Signal(self.shape, name=f"{name}_{stage}_shift", reset_less=True),
                    Signal(unsigned(acc_bits), name=f"{name}_{stage}_rnd", reset_less=True),
                    Signal(unsigned(acc_bits), name=f"{name}_{stage}_mask", reset_less=True))

        # step 1: a copy of the shadow shift beside this block; step 2: its low three bits and
        # its high bits each decoded (equal to / greater than each value: a LUT per bit); step 3:
        # the clamped shift, and which values it takes as a one-hot and a thermometer code, each
        # bit a three-input function of step 2 (a single LUT level, with no carry chains and no
        # logic shared along a chain of compares); step 4: the constants are wires from those
        # codes (no table or shifter between registers)
        width = len(shadow)
        near = Signal(width, name=f"{name}_shadow", reset_less=True)
        near_2 = Signal(width, name=f"{name}_shadow_2", reset_less=True)
        m.d.sync += [near.eq(shadow), near_2.eq(near)]
        lo_bits = min(3, width)
        lo, hi = near[:lo_bits], near[lo_bits:]

        def decode(part, label):
            count = 1 << len(part)
            eq = Signal(count, name=f"{name}_{label}_eq", reset_less=True)
            gt = Signal(count, name=f"{name}_{label}_gt", reset_less=True)
            m.d.sync += [eq.eq(Cat(part == v for v in range(count))),
                         gt.eq(Cat(Const(sum(1 << u for u in range(count) if u > v), count)
                                   .bit_select(part, 1) for v in range(count)))]
            return eq, gt

        eq_l, gt_l = decode(lo, "lo")
        eq_h, gt_h = decode(hi, "hi") if len(hi) else (Const(1, 1), Const(0, 1))

        def equals(v):      # shadow == v
            return eq_h[v >> lo_bits] & eq_l[v & ((1 << lo_bits) - 1)] if v < 1 << width else Const(0)

        def greater(v):     # shadow > v
            if v >= (1 << width) - 1:
                return Const(0)
            h, l = v >> lo_bits, v & ((1 << lo_bits) - 1)
            return gt_h[h] | (eq_h[h] & gt_l[l])

        clamped = Signal(self.shape, name=f"{name}_clamped", reset_less=True)
        onehot = Signal(acc_bits + 1, name=f"{name}_onehot", reset_less=True)    # [v] clamped == v
        above = Signal(acc_bits + 1, name=f"{name}_above", reset_less=True)      # [i] clamped > i
        at_least = greater(acc_bits - 1)                       # shadow >= acc_bits
        m.d.sync += [clamped.eq(Mux(at_least, acc_bits, near_2)),
                     onehot.eq(Cat([equals(c) for c in range(acc_bits)] + [at_least])),
                     above.eq(Cat(greater(i) for i in range(acc_bits)))]   # [acc_bits]: 0
        pre = regs("pre")
        rnd = 0 if rounding == "floor" else onehot[1:]         # 1 << (v - 1): half
        m.d.sync += [pre[0].eq(clamped), pre[1].eq(rnd), pre[2].eq(above[:acc_bits])]  # bits i < v
        if slots is None:
            pending = regs("pending")
            with m.If(commit):
                m.d.sync += [a.eq(b) for a, b in zip(pending, pre)]
        else:
            commit_slot, load_slot = slots
            banks = [regs(f"pending{b}") for b in (0, 1)]
            for b, bank in enumerate(banks):
                with m.If(commit & (commit_slot == b)):
                    m.d.sync += [a.eq(v) for a, v in zip(bank, pre)]
            pending = [Mux(load_slot, b1, b0) for b0, b1 in zip(*banks)]
        self.shift, self.rnd_const, self.low_mask = regs("active")
        with m.If(load):
            m.d.sync += [self.shift.eq(pending[0]), self.rnd_const.eq(pending[1])]
        # the mask is taken from the pending bank at `load` too (what `load` takes may change
        # within MASK_LAG clocks of it: a folded stage's next pixel may be of the other bank),
        # then made active
        staged = Signal.like(pending[2], name=f"{name}_staged_mask")
        with m.If(load):
            m.d.sync += staged.eq(pending[2])
        with m.If(delay(m, load, MASK_LAG, f"{name}_mask_load", reset_less=True)):
            m.d.sync += self.low_mask.eq(staged)


