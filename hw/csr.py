"""Declaring registers: a register is a 32-bit word (or an array of words) at a byte offset, made
of named bit fields; each field has a position, a width, an access kind and, where its values are
codes, an enumerated type. Encoding and decoding words, the hardware decoder's behaviour and the
generated documentation all derive from these declarations (``hw/regmap.py`` declares the
engine's registers).

Pure Python: the driver and the golden model use it without the HDL.
"""

import enum
import operator
from dataclasses import dataclass, replace

__all__ = ["WORD_BITS", "WORD_MASK", "ACCESS", "Field", "Register"]

WORD_BITS = 32
WORD_MASK = (1 << WORD_BITS) - 1

ACCESS = {
    "ro": "read-only",
    "wo": "write-only (reads as 0)",
    "rw": "read and write",
    "rw_clear": "read; any write clears",
}


@dataclass(frozen=True)
class Field:
    """``width`` bits from bit ``lsb`` of a register word.

    ``access`` is ``None`` for the register's own; ``enum`` is an :class:`enum.IntEnum` whose
    members are the field's codes; a ``signed`` field holds two's complement values.
    """
    name: str
    width: int
    lsb: int
    access: str = None
    enum: type = None
    doc: str = ""
    signed: bool = False

    def __post_init__(self):
        if not (self.width >= 1 and self.lsb >= 0 and self.lsb + self.width <= WORD_BITS):
            raise ValueError(f"field {self.name}: [{self.lsb + self.width - 1}:{self.lsb}] is not "
                             f"inside a {WORD_BITS}-bit word")
        if self.access is not None and self.access not in ACCESS:
            raise ValueError(f"field {self.name}: unknown access {self.access!r}")
        if self.enum is not None and not all(self.min <= int(m) <= self.max for m in self.enum):
            raise ValueError(f"field {self.name}: a code of {self.enum.__name__} needs more than "
                             f"{self.width} bits")

    @property
    def msb(self):
        return self.lsb + self.width - 1

    @property
    def min(self):
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max(self):
        """The largest value the field holds."""
        return (1 << (self.width - 1 if self.signed else self.width)) - 1

    @property
    def mask(self):
        """The field's bits in place in the word."""
        return ((1 << self.width) - 1) << self.lsb

    @property
    def bits(self):
        """``slice(lsb, msb + 1)``: the field's bits of a word (a Python or an Amaranth value)."""
        return slice(self.lsb, self.lsb + self.width)

    def span(self):
        """``[msb:lsb]`` (``[lsb]`` for one bit), as documentation writes it."""
        return f"[{self.msb}:{self.lsb}]" if self.width > 1 else f"[{self.lsb}]"

    def encode(self, value, where=""):
        """``value`` (an int, a bool, an enum member or its name) as the field's unshifted bits.
        Raises ``ValueError`` naming the field and the value when it does not fit."""
        where = where or self.name
        if self.enum is not None:
            try:
                value = self.enum[value] if isinstance(value, str) else self.enum(value)
            except (KeyError, ValueError):
                names = ", ".join(f"{m.name} ({int(m)})" for m in self.enum)
                raise ValueError(f"{where} = {value!r} is not one of {names}") from None
        if isinstance(value, enum.Enum) and self.enum is None:
            raise ValueError(f"{where} = {value!r}: the field has no enumerated codes")
        try:
            value = operator.index(value)
        except TypeError:
            raise ValueError(f"{where} = {value!r} is not an integer") from None
        if not self.min <= value <= self.max:
            raise ValueError(f"{where} = {value!r} is outside [{self.min}, {self.max}]")
        return value & ((1 << self.width) - 1)

    def decode(self, bits, where=""):
        """The field's value from its unshifted bits (the enum member for a coded field)."""
        if self.signed and bits >> (self.width - 1):
            bits -= 1 << self.width
        if self.enum is not None:
            try:
                return self.enum(bits)
            except ValueError:
                raise ValueError(f"{where or self.name} = {bits} is not a code of "
                                 f"{self.enum.__name__}") from None
        return bits


@dataclass(frozen=True)
class Register:
    """A register at byte ``offset``: ``count`` words of the same fields.

    ``array``: indexed (per stage, per weight...) even when it has one word; ``window``: a word of
    the parameter window, which the engine's blocks hold (the register bank forwards it).
    ``offset`` is ``None`` in a declaration that :func:`bfly.hw.regmap.register_map` places.
    """
    name: str
    offset: int
    access: str
    count: int = 1
    fields: tuple = ()
    doc: str = ""
    array: bool = False
    window: bool = False

    def __post_init__(self):
        if self.access not in ACCESS:
            raise ValueError(f"register {self.name}: unknown access {self.access!r}")
        if self.offset is not None and self.offset % 4:
            raise ValueError(f"register {self.name}: offset 0x{self.offset:X} is not word aligned")
        if self.count < 1 or (self.count > 1 and not self.array):
            raise ValueError(f"register {self.name}: {self.count} words, but it is not an array")
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"register {self.name}: two fields share a name in {names}")
        taken = 0
        for f in self.fields:
            if taken & f.mask:
                raise ValueError(f"register {self.name}: field {f.name} overlaps another field")
            taken |= f.mask

    def __getitem__(self, name):
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"register {self.name} has no field {name!r}")

    @property
    def end(self):
        """Byte offset just past the last word."""
        return self.offset + 4 * self.count

    @property
    def word(self):
        """Word index of the first word."""
        return self.offset // 4

    @property
    def width(self):
        """Bits from bit 0 to the highest field: what the hardware keeps of a written word."""
        return max(f.msb for f in self.fields) + 1

    def field_access(self, f):
        return f.access or self.access

    def placed(self, offset=None, count=None, doc=None):
        """The declaration with its offset, count or documentation filled in."""
        return replace(self, offset=self.offset if offset is None else offset,
                       count=self.count if count is None else count,
                       doc=self.doc if doc is None else doc)

    def pack(self, **values):
        """One word from field values (fields left out are 0). Raises ``ValueError`` for an
        unknown field or a value that does not fit."""
        unknown = set(values) - {f.name for f in self.fields}
        if unknown:
            raise ValueError(f"register {self.name} has no field {', '.join(sorted(unknown))}")
        word = 0
        for f in self.fields:
            if f.name in values:
                word |= f.encode(values[f.name], f"{self.name}.{f.name}") << f.lsb
        return word

    def unpack(self, word):
        """``{field name: value}`` of a word; bits outside the fields are ignored. Raises
        ``ValueError`` for a word that is not 32 bits or an unknown code in a coded field."""
        if not isinstance(word, int) or not 0 <= word < 1 << WORD_BITS:
            raise ValueError(f"{self.name}: {word!r} is not a {WORD_BITS}-bit word")
        return {f.name: f.decode(word >> f.lsb & ((1 << f.width) - 1), f"{self.name}.{f.name}")
                for f in self.fields}
