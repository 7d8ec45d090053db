"""One butterfly factor in hardware: ``p`` nodes of ``s`` multipliers, adder trees and the
requantization of ``docs/spec.md`` §2, fully pipelined and free-running.

Pipeline of a stage (one register per step; ``latency`` counts them):

1. each multiplier's own copy of its input (``INPUT_CYCLES``; placed near it);
2. products ``x * w``: operands registered, then the product registered, then once more in the
   fabric (``hw/mult.py``: on an ECP5 the first two are the registers inside a ``MULT18X18D``);
3. adder tree, one register per level (``ceil(log2 s)`` levels);
4. requantization (``hw/requant.py``): the accumulator's copy, rounding, shift in two steps,
   out-of-range flag, saturate (or wrap) to ``data_bits``.

Weights and the shift are double-buffered: the stage's weight bank (``hw/weightbank.py``) keeps
its own shadow weights (written one at a time and read back through ``params``) next to the active
weights that feed its multipliers. ``load_stb`` (high in the cycle before the first pixel of the
new bank lands on ``i``) copies shadow into active, so every pixel sees one bank from start to
end.
"""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .regmap import SHIFT_BITS
from .connectivity import input_channel
from .arith import pipelined_sum, tree_levels, delay, pack
from .axi import WRITE_SPACING
from .mult import MULT_CYCLES
from . import hier
from .impl import Implementation
from .ports import ParamPort, pixel_stream
from .requant import Requantizer
from .weightbank import WeightBank

__all__ = ["ButterflyStage", "stage_signature"]


def stage_signature(cfg, index):
    """The ports of stage ``index`` of ``cfg``, fully parallel or folded (``o_sat_count`` counts
    the outputs of one clock: ``p`` or the stage's lanes)."""
    if not 0 <= index < cfg.n_stages:
        raise ValueError(f"stage index must be in [0, {cfg.n_stages}), not {index!r}")
    f = cfg.factors[index]
    d, w = cfg.data_bits, cfg.weight_bits
    lanes = cfg.stage_fold(index)[0]
    return wiring.Signature({
        "i": In(pixel_stream(f.q, d, always_ready=True)),
        "params": In(ParamPort(f.n_weights, signed(w))),
        "shadow_shift": In(SHIFT_BITS),
        "load_stb": In(1),
        "o": Out(pixel_stream(f.p, d, always_ready=True)),
        "o_sat_count": Out(range(lanes + 1)),
    })


class ButterflyStage(wiring.Component):
    """Stage ``index`` of the chain of ``cfg``.

    Ports: ``i``, a pixel stream of ``q`` signed channels; ``params``, the shadow weights (index
    ``o*s + j``, read data ``read_cycles`` clocks after the address), ``shadow_shift``,
    ``load_stb``; ``o``, the pixel stream of ``p`` channels, ``latency`` clocks after ``i``;
    ``o_sat_count``, the number of outputs of a valid pixel that saturated
    (``ceil(log2 p) - OUTPUT_CYCLES`` cycles after ``o.valid``).

    ``impl`` (a :class:`bfly.hw.impl.Implementation`, by default generic) makes the physical
    choices; the stage's multipliers are its multipliers ``first_dsp`` onwards, node by node.
    """

    #: clocks from ``i.payload`` to the multipliers' operand registers (a copy per multiplier)
    INPUT_CYCLES = 1
    #: registers after the requantization: the next stage's multipliers are across the device
    OUTPUT_CYCLES = 1
    #: a commit is over when ``load_stb`` has passed
    commit_cycles = 0

    def __init__(self, cfg, index, impl=None, first_dsp=0):
        self._cfg = cfg
        self._index = index
        self._factor = cfg.factors[index]
        self._impl = impl or Implementation()
        self._first_dsp = first_dsp
        super().__init__(stage_signature(cfg, index))

    @property
    def factor(self):
        return self._factor

    @property
    def multipliers(self):
        """Multipliers in the stage: one per weight."""
        return self._factor.n_weights

    @property
    def latency(self):
        """Cycles from a pixel on ``i.payload`` to its result on ``o.payload``."""
        return self._to_acc + Requantizer.latency + self.OUTPUT_CYCLES

    @property
    def read_cycles(self):
        """Clocks from ``params.raddr`` to ``params.rdata``."""
        return WeightBank.read_cycles

    @property
    def _to_acc(self):
        """Cycles from a pixel on ``i`` to its sums on the requantizer's input."""
        return self.INPUT_CYCLES + MULT_CYCLES + tree_levels(self._factor.s)

    def elaborate(self, platform):
        m = Module()
        cfg, f, impl = self._cfg, self._factor, self._impl
        acc_bits = cfg.acc_bits(self._index)

        # --- the weights: written through a tree of copies whose write lands levels + 1 clocks
        # after params.en (a clock after the engine's strobe); a commit, WRITE_SPACING or more
        # clocks after that strobe, loads the shadow bank 2 clocks after commit_stb at the
        # earliest: so at most WRITE_SPACING levels
        m.submodules.weights = bank = WeightBank(f.n_weights, signed(cfg.weight_bits), f.s,
                                                 WRITE_SPACING, impl)
        wiring.connect(m, wiring.flipped(self.params), bank.params)
        m.d.comb += bank.load_stb.eq(self.load_stb)

        m.submodules.requant = rq = Requantizer(cfg, acc_bits, f.p, impl)
        m.d.comb += [
            rq.shadow_shift.eq(self.shadow_shift),
            # (the pending shift is taken from a copy of load_stb beside it, a clock later:
            # still well before the load)
            rq.commit.eq(impl.local_copy(m, self.load_stb, "rq_commit")),
            rq.load.eq(delay(m, self.load_stb, self._to_acc - rq.load_lead, "shift_load",
                             reset_less=True)),
        ]

        # --- products and adder trees, then requantization: round, shift, saturate
        # (docs/spec.md §2)
        m.d.comb += rq.acc.eq(pack(self._sums(m, bank.weights), signed(acc_bits)))
        m.d.comb += self.o.payload.data.eq(delay(m, rq.o.as_value(), self.OUTPUT_CYCLES, "hop",
                                                 reset_less=True))
        self._control(m, [rq.sat[o] for o in range(f.p)])
        return m

    def _sums(self, m, weights):
        """Each node's sum of products, ``INPUT_CYCLES + MULT_CYCLES`` and its adder tree after
        the input (channels unpacked once, not sliced per multiplier); the nodes are repeated
        blocks (``hw/hier.py``), alike but for their DSP sites."""
        f, impl = self._factor, self._impl
        xs = [Signal(signed(self._cfg.data_bits), name=f"x_{c}") for c in range(f.q)]
        m.d.comb += [x.eq(self.i.payload.data[c]) for c, x in enumerate(xs)]
        accs = []
        for o in range(f.p):
            first = self._first_dsp + o * f.s
            sites = tuple(impl.dsp_site(first + j) for j in range(f.s)) if impl.ecp5 else ()
            inputs = {f"x{j}": xs[input_channel(f, o, j)] for j in range(f.s)}
            inputs.update({f"w{j}": weights[o * f.s + j] for j in range(f.s)})
            outs = hier.inline(m, f"node_{o}", "node", (impl.family, sites),
                               lambda mm, ins, tag, first=first: self._node(mm, ins, tag, first),
                               o, **inputs)
            accs.append(outs["acc"])
        return accs

    def _node(self, m, ins, tag, first_dsp):
        """One node: each multiplier's own copy of its input, next to it (the previous stage's
        outputs are across the device), the products, then the adder tree (signal names carry
        ``tag``, the node's number)."""
        f, impl = self._factor, self._impl
        o = "" if tag is None else f"_{tag}"
        products = []
        for j in range(f.s):
            x = impl.local_copy(m, ins[f"x{j}"], f"xin{o}_{j}")
            products.append(impl.product(m, x, ins[f"w{j}"], f"prod{o}_{j}", first_dsp + j))
        return {"acc": pipelined_sum(m, products, f"tree{o}" if o else "tree")}

    def _control(self, m, sat_flags):
        """``valid`` and ``last`` travel with the data; saturations are counted per pixel."""
        f, impl = self._factor, self._impl
        # (valid: in step with the requantized outputs and their flags, a clock ahead)
        valid = delay(m, self.i.valid, self.latency - 1 - self.OUTPUT_CYCLES, "valid")
        m.d.sync += [
            self.o.valid.eq(delay(m, valid, self.OUTPUT_CYCLES, "valid_out")),
            self.o.payload.last.eq(delay(m, self.i.payload.last, self.latency - 1, "last")),
        ]
        # each group of outputs has its own copy of o.valid for its saturation flags
        counted = [Signal(name=f"satv_{o}") for o in range(f.p)]
        for o, (c, flag) in enumerate(zip(counted, sat_flags)):
            if o % impl.copy_group == 0:
                valid_copy = impl.local_copy(m, valid, f"satvalid_{o // impl.copy_group}", reset=True)
            m.d.comb += c.eq(flag & valid_copy)
        m.d.comb += self.o_sat_count.eq(pipelined_sum(m, counted, "satcount"))
