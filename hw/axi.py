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

__all__ = ["AXI4Lite", "RegisterBus", "AXI4LiteSlave", "AXI4LiteDecoder", "RESP_OKAY", "RESP_SLVERR", "WRITE_SETUP", "WRITE_SPACING"]

WRITE_SETUP = 3      # clocks the write address and data are held before the bank's strobe
# clocks from one write strobe to the next at the least: the strobe, BVALID, its handshake, then
# the next write's acceptance and WRITE_SETUP. Blocks may take as long as this to apply a write.
WRITE_SPACING = WRITE_SETUP + 3

RESP_OKAY = 0b00
RESP_SLVERR = 0b10


class AXI4Lite(wiring.Signature):
    """AXI4-Lite with 32-bit data and ``addr_bits`` of byte address, from the manager's side;
    members are named as in the specification (``awaddr``, ``awvalid``, ...)."""

    def __init__(self, addr_bits):
        self._addr_bits = addr_bits
        super().__init__({
            "awaddr": Out(addr_bits), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(32), "wstrb": Out(4), "wvalid": Out(1), "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_bits), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
            "rdata": In(32), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })

    @property
    def addr_bits(self):
        return self._addr_bits

    def __eq__(self, other):
        return isinstance(other, AXI4Lite) and other.addr_bits == self.addr_bits

    def __repr__(self):
        return f"AXI4Lite({self._addr_bits})"


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
    """AXI4-Lite slave (``axil``, an :class:`AXI4Lite` of ``addr_bits``) in front of the register
    bus ``bus`` towards the bank."""

    def __init__(self, addr_bits):
        if not isinstance(addr_bits, int) or addr_bits < 3:
            raise ValueError(f"addr_bits must be an integer >= 3, not {addr_bits!r}")
        self._addr_bits = addr_bits
        super().__init__({
            "axil": In(AXI4Lite(addr_bits)),
            "bus": Out(RegisterBus(addr_bits - 2)),
        })

    def elaborate(self, platform):
        m = Module()
        bus, axil = self.bus, self.axil

        # --- write: take AW and W together, perform on the next cycle(s), then respond
        w_pending = Signal()
        accept_w = axil.awvalid & axil.wvalid & ~w_pending & ~axil.bvalid
        m.d.comb += [axil.awready.eq(accept_w), axil.wready.eq(accept_w)]
        with m.If(accept_w):
            m.d.sync += [
                bus.w_addr.eq(axil.awaddr[2:]),
                bus.w_data.eq(axil.wdata),
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
            m.d.sync += [w_pending.eq(0), axil.bvalid.eq(1),
                         axil.bresp.eq(Mux(bus.w_err, RESP_SLVERR, RESP_OKAY))]
        with m.Elif(axil.bvalid & axil.bready):
            m.d.sync += axil.bvalid.eq(0)

        # --- read: latch the address, start the bank's read, respond when it acknowledges
        r_start = Signal()
        r_busy = Signal()
        accept_r = axil.arvalid & ~r_start & ~r_busy & ~axil.rvalid
        m.d.comb += axil.arready.eq(accept_r)
        with m.If(accept_r):
            m.d.sync += [bus.r_addr.eq(axil.araddr[2:]), r_start.eq(1)]
        m.d.comb += bus.r_stb.eq(r_start)
        with m.If(r_start):
            m.d.sync += [r_start.eq(0), r_busy.eq(1)]
        with m.If(r_busy & bus.r_ack):
            m.d.sync += [r_busy.eq(0), axil.rvalid.eq(1), axil.rdata.eq(bus.r_data),
                         axil.rresp.eq(Mux(bus.r_err, RESP_SLVERR, RESP_OKAY))]
        with m.Elif(axil.rvalid & axil.rready):
            m.d.sync += axil.rvalid.eq(0)
        return m


class AXI4LiteDecoder(wiring.Component):
    """One AXI4-Lite manager (``bus``, ``addr_bits`` wide) to several slaves (``slaves[i]``,
    each ``slave_bits[i]`` wide), slave ``i`` at byte address ``indices[i] << shift`` (by default
    ``indices[i] = i``).

    For a manager with one transaction at a time that holds its address until the response (the
    host bridge's executor): the slave is chosen from ``awaddr`` and ``araddr`` as they are, with
    no state. Addresses past the last slave reach none (the manager refuses them first).
    ``registered``: the choice is a register of the address instead, for a manager that also
    sets its address a clock before ``awvalid``/``arvalid`` (:class:`bfly.hw.cdc.AXI4LiteCDC`),
    which keeps the address decode off the handshakes' paths."""

    def __init__(self, addr_bits, slave_bits, shift, indices=None, registered=False):
        self._shift, self._count = shift, len(slave_bits)
        self._indices = list(range(self._count)) if indices is None else list(indices)
        if len(self._indices) != self._count:
            raise ValueError("one index per slave")
        if any(b > shift for b in slave_bits) or addr_bits < shift + max(self._indices).bit_length():
            raise ValueError(f"slaves of {slave_bits} address bits at {1 << shift}-byte steps do not "
                             f"fit {addr_bits} address bits")
        super().__init__({
            "bus": In(AXI4Lite(addr_bits)),
            **{f"slave{i}": Out(AXI4Lite(b)) for i, b in enumerate(slave_bits)},
        })
        self._slave_bits = slave_bits
        self._registered = registered

    @property
    def slaves(self):
        """The slave-side interfaces, in order (``slave0``, ``slave1``...)."""
        return [getattr(self, f"slave{i}") for i in range(self._count)]

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        w_sel, r_sel = bus.awaddr[self._shift:], bus.araddr[self._shift:]
        for i, s in enumerate(self.slaves):
            w_hit, r_hit = w_sel == self._indices[i], r_sel == self._indices[i]
            if self._registered:
                w_reg, r_reg = Signal(name=f"w_hit_{i}"), Signal(name=f"r_hit_{i}")
                m.d.sync += [w_reg.eq(w_hit), r_reg.eq(r_hit)]
                w_hit, r_hit = w_reg, r_reg
            m.d.comb += [
                s.awaddr.eq(bus.awaddr[:self._slave_bits[i]]), s.awprot.eq(bus.awprot),
                s.awvalid.eq(bus.awvalid & w_hit),
                s.wdata.eq(bus.wdata), s.wstrb.eq(bus.wstrb), s.wvalid.eq(bus.wvalid & w_hit),
                s.bready.eq(bus.bready & w_hit),
                s.araddr.eq(bus.araddr[:self._slave_bits[i]]), s.arprot.eq(bus.arprot),
                s.arvalid.eq(bus.arvalid & r_hit), s.rready.eq(bus.rready & r_hit),
            ]
            with m.If(w_hit):
                m.d.comb += [bus.awready.eq(s.awready), bus.wready.eq(s.wready),
                             bus.bvalid.eq(s.bvalid), bus.bresp.eq(s.bresp)]
            with m.If(r_hit):
                m.d.comb += [bus.arready.eq(s.arready), bus.rvalid.eq(s.rvalid),
                             bus.rdata.eq(s.rdata), bus.rresp.eq(s.rresp)]
        return m
