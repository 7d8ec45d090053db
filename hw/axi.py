"""AXI4-Lite slave shell: turns AXI4-Lite transactions into a simple registered register bus.

The register bus (``RegisterBus``) has separate write and read sides:

- write: ``w_addr`` (word address), ``w_data``, held for ``WRITE_SETUP`` clocks before ``w_stb``
  (one cycle), so the bank can decode them in registers; the bank answers
  ``w_err`` for an address it cannot write and holds ``w_wait`` high while writes must wait;
- read: ``r_addr`` (held until the answer), ``r_stb`` (one cycle); the bank raises ``r_ack``
  for one cycle when ``r_data`` and ``r_err`` hold the answer.

Both AXI address and data are registered before they reach the bank (a write is performed
``WRITE_SETUP + 1`` cycles after its handshake, a read answered when the bank acknowledges), which keeps the decode of
a large weight window off the AXI input pins. A write completes (``BVALID`` rises) at the clock edge at
which the bank performs it. Byte strobes are ignored: every register is written whole.
"""

from amaranth.hdl import Module, Signal, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RegisterBus", "AXI4LiteSlave", "RESP_OKAY", "RESP_SLVERR", "WRITE_SETUP", "WRITE_SPACING"]

WRITE_SETUP = 3      # clocks the write address and data are held before the bank's strobe
# clocks from one write strobe to the next at the least: the strobe, BVALID, its handshake, then
# the next write's acceptance and WRITE_SETUP. Blocks may take as long as this to apply a write.
WRITE_SPACING = WRITE_SETUP + 3

RESP_OKAY = 0b00
RESP_SLVERR = 0b10


class RegisterBus(wiring.Signature):
    """The bus from :class:`AXI4LiteSlave` (initiator) to a register bank."""

    def __init__(self, addr_width):
        self._addr_width = addr_width
        super().__init__({
            "w_addr": Out(addr_width), "w_data": Out(32), "w_stb": Out(1),
            "w_err": In(1), "w_wait": In(1),
            "r_addr": Out(addr_width), "r_stb": Out(1),
            "r_data": In(32), "r_err": In(1), "r_ack": In(1),
        })

    @property
    def addr_width(self):
        return self._addr_width

    def __eq__(self, other):
        return isinstance(other, RegisterBus) and other.addr_width == self.addr_width

    def __repr__(self):
        return f"RegisterBus({self._addr_width})"


class AXI4LiteSlave(wiring.Component):
    """AXI4-Lite slave with 32-bit data and ``addr_bits`` of byte address.

    AXI ports are named as in the specification (``awaddr``, ``awvalid``, ...); the top level
    prefixes them with ``s_axil_``. ``bus`` is the register bus towards the bank.
    """

    def __init__(self, addr_bits):
        if not isinstance(addr_bits, int) or addr_bits < 3:
            raise ValueError(f"addr_bits must be an integer >= 3, not {addr_bits!r}")
        self._addr_bits = addr_bits
        super().__init__({
            "awaddr": In(addr_bits), "awprot": In(3), "awvalid": In(1), "awready": Out(1),
            "wdata": In(32), "wstrb": In(4), "wvalid": In(1), "wready": Out(1),
            "bresp": Out(2), "bvalid": Out(1), "bready": In(1),
            "araddr": In(addr_bits), "arprot": In(3), "arvalid": In(1), "arready": Out(1),
            "rdata": Out(32), "rresp": Out(2), "rvalid": Out(1), "rready": In(1),
            "bus": Out(RegisterBus(addr_bits - 2)),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.bus

        # --- write: take AW and W together, perform on the next cycle(s), then respond
        w_pending = Signal()
        accept_w = self.awvalid & self.wvalid & ~w_pending & ~self.bvalid
        m.d.comb += [self.awready.eq(accept_w), self.wready.eq(accept_w)]
        with m.If(accept_w):
            m.d.sync += [
                bus.w_addr.eq(self.awaddr[2:]),
                bus.w_data.eq(self.wdata),
                w_pending.eq(1),
            ]
        # clocks since the write was taken, and whether WRITE_SETUP - 1 have passed (a register)
        settle = Signal(range(WRITE_SETUP + 1))
        settled = Signal()
        with m.If(accept_w):
            m.d.sync += [settle.eq(0), settled.eq(0)]
        with m.Elif(w_pending & ~settled):
            m.d.sync += [settle.eq(settle + 1), settled.eq(settle == WRITE_SETUP - 2)]
        # the strobe is a register of its own, decided a clock ahead (it reaches the whole bank
        # and the engine's commit logic): w_wait cannot rise in between, as only a write (the
        # commit) raises it, and writes are never in adjacent clocks
        do_write = Signal()
        m.d.sync += do_write.eq(w_pending & settled & ~bus.w_wait & ~do_write)
        m.d.comb += bus.w_stb.eq(do_write)
        with m.If(do_write):
            m.d.sync += [w_pending.eq(0), self.bvalid.eq(1),
                         self.bresp.eq(Mux(bus.w_err, RESP_SLVERR, RESP_OKAY))]
        with m.Elif(self.bvalid & self.bready):
            m.d.sync += self.bvalid.eq(0)

        # --- read: latch the address, start the bank's read, respond when it acknowledges
        r_start = Signal()
        r_busy = Signal()
        accept_r = self.arvalid & ~r_start & ~r_busy & ~self.rvalid
        m.d.comb += self.arready.eq(accept_r)
        with m.If(accept_r):
            m.d.sync += [bus.r_addr.eq(self.araddr[2:]), r_start.eq(1)]
        m.d.comb += bus.r_stb.eq(r_start)
        with m.If(r_start):
            m.d.sync += [r_start.eq(0), r_busy.eq(1)]
        with m.If(r_busy & bus.r_ack):
            m.d.sync += [r_busy.eq(0), self.rvalid.eq(1), self.rdata.eq(bus.r_data),
                         self.rresp.eq(Mux(bus.r_err, RESP_SLVERR, RESP_OKAY))]
        with m.Elif(self.rvalid & self.rready):
            m.d.sync += self.rvalid.eq(0)
        return m
