"""Requantization in hardware (``shared/SPEC.md`` §2), shared by the stages and the epilogue:
round, arithmetic shift right by a run-time shift, then saturate or wrap to ``data_bits``.

Three register steps (``REQUANT_CYCLES``): ``acc + c`` (the rounding constant), ``>> shift``,
then saturate/wrap with the out-of-range flag (and an optional ReLU).
"""

from amaranth.hdl import Signal, Mux, Const, signed, unsigned

__all__ = ["REQUANT_CYCLES", "ShiftRegisters", "requantize"]

REQUANT_CYCLES = 3


class ShiftRegisters:
    """The active shift of one requantization point and the constants derived from it.

    ``shadow`` is the shadow bank's shift (a ``SHIFT_BITS`` register that only register writes
    change, so it is still for at least two clocks before a commit reaches this block). The
    derived constants are computed from it ahead of time, in two register steps (off the
    critical path); ``commit`` (one cycle) takes them as the pending bank, and ``load`` (one cycle,
    in the cycle before the first pixel of the new bank reaches the rounding step) makes the
    pending bank active. Shifts at or past the accumulator width all give the result of a shift
    of ``acc_bits`` (0 or the sign), so the shifter only needs ``range(acc_bits + 1)``.
    """

    def __init__(self, m, rounding, acc_bits, shadow, commit, load, name):
        self.acc_bits = acc_bits
        self.shape = range(acc_bits + 1)

        def regs(stage):
            return (Signal(self.shape, name=f"{name}_{stage}_shift", reset_less=True),
                    Signal(unsigned(acc_bits), name=f"{name}_{stage}_rnd", reset_less=True),
                    Signal(unsigned(acc_bits + 1), name=f"{name}_{stage}_lsb", reset_less=True))

        # step 1: clamp; step 2: the constants (both follow the shadow shift continuously)
        clamped = Signal(self.shape, name=f"{name}_clamped", reset_less=True)
        m.d.sync += clamped.eq(Mux(shadow > acc_bits, acc_bits, shadow))
        pre = regs("pre")
        one_hot = Const(1, acc_bits + 1) << clamped
        half = one_hot[1:acc_bits + 1]             # 1 << (shift - 1); 0 for shift 0
        if rounding == "floor":
            rnd = 0
        elif rounding == "half_up":
            rnd = half
        else:                                       # half_even: half - 1, plus the tie bit later
            rnd = Mux(clamped == 0, 0, half - 1)
        m.d.sync += [pre[0].eq(clamped), pre[1].eq(rnd),
                     pre[2].eq(Mux(clamped == 0, 0, one_hot[:acc_bits + 1]))]
        pending = regs("pending")
        with m.If(commit):
            m.d.sync += [a.eq(b) for a, b in zip(pending, pre)]
        self.shift, self.rnd_const, self.lsb_mask = regs("active")
        with m.If(load):
            m.d.sync += [a.eq(b) for a, b in zip((self.shift, self.rnd_const, self.lsb_mask), pending)]


def requantize(m, cfg, accs, regs, name, relu=None):
    """Requantize each signed accumulator of ``accs`` (at most ``regs.acc_bits`` wide) with the
    active :class:`ShiftRegisters` ``regs``; ``relu`` (optional) is an active 1-bit register loaded
    together with ``regs``. Returns ``(outputs, out_of_range_flags)``, registered, after
    ``REQUANT_CYCLES`` cycles.
    """
    acc_bits = regs.acc_bits
    d = cfg.data_bits
    lo, hi = cfg.data_min, cfg.data_max
    # the shift (and ReLU) used by each step travels with the pixel
    shift_r = Signal(regs.shape, name=f"{name}_shift_r", reset_less=True)
    m.d.sync += shift_r.eq(regs.shift)
    if relu is not None:
        relu_1 = Signal(name=f"{name}_relu_1", reset_less=True)
        relu_2 = Signal(name=f"{name}_relu_2", reset_less=True)
        m.d.sync += [relu_1.eq(relu), relu_2.eq(relu_1)]
    outs, flags = [], []
    for o, acc in enumerate(accs):
        rounded = Signal(signed(acc_bits + 1), name=f"{name}_rnd_{o}", reset_less=True)
        if cfg.rounding == "half_even":
            # the result's LSB (bit `shift` of acc) breaks ties toward even
            tie = (acc.as_unsigned()[:acc_bits] & regs.lsb_mask[:acc_bits]).any() \
                | (regs.lsb_mask[acc_bits] & acc[-1])
            m.d.sync += rounded.eq(acc + regs.rnd_const + tie)
        else:
            m.d.sync += rounded.eq(acc + regs.rnd_const)
        shifted = Signal(signed(acc_bits + 1), name=f"{name}_shr_{o}", reset_less=True)
        m.d.sync += shifted.eq(rounded >> shift_r)
        flag = Signal(name=f"{name}_sat_{o}", reset_less=True)
        m.d.sync += flag.eq((shifted < lo) | (shifted > hi))
        value = Signal(signed(d), name=f"{name}_val_{o}")
        if cfg.overflow == "saturate":
            m.d.comb += value.eq(Mux(shifted < lo, lo, Mux(shifted > hi, hi, shifted)))
        else:
            m.d.comb += value.eq(shifted[:d])
        out = Signal(signed(d), name=f"{name}_out_{o}", reset_less=True)
        if relu is not None:
            m.d.sync += out.eq(Mux(relu_2 & value[-1], 0, value))
        else:
            m.d.sync += out.eq(value)
        outs.append(out)
        flags.append(flag)
    return outs, flags
