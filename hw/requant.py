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

from amaranth.hdl import Signal, Mux, Const, Cat, signed, unsigned

from .arith import delay

__all__ = ["REQUANT_CYCLES", "REGS_LEAD", "PREP_CYCLES", "MASK_LAG", "ShiftRegisters", "requantize"]

REQUANT_CYCLES = 6
# register steps from the shadow shift to the constants a commit takes
PREP_CYCLES = 4
# the active shift registers are copied next to each group of outputs, then next to each
# output, before use (hw/fanout.py; the group size is the Implementation's copy_group)
REGS_LEAD = 2
#: the low-bit mask of ``half_even`` is loaded this many clocks after the other active registers:
#: it is used on the rounded sum, that many steps after the accumulator
MASK_LAG = 2


class ShiftRegisters:
    """The active shift of one requantization point and the constants derived from it.

    ``shadow`` is the shadow bank's shift (a ``SHIFT_BITS`` register that only register writes
    change, so it is still for at least ``PREP_CYCLES`` clocks before a commit reaches this
    block). The derived constants are computed from it ahead of time, in ``PREP_CYCLES`` register
    steps (off the critical path); ``commit`` (one cycle) takes them as the pending bank, and
    ``load`` (one cycle,
    ``REGS_LEAD`` cycles before the cycle before the first accumulator of the new bank reaches
    :func:`requantize`) makes the pending bank active. Shifts at or past the accumulator width
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


def _all_equal(bits):
    """Whether every bit of ``bits`` is the same (a reduction, not two compares)."""
    return bits.all() | ~bits.any()


def requantize(m, cfg, accs, regs, name, impl, relu=None):
    """Requantize each signed accumulator of ``accs`` (at most ``regs.acc_bits`` wide) with the
    active :class:`ShiftRegisters` ``regs``, which must be loaded ``REGS_LEAD`` clocks before the
    cycle in which the first accumulator of the new bank is on ``accs``; ``relu`` (optional) is
    an active 1-bit register loaded in that cycle; ``impl`` (a
    :class:`bfly.hw.impl.Implementation`) makes the copies of the shift registers. Returns
    ``(outputs, out_of_range_flags)``, registered, after ``REQUANT_CYCLES`` cycles.
    """
    acc_bits = regs.acc_bits
    d = cfg.data_bits
    lo, hi = cfg.data_min, cfg.data_max
    if relu is not None:
        relu_d = delay(m, relu, REQUANT_CYCLES - 1, f"{name}_relu", reset_less=True)
    outs, flags = [], []
    # the active shift, rounding constant and mask reach each output through two registered
    # copies (``regs`` is loaded REGS_LEAD clocks early, the mask MASK_LAG clocks later): one per
    # group of outputs, then the output's own; the shift and constant then travel
    # with the pixel (only the copies the rounding mode uses: kept registers are never removed)
    used = {"shift": regs.shift}
    if cfg.rounding != "floor":
        used["rndc"] = regs.rnd_const
    if cfg.rounding == "half_even":
        used["mask"] = regs.low_mask
    group_copies = {}
    group = impl.copy_group
    for o, acc in enumerate(accs):
        if o % group == 0:
            group_copies = {k: impl.local_copy(m, v, f"{name}_{k}_g{o // group}")
                            for k, v in used.items()}
        if cfg.rounding == "half_even":
            mask = impl.local_copy(m, group_copies["mask"], f"{name}_mask_{o}")
        shift_0 = impl.local_copy(m, group_copies["shift"], f"{name}_shift_{o}")
        rnd_0 = 0 if cfg.rounding == "floor" else impl.local_copy(m, group_copies["rndc"], f"{name}_rndc_{o}")
        shift_1, shift_2, shift_3 = (Signal(regs.shape, name=f"{name}_shift_{o}_{i}", reset_less=True)
                                     for i in (1, 2, 3))
        rnd_1 = Signal.like(regs.rnd_const, name=f"{name}_rnd_{o}_1")
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
        # beside them (half_even): was the remainder exactly half, the rounded sum's bits below
        # the shift all zero (and the shift not 0)? Each pair of bits, then all of them
        exact = Const(0, 1)
        if cfg.rounding == "half_even":
            zero = Signal(-(-acc_bits // 2), name=f"{name}_zero_{o}", reset_less=True)
            nonzero_shift = Signal(name=f"{name}_sh0_{o}", reset_less=True)
            m.d.sync += [zero.eq(Cat(~(rounded[i:i + 2] & mask[i:i + 2]).any()
                                     for i in range(0, acc_bits, 2))),
                         nonzero_shift.eq(mask[0])]
            exact = Signal(name=f"{name}_exact_{o}", reset_less=True)
            m.d.sync += exact.eq(nonzero_shift & zero.all())
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
            m.d.comb += value.eq(Mux(out_of_range, Mux(neg, lo, hi), low))
        else:
            m.d.comb += value.eq(low)
        out = Signal(signed(d), name=f"{name}_out_{o}", reset_less=True)
        if relu is not None:
            m.d.sync += out.eq(Mux(relu_d & value[-1], 0, value))
        else:
            m.d.sync += out.eq(value)
        outs.append(out)
        flags.append(flag)
    return outs, flags
