"""A measurement shell for place and route: the top's input ports are driven from a shift
register fed by one pin, and its output ports are XOR-reduced into one pin, so no logic is
optimized away and only four pins are used (``clk``, ``rst``, ``scan_in``, ``scan_out``).

It replaces an out-of-context mode (nextpnr-ice40 has none, and nextpnr-ecp5's leaves the clock
off the global network, on general routing to every flip-flop). The XOR tree is registered after
every four-input level (a LUT4 and its flip-flop), so the shell's own paths are one LUT long and
never the critical path. Its cost is one flip-flop per input bit plus the tree (about a third of
a LUT and a flip-flop per output bit); reports that use it say so. It is for measuring the core
only: the engine cannot be driven through it.
"""

from amaranth.hdl import Module, Signal, Cat
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, Flow

__all__ = ["ScanShell"]


class ScanShell(wiring.Component):
    scan_in: In(1)
    scan_out: Out(1)

    def __init__(self, core):
        self._core = core
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
        """Flip-flops of the registered XOR tree."""
        return sum(self._tree_widths())

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = self._core
        ins = self._ports(Flow.In)
        chain = Signal(max(1, self.input_bits), reset_less=True)
        m.d.sync += chain.eq(Cat(self.scan_in, chain[:-1]))
        pos = 0
        for port in ins:
            m.d.comb += port.eq(chain[pos:pos + len(port)])
            pos += len(port)
        level = Cat(*self._ports(Flow.Out))
        for depth, width in enumerate(self._tree_widths()):
            regs = Signal(width, name=f"xor_{depth}", reset_less=True)
            m.d.sync += [regs[i].eq(level[4 * i:4 * i + 4].xor()) for i in range(width)]
            level = regs
        m.d.comb += self.scan_out.eq(level)
        return m
