"""Registered multiplication: both operands registered, then the product registered, then once
more in the fabric (``MULT_CYCLES`` clocks from the operands to the product). The last register
lets the placer split the long route from a DSP column to the adder tree that uses its product.

Generic code serves simulation and any FPGA. When the implementation asks for DSP instances
(``dsp``: :meth:`bfly.hw.impl.Implementation.product` on an ECP5), each product is a ``MULT18X18D`` instance
whose own input and output registers hold the operands and the product: yosys does not pack fabric
flip-flops into the DSP, and a purely combinational DSP with routes into and out of it limits Fmax.
Both forms compute the same values in the same clocks (the DSP's registers have no reset and
always load, as the generic registers here).
"""

from amaranth.hdl import Signal, Instance, ClockSignal, Mux, signed

__all__ = ["MULT_CYCLES", "ECP5_DSP_WIDTH", "registered_product", "shift_add_product"]

MULT_CYCLES = 3
#: the widest signed operand of an ECP5 ``MULT18X18D``
ECP5_DSP_WIDTH = 18


def shift_add_product(a, b):
    """``a * b`` of two signed values as a sum of shifted copies of ``a``, one per bit of ``b``
    (the top bit's with weight ``-2**(len(b)-1)``), added in a balanced tree: logic only, so
    synthesis builds it in LUTs and carry chains instead of a DSP. Best with ``b`` the narrower."""
    width = len(a) + len(b)
    terms = [Mux(b[i], a.as_signed() << i, 0) for i in range(len(b) - 1)]
    terms.append(Mux(b[-1], -(a.as_signed() << (len(b) - 1)), 0))
    while len(terms) > 1:
        terms = [(terms[i] + terms[i + 1]) if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0].as_signed()[:width].as_signed()


def registered_product(m, a, b, name, dsp=False, site=None):
    """``a * b`` of two signed values, ``MULT_CYCLES`` clocks later; returns the product signal.
    ``dsp``: as a ``MULT18X18D`` (operands at most ``ECP5_DSP_WIDTH`` bits), pinned to ``site``
    (a place-and-route name, a ``BEL`` attribute) unless it is None."""
    width = len(a) + len(b)
    prod = Signal(signed(width), name=f"{name}_p", reset_less=True)
    landed = Signal(signed(width), name=name, reset_less=True)
    m.d.sync += landed.eq(prod)
    if dsp:
        if max(len(a), len(b)) > ECP5_DSP_WIDTH:
            raise ValueError(f"{name}: a MULT18X18D takes operands of at most {ECP5_DSP_WIDTH} bits, "
                             f"not {len(a)} and {len(b)}")
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
