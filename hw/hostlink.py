"""The host link protocol between the driver (``sw/link.py``, ``sw/driver.py``) and the board's
bridge (``hw/bridge.py``): one table of constants and frame layouts that both sides use, and the
CRC (``docs/spec.md`` §8).

Host to board, a command frame:

    0xA5 | cmd (1: bits 0-3 the command, bits 4-7 the tag) | length L (u16 LE) | payload (L bytes) | CRC-16 (u16 LE, over cmd..payload)

Board to host, a reply frame:

    0x5A | cmd (1) | length L (u16 LE) | payload (L bytes) | status (1) | CRC-16 (over cmd..status)

Commands:

- ``READ``  payload: address (u32 LE), count (u16 LE, 1..MAX_READ_WORDS) -> count words (u32 LE)
- ``WRITE`` payload: address (u32 LE), 1..MAX_WRITE_WORDS words (u32 LE), written to consecutive
  addresses only after the frame's CRC is verified -> no payload
- ``STREAM`` payload: flags (1: bit 0 marks the last pixel as the end of a frame, bits 1-3 the
  engine), pixel count N (u16 LE, 1..stream_batch), then N pixels of ``ceil(n_in*data_bits/8)``
  bytes each (``docs/spec.md`` §4 words, of that engine); the length must be exactly ``3 + N *
  that`` -> N output pixels of ``ceil(n_out*data_bits/8)`` bytes, sent as the engine produces
  them. ``stream_batch`` keeps both the command's and the reply's payload within the length
  field.

The tag is the host's to choose; the reply echoes the whole command byte, so a host may keep
up to ``WINDOW`` commands in flight and match each reply to its command (replies come in the
order of the commands; a frame the bridge never took gets none).

A board may hold several engines (up to ``MAX_ENGINES``, numbered from 0): engine ``e``'s
registers start at byte address ``e << ENGINE_ADDRESS_BITS`` (so engine 0's are where a
single-engine board has them), and a STREAM names its engine in its flags. An address outside
every engine's map is refused (``AXI_ERROR``), so a host finds the engines by reading each one's
``ID`` until one is refused; a STREAM to an engine the board does not have is ``NO_ENGINE``.

Every reply whose status is not OK has an empty payload and answers a command that changed
nothing (a STREAM's pixels reach the engine only after its CRC has checked). A frame the bridge
rejects at its header (unknown command, bad length) is answered in its turn (not at all when
``WINDOW`` commands are already held, §8.4) and its declared bytes are skipped; bytes outside
frames are ignored, and a link quiet for ``timeout`` mid-frame ends the frame (``TIMEOUT`` once
its header was in), so the bridge always resynchronizes on the next command. The whole behaviour, errors and queueing included: ``docs/spec.md`` §8.
"""

import struct

__all__ = ["SYNC_CMD", "SYNC_REPLY", "CMD", "CMD_BITS", "TAG_BITS", "TAGS", "WINDOW", "command_byte",
           "command_code", "command_tag", "STATUS", "STATUS_NAMES", "MAX_READ_WORDS",
           "MAX_WRITE_WORDS", "MAX_STREAM_PIXELS", "LENGTH", "CRC", "HEAD_BYTES", "STATUS_BYTES",
           "MAX_PAYLOAD", "ADDRESS", "WORD", "READ_PAYLOAD", "STREAM_HEAD", "STREAM_LAST",
           "STREAM_ENGINE_SHIFT", "ENGINE_BITS", "MAX_ENGINES", "ENGINE_ADDRESS_BITS", "engine_base",
           "stream_flags",
           "write_payload_bytes", "stream_payload_bytes", "stream_batch", "reply_frame_bytes",
           "CRC_BITS", "CRC_POLY", "CRC_INIT", "crc16"]

SYNC_CMD = 0xA5
SYNC_REPLY = 0x5A
CMD = {"READ": 0x01, "WRITE": 0x02, "STREAM": 0x03}
CMD_BITS = 4                 # the command byte: its low CMD_BITS bits are the command
TAG_BITS = 8 - CMD_BITS      # ... and the rest the host's tag, echoed in the reply
TAGS = 1 << TAG_BITS
WINDOW = 4                   # commands the bridge holds at once (executing, waiting, arriving):
                             # a host keeps at most this many unanswered
assert all(code >> CMD_BITS == 0 for code in CMD.values()) and 2 * WINDOW <= TAGS
STATUS = {"OK": 0, "BAD_CRC": 1, "BAD_CMD": 2, "BAD_LEN": 3, "TIMEOUT": 4, "AXI_ERROR": 5,
          "NO_ENGINE": 6}
STATUS_NAMES = {v: k for k, v in STATUS.items()}
MAX_READ_WORDS = 256
MAX_WRITE_WORDS = 64
MAX_STREAM_PIXELS = 64       # the bridge buffers WINDOW whole batches of input pixels

# --- frame layout (every field little-endian)
LENGTH = struct.Struct("<H")            # the payload length L
CRC = struct.Struct("<H")               # the CRC-16 trailer
HEAD_BYTES = 2 + LENGTH.size            # sync, cmd, L: the bytes before the payload
STATUS_BYTES = 1                        # a reply's status, after its payload
MAX_PAYLOAD = (1 << 8 * LENGTH.size) - 1
ADDRESS = struct.Struct("<I")           # READ and WRITE: the first register's byte address
WORD = struct.Struct("<I")              # one register word
READ_PAYLOAD = struct.Struct("<IH")     # READ: address, word count
STREAM_HEAD = struct.Struct("<BH")      # STREAM: flags, pixel count N; then the N pixels
STREAM_LAST = 1                         # STREAM flags: the last pixel ends a frame
STREAM_ENGINE_SHIFT = 1                 # STREAM flags: the engine number's lowest bit
ENGINE_BITS = 3                         # bits of an engine number
MAX_ENGINES = 1 << ENGINE_BITS
ENGINE_ADDRESS_BITS = 20                # engine e's registers start at e << ENGINE_ADDRESS_BITS


def command_byte(cmd, tag=0):
    """The command byte of command code ``cmd`` with ``tag`` (``0 <= tag < TAGS``)."""
    if not 0 <= tag < TAGS:
        raise ValueError(f"a tag runs from 0 to {TAGS - 1}, not {tag}")
    return cmd | tag << CMD_BITS


def command_code(byte):
    """The command code of a command (or reply) byte."""
    return byte & ((1 << CMD_BITS) - 1)


def command_tag(byte):
    """The tag of a command (or reply) byte."""
    return byte >> CMD_BITS


def engine_base(engine):
    """The byte address of engine ``engine``'s first register."""
    if not 0 <= engine < MAX_ENGINES:
        raise ValueError(f"engine numbers run from 0 to {MAX_ENGINES - 1}, not {engine}")
    return engine << ENGINE_ADDRESS_BITS


def stream_flags(last, engine=0):
    """The flags byte of a STREAM to ``engine`` whose last pixel ends a frame if ``last``."""
    engine_base(engine)
    return (STREAM_LAST if last else 0) | engine << STREAM_ENGINE_SHIFT


def write_payload_bytes(n_words):
    """Payload length of a WRITE of ``n_words`` words."""
    return ADDRESS.size + WORD.size * n_words


def stream_payload_bytes(n_pixels, pixel_bytes):
    """Payload length of a STREAM of ``n_pixels`` pixels of ``pixel_bytes`` bytes (also of
    Amaranth values: the bridge checks a received length with it)."""
    return STREAM_HEAD.size + n_pixels * pixel_bytes


def stream_batch(in_bytes, out_bytes):
    """Most pixels one STREAM carries, for pixels of ``in_bytes`` bytes in and ``out_bytes``
    out: at most ``MAX_STREAM_PIXELS`` (the bridge's buffer), and few enough that the command's
    and the reply's payloads fit the length field."""
    return min(MAX_STREAM_PIXELS, (MAX_PAYLOAD - STREAM_HEAD.size) // in_bytes, MAX_PAYLOAD // out_bytes)


def reply_frame_bytes(payload_bytes):
    """Length of a whole reply frame with ``payload_bytes`` of payload: head, payload, status,
    CRC."""
    return HEAD_BYTES + payload_bytes + STATUS_BYTES + CRC.size


CRC_BITS = 8 * CRC.size
CRC_POLY = 0x1021            # CRC-16/CCITT-FALSE: x^16 + x^12 + x^5 + 1, no reflection
CRC_INIT = 0xFFFF


def crc16(data, crc=CRC_INIT):
    """CRC-16/CCITT-FALSE (``CRC_POLY``, initial ``CRC_INIT``, no reflection): b"123456789"
    gives 0x29B1."""
    top, mask = 1 << (CRC_BITS - 1), (1 << CRC_BITS) - 1
    for byte in data:
        crc ^= byte << (CRC_BITS - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ CRC_POLY) & mask if crc & top else (crc << 1) & mask
    return crc
