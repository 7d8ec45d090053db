"""The physical plan of an engine, apart from its algorithm: which vendor primitives the blocks'
registered products and control copies become, which DSP site each multiplier takes, and the
sizes of the copy groups and small memories that only trade routing against area.

The blocks say what they compute ("a registered product", "a copy of this control value near
its users") and call an :class:`Implementation`, passed in explicitly, for how. The same plan may
elaborate any number of designs (it holds no state), and every choice here keeps the values and
the clocks of the generic design: cycle counts are the blocks' contract and stay in their files.
"""

from dataclasses import dataclass

from amaranth.hdl import Instance

from .fanout import local_copy
from .mult import ECP5_DSP_WIDTH, registered_product, shift_add_product

__all__ = ["Implementation", "FAMILIES", "EPILOGUE_PRODUCTS"]

#: primitive families: None, generic Verilog (synthesis infers everything); "ecp5", Lattice ECP5
#: instances (``MULT18X18D`` products, kept ``TRELLIS_FF`` copies, a ``DCCA`` reset buffer)
FAMILIES = (None, "ecp5")
#: how the epilogue multiplies
EPILOGUE_PRODUCTS = ("dsp", "lut")


@dataclass(frozen=True)
class Implementation:
    """How the blocks' physical choices are made (the defaults are generic Verilog).

    ``dsp_sites``: place-and-route names of DSP sites; multiplier ``index`` (numbered when the
    engine is built: stage by stage, node by node, so a node's multipliers are neighbours) is
    pinned to ``dsp_sites[index]``, and multipliers past the list are left to the placer.
    The group sizes count users per registered copy of a control value (``hw/fanout.py``).
    """

    family: str = None
    dsp_sites: tuple = ()
    #: channels per load enable of a folded engine's input register (hw/engine.py)
    take_group: int = 16
    #: outputs served by one group copy of the requantizer's shift registers, and by one copy of
    #: a parallel stage's valid for its saturation flags (hw/requant.py, hw/stage.py)
    copy_group: int = 4
    #: output nodes of a folded lane whose registers share one copy of the load enable
    #: (32 flip-flops at 8-bit data; hw/folded.py)
    load_group: int = 4
    #: phase bits that the first register level of a folded operand multiplexer decodes (a 4:1
    #: choice is one LUT level on an ECP5); the rest choose among its registers a clock later
    first_select_bits: int = 2
    #: weights per read-back memory of a parallel stage (a LUT-RAM's depth; hw/stage.py)
    mirror_depth: int = 16
    #: children per registered copy in a parallel stage's weight write tree (each hop spans a
    #: fraction of a DSP row; hw/stage.py, hw/fanout.write_tree)
    write_branching: int = 4
    #: bits per slice of the output FIFO, each slice with its own memory and pointers
    fifo_slice_bits: int = 16
    #: slices per copy of the FIFO's control in a folded engine (hw/outfifo.py)
    fifo_group_slices: int = 8
    #: FIFO slices served by one first copy of its write enable
    fifo_first_copy_slices: int = 4
    #: the epilogue's products: "dsp" (a multiplication, which synthesis puts in DSPs) or "lut"
    #: (shift-and-add logic, for a device whose DSPs the chain has used up; hw/epilogue.py)
    epilogue_products: str = "dsp"

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"primitive family must be one of {FAMILIES}, not {self.family!r}")
        object.__setattr__(self, "dsp_sites", tuple(self.dsp_sites))
        for name in ("take_group", "copy_group", "load_group", "first_select_bits", "mirror_depth",
                     "write_branching",
                     "fifo_slice_bits", "fifo_group_slices", "fifo_first_copy_slices"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"{name} must be a positive integer, not {getattr(self, name)!r}")
        if self.mirror_depth & (self.mirror_depth - 1):
            # a weight's memory is chosen by its address bits above the depth
            raise ValueError(f"mirror_depth must be a power of two, not {self.mirror_depth!r}")
        if self.write_branching < 2:
            raise ValueError(f"write_branching must be at least 2, not {self.write_branching!r}")
        if self.epilogue_products not in EPILOGUE_PRODUCTS:
            raise ValueError(f"epilogue_products must be one of {EPILOGUE_PRODUCTS}, not "
                             f"{self.epilogue_products!r}")

    @property
    def ecp5(self):
        """Whether the blocks become ECP5 primitives."""
        return self.family == "ecp5"

    def dsp_site(self, index):
        """The DSP site of multiplier ``index`` (0-based), or None (left to the placer)."""
        if index < 0:
            raise ValueError(f"multiplier index must be non-negative, not {index!r}")
        return self.dsp_sites[index] if index < len(self.dsp_sites) else None

    def product(self, m, a, b, name, index):
        """Multiplier ``index``: ``a * b`` of two signed values, registered
        (:func:`bfly.hw.mult.registered_product`); on an ECP5, operands up to 18 bits wide make
        a ``MULT18X18D`` pinned to :meth:`dsp_site`."""
        dsp = self.ecp5 and max(len(a), len(b)) <= ECP5_DSP_WIDTH
        return registered_product(m, a, b, name, dsp=dsp, site=self.dsp_site(index) if dsp else None)

    def epilogue_product(self, a, b):
        """The epilogue's ``a * b`` (``b`` the multiplier ``A_c``), combinational: a
        multiplication, or with ``epilogue_products="lut"`` shift-and-add logic."""
        return a * b if self.epilogue_products == "dsp" else shift_add_product(a, b)

    def local_copy(self, m, value, name, reset=False):
        """A registered copy of ``value`` for a group of its users (:func:`bfly.hw.fanout.local_copy`);
        on an ECP5 kept ``TRELLIS_FF`` instances, which synthesis does not merge with their twins."""
        return local_copy(m, value, name, reset=reset, kept=self.ecp5)

    def global_net(self, m, source, sink, name):
        """Drive ``sink`` from ``source`` (1 bit) over the clock network where the family has one
        (an ECP5 ``DCCA`` submodule named ``name``), so it reaches every flip-flop of the device;
        elsewhere a wire."""
        if self.ecp5:
            m.submodules[name] = Instance("DCCA", i_CLKI=source, i_CE=1, o_CLKO=sink)
        else:
            m.d.comb += sink.eq(source)
