"""The board's self-test, declared once (pure Python: the hardware, ``sim/model.py``'s checksum,
the driver and the docs derive from it).

The self-test feeds one engine from an on-chip pseudo-random pixel generator at full clock,
folds every output pixel into a checksum, and counts the pixels and the clocks. Its registers
sit after every engine's, at :data:`SELFTEST_BASE`.

Generator: pixel ``i`` is the low ``n_in * data_bits`` bits of the words ``w_0 .. w_{W-1}``
(``W = ceil(n_in * data_bits / 32)``, ``w_0`` lowest), where ``w_j`` is generator ``j``'s
state after ``i + 1`` xorshift32 steps (``x ^= x << 13; x ^= x >> 17; x ^= x << 5``) from
:func:`lane_seed` ``(seed, j)``. Checksum: starting from 0, for every output pixel in order,
``c = rotl(c, 1) ^ fold(p)``, where ``fold`` XORs the pixel word's (``n_out * data_bits`` bits,
§4) 32-bit pieces, lowest first, the last one zero-padded.
"""

from .csr import Field, Register
from .hostlink import ENGINE_ADDRESS_BITS, ENGINE_BITS, MAX_ENGINES

__all__ = ["SELFTEST_BASE", "SELFTEST_SLAVE", "ST_CTRL", "ST_STATUS", "ST_SEED", "ST_PIXELS",
           "ST_OUT", "ST_CYCLES", "ST_CHECKSUM", "SELFTEST_REGISTERS", "lane_seed", "lane_offset",
           "XORSHIFT", "SEED_STRIDE"]

#: the self-test's slave number on the board's register bus: after the last possible engine
SELFTEST_SLAVE = MAX_ENGINES
#: byte address of the self-test's first register
SELFTEST_BASE = SELFTEST_SLAVE << ENGINE_ADDRESS_BITS
#: the xorshift32 shifts: left, right, left
XORSHIFT = (13, 17, 5)
#: generator j starts from seed ^ (j + 1) * SEED_STRIDE (a nonzero state for every seed)
SEED_STRIDE = 0x9E3779B9

ST_CTRL = Register("ST_CTRL", 0x00, "wo", fields=(
    Field("start", 1, 0, doc="start a run with ST_SEED and ST_PIXELS"),
    Field("engine", ENGINE_BITS, 4, doc="the engine it feeds")),
    doc="self-test control")
ST_STATUS = Register("ST_STATUS", 0x04, "ro", fields=(
    Field("busy", 1, 0, doc="a run is going on"),
    Field("done", 1, 1, doc="a run has finished since the last start")),
    doc="self-test state")
ST_SEED = Register("ST_SEED", 0x08, "rw", fields=(Field("seed", 32, 0),),
                   doc="the generator's seed")
ST_PIXELS = Register("ST_PIXELS", 0x0C, "rw", fields=(Field("count", 32, 0),),
                     doc="pixels a run feeds the engine")
ST_OUT = Register("ST_OUT", 0x10, "ro", fields=(Field("count", 32, 0),),
                  doc="output pixels folded into the checksum so far")
ST_CYCLES = Register("ST_CYCLES", 0x14, "ro", fields=(Field("count", 32, 0),),
                     doc="clocks from the start to the last output pixel (saturating)")
ST_CHECKSUM = Register("ST_CHECKSUM", 0x18, "ro", fields=(Field("value", 32, 0),),
                       doc="the checksum of the output pixels so far")

SELFTEST_REGISTERS = (ST_CTRL, ST_STATUS, ST_SEED, ST_PIXELS, ST_OUT, ST_CYCLES, ST_CHECKSUM)
assert max(r.end for r in SELFTEST_REGISTERS) <= 1 << ENGINE_ADDRESS_BITS


def lane_offset(lane):
    """What generator ``lane``'s start state XORs into the seed."""
    return (lane + 1) * SEED_STRIDE & 0xFFFFFFFF


def lane_seed(seed, lane):
    """The start state of generator ``lane`` for ``seed`` (never 0: xorshift would stay there;
    0 becomes ``SEED_STRIDE``)."""
    return (seed ^ lane_offset(lane)) & 0xFFFFFFFF or SEED_STRIDE
