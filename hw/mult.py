"""Registered multiplication: both operands registered, then the product registered, then once
more in the fabric (``MULT_CYCLES`` clocks from the operands to the product). The last register
lets the placer split the long route from a DSP column to the adder tree that uses its product.

Generic code serves simulation and any FPGA. When the design is converted for an ECP5
(``platform`` is a :class:`DSPTarget` for ``"ecp5"``), each product is a ``MULT18X18D`` instance
whose own input and output registers hold the operands and the product: yosys does not pack fabric
flip-flops into the DSP, and a purely combinational DSP with routes into and out of it limits Fmax.
Both forms compute the same values in the same clocks (the DSP's registers have no reset and
always load, as the generic registers here).
"""

from amaranth.hdl import Signal, Instance, ClockSignal, signed

__all__ = ["MULT_CYCLES", "DSPTarget", "is_ecp5", "registered_product"]

MULT_CYCLES = 3
ECP5_DSP_WIDTH = 18


class DSPTarget:
    """A stand-in platform for ``verilog.convert``: asks for vendor DSP instances (``"ecp5"``).

    ``sites`` (optional) lists the device's DSP sites (place-and-route names) in the order the
    multipliers should take them: each instance is pinned to the next one (a ``BEL`` attribute),
    so the multipliers of one node sit side by side with its adder tree next to them, instead of
    wherever the placer's legalization scatters them; multipliers past the list stay free.
    """

    def __init__(self, family, sites=()):
        self.bfly_dsp = family
        self._sites = list(sites)

    def dsp_site(self):
        """The next DSP site, or None when the list is used up."""
        return self._sites.pop(0) if self._sites else None


def is_ecp5(platform):
    """Whether ``platform`` asks for ECP5 primitives (a :class:`DSPTarget` for ``"ecp5"``)."""
    return getattr(platform, "bfly_dsp", None) == "ecp5"


def registered_product(m, a, b, name, platform=None):
    """``a * b`` of two signed values, ``MULT_CYCLES`` clocks later; returns the product signal."""
    width = len(a) + len(b)
    prod = Signal(signed(width), name=f"{name}_p", reset_less=True)
    landed = Signal(signed(width), name=name, reset_less=True)
    m.d.sync += landed.eq(prod)
    if is_ecp5(platform) and max(len(a), len(b)) <= ECP5_DSP_WIDTH:
        a18 = Signal(signed(ECP5_DSP_WIDTH), name=f"{name}_a")
        b18 = Signal(signed(ECP5_DSP_WIDTH), name=f"{name}_b")
        p36 = Signal(2 * ECP5_DSP_WIDTH, name=f"{name}_p36")
        m.d.comb += [a18.eq(a), b18.eq(b), prod.eq(p36[:width].as_signed())]
        # unused pins stay unconnected (as in yosys's own mapping): nextpnr cannot route a
        # constant to some of them
        ports = {}
        for i in range(ECP5_DSP_WIDTH):
            ports[f"i_A{i}"] = a18[i]
            ports[f"i_B{i}"] = b18[i]
            ports[f"i_C{i}"] = 0
        for i in range(2 * ECP5_DSP_WIDTH):
            ports[f"o_P{i}"] = p36[i]
        ports["i_CLK0"] = ClockSignal("sync")
        ports["i_CE0"] = 1
        site = platform.dsp_site()
        if site is not None:
            ports["a_BEL"] = site
        m.submodules[name + "_dsp"] = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_OUTPUT_CLK="CLK0",
            p_GSR="DISABLED",
            i_SIGNEDA=1, i_SIGNEDB=1, i_SOURCEA=0, i_SOURCEB=0,
            **ports)
    else:
        a_r = Signal(a.shape(), name=f"{name}_a", reset_less=True)
        b_r = Signal(b.shape(), name=f"{name}_b", reset_less=True)
        m.d.sync += [a_r.eq(a), b_r.eq(b), prod.eq(a_r * b_r)]
    return landed
