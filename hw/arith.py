"""Pipelined arithmetic shared by the blocks: adder trees and delay lines.

Each helper adds statements to a module ``m`` and returns the registered result with the number
of clock cycles it adds, so callers can account for latency exactly.
"""

from amaranth.hdl import Signal, Shape, Value, Array, Cat, Const, unsigned, signed

__all__ = ["tree_levels", "pipelined_sum", "delay", "in_range", "READ_CYCLES", "two_level_select",
           "registered_select", "divmod_const", "pack"]


def tree_levels(n):
    """Register levels of a binary adder tree over ``n`` terms."""
    return max(0, (n - 1).bit_length())


def _sum_shape(a, b):
    a, b = Shape.cast(a), Shape.cast(b)
    if a.signed or b.signed:
        wa = a.width + (0 if a.signed else 1)
        wb = b.width + (0 if b.signed else 1)
        return signed(max(wa, wb) + 1)
    return unsigned(max(a.width, b.width) + 1)


def pipelined_sum(m, terms, name):
    """Sum ``terms`` in a binary tree with one register per level (``tree_levels`` cycles).

    The terms must already be registered; the returned value is registered (or the single term).
    Tree registers are datapath: reset-less.
    """
    level = 0
    terms = list(terms)
    while len(terms) > 1:
        nxt = []
        for i in range(0, len(terms) - 1, 2):
            a, b = terms[i], terms[i + 1]
            s = Signal(_sum_shape(a.shape(), b.shape()), name=f"{name}_l{level}_{i // 2}",
                       reset_less=True)
            m.d.sync += s.eq(a + b)
            nxt.append(s)
        if len(terms) % 2:
            a = terms[-1]
            s = Signal(a.shape(), name=f"{name}_l{level}_{len(terms) // 2}", reset_less=True)
            m.d.sync += s.eq(a)
            nxt.append(s)
        terms = nxt
        level += 1
    return terms[0]


def delay(m, value, cycles, name, reset_less=False):
    """``value`` delayed by ``cycles`` registers (0 returns it unchanged)."""
    for i in range(cycles):
        r = Signal.like(value, name=f"{name}_d{i}", reset_less=reset_less)
        m.d.sync += r.eq(value)
        value = r
    return value


def pack(values, elem_shape):
    """The elements ``values`` side by side, each made ``elem_shape``'s width as an assignment
    would make it (truncated, or extended by its sign): one value to assign to a whole array in
    one statement (an assignment per element of a wide signal costs Amaranth time that grows
    with the signal)."""
    width = Shape.cast(elem_shape).width
    parts = []
    for v in values:
        v = Value.cast(v)
        if len(v) >= width:
            parts.append(v[:width])
        elif v.shape().signed:
            parts.append(Cat(v, v[-1].replicate(width - len(v))))
        else:
            parts.append(Cat(v, Const(0, width - len(v))))
    return Cat(*parts)


def divmod_const(value, divisor):
    """``(value // divisor, value % divisor)`` for an unsigned value: slices for powers of two."""
    if divisor & (divisor - 1) == 0:
        bits = divisor.bit_length() - 1
        return value[bits:], value[:bits]
    return value // divisor, value % divisor


def in_range(value, lo, hi):
    """``lo <= value < hi`` without a constant comparison (a lint warning) when ``lo`` is 0."""
    return (value < hi) if lo == 0 else ((value >= lo) & (value < hi))


# a block memory's read-back: its own read register, a register beside it (a DP16KD's
# clock-to-out is most of a clock at 100 MHz, so nothing else follows it in the same clock), then
# two levels of selection (a word among a few, then among the groups), each registered
READ_CYCLES = 4


def two_level_select(m, values, index, name, group, out_name=None):
    """``values[index]`` two registers later: first within groups of ``group`` values (chosen by
    the low bits of ``index``: a small multiplexer next to the values it reads), then among the
    groups (the high bits, registered alongside the first level). Returns the second register
    (named ``out_name``, by default ``name``)."""
    values = [Value.cast(v) for v in values]
    width = max(len(v) for v in values)
    shape = signed(width) if any(v.shape().signed for v in values) else unsigned(width)
    bits = (group - 1).bit_length()
    index = Value.cast(index)
    firsts = []
    for g in range(0, len(values), group):
        r = Signal(shape, name=f"{name}_g{g // group}", reset_less=True)
        part = values[g:g + group]
        m.d.sync += r.eq(Array(part)[index[:bits]] if len(part) > 1 else part[0])
        firsts.append(r)
    out = Signal(shape, name=out_name or name, reset_less=True)
    if len(firsts) > 1:
        high = Signal(len(index) - bits, name=f"{name}_hi", reset_less=True)
        m.d.sync += [high.eq(index[bits:]), out.eq(Array(firsts)[high])]
    else:
        m.d.sync += out.eq(firsts[0])
    return out


def registered_select(m, values, index, name, group=8):
    """``values[index]`` after ``READ_CYCLES`` registers: :func:`two_level_select`, then
    registered again as a memory read would be. ``index`` must hold still for the first
    cycle."""
    out = two_level_select(m, values, index, name, group, out_name=f"{name}_sel")
    return delay(m, out, READ_CYCLES - 2, name, reset_less=True)
