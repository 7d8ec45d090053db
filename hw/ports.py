"""The interfaces the hardware blocks talk through, and the flattening of an interface into the
plain, prefixed ports of a Verilog top.

- a pixel stream (:func:`pixel_stream`): ``amaranth.lib.stream`` with a :func:`pixel_layout`
  payload (``data``, one signed word per channel, and ``last``). Inside the free-running pipeline
  the streams are ``always_ready``: a block takes a pixel in every clock its ``valid`` is high;
- a parameter port (:class:`ParamPort`): a window of ``depth`` parameters written one at a time
  and read back, from the side of the block that drives it (the register bank, the engine's
  decoder).
"""

from amaranth.hdl import signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["pixel_layout", "pixel_stream", "ParamPort", "flat_members", "connect_flat"]


def pixel_layout(channels, data_bits):
    """One pixel: ``channels`` signed ``data_bits`` words and the frame's ``last`` flag."""
    return data.StructLayout({
        "data": data.ArrayLayout(signed(data_bits), channels),
        "last": 1,
    })


def pixel_stream(channels, data_bits, always_ready=False):
    """A stream of pixels of ``channels`` channels (the source's side)."""
    return stream.Signature(pixel_layout(channels, data_bits), always_ready=always_ready)


class ParamPort(wiring.Signature):
    """A window of ``depth`` parameters of ``shape``, from the writer's side.

    Write: ``addr`` and ``data``, with ``en`` high for one clock per write (the receiving block
    says how long address and data must be held around it, and how far apart writes must be).
    Read: ``raddr``, held until the answer, which is on ``rdata`` a fixed number of clocks later
    (the block's ``read_cycles``)."""

    def __init__(self, depth, shape):
        self._depth, self._shape = depth, shape
        super().__init__({
            "addr": Out(range(depth)), "data": Out(shape), "en": Out(1),
            "raddr": Out(range(depth)), "rdata": In(shape),
        })

    @property
    def depth(self):
        return self._depth

    @property
    def shape(self):
        return self._shape

    def __eq__(self, other):
        return (isinstance(other, ParamPort) and (other.depth, other.shape) == (self.depth, self.shape))

    def __repr__(self):
        return f"ParamPort({self._depth}, {self._shape!r})"


def flat_members(prefix, signature):
    """The members of ``signature`` (ports only, no nested interfaces) as flat ports named
    ``<prefix>_<name>``, in the signature's order: a Verilog top's view of an interface."""
    flat = {}
    for name, member in signature.members.items():
        if not member.is_port:
            raise TypeError(f"{name!r} of {signature!r} is not a port: only flat signatures flatten")
        flat[f"{prefix}_{name}"] = member
    return flat


def connect_flat(m, owner, prefix, interface):
    """Connect the flat ports ``<prefix>_*`` of ``owner`` (made by :func:`flat_members`) to the
    members of the same names of ``interface``; each member's flow in ``interface`` says which
    side drives. ``owner`` is either the component being elaborated, flattening a submodule's
    ``interface`` onto its own ports, or a submodule whose flat ports face ``interface``, another
    submodule's interface of the opposite direction."""
    for name, member in interface.signature.members.items():
        ours, theirs = getattr(owner, f"{prefix}_{name}"), getattr(interface, name)
        if member.flow == In:
            m.d.comb += theirs.eq(ours)
        else:
            m.d.comb += ours.eq(theirs)
