"""A measurement shell for place and route: the top's input ports are driven from a shift
register fed by one pin, and its output ports are XOR-reduced into one pin, so no logic is
optimized away and only four pins are used (``clk``, ``rst``, ``scan_in``, ``scan_out``).

It replaces an out-of-context mode (nextpnr-ice40 has none, and nextpnr-ecp5's leaves the clock
off the global network, on general routing to every flip-flop). Each output bit is registered
first (where the placer likes, next to the logic that makes it), then the XOR tree is registered
after every four-input level (a LUT4 and its flip-flop), so the shell's own paths are one LUT
long. Its cost is one flip-flop per input bit, one per output bit, plus the tree (about a third
of a LUT and a flip-flop per output bit); reports that use it say so.

The core's reset is the ``rst`` pin registered (as a reset synchronizer would give it), then on
an ECP5 driven through a global buffer (``DCCA``): a reset reaches every register of the engine,
all over the device, and the global network carries it there as it carries the clock. The core
sees the reset a clock after the pin.

It is for measuring the core only: the engine cannot be driven through it. Given the core's
Verilog module name (``instance``), the shell instantiates that module by name instead of
elaborating the core, so the core's Verilog is converted on its own (the file ``bfly gen
--target`` writes) and the shell's beside it.
"""

from amaranth.hdl import Module, Signal, Cat, ClockDomain, ClockSignal, ResetSignal, DomainRenamer, Instance
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, Flow

from .impl import Implementation

__all__ = ["ScanShell"]


class ScanShell(wiring.Component):
    scan_in: In(1)
    scan_out: Out(1)

    def __init__(self, core, instance=None, impl=None):
        """``core``: a component whose ports are all flat (a signal per member). ``instance``:
        the Verilog module name of the core converted apart (its ports named as the members,
        with ``clk`` and ``rst`` of its ``sync`` domain); None elaborates the core inside.
        ``impl`` (a :class:`bfly.hw.impl.Implementation`, by default generic) puts the reset on
        the family's global network."""
        self._core = core
        self._instance = instance
        self._impl = impl or Implementation()
        super().__init__()

    def _ports(self, flow):
        sig = self._core.signature
        return [getattr(self._core, name) for name, member in sig.members.items()
                if member.is_port and member.flow == flow]

    @property
    def input_bits(self):
        return sum(len(p) for p in self._ports(Flow.In))

    @property
    def output_bits(self):
        return sum(len(p) for p in self._ports(Flow.Out))

    def _tree_widths(self):
        """Registers in each level of the XOR tree (one per four-input LUT), first level first."""
        widths, width = [], self.output_bits
        while width > 1:
            width = -(-width // 4)
            widths.append(width)
        return widths

    @property
    def tree_registers(self):
        """Flip-flops of the registered XOR tree, with the output register before it."""
        return self.output_bits + sum(self._tree_widths())

    def elaborate(self, platform):
        m = Module()
        # the core's reset: the pin registered, then (on an ECP5) on a global buffer, which
        # reaches every flip-flop's reset input across the device as the clock does
        m.domains.core = core = ClockDomain("core", local=True)
        rst_q = Signal(name="rst_q", reset_less=True)
        m.d.sync += rst_q.eq(ResetSignal("sync"))
        m.d.comb += core.clk.eq(ClockSignal("sync"))
        self._impl.global_net(m, rst_q, core.rst, "rst_buffer")
        if self._instance is None:
            m.submodules.core = DomainRenamer("core")(self._core)
        else:
            ports = {("i_" if member.flow == Flow.In else "o_") + name: getattr(self._core, name)
                     for name, member in self._core.signature.members.items()}
            m.submodules.core = Instance(self._instance, i_clk=ClockSignal("core"),
                                         i_rst=ResetSignal("core"), **ports)
        ins = self._ports(Flow.In)
        chain = Signal(max(1, self.input_bits), reset_less=True)
        m.d.sync += chain.eq(Cat(self.scan_in, chain[:-1]))
        pos = 0
        for port in ins:
            m.d.comb += port.eq(chain[pos:pos + len(port)])
            pos += len(port)
        # each output bit registered first, next to where it is made
        level = Signal(self.output_bits, name="outs", reset_less=True)
        m.d.sync += level.eq(Cat(*self._ports(Flow.Out)))
        for depth, width in enumerate(self._tree_widths()):
            regs = Signal(width, name=f"xor_{depth}", reset_less=True)
            m.d.sync += [regs[i].eq(level[4 * i:4 * i + 4].xor()) for i in range(width)]
            level = regs
        m.d.comb += self.scan_out.eq(level)
        return m
