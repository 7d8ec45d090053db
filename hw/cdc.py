"""The crossing of AXI4-Lite between clock domains (the host bridge's and the engines',
``docs/design.md``, "Clocks"), built from Amaranth's asynchronous FIFOs, one per channel:
nothing here is a hand-made synchronizer. The pixel streams cross through
:class:`amaranth.lib.fifo.AsyncFIFO` directly (``hw/board.py``).

A write takes its address and data together (as the bridge issues them) through one FIFO and
gives them out on the other side each with its own handshake; the write response, the read
address and the read data each go through their own FIFO. On the manager side each access is
held in registers until its response, as :class:`bfly.hw.axi.AXI4LiteDecoder` needs (its
address a clock before its valid, as the decoder's ``registered`` choice needs), and the
responses are taken at once: one write and one read at a time, which is what the bridge
issues (so a response FIFO always has room).
"""

from amaranth.hdl import Module, Signal, Cat
from amaranth.lib import wiring
from amaranth.lib.fifo import AsyncFIFO
from amaranth.lib.wiring import In, Out

from .axi import AXI4Lite

__all__ = ["AXI4LiteCDC", "CHANNEL_DEPTH"]

CHANNEL_DEPTH = 4            # entries of each AXI4-Lite channel's FIFO (the bridge has one access
                             # in flight, so the depth only sets the crossing's latency)


class AXI4LiteCDC(wiring.Component):
    """AXI4-Lite of ``addr_bits`` crossing from ``s_domain`` (``bus``: the manager connects
    here) to ``m_domain`` (``out``: towards the subordinates)."""

    def __init__(self, addr_bits, s_domain, m_domain, depth=CHANNEL_DEPTH):
        self._s, self._m, self._depth = s_domain, m_domain, depth
        super().__init__({"bus": In(AXI4Lite(addr_bits)), "out": Out(AXI4Lite(addr_bits))})

    def elaborate(self, platform):
        m = Module()
        bus, out = self.bus, self.out
        a = len(bus.awaddr)
        fwd = lambda width: AsyncFIFO(width=width, depth=self._depth, w_domain=self._s, r_domain=self._m)
        back = lambda width: AsyncFIFO(width=width, depth=self._depth, w_domain=self._m, r_domain=self._s)
        m.submodules.aw = aw = fwd(a + 32 + 4)
        m.submodules.b = b = back(2)
        m.submodules.ar = ar = fwd(a)
        m.submodules.r = r = back(32 + 2)

        # write: address and data taken together on the subordinate side ...
        take = bus.awvalid & bus.wvalid & aw.w_rdy
        m.d.comb += [bus.awready.eq(take), bus.wready.eq(take), aw.w_en.eq(take),
                     aw.w_data.eq(Cat(bus.awaddr, bus.wdata, bus.wstrb))]
        # ... and held in registers on the manager side until its response, each channel's
        # handshake on its own
        md = m.d[self._m]
        w_busy, w_setup, aw_v, w_v = Signal(), Signal(), Signal(), Signal()
        with m.If(aw.r_rdy & ~w_busy):
            m.d.comb += aw.r_en.eq(1)
            md += [out.awaddr.eq(aw.r_data[:a]), out.wdata.eq(aw.r_data[a:a + 32]),
                   out.wstrb.eq(aw.r_data[a + 32:]), w_setup.eq(1), w_busy.eq(1)]
        with m.If(w_setup):             # the address a clock before the valids
            md += [w_setup.eq(0), aw_v.eq(1), w_v.eq(1)]
        with m.If(out.awvalid & out.awready):
            md += aw_v.eq(0)
        with m.If(out.wvalid & out.wready):
            md += w_v.eq(0)
        with m.If(out.bvalid):
            md += w_busy.eq(0)
        # the response back: taken at once (one access at a time each way, so the FIFO has room)
        m.d.comb += [out.awvalid.eq(aw_v), out.wvalid.eq(w_v), out.bready.eq(1),
                     b.w_en.eq(out.bvalid), b.w_data.eq(out.bresp),
                     bus.bvalid.eq(b.r_rdy), bus.bresp.eq(b.r_data), b.r_en.eq(bus.bready)]
        # read: the address over and held until the data comes back
        r_busy, r_setup, ar_v = Signal(), Signal(), Signal()
        with m.If(ar.r_rdy & ~r_busy):
            m.d.comb += ar.r_en.eq(1)
            md += [out.araddr.eq(ar.r_data), r_setup.eq(1), r_busy.eq(1)]
        with m.If(r_setup):
            md += [r_setup.eq(0), ar_v.eq(1)]
        with m.If(out.arvalid & out.arready):
            md += ar_v.eq(0)
        with m.If(out.rvalid):
            md += r_busy.eq(0)
        m.d.comb += [bus.arready.eq(ar.w_rdy), ar.w_en.eq(bus.arvalid), ar.w_data.eq(bus.araddr),
                     out.arvalid.eq(ar_v), out.rready.eq(1),
                     r.w_en.eq(out.rvalid), r.w_data.eq(Cat(out.rdata, out.rresp)),
                     bus.rvalid.eq(r.r_rdy), bus.rdata.eq(r.r_data[:32]), bus.rresp.eq(r.r_data[32:]),
                     r.r_en.eq(bus.rready)]
        return m
