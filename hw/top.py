"""The Verilog top: the engine, its register bank and an AXI4-Lite slave behind flat, AXI-named
ports (``s_axis_*``, ``m_axis_*``, ``s_axil_*``), so it drops into a Vivado block design or a
LiteX SoC. ``clk`` and ``rst`` (synchronous, active high) come from the ``sync`` domain.
"""

from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import hier
from .config import stream_bits
from .regmap import address_bits
from .axi import AXI4LiteSlave
from .ports import flat_members, connect_flat
from .engine import ButterflyEngine
from .regs import RegisterBank

__all__ = ["BflyTop", "elaborate", "AXIL_PREFIX"]

AXIL_PREFIX = "s_axil"


class BflyTop(wiring.Component):
    """Top level of a butterfly engine built from ``cfg``; ``impl`` (a
    :class:`bfly.hw.impl.Implementation`, by default generic Verilog) makes the engine's physical
    choices."""

    def __init__(self, cfg, impl=None):
        self._cfg = cfg
        self._engine = ButterflyEngine(cfg, impl)
        self._axil = AXI4LiteSlave(address_bits(cfg))
        ports = {
            "s_axis_tdata": In(stream_bits(cfg.n_in, cfg.data_bits)),
            "s_axis_tvalid": In(1), "s_axis_tready": Out(1), "s_axis_tlast": In(1),
            "m_axis_tdata": Out(stream_bits(cfg.n_out, cfg.data_bits)),
            "m_axis_tvalid": Out(1), "m_axis_tready": In(1), "m_axis_tlast": Out(1),
        }
        ports.update(flat_members(AXIL_PREFIX, self._axil.signature.members["axil"].signature))
        super().__init__(ports)

    @property
    def config(self):
        return self._cfg

    @property
    def engine(self):
        return self._engine

    @property
    def latency(self):
        return self._engine.latency

    def elaborate(self, platform):
        m = Module()
        cfg, engine, axil = self._cfg, self._engine, self._axil
        regs = RegisterBank(cfg, engine.latency, engine.sat_counts.shape().elem_shape,
                            engine.param_read_cycles)
        m.submodules.engine = engine
        m.submodules.regs = regs
        m.submodules.axil = axil
        wiring.connect(m, axil.bus, regs.bus)
        wiring.connect(m, regs.params, engine.params)
        connect_flat(m, self, AXIL_PREFIX, axil.axil)

        m.d.comb += [
            engine.i_stream.valid.eq(self.s_axis_tvalid),
            engine.i_stream.payload.data.eq(self.s_axis_tdata[:cfg.n_in * cfg.data_bits]),
            engine.i_stream.payload.last.eq(self.s_axis_tlast),
            self.s_axis_tready.eq(engine.i_stream.ready),
            self.m_axis_tdata.eq(engine.o_stream.payload.data.as_value()),
            self.m_axis_tvalid.eq(engine.o_stream.valid),
            self.m_axis_tlast.eq(engine.o_stream.payload.last),
            engine.o_stream.ready.eq(self.m_axis_tready),

            engine.shadow_shifts.eq(regs.shadow_shifts),
            engine.commit_stb.eq(regs.commit_stb),
            regs.commit_busy.eq(engine.commit_busy),
            regs.stream_busy.eq(engine.busy),
            regs.sat_counts.eq(engine.sat_counts),
        ]
        if cfg.epilogue:
            m.d.comb += [engine.shadow_epi_ctrl.eq(regs.shadow_epi_ctrl),
                         engine.shadow_out_shift.eq(regs.shadow_out_shift)]
        return m


def elaborate(cfg, impl=None, hierarchy=True, verify=False):
    """Build the top for ``cfg``; return ``(verilog_text, top)``. ``impl`` (a
    :class:`bfly.hw.impl.Implementation`) may ask for vendor primitives; by default the Verilog
    is generic. ``hierarchy``: repeated blocks as instances of one module each
    (:func:`bfly.hw.hier.convert`; ``verify`` checks every instance against its module); else
    one module per block instance, as Amaranth writes it."""
    top = BflyTop(cfg, impl)
    if hierarchy:
        text = hier.convert(top, cfg.name, verify=verify)
    else:
        text = verilog.convert(top, name=cfg.name, emit_src=False)
    return text, top
