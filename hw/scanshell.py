"""A measurement shell for place and route without an out-of-context mode (nextpnr-ice40): the
top's input ports are driven from a shift register fed by one pin, and its output ports are
XOR-reduced into one registered pin, so no logic is optimized away and only four pins are used
(``clk``, ``rst``, ``scan_in``, ``scan_out``).

Its cost is one flip-flop per input bit plus an XOR tree over the output bits; reports that use
it say so. It is for measuring the core only: the engine cannot be driven through it.
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
        outs = Cat(*self._ports(Flow.Out))
        m.d.sync += self.scan_out.eq(outs.xor())
        return m
