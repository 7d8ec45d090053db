"""Repeated blocks emitted once: hierarchical Verilog.

An engine repeats a few blocks many times (the nodes of a stage, the lanes of a requantizer, the
slices of the output FIFO, a folded stage's lanes). A block that may repeat is added through
:func:`submodule` (a component) or :func:`inline` (logic built by a function), with a ``key``
that names everything its logic depends on apart from its inputs (the input shapes are added to
the key here). Outside :func:`convert`, both add the logic as before: a submodule, or statements
in the parent module, so Amaranth's simulator and the platform builds see ordinary designs.
Inside :func:`convert`, the first block of each key is elaborated alone into a Verilog module of
its own and every block of that key becomes an instance of it, so elaboration time and Verilog
size grow with the number of distinct blocks, not with the number of multipliers.

The logic of an instance is the logic the block would have added, so synthesis (which flattens)
and simulation see the same netlist. A key that leaves out something the logic depends on would
make unequal blocks share a module: ``convert(..., verify=True)`` elaborates every instance and
checks that it gives its key's module (the tests do this for every kind of engine).
"""

import contextvars
import re
from collections import Counter

from amaranth.back import rtlil, verilog
from amaranth.hdl import ClockSignal, Instance, Module, ResetSignal, Signal, Value
from amaranth.hdl import _ast, _ir
from amaranth.lib import wiring

__all__ = ["submodule", "inline", "convert", "SharedModuleError", "instance_counts"]

_LIBRARY = contextvars.ContextVar("bfly_shared_modules", default=None)


class SharedModuleError(Exception):
    """Two blocks of one key elaborate to different logic (a key leaves something out)."""


def _component_ports(block):
    """``{port name: (value, direction)}`` of a component, named as ``amaranth.back`` names a
    top's ports (its signature's paths joined with ``__``)."""
    ports = {}
    for path, member, value in block.signature.flatten(block):
        if isinstance(value, _ast.ValueCastable):
            value = value.as_value()
        direction = _ir.PortDirection.Input if member.flow == wiring.In else _ir.PortDirection.Output
        ports["__".join(map(str, path))] = (value, direction)
    return ports


def _shape_key(ports):
    return tuple((name, value.shape(), direction.name) for name, (value, direction) in ports.items())


class _Library:
    """The shared modules of one conversion, by key."""

    def __init__(self, prefix, verify):
        self.prefix, self.verify = prefix, verify
        self.modules = {}          # key -> (module name, names of its ports)
        self.texts = []            # RTLIL of each module, in the order they were made
        self.kinds = Counter()
        self.outputs = {}          # key -> output shapes, of an inline block

    @staticmethod
    def _ports(il_text, name):
        """The port names of module ``name`` in ``il_text``."""
        body = il_text[il_text.index(f"module \\{name}\n"):]
        body = body[:body.index("\nend\n")]
        return set(re.findall(r"^\s*wire\b[^\n]*\b(?:input|output|inout) \d+\s+\\(\S+)", body, re.M))

    def module(self, kind, key, make):
        """The module name and port names of ``key``, elaborated from ``make()`` (an
        ``(elaboratable, ports)`` pair) the first time; with ``verify``, every time, and its
        RTLIL compared with the first's."""
        entry = self.modules.get(key)
        if entry is not None and not self.verify:
            return entry[:2]
        if entry is None:
            name = f"{self.prefix}__{kind}{self.kinds[kind]}"
            self.kinds[kind] += 1
            il_text = self._rtlil(name, *make())
            port_names = self._ports(il_text, name)
            self.modules[key] = entry = (name, port_names, il_text if self.verify else None)
            # (not a top: the design's top is the converted component)
            self.texts.append(re.sub(r"^attribute \\(top 1|generator \"Amaranth\")\n", "", il_text,
                                     flags=re.M))
            return entry[:2]
        if self._rtlil(entry[0], *make()) != entry[2]:
            raise SharedModuleError(f"two {kind} blocks of one key elaborate differently: {key!r}")
        return entry[:2]

    @staticmethod
    def _rtlil(name, elaboratable, ports):
        return rtlil.convert(elaboratable, name=name, ports=ports, emit_src=False)


def _instance(m, name, module, port_names, ports):
    args = {}
    if "clk" in port_names:
        args["i_clk"] = ClockSignal("sync")
    if "rst" in port_names:
        args["i_rst"] = ResetSignal("sync")
    for port, (value, direction) in ports.items():
        prefix = "i_" if direction == _ir.PortDirection.Input else "o_"
        args[prefix + port] = value
    m.submodules[name] = Instance(module, **args)


def submodule(m, name, block, kind, key):
    """Add the component ``block`` to ``m`` as submodule ``name``; in :func:`convert`, as an
    instance of the module of ``(kind, key)`` (``key``: everything but the port shapes that its
    logic depends on; None: never shared)."""
    library = _LIBRARY.get()
    if library is None or key is None:
        m.submodules[name] = block
        return block
    ports = _component_ports(block)
    module, port_names = library.module(kind, (kind, key, type(block), _shape_key(ports)),
                                        lambda: (block, ports))
    _instance(m, name, module, port_names, ports)
    block._MustUse__silence = True     # (its module stands for it: it is never elaborated here)
    return block


def inline(m, name, kind, key, build, tag, **inputs):
    """The logic that ``build(m, inputs, tag)`` adds to a module ``m`` (``inputs``: a dict of
    values; it returns a dict of output values), for a block named ``name``. Outside
    :func:`convert` it is built into ``m`` itself with the caller's ``tag`` (which ``build`` uses
    only in signal names). In :func:`convert`, blocks of one ``(kind, key)`` and input shapes
    share a module built once with ``tag`` None, and this one is an instance of it. Returns the
    outputs."""
    library = _LIBRARY.get()
    inputs = {k: Value.cast(v) for k, v in inputs.items()}
    if library is None:
        return build(m, inputs, tag)
    shapes = tuple((k, v.shape()) for k, v in inputs.items())
    full_key = (kind, key, shapes)

    def make():
        body = Module()
        ins = {k: Signal(shape, name=k) for k, shape in shapes}
        outs = build(body, ins, None)
        wires = {k: Signal(Value.cast(v).shape(), name=k) for k, v in outs.items()}
        body.d.comb += [wires[k].eq(v) for k, v in outs.items()]
        library.outputs.setdefault(full_key, {k: w.shape() for k, w in wires.items()})
        ports = {k: (s, _ir.PortDirection.Input) for k, s in ins.items()}
        ports.update({k: (w, _ir.PortDirection.Output) for k, w in wires.items()})
        return body, ports

    module, port_names = library.module(kind, full_key, make)
    out_shapes = library.outputs[full_key]
    outs = {k: Signal(shape, name=f"{name}_{k}") for k, shape in out_shapes.items()}
    ports = {k: (v, _ir.PortDirection.Input) for k, v in inputs.items()}
    ports.update({k: (s, _ir.PortDirection.Output) for k, s in outs.items()})
    _instance(m, name, module, port_names, ports)
    return outs


def convert(top, name, verify=False):
    """Verilog of the component ``top`` (module ``name``) with its repeated blocks as instances of
    shared modules (named ``<name>__<kind><i>``), all written by one run of yosys, as
    ``amaranth.back.verilog`` writes a design. ``verify``: elaborate every instance and check
    that it matches its module (:class:`SharedModuleError` if not)."""
    library = _Library(name, verify)
    token = _LIBRARY.set(library)
    try:
        il_text = rtlil.convert(top, name=name, emit_src=False)
    finally:
        _LIBRARY.reset(token)
    return verilog._convert_rtlil_text("\n".join([il_text] + library.texts))


_MODULE = re.compile(r"^module \\?(\S+?)\s*\(", re.M)
_INSTANCE = re.compile(r"^\s+\\?([\w.$]+)\s+(?:#\(|\\?[^\s(]+\s*\()", re.M)


def instance_counts(text, cells):
    """``{cell: instances in the design}`` of the cell types ``cells`` in a Verilog ``text`` of
    Amaranth modules (:func:`convert`'s or a flat one; the top is the module no other
    instantiates): each module's own instances, times the instances of that module in the
    design."""
    starts = [(mt.group(1), mt.start()) for mt in _MODULE.finditer(text)]
    if not starts:
        return {}
    modules = {mod for mod, _ in starts}
    bodies = {}
    for i, (mod, start) in enumerate(starts):
        end = starts[i + 1][1] if i + 1 < len(starts) else len(text)
        bodies[mod] = Counter(t for t in _INSTANCE.findall(text, start, end)
                              if t in cells or t in modules)
    memo = {}

    def count(mod):
        if mod not in memo:
            total = Counter()
            for typ, n in bodies[mod].items():
                if typ in cells:
                    total[typ] += n
                elif typ in bodies:
                    for c, k in count(typ).items():
                        total[c] += n * k
            memo[mod] = total
        return memo[mod]

    used = {t for body in bodies.values() for t in body}
    top = next(mod for mod, _ in starts if mod not in used)
    return {c: n for c, n in count(top).items() if n}

