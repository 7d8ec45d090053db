"""The board top: the engine, a UART and the host bridge, so a host drives the accelerator over
one serial link (``hw/hostlink.py``). ``uart_rx``/``uart_tx`` are the only ports besides the
clock and reset."""

from amaranth.hdl import Module, Signal, Cat, DomainRenamer
from amaranth.lib import wiring, stream
from amaranth.lib.fifo import AsyncFIFO, SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .axi import AXI4Lite, AXI4LiteDecoder
from .cdc import AXI4LiteCDC
from .bridge import HostBridge
from .hostlink import ENGINE_ADDRESS_BITS, ENGINE_BITS, MAX_ENGINES
from .regmap import address_bits
from .selftest import SelfTest, SELFTEST_ADDRESS_BITS
from .selftest_map import SELFTEST_SLAVE
from .top import BflyTop, AXIL_PREFIX
from .ports import connect_flat
from .uart import UARTRx, UARTTx

__all__ = ["BoardTop", "LinkedEngine", "EngineSide", "PIXEL_FIFO_DEPTH", "config_list", "uart_divisor", "MIN_CLOCKS_PER_BIT", "BAUD_TOLERANCE"]

MIN_CLOCKS_PER_BIT = 4      # the UART samples a bit in its middle clock
BAUD_TOLERANCE = 0.02       # the rate made may differ from the one asked for by this fraction
PIXEL_FIFO_DEPTH = 8        # pixels each way between the bridge's clock domain and the engines'
SLICE_DEPTH = 2             # the register slice beside each of them, in the engines' domain


def uart_divisor(clk_hz, baud):
    """Clocks per bit; the baud rate must be reachable within ``BAUD_TOLERANCE``."""
    div = round(clk_hz / baud)
    if div < MIN_CLOCKS_PER_BIT or abs(clk_hz / div - baud) / baud > BAUD_TOLERANCE:
        raise ValueError(f"{baud} baud cannot be made from a {clk_hz / 1e6:g} MHz clock "
                         f"(closest: {clk_hz / max(div, 1):.0f} baud with {div} clocks per bit; "
                         f"at least {MIN_CLOCKS_PER_BIT} are needed)")
    return div


def config_list(cfgs):
    """``cfgs`` (one configuration, or a sequence of them) as a non-empty list."""
    cfgs = list(cfgs) if isinstance(cfgs, (list, tuple)) else [cfgs]
    if not 1 <= len(cfgs) <= MAX_ENGINES:
        raise ValueError(f"a board holds 1 to {MAX_ENGINES} engines, not {len(cfgs)}")
    return cfgs


class EngineSide(wiring.Component):
    """The engines of ``cfgs`` (with ``impls``, one each) and, with ``selftest``, the
    self-test, as the bridge sees them: their registers behind ``axil`` (an AXI4-Lite decoder
    gives each engine its own at :func:`bfly.hw.hostlink.engine_base`, the self-test its at
    ``SELFTEST_BASE``), pixels in on ``px`` (the widest engine's word, ``last`` on top, then the
    number of the engine it is for) and out on ``out`` (the word, ``last`` on top) from the
    engine that took the last input pixel. All in one clock domain (``sync``), which the board
    may rename. ``registered_decode``: the decoder's choice in a register (for a manager that
    sets each address a clock ahead: the crossing)."""

    def __init__(self, cfgs, impls, selftest, addr_bits, px_bits, out_bits, registered_decode=False):
        self._cfgs, self._selftest, self._registered = cfgs, selftest, registered_decode
        self._tops = [BflyTop(cfg, i) for cfg, i in zip(cfgs, impls)]
        super().__init__({
            "axil": In(AXI4Lite(addr_bits)),
            "px": In(stream.Signature(px_bits + ENGINE_BITS)),
            "out": Out(stream.Signature(out_bits)),
        })

    @property
    def tops(self):
        return list(self._tops)

    def elaborate(self, platform):
        m = Module()
        tops = self._tops
        st = None
        if self._selftest:
            m.submodules.selftest = st = SelfTest(max(len(t.s_axis_tdata) for t in tops),
                                                  max(len(t.m_axis_tdata) for t in tops))
        if len(tops) == 1 and st is None:
            m.submodules.engine_top = tops[0]
            connect_flat(m, tops[0], AXIL_PREFIX, wiring.flipped(self.axil))
        else:
            slaves = [address_bits(c) for c in self._cfgs] + ([SELFTEST_ADDRESS_BITS] if st else [])
            indices = list(range(len(tops))) + ([SELFTEST_SLAVE] if st else [])
            m.submodules.decoder = dec = AXI4LiteDecoder(len(self.axil.awaddr), slaves,
                                                         ENGINE_ADDRESS_BITS, indices, self._registered)
            wiring.connect(m, wiring.flipped(self.axil), dec.bus)
            for e, top in enumerate(tops):
                m.submodules[f"engine_top{e}"] = top
                connect_flat(m, top, AXIL_PREFIX, dec.slaves[e])
            if st is not None:
                wiring.connect(m, dec.slaves[len(tops)], st.axil)
        px_bits = len(self.px.payload) - ENGINE_BITS
        word, last, to = self.px.payload[:px_bits - 1], self.px.payload[px_bits - 1], self.px.payload[px_bits:]
        # the engine whose outputs go out: the one that took the last input pixel (a STREAM's
        # outputs are all out before the next STREAM's first pixel comes)
        current = Signal(ENGINE_BITS)
        with m.If(self.px.valid & self.px.ready):
            m.d.sync += current.eq(to)
        out_last = len(self.out.payload) - 1
        for e, top in enumerate(tops):
            chosen = (to == e) if len(tops) > 1 else 1
            sending = (current == e) if len(tops) > 1 else 1
            testing = 0
            if st is not None:          # a register: the choice is made a clock after a start
                testing = Signal(name=f"testing_{e}")
                m.d.sync += testing.eq(st.busy & (st.engine == e))
            with m.If(testing):
                m.d.comb += [top.s_axis_tdata.eq(st.px.payload[:len(top.s_axis_tdata)]),
                             top.s_axis_tvalid.eq(st.px.valid), top.m_axis_tready.eq(1),
                             st.px.ready.eq(top.s_axis_tready),
                             st.result.payload.eq(top.m_axis_tdata), st.result.valid.eq(top.m_axis_tvalid)]
            with m.Else():
                m.d.comb += [top.s_axis_tdata.eq(word[:len(top.s_axis_tdata)]), top.s_axis_tlast.eq(last),
                             top.s_axis_tvalid.eq(self.px.valid & chosen),
                             top.m_axis_tready.eq(self.out.ready & sending)]
                with m.If(chosen):
                    m.d.comb += self.px.ready.eq(top.s_axis_tready)
                with m.If(sending):
                    m.d.comb += [self.out.payload.eq(top.m_axis_tdata | (top.m_axis_tlast << out_last)),
                                 self.out.valid.eq(top.m_axis_tvalid)]
        return m


class LinkedEngine(wiring.Component):
    """The engines of ``cfgs`` (one configuration, or a list: engine ``e`` is ``cfgs[e]``)
    behind the host bridge: link bytes in on ``rx`` (``valid`` only, as from a UART), reply
    bytes out on ``tx``; ``timeout`` is the bridge's, in clocks; ``impl`` an
    :class:`bfly.hw.impl.Implementation` for all engines or a list, one each. With several engines, an
    AXI4-Lite decoder gives each its registers at :func:`bfly.hw.hostlink.engine_base` and the
    bridge's pixels go to (and come from) the engine its ``engine`` names.

    ``engine_domain``: the clock domain of the engines, their registers and the self-test, when
    it is not the bridge's (``sync``); the registers and the pixels then cross through
    :class:`bfly.hw.cdc.AXI4LiteCDC` and asynchronous FIFOs of ``PIXEL_FIFO_DEPTH``."""

    rx: In(stream.Signature(8, always_ready=True))
    tx: Out(stream.Signature(8))

    def __init__(self, cfgs, timeout, impl=None, selftest=True, engine_domain=None):
        self._cfgs = config_list(cfgs)
        self._timeout = timeout
        self._selftest = selftest
        self._domain = engine_domain
        impls = list(impl) if isinstance(impl, (list, tuple)) else [impl] * len(self._cfgs)
        if len(impls) != len(self._cfgs):
            raise ValueError(f"one implementation per engine, not {len(impls)} for {len(self._cfgs)}")
        self._bridge = HostBridge(self._cfgs, self._timeout, self._selftest)
        self._side = EngineSide(self._cfgs, impls, selftest, len(self._bridge.axil.awaddr),
                                len(self._bridge.px_out.payload), len(self._bridge.px_in.payload),
                                registered_decode=engine_domain is not None)
        super().__init__()

    @property
    def engine(self):
        """The first engine's top (the only one of a single-engine board)."""
        return self._side.tops[0]

    @property
    def engines(self):
        return self._side.tops

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = br = self._bridge
        wiring.connect(m, wiring.flipped(self.rx), br.rx)
        wiring.connect(m, br.tx, wiring.flipped(self.tx))
        side = self._side
        px = Signal.like(side.px.payload)
        m.d.comb += px.eq(Cat(br.px_out.payload, br.engine))
        if self._domain is None:
            m.submodules.engines = side
            wiring.connect(m, br.axil, side.axil)
            m.d.comb += [side.px.payload.eq(px), side.px.valid.eq(br.px_out.valid),
                         br.px_out.ready.eq(side.px.ready)]
            wiring.connect(m, side.out, br.px_in)
            return m
        d = self._domain
        m.submodules.engines = DomainRenamer(d)(side)
        m.submodules.axil_cdc = cdc = AXI4LiteCDC(len(br.axil.awaddr), "sync", d)
        wiring.connect(m, br.axil, cdc.bus)
        wiring.connect(m, cdc.out, side.axil)
        m.submodules.px_cdc = pin = AsyncFIFO(width=len(px), depth=PIXEL_FIFO_DEPTH, w_domain="sync", r_domain=d)
        m.submodules.out_cdc = pout = AsyncFIFO(width=len(side.out.payload), depth=PIXEL_FIFO_DEPTH,
                                                w_domain=d, r_domain="sync")
        # register slices on the engines' side, so that the engines' handshakes do not reach
        # into the crossing FIFOs' pointers and memories
        m.submodules.px_slice = sin = DomainRenamer(d)(SyncFIFOBuffered(width=len(px), depth=SLICE_DEPTH))
        m.submodules.out_slice = sout = DomainRenamer(d)(SyncFIFOBuffered(width=len(side.out.payload),
                                                                          depth=SLICE_DEPTH))
        m.d.comb += [pin.w_data.eq(px), pin.w_en.eq(br.px_out.valid), br.px_out.ready.eq(pin.w_rdy)]
        wiring.connect(m, pin.r_stream, sin.w_stream)
        wiring.connect(m, sin.r_stream, side.px)
        wiring.connect(m, side.out, sout.w_stream)
        wiring.connect(m, sout.r_stream, pout.w_stream)
        wiring.connect(m, pout.r_stream, br.px_in)
        return m


class BoardTop(wiring.Component):
    """The engine of ``cfg`` (or the engines of a list of configurations) behind a UART at
    ``baud`` with a ``clk_hz`` clock (the ``sync`` domain: UART and bridge); ``impl`` (a
    :class:`bfly.hw.impl.Implementation`, by default generic) makes the engines' physical
    choices; ``engine_domain``: the clock domain of the engines, when not ``sync``
    (:class:`LinkedEngine`)."""

    uart_rx: In(1, init=1)
    uart_tx: Out(1, init=1)

    def __init__(self, cfg, clk_hz, baud, timeout_bytes=64, impl=None, engine_domain=None):
        self._cfg = cfg
        self._divisor = uart_divisor(clk_hz, baud)
        self._linked = LinkedEngine(cfg, self._divisor * 10 * timeout_bytes, impl, engine_domain=engine_domain)
        super().__init__()

    @property
    def divisor(self):
        return self._divisor

    @property
    def engine(self):
        return self._linked.engine

    @property
    def engines(self):
        return self._linked.engines

    def elaborate(self, platform):
        m = Module()
        m.submodules.linked = linked = self._linked
        m.submodules.rx = rx = UARTRx(self._divisor)
        m.submodules.tx = tx = UARTTx(self._divisor)
        m.d.comb += [rx.rx.eq(self.uart_rx), self.uart_tx.eq(tx.tx)]
        wiring.connect(m, rx.o_stream, linked.rx)
        wiring.connect(m, linked.tx, tx.i_stream)
        return m
