"""Host side of the link protocol (``hw/hostlink.py``): encoding command frames and decoding
reply frames from a byte source, with the CRC checked."""

import time

from bfly.hw.hostlink import (SYNC_CMD, SYNC_REPLY, CMD, STATUS_NAMES, LENGTH, CRC, HEAD_BYTES,
                              STATUS_BYTES, MAX_PAYLOAD, ADDRESS, WORD, READ_PAYLOAD, STREAM_HEAD,
                              stream_flags, crc16)

__all__ = ["LinkError", "encode", "read_cmd", "write_cmd", "stream_cmd", "decode_reply"]


class LinkError(IOError):
    """A reply that did not arrive, or arrived damaged; ``status`` names a status the board sent;
    ``complete``: a whole reply frame arrived (nothing more of it is on the way)."""

    def __init__(self, message, status=None, complete=False):
        super().__init__(message)
        self.status = status
        self.complete = complete


def encode(cmd, payload):
    """One command frame: sync, ``cmd``, the payload's length, ``payload`` (bytes), CRC."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"a payload holds at most {MAX_PAYLOAD} bytes, not {len(payload)}")
    body = bytes([cmd]) + LENGTH.pack(len(payload)) + payload
    return bytes([SYNC_CMD]) + body + CRC.pack(crc16(body))


def read_cmd(addr, count):
    """READ ``count`` words from byte address ``addr``."""
    return encode(CMD["READ"], READ_PAYLOAD.pack(addr, count))


def write_cmd(addr, words):
    """WRITE ``words`` (32-bit) to consecutive words from byte address ``addr``."""
    return encode(CMD["WRITE"], ADDRESS.pack(addr) + b"".join(WORD.pack(w) for w in words))


def stream_cmd(pixel_bytes, count, last, engine=0):
    """STREAM ``count`` pixels (``pixel_bytes``, each padded to whole bytes) to ``engine``;
    ``last``: the last of them ends a frame."""
    return encode(CMD["STREAM"], STREAM_HEAD.pack(stream_flags(last, engine), count) + pixel_bytes)


def decode_reply(read, expect_cmd, expect_len=None, deadline=None):
    """Read one reply with ``read(n) -> bytes`` (which returns short on timeout) and return its
    payload. Bytes before the sync byte are skipped, until ``deadline`` (a ``time.monotonic()``
    value, or None: no limit). A reply must answer ``expect_cmd`` and, when it says OK, carry
    ``expect_len`` payload bytes (None: any length); anything else is a :class:`LinkError` whose
    ``status`` is None (nothing the board reported: the attempt failed on the way)."""
    skipped = 0
    while True:
        b = read(1)
        if len(b) < 1:
            raise LinkError("no reply (timeout)" if not skipped else
                            f"no reply: {skipped} bytes arrived without a reply's sync byte")
        if b[0] == SYNC_REPLY:
            break
        skipped += 1
        if deadline is not None and time.monotonic() > deadline:
            raise LinkError(f"no reply: {skipped} bytes arrived without a reply's sync byte "
                            f"(is the baud rate right?)")
    head = read(HEAD_BYTES - 1)                 # cmd and length
    if len(head) < HEAD_BYTES - 1:
        raise LinkError("reply cut short (timeout)")
    cmd, (length,) = head[0], LENGTH.unpack(head[1:])
    tail = length + STATUS_BYTES + CRC.size
    rest = read(tail)
    if len(rest) < tail:
        raise LinkError(f"reply cut short: {len(rest)} of {tail} bytes (timeout)")
    payload, status = rest[:length], rest[length]
    (crc,) = CRC.unpack(rest[length + STATUS_BYTES:])
    if crc16(head + rest[:length + STATUS_BYTES]) != crc:
        raise LinkError("reply failed its CRC check", complete=True)
    if cmd != expect_cmd:
        raise LinkError(f"reply to command {cmd:#x}, expected {expect_cmd:#x}", complete=True)
    if status != 0:
        name = STATUS_NAMES.get(status, f"status {status}")
        raise LinkError(f"the board answered {name}", status=name, complete=True)
    if expect_len is not None and length != expect_len:
        raise LinkError(f"a reply of {length} bytes, expected {expect_len}", complete=True)
    return payload
