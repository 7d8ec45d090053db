"""The board top: the engine, a UART and the host bridge, so a host drives the accelerator over
one serial link (``hw/hostlink.py``). ``uart_rx``/``uart_tx`` are the only ports besides the
clock and reset."""

from amaranth.hdl import Module
from amaranth.lib import wiring, stream
from amaranth.lib.wiring import In, Out

from .bridge import HostBridge
from .top import BflyTop, AXIL_PREFIX
from .ports import connect_flat
from .uart import UARTRx, UARTTx

__all__ = ["BoardTop", "LinkedEngine", "uart_divisor", "MIN_CLOCKS_PER_BIT", "BAUD_TOLERANCE"]

MIN_CLOCKS_PER_BIT = 4      # the UART samples a bit in its middle clock
BAUD_TOLERANCE = 0.02       # the rate made may differ from the one asked for by this fraction


def uart_divisor(clk_hz, baud):
    """Clocks per bit; the baud rate must be reachable within ``BAUD_TOLERANCE``."""
    div = round(clk_hz / baud)
    if div < MIN_CLOCKS_PER_BIT or abs(clk_hz / div - baud) / baud > BAUD_TOLERANCE:
        raise ValueError(f"{baud} baud cannot be made from a {clk_hz / 1e6:g} MHz clock "
                         f"(closest: {clk_hz / max(div, 1):.0f} baud with {div} clocks per bit; "
                         f"at least {MIN_CLOCKS_PER_BIT} are needed)")
    return div


class LinkedEngine(wiring.Component):
    """The engine of ``cfg`` behind the host bridge: link bytes in on ``rx`` (``valid`` only, as
    from a UART), reply bytes out on ``tx``; ``timeout`` is the bridge's, in clocks."""

    rx: In(stream.Signature(8, always_ready=True))
    tx: Out(stream.Signature(8))

    def __init__(self, cfg, timeout, impl=None):
        self._cfg = cfg
        self._timeout = timeout
        self._engine_top = BflyTop(cfg, impl)
        super().__init__()

    @property
    def engine(self):
        return self._engine_top

    def elaborate(self, platform):
        m = Module()
        top = self._engine_top
        m.submodules.engine_top = top
        m.submodules.bridge = br = HostBridge(self._cfg, self._timeout)
        connect_flat(m, top, AXIL_PREFIX, br.axil)
        wiring.connect(m, wiring.flipped(self.rx), br.rx)
        wiring.connect(m, br.tx, wiring.flipped(self.tx))
        m.d.comb += [
            top.s_axis_tdata.eq(br.px_out.payload[:len(top.s_axis_tdata)]),
            top.s_axis_tlast.eq(br.px_out.payload[-1]),
            top.s_axis_tvalid.eq(br.px_out.valid), br.px_out.ready.eq(top.s_axis_tready),
            br.px_in.payload.eq(top.m_axis_tdata | (top.m_axis_tlast << len(top.m_axis_tdata))),
            br.px_in.valid.eq(top.m_axis_tvalid), top.m_axis_tready.eq(br.px_in.ready),
        ]
        return m


class BoardTop(wiring.Component):
    """Engine of ``cfg`` behind a UART at ``baud`` with a ``clk_hz`` clock; ``impl`` (a
    :class:`bfly.hw.impl.Implementation`, by default generic) makes the engine's physical choices."""

    uart_rx: In(1, init=1)
    uart_tx: Out(1, init=1)

    def __init__(self, cfg, clk_hz, baud, timeout_bytes=64, impl=None):
        self._cfg = cfg
        self._divisor = uart_divisor(clk_hz, baud)
        self._linked = LinkedEngine(cfg, self._divisor * 10 * timeout_bytes, impl)
        super().__init__()

    @property
    def divisor(self):
        return self._divisor

    @property
    def engine(self):
        return self._linked.engine

    def elaborate(self, platform):
        m = Module()
        m.submodules.linked = linked = self._linked
        m.submodules.rx = rx = UARTRx(self._divisor)
        m.submodules.tx = tx = UARTTx(self._divisor)
        m.d.comb += [rx.rx.eq(self.uart_rx), self.uart_tx.eq(tx.tx)]
        wiring.connect(m, rx.o_stream, linked.rx)
        wiring.connect(m, linked.tx, tx.i_stream)
        return m
