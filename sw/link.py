"""Host side of the link protocol (``gen/hostlink.py``): encoding command frames and decoding
reply frames from a byte source, with the CRC checked."""

import struct

from bfly.hw.hostlink import SYNC_CMD, SYNC_REPLY, CMD, STATUS_NAMES, crc16

__all__ = ["LinkError", "encode", "read_cmd", "write_cmd", "stream_cmd", "decode_reply"]


class LinkError(IOError):
    """A reply that did not arrive, or arrived damaged; ``status`` names a status the board sent."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


def encode(cmd, payload):
    body = bytes([cmd]) + struct.pack("<H", len(payload)) + payload
    return bytes([SYNC_CMD]) + body + struct.pack("<H", crc16(body))


def read_cmd(addr, count):
    return encode(CMD["READ"], struct.pack("<IH", addr, count))


def write_cmd(addr, words):
    return encode(CMD["WRITE"], struct.pack(f"<I{len(words)}I", addr, *words))


def stream_cmd(pixel_bytes, count, last):
    return encode(CMD["STREAM"], struct.pack("<BH", int(last), count) + pixel_bytes)


def decode_reply(read, expect_cmd):
    """Read one reply with ``read(n) -> bytes`` (which raises or returns short on timeout);
    return its payload. Bytes before the sync byte are skipped."""
    while True:
        b = read(1)
        if len(b) < 1:
            raise LinkError("no reply (timeout)")
        if b[0] == SYNC_REPLY:
            break
    head = read(3)
    if len(head) < 3:
        raise LinkError("reply cut short (timeout)")
    cmd, length = head[0], struct.unpack("<H", head[1:])[0]
    rest = read(length + 3)
    if len(rest) < length + 3:
        raise LinkError(f"reply cut short: {len(rest)} of {length + 3} bytes (timeout)")
    payload, status = rest[:length], rest[length]
    (crc,) = struct.unpack("<H", rest[length + 1:])
    if crc16(head + rest[:length + 1]) != crc:
        raise LinkError("reply failed its CRC check")
    if cmd != expect_cmd:
        raise LinkError(f"reply to command {cmd:#x}, expected {expect_cmd:#x}")
    if status != 0:
        name = STATUS_NAMES.get(status, f"status {status}")
        raise LinkError(f"the board answered {name}", status=name)
    return payload
