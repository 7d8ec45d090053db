"""The epilogue of a BFT block (``docs/spec.md`` §3), after the last stage:

    e_c   = y_c + G x_c          (G = 0 or +-2**g: a shift, not a multiplier; residual blocks only)
    acc_c = e_c * A_c + Bias_c
    z_c   = requantize(acc_c, out_shift), then ReLU if enabled

Pipeline: residual add, product, bias add (one register each), then the shared requantization
(round, shift, saturate with ReLU). Parameters are double-buffered like the weights: the shadow
multipliers and biases sit here (port ``params``: index ``c`` is ``A_c``, ``n_out + c`` is
``Bias_c``), the shadow control word and output shift come from the register bank, and after
``load_stb`` each parameter switches to the new bank when the first pixel of that bank reaches
the step that uses it.
"""

from amaranth.hdl import Module, Signal, Mux, signed
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out

from .regmap import SHIFT_BITS, RESIDUAL_SHIFT_MAX, BIAS_BITS, EPI_CTRL
from .arith import pipelined_sum, delay, pack, registered_select, READ_CYCLES
from .impl import Implementation
from .ports import ParamPort, pixel_stream
from .requant import Requantizer

__all__ = ["Epilogue", "EPI_CTRL_BITS", "epilogue_input_bits"]

EPI_CTRL_BITS = EPI_CTRL.width     # the control word as the register bank keeps it
_PRE_CYCLES = 3        # residual add, product, bias add


def epilogue_input_bits(cfg):
    """Width of the epilogue's ``y + G x`` for ``cfg``: ``G x`` needs up to ``data_bits + g + 1``
    bits where there is a residual; ``data_bits`` where there is none."""
    d = cfg.data_bits
    return d + RESIDUAL_SHIFT_MAX + 2 if cfg.has_residual else d


class Epilogue(wiring.Component):
    """Epilogue for the engine built from ``cfg`` (``cfg.epilogue`` must be set); ``impl`` (a
    :class:`bfly.hw.impl.Implementation`, by default generic) makes its requantizer's copies."""

    def __init__(self, cfg, impl=None):
        if not cfg.epilogue:
            raise ValueError(f"configuration {cfg.id} has no epilogue")
        self._cfg = cfg
        self._impl = impl or Implementation()
        d, n = cfg.data_bits, cfg.n_out
        ports = {
            "i": In(pixel_stream(n, d, always_ready=True)),
            "params": In(ParamPort(2 * n, signed(BIAS_BITS))),
            "shadow_ctrl": In(EPI_CTRL_BITS),
            "shadow_shift": In(SHIFT_BITS),
            "load_stb": In(1),
            "o": Out(pixel_stream(n, d, always_ready=True)),
            "o_sat_count": Out(range(n + 1)),
        }
        if cfg.has_residual:
            ports["i_x"] = In(data.ArrayLayout(signed(d), cfg.n_in))
        super().__init__(ports)

    #: clocks from ``params.raddr`` to ``params.rdata``
    read_cycles = READ_CYCLES
    #: a commit is over when ``load_stb`` has passed
    commit_cycles = 0

    @property
    def latency(self):
        return _PRE_CYCLES + Requantizer.latency

    @property
    def e_bits(self):
        """Width of ``y + G x`` (:func:`epilogue_input_bits`)."""
        return epilogue_input_bits(self._cfg)

    @property
    def acc_bits(self):
        return max(self.e_bits + self._cfg.weight_bits, BIAS_BITS) + 1

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        n, w = cfg.n_out, cfg.weight_bits

        # --- shadow parameters, written one word at a time
        shadow_mult = [Signal(signed(w), name=f"shadow_mult_{c}", reset_less=True) for c in range(n)]
        shadow_bias = [Signal(signed(BIAS_BITS), name=f"shadow_bias_{c}", reset_less=True) for c in range(n)]
        for i, reg in enumerate(shadow_mult + shadow_bias):
            with m.If(self.params.en & (self.params.addr == i)):
                m.d.sync += reg.eq(self.params.data[:len(reg)])
        m.d.comb += self.params.rdata.eq(registered_select(m, shadow_mult + shadow_bias, self.params.raddr, "rd"))

        # --- active parameters, each switched when the new bank's first pixel reaches its step
        load = [self.load_stb] + [delay(m, self.load_stb, k, f"load{k}", reset_less=True)
                                  for k in range(1, _PRE_CYCLES + 1)]
        ctrl = Signal(EPI_CTRL_BITS, reset_less=True)        # residual fields used at step 1
        pending_relu = Signal(reset_less=True)
        mult = [Signal(signed(w), name=f"mult_{c}", reset_less=True) for c in range(n)]
        bias = [Signal(signed(BIAS_BITS), name=f"bias_{c}", reset_less=True) for c in range(n)]
        relu = Signal(reset_less=True)
        with m.If(load[0]):
            m.d.sync += [ctrl.eq(self.shadow_ctrl), pending_relu.eq(self.shadow_ctrl[EPI_CTRL["relu"].bits])]
        with m.If(load[1]):
            m.d.sync += [a.eq(b) for a, b in zip(mult, shadow_mult)]
        with m.If(load[2]):
            m.d.sync += [a.eq(b) for a, b in zip(bias, shadow_bias)]
        with m.If(load[_PRE_CYCLES]):
            m.d.sync += relu.eq(pending_relu)
        m.submodules.requant = rq = Requantizer(cfg, self.acc_bits, n, self._impl, relu=True)
        m.d.comb += [rq.shadow_shift.eq(self.shadow_shift), rq.commit.eq(load[0]),
                     rq.load.eq(load[_PRE_CYCLES - rq.load_lead]), rq.relu.eq(relu)]

        # --- step 1: e = y + G x
        es = []
        res_en, res_neg, res_g = (ctrl[EPI_CTRL[name].bits] for name in ("residual", "negative", "g"))
        for c in range(n):
            e = Signal(signed(self.e_bits), name=f"e_{c}", reset_less=True)
            if cfg.has_residual:
                gx = Signal(signed(self.e_bits - 1), name=f"gx_{c}")
                m.d.comb += gx.eq(self.i_x[c] << res_g)
                m.d.sync += e.eq(self.i.payload.data[c] + Mux(res_en, Mux(res_neg, -gx, gx), 0))
            else:
                m.d.sync += e.eq(self.i.payload.data[c])
            es.append(e)
        # --- step 2: product; step 3: bias
        accs = []
        for c, e in enumerate(es):
            prod = Signal(signed(self.e_bits + w), name=f"prod_{c}", reset_less=True)
            m.d.sync += prod.eq(self._impl.epilogue_product(e, mult[c]))
            acc = Signal(signed(self.acc_bits), name=f"acc_{c}", reset_less=True)
            m.d.sync += acc.eq(prod + bias[c])
            accs.append(acc)
        # --- steps 4-6: requantize with ReLU
        m.d.comb += rq.acc.eq(pack(accs, signed(self.acc_bits)))
        m.d.comb += self.o.payload.data.eq(rq.o)
        flags = [rq.sat[c] for c in range(n)]

        m.d.sync += [
            self.o.valid.eq(delay(m, self.i.valid, self.latency - 1, "valid")),
            self.o.payload.last.eq(delay(m, self.i.payload.last, self.latency - 1, "last")),
        ]
        counted = [Signal(name=f"satv_{c}") for c in range(n)]
        m.d.comb += [cnt.eq(flag & self.o.valid) for cnt, flag in zip(counted, flags)]
        m.d.comb += self.o_sat_count.eq(pipelined_sum(m, counted, "satcount"))
        return m
