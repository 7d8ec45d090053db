"""The crossing of AXI4-Lite between clock domains (the host bridge's and the engines',
``docs/design.md``, "Clocks"), built from Amaranth's asynchronous FIFOs, one per channel:
nothing here is a hand-made synchronizer. The pixel streams cross through
:class:`amaranth.lib.fifo.AsyncFIFO` directly (``hw/board.py``).

A write takes its address and data together (as the bridge issues them) through one FIFO and
gives them out on the other side each with its own handshake; the write response, the read
address and the read data each go through their own FIFO. On the manager side each address
stays put until its response has been taken, as :class:`bfly.hw.axi.AXI4LiteDecoder` needs:
one write and one read at a time, which is what the bridge issues.
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
        # ... and given out on the manager side, each channel's handshake on its own
        aw_done, w_done = Signal(), Signal()
        aw_now = out.awvalid & out.awready
        w_now = out.wvalid & out.wready
        m.d.comb += [out.awaddr.eq(aw.r_data[:a]), out.wdata.eq(aw.r_data[a:a + 32]),
                     out.wstrb.eq(aw.r_data[a + 32:]),
                     out.awvalid.eq(aw.r_rdy & ~aw_done), out.wvalid.eq(aw.r_rdy & ~w_done)]
        # the write leaves the FIFO with its response, so its address stays put until then
        b_now = out.bvalid & out.bready
        with m.If(b_now):
            m.d.comb += aw.r_en.eq(1)
            m.d[self._m] += [aw_done.eq(0), w_done.eq(0)]
        with m.Else():
            m.d[self._m] += [aw_done.eq(aw_done | aw_now), w_done.eq(w_done | w_now)]
        # write response back
        m.d.comb += [out.bready.eq(b.w_rdy), b.w_en.eq(out.bvalid & b.w_rdy), b.w_data.eq(out.bresp),
                     bus.bvalid.eq(b.r_rdy), bus.bresp.eq(b.r_data), b.r_en.eq(bus.bready)]
        # read: the address over, the data back
        ar_done = Signal()
        r_now = out.rvalid & out.rready
        with m.If(r_now):
            m.d[self._m] += ar_done.eq(0)
        with m.Elif(out.arvalid & out.arready):
            m.d[self._m] += ar_done.eq(1)
        m.d.comb += [bus.arready.eq(ar.w_rdy), ar.w_en.eq(bus.arvalid), ar.w_data.eq(bus.araddr),
                     out.arvalid.eq(ar.r_rdy & ~ar_done), out.araddr.eq(ar.r_data), ar.r_en.eq(r_now),
                     out.rready.eq(r.w_rdy), r.w_en.eq(out.rvalid & r.w_rdy),
                     r.w_data.eq(Cat(out.rdata, out.rresp)),
                     bus.rvalid.eq(r.r_rdy), bus.rdata.eq(r.r_data[:32]), bus.rresp.eq(r.r_data[32:]),
                     r.r_en.eq(bus.rready)]
        return m
