"""The host link protocol between the driver and the board's bridge (``hw/bridge.py``): one table
of constants that both sides use, and the CRC.

Host to board, a command frame:

    0xA5 | cmd (1) | length L (u16 LE) | payload (L bytes) | CRC-16 (u16 LE, over cmd..payload)

Board to host, a reply frame:

    0x5A | cmd (1) | length L (u16 LE) | payload (L bytes) | status (1) | CRC-16 (over cmd..status)

Commands:

- ``READ``  payload: address (u32 LE), count (u16 LE, 1..MAX_READ_WORDS) -> count words (u32 LE)
- ``WRITE`` payload: address (u32 LE), 1..MAX_WRITE_WORDS words (u32 LE), written to consecutive
  addresses only after the frame's CRC is verified -> no payload
- ``STREAM`` payload: flags (1: bit 0 marks the last pixel as the end of a frame), pixel count N
  (u16 LE, 1..MAX_STREAM_PIXELS), then N pixels of ``ceil(n_in*data_bits/8)`` bytes each (SPEC §4
  words); the length must be exactly ``3 + N * that`` -> N output pixels of
  ``ceil(n_out*data_bits/8)`` bytes, sent as the engine produces them

The status of a STREAM reply comes after its pixels: when the command turns out bad (CRC error,
or the link went quiet mid-frame) the reply still has the declared length, its pixels must be
discarded, and the missing ones are zeros. A frame the bridge cannot parse (unknown command, bad
length) gets an empty reply with the error status; bytes outside frames are ignored, and a link
quiet for ``timeout`` mid-frame resets the parser (``TIMEOUT``), so the bridge always
resynchronizes on the next command.
"""

__all__ = ["SYNC_CMD", "SYNC_REPLY", "CMD", "STATUS", "STATUS_NAMES", "MAX_READ_WORDS",
           "MAX_WRITE_WORDS", "MAX_STREAM_PIXELS", "crc16"]

SYNC_CMD = 0xA5
SYNC_REPLY = 0x5A
CMD = {"READ": 0x01, "WRITE": 0x02, "STREAM": 0x03}
STATUS = {"OK": 0, "BAD_CRC": 1, "BAD_CMD": 2, "BAD_LEN": 3, "TIMEOUT": 4, "AXI_ERROR": 5}
STATUS_NAMES = {v: k for k, v in STATUS.items()}
MAX_READ_WORDS = 256
MAX_WRITE_WORDS = 64
MAX_STREAM_PIXELS = 64       # the bridge buffers a whole batch of input pixels


def crc16(data, crc=0xFFFF):
    """CRC-16/CCITT-FALSE (polynomial 0x1021, initial 0xFFFF, no reflection): b"123456789"
    gives 0x29B1."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc
