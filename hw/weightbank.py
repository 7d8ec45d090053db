"""The weights of a fully parallel stage, double-buffered: a shadow bank that the host writes one
weight at a time and reads back, and the active bank that feeds the multipliers.

- writes fan out through a tree of registered copies (``hw/fanout.py``): the shadow registers sit
  beside their multipliers all over the device;
- read-back comes from a copy of the shadow bank in small memories, written with it (the
  registers are spread over the device, the memories sit together): one memory per
  ``mirror_depth`` weights (a LUT-RAM's depth: no decode between address and data);
- ``load_stb`` copies the shadow bank into the active one, each node (``node_size`` weights)
  through its own copy of the strobe, a clock later (as its multipliers take their inputs a clock
  after the stage's input).

Both banks are reset-less: a reset clears the stream, not the loaded parameters.
"""

from amaranth.hdl import Module, Signal, Array, Cat
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .arith import delay, in_range, pack, READ_CYCLES
from .fanout import write_tree, tree_plan, tree_children
from . import hier
from .impl import Implementation
from .ports import ParamPort

__all__ = ["WeightBank"]


class WeightBank(wiring.Component):
    """``count`` weights of ``shape`` in nodes of ``node_size``. ``params`` (a
    :class:`bfly.hw.ports.ParamPort`): a write lands at most ``write_levels + 1`` clocks after
    ``en`` (``write_levels`` is at most ``max_write_levels``); ``rdata`` answers
    ``read_cycles`` clocks after ``raddr``. ``weights`` is the active bank, loaded a clock after
    ``load_stb``."""

    read_cycles = READ_CYCLES

    def __init__(self, count, shape, node_size, max_write_levels, impl=None):
        self._count, self._shape, self._node_size = count, shape, node_size
        self._max_levels = max_write_levels
        self._impl = impl or Implementation()
        super().__init__({
            "params": In(ParamPort(count, shape)),
            "load_stb": In(1),
            "weights": Out(data.ArrayLayout(shape, count)),
        })

    def elaborate(self, platform):
        m = Module()
        impl, p = self._impl, self.params
        size = self._node_size
        # (the implementation's write_branching children per copy)
        branching, splits, leaves = tree_plan(self._count, self._max_levels, impl.write_branching)
        if all(lo % size == 0 and hi % size == 0 for lo, hi in leaves):
            # each last copy serves whole nodes: every subtree of one size and depth is alike,
            # a repeated block (hw/hier.py) down to the nodes' weights
            outs = self._subtree(m, {"a": p.addr, "d": p.data, "e": p.en, "load": self.load_stb},
                                 0, self._count, splits, branching)
            m.d.comb += self.weights.eq(outs["w"])
        else:
            enables, datas, _ = write_tree(m, p.addr, p.data, p.en, self._count, "wt",
                                           max_levels=self._max_levels, branching=impl.write_branching)
            active = []
            for o in range(self._count // size):
                # (a repeated block, hw/hier.py: a node's weights)
                inputs = {"load": self.load_stb}
                for j in range(size):
                    inputs[f"en{j}"], inputs[f"data{j}"] = enables[o * size + j], datas[o * size + j]
                outs = hier.inline(m, f"wt_{o}", "weights", (size, impl.family), self._node, o,
                                   **inputs)
                active += [outs[f"w{j}"] for j in range(size)]
            m.d.comb += self.weights.eq(pack(active, self._shape))
        self._mirror(m)
        return m

    def _subtree(self, m, ins, lo, count, depth, branching):
        """The write tree of :func:`bfly.hw.fanout.write_tree` below one copy (``ins``: its
        address ``a``, relative to its first register ``lo`` (None in a shared module: names
        only), its data ``d`` and enable ``e``; and ``load``), ``depth`` levels of copies above
        the leaf enables, and the weights of the ``count`` registers it serves: ``{"w": ...}``,
        the active weights side by side."""
        a, d, e = ins["a"], ins["d"], ins["e"]
        size = self._node_size
        at = 0 if lo is None else lo
        if depth == 0:
            active = []
            for o in range(count // size):
                inputs = {"load": ins["load"]}
                for j in range(size):
                    i = o * size + j
                    leaf = Signal(name=f"wt_en_{at + i}")
                    m.d.sync += leaf.eq(e & (a == i) if count > 1 else e)
                    inputs[f"en{j}"], inputs[f"data{j}"] = leaf, d
                outs = self._node(m, inputs, at // size + o)
                active += [outs[f"w{j}"] for j in range(size)]
            return {"w": pack(active, self._shape)}
        parts = []
        for c, child in tree_children(count, branching):
            tag = f"l{depth}_{at + c}"
            sub = Signal(range(child), name=f"wt_{tag}_addr", reset_less=True)
            sub_d = Signal.like(d, name=f"wt_{tag}_data", reset_less=True)
            sub_e = Signal(name=f"wt_{tag}_en")
            hit = in_range(a, c, c + child)
            m.d.sync += sub_e.eq(e & hit)
            with m.If(e & hit):
                m.d.sync += [sub.eq(a - c), sub_d.eq(d)]
            outs = hier.inline(
                m, f"wt_{tag}", "weight_tree", (child, depth - 1, branching, size, self._impl.family),
                lambda mm, ii, t, child=child: self._subtree(mm, ii, t, child, depth - 1, branching),
                None if lo is None else at + c, a=sub, d=sub_d, e=sub_e, load=ins["load"])
            parts.append(outs["w"])
        return {"w": Cat(*parts)}

    def _node(self, m, ins, o):
        """The weights of node ``o`` (None in a shared module): shadow registers, each loaded
        when its enable is high, copied into the active ones through the node's own copy of
        the load strobe."""
        size = self._node_size
        first = 0 if o is None else o * size
        shadow = [Signal(self._shape, name=f"shadow_{first + j}", reset_less=True) for j in range(size)]
        active = [Signal(self._shape, name=f"weight_{first + j}", reset_less=True) for j in range(size)]
        for j, reg in enumerate(shadow):
            with m.If(ins[f"en{j}"]):
                m.d.sync += reg.eq(ins[f"data{j}"])
        with m.If(self._impl.local_copy(m, ins["load"], f"load_{'' if o is None else o}")):
            m.d.sync += [a.eq(sh) for a, sh in zip(active, shadow)]
        return {f"w{j}": w for j, w in enumerate(active)}

    def _mirror(self, m):
        """The read-back copy. ``read_cycles``: each memory's own copy of the address, its read
        register, the memory chosen (the high address bits travel beside), then ``rdata``."""
        impl, p = self._impl, self.params
        depth = impl.mirror_depth
        banks = range(0, self._count, depth)
        low = (depth - 1).bit_length()
        outs = []
        for b, lo in enumerate(banks):
            mirror = Memory(shape=self._shape, depth=min(depth, self._count - lo), init=[])
            m.submodules[f"shadow_mirror_{b}"] = mirror
            mw = mirror.write_port()
            mr = mirror.read_port(transparent_for=())
            # (writes through copies beside the memory too, a clock later, as the reads)
            w_bank = p.addr[low:] == b if len(banks) > 1 else 1
            m.d.comb += [
                mw.addr.eq(impl.local_copy(m, p.addr[:low], f"mirror_waddr_{b}")),
                mw.data.eq(impl.local_copy(m, p.data, f"mirror_wdata_{b}")),
                mw.en.eq(impl.local_copy(m, p.en & w_bank, f"mirror_wen_{b}", reset=True)),
                mr.addr.eq(impl.local_copy(m, p.raddr[:low], f"mirror_raddr_{b}"))]
            outs.append(mr.data)
        chosen = Signal(self._shape, name="mirror_q", reset_less=True)
        if len(outs) > 1:
            bank = delay(m, p.raddr[low:], 2, "mirror_bank", reset_less=True)
            m.d.sync += chosen.eq(Array(outs)[bank])
        else:
            m.d.sync += chosen.eq(outs[0])
        m.d.sync += p.rdata.eq(delay(m, chosen, self.read_cycles - 4, "mirror_q", reset_less=True))
