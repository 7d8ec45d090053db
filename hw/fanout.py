"""Copies of a control value next to the logic that uses it.

A value that many blocks use (a load strobe, a shift amount) is one net from one register to
every user, and across a large device that route alone can take most of a clock. Each group of
users gets its own registered copy instead, which the placer puts near them. Synthesis merges
registers that load the same value (yosys ``opt_merge``), so on an ECP5 (``kept``, as
:meth:`bfly.hw.impl.Implementation.local_copy` asks there) each copy is a ``TRELLIS_FF``
instance marked ``keep``; elsewhere (simulation) it is an ordinary register, the same value in
the same clock.
"""

from amaranth.hdl import Signal, Instance, ClockSignal, ResetSignal, Value

from .arith import in_range

__all__ = ["local_copy", "write_tree", "tree_plan", "tree_children"]


def local_copy(m, value, name, reset=False, kept=False):
    """``value`` registered once (one clock later), as a register of its own; returns it. With
    ``reset``, the domain's reset clears it (as a handshake copy must be); ``kept``: as ECP5
    ``TRELLIS_FF`` instances marked ``keep``."""
    value = Value.cast(value)
    copy = Signal(value.shape(), name=name, reset_less=not reset)
    if not kept:
        m.d.sync += copy.eq(value)
        return copy
    bits = Signal(len(value), name=f"{name}_q")
    for i in range(len(value)):
        m.submodules[f"{name}_ff{i}"] = Instance(
            "TRELLIS_FF", a_keep=1,
            p_GSR="DISABLED", p_CEMUX="1", p_CLKMUX="CLK", p_LSRMUX="LSR", p_REGSET="RESET",
            p_SRMODE="LSR_OVER_CE",
            i_CLK=ClockSignal("sync"), i_LSR=ResetSignal("sync") if reset else 0, i_DI=value[i],
            o_Q=bits[i])
    m.d.comb += copy.eq(bits)
    return copy


def tree_children(size, branching):
    """``[(offset, size)]`` of the children of a node of :func:`write_tree` serving ``size``
    registers."""
    step = -(-size // branching)
    return [(c, min(size, c + step) - c) for c in range(0, size, step)]


def tree_plan(count, max_levels, branching):
    """``(branching, splits, leaf groups)`` of :func:`write_tree` for ``count`` registers: the
    children per copy, the levels of copies, and the ``(lo, hi)`` of the registers under each
    last copy (those the leaf enables decode)."""
    while branching ** max_levels < count:
        branching *= 2
    nodes, splits = [(0, count)], 0
    while max(hi - lo for lo, hi in nodes) > branching:
        nodes = [(lo + c, lo + c + size) for lo, hi in nodes
                 for c, size in tree_children(hi - lo, branching)]
        splits += 1
    return branching, splits, nodes


def write_tree(m, addr, data, en, count, name, max_levels, branching=8):
    """Route a register write (``addr``, ``data``, ``en``) to ``count`` registers through a tree
    of registered copies, each serving at most ``branching`` children (doubled until the tree
    needs no more than ``max_levels`` levels) and loaded only by writes below it (so no two
    copies hold the same value and synthesis keeps them apart).

    Returns ``(enables, datas, levels)``: for register ``i``, a 1-bit enable (a register of
    its own, decoded a clock ahead beside its group) and the data to load when it is high,
    ``levels`` clocks after ``en`` (``addr`` and ``data`` as in the cycle of ``en``; the data
    holds until the next write to the group).
    """
    while branching ** max_levels < count:
        branching *= 2
    nodes = [(0, count, addr, data, en)]
    levels = 0
    while max(hi - lo for lo, hi, *_ in nodes) > branching:
        nxt = []
        for lo, hi, a, d, e in nodes:
            step = -(-(hi - lo) // branching)
            for c in range(lo, hi, step):
                size = min(hi, c + step) - c
                sub = Signal(range(size), name=f"{name}_l{levels}_{c}_addr", reset_less=True)
                sub_d = Signal.like(d, name=f"{name}_l{levels}_{c}_data", reset_less=True)
                sub_e = Signal(name=f"{name}_l{levels}_{c}_en")
                hit = in_range(a, c - lo, c - lo + size)
                m.d.sync += sub_e.eq(e & hit)
                with m.If(e & hit):
                    m.d.sync += [sub.eq(a - (c - lo)), sub_d.eq(d)]
                nxt.append((c, c + size, sub, sub_d, sub_e))
        nodes = nxt
        levels += 1
    enables, datas = [], []
    for lo, hi, a, d, e in nodes:
        for i in range(lo, hi):
            leaf = Signal(name=f"{name}_en_{i}")
            m.d.sync += leaf.eq(e & (a == i - lo) if hi - lo > 1 else e)
            enables.append(leaf)
            datas.append(d)
    levels += 1
    assert levels <= max_levels
    return enables, datas, levels
