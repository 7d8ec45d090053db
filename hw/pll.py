"""The board's clocks from the FPGA's PLL: the engines' domain (``engine``) at the frequency the
user asks for, and the link's (``sync``: the UART and the host bridge) at a frequency whose UART
divisor makes the baud rate (``docs/design.md``, "Clocks").

:func:`ecp5_pll` chooses the dividers of the ECP5's ``EHXPLLL`` (both outputs from one VCO,
the engine's ``CLKOP`` also its feedback); :class:`ECP5Clocks` instantiates it and holds each
domain in reset, through Amaranth's :class:`~amaranth.lib.cdc.ResetSynchronizer`, until the
PLL is locked; the engines' reset, which reaches the whole device, goes on a global network.
"""

import math
from dataclasses import dataclass

from amaranth.hdl import Elaboratable, Module, Signal, ClockDomain, ClockSignal, ResetSignal, Instance
from amaranth.lib.cdc import ResetSynchronizer

from .board import uart_divisor

__all__ = ["PLLPlan", "PLLError", "ecp5_pll", "ECP5Clocks", "LINK_MAX_HZ"]

LINK_MAX_HZ = 75e6          # the link's clock at most: the bridge does not need more
# EHXPLLL limits (Lattice FPGA-TN-02200, as ecppll uses them)
_PFD_HZ = (3.125e6, 400e6)
_VCO_HZ = (400e6, 800e6)
_OUT_HZ = (3.125e6, 400e6)
_CLKI_DIV, _CLKFB_DIV, _OUT_DIV = 128, 80, 128


class PLLError(ValueError):
    """No setting of the PLL makes the clocks asked for."""


@dataclass(frozen=True)
class PLLPlan:
    """What :func:`ecp5_pll` chose: the clocks made (Hz) and the dividers."""
    in_hz: float
    engine_hz: float
    link_hz: float
    clki_div: int
    clkfb_div: int
    clkop_div: int
    clkos_div: int

    @property
    def vco_hz(self):
        return self.in_hz / self.clki_div * self.clkfb_div * self.clkop_div


def ecp5_pll(in_hz, engine_hz, baud, link_max_hz=LINK_MAX_HZ):
    """The ``EHXPLLL`` setting, from an ``in_hz`` oscillator, whose engine clock is the fastest
    not above ``engine_hz`` and whose link clock is the fastest not above ``link_max_hz`` that
    makes ``baud`` (:func:`bfly.hw.board.uart_divisor`)."""
    best = None
    for clki in range(1, _CLKI_DIV + 1):
        pfd = in_hz / clki
        if pfd < _PFD_HZ[0]:
            break
        if pfd > _PFD_HZ[1]:
            continue
        for fb in range(1, _CLKFB_DIV + 1):
            fe = pfd * fb
            if fe > engine_hz * (1 + 1e-9) or fe > _OUT_HZ[1]:
                break
            if fe < _OUT_HZ[0] or (best is not None and fe < best.engine_hz):
                continue
            for op in range(max(1, math.ceil(_VCO_HZ[0] / fe)), _OUT_DIV + 1):
                vco = fe * op
                if vco > _VCO_HZ[1]:
                    break
                for os_ in range(max(1, math.ceil(vco / min(link_max_hz, _OUT_HZ[1]) - 1e-9)), _OUT_DIV + 1):
                    fl = vco / os_
                    try:
                        uart_divisor(fl, baud)
                    except ValueError:
                        continue
                    cand = PLLPlan(in_hz, fe, fl, clki, fb, op, os_)
                    if best is None or (fe, fl) > (best.engine_hz, best.link_hz):
                        best = cand
                    break
    if best is None:
        raise PLLError(f"the PLL cannot make an engine clock of at most {engine_hz / 1e6:g} MHz with a "
                       f"link clock that makes {baud:,} baud from {in_hz / 1e6:g} MHz")
    return best


class ECP5Clocks(Elaboratable):
    """The ``sync`` (link) and ``engine`` domains from ``clk_in`` (the oscillator's pin, a
    signal) through an ``EHXPLLL`` set as ``plan`` (a :class:`PLLPlan`)."""

    def __init__(self, clk_in, plan):
        self.clk_in, self.plan = clk_in, plan
        self.locked = Signal()

    def elaborate(self, platform):
        m = Module()
        p = self.plan
        m.domains.sync = ClockDomain("sync")
        m.domains.engine = ClockDomain("engine")
        mhz = lambda hz: f"{hz / 1e6:.6g}"
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=mhz(p.in_hz), a_FREQUENCY_PIN_CLKOP=mhz(p.engine_hz),
            a_FREQUENCY_PIN_CLKOS=mhz(p.link_hz),
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_CLKI_DIV=p.clki_div, p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=p.clkfb_div,
            p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p.clkop_div, p_CLKOP_CPHASE=p.clkop_div // 2, p_CLKOP_FPHASE=0,
            p_CLKOS_ENABLE="ENABLED", p_CLKOS_DIV=p.clkos_div, p_CLKOS_CPHASE=p.clkos_div // 2, p_CLKOS_FPHASE=0,
            i_CLKI=self.clk_in, i_CLKFB=ClockSignal("engine"), i_RST=0, i_STDBY=0,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
            i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=ClockSignal("engine"), o_CLKOS=ClockSignal("sync"), o_LOCK=self.locked)
        m.submodules.link_reset = ResetSynchronizer(~self.locked, domain="sync")
        # the engines' reset reaches every part of the device: synchronized, then on a global
        # network (a DCCA), as a clock is
        m.domains.engine_reset = ClockDomain("engine_reset")
        m.d.comb += ClockSignal("engine_reset").eq(ClockSignal("engine"))
        m.submodules.engine_reset = ResetSynchronizer(~self.locked, domain="engine_reset")
        m.submodules.engine_reset_net = Instance("DCCA", i_CLKI=ResetSignal("engine_reset"), i_CE=1,
                                                 o_CLKO=ResetSignal("engine"))
        return m
