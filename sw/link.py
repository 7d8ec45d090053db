"""Host side of the link protocol (``hw/hostlink.py``): encoding command frames and decoding
reply frames from a byte source, with the CRC checked."""

import time
from typing import NamedTuple, Optional

from bfly.hw.hostlink import (SYNC_CMD, SYNC_REPLY, CMD, STATUS_NAMES, LENGTH, CRC, HEAD_BYTES,
                              STATUS_BYTES, MAX_PAYLOAD, ADDRESS, WORD, READ_PAYLOAD, STREAM_HEAD,
                              stream_flags, command_byte, command_code, command_tag, crc16)

__all__ = ["LinkError", "Request", "Reply", "encode", "read_request", "write_request", "stream_request",
           "read_cmd", "write_cmd", "stream_cmd", "read_reply", "check_reply", "decode_reply"]


class LinkError(IOError):
    """A reply that did not arrive, or arrived damaged; ``status`` names a status the board sent;
    ``complete``: a whole reply frame arrived (nothing more of it is on the way)."""

    def __init__(self, message, status=None, complete=False):
        super().__init__(message)
        self.status = status
        self.complete = complete


class Request(NamedTuple):
    """One command: its code (``CMD``), its payload, and the payload length its OK reply must
    have (None: any)."""
    cmd: int
    payload: bytes
    reply_len: Optional[int] = None

    def frame(self, tag=0):
        return encode(self.cmd, self.payload, tag)


def encode(cmd, payload, tag=0):
    """One command frame: sync, ``cmd`` with ``tag``, the payload's length, ``payload`` (bytes),
    CRC."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"a payload holds at most {MAX_PAYLOAD} bytes, not {len(payload)}")
    body = bytes([command_byte(cmd, tag)]) + LENGTH.pack(len(payload)) + payload
    return bytes([SYNC_CMD]) + body + CRC.pack(crc16(body))


def read_request(addr, count):
    """READ ``count`` words from byte address ``addr``."""
    return Request(CMD["READ"], READ_PAYLOAD.pack(addr, count), WORD.size * count)


def write_request(addr, words):
    """WRITE ``words`` (32-bit) to consecutive words from byte address ``addr``."""
    return Request(CMD["WRITE"], ADDRESS.pack(addr) + b"".join(WORD.pack(w) for w in words), 0)


def stream_request(pixel_bytes, count, last, engine=0, out_bytes=None):
    """STREAM ``count`` pixels (``pixel_bytes``, each padded to whole bytes) to ``engine``;
    ``last``: the last of them ends a frame; ``out_bytes``: an output pixel's size."""
    return Request(CMD["STREAM"], STREAM_HEAD.pack(stream_flags(last, engine), count) + pixel_bytes,
                   None if out_bytes is None else count * out_bytes)


def read_cmd(addr, count, tag=0):
    """The frame of :func:`read_request`."""
    return read_request(addr, count).frame(tag)


def write_cmd(addr, words, tag=0):
    """The frame of :func:`write_request`."""
    return write_request(addr, words).frame(tag)


def stream_cmd(pixel_bytes, count, last, engine=0, tag=0):
    """The frame of :func:`stream_request`."""
    return stream_request(pixel_bytes, count, last, engine).frame(tag)


class Reply(NamedTuple):
    """A reply frame that arrived whole with a good CRC: its command byte (code and tag), its
    status's name, its payload."""
    byte: int
    status: str
    payload: bytes

    @property
    def cmd(self):
        return command_code(self.byte)

    @property
    def tag(self):
        return command_tag(self.byte)


def read_reply(read, deadline=None):
    """Read one reply with ``read(n) -> bytes`` (which returns short on timeout). Bytes before
    the sync byte are skipped, until ``deadline`` (a ``time.monotonic()`` value, or None: no
    limit). A reply that does not arrive whole, or fails its CRC, is a :class:`LinkError` whose
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
    byte, (length,) = head[0], LENGTH.unpack(head[1:])
    tail = length + STATUS_BYTES + CRC.size
    rest = read(tail)
    if len(rest) < tail:
        raise LinkError(f"reply cut short: {len(rest)} of {tail} bytes (timeout)")
    payload, status = rest[:length], rest[length]
    (crc,) = CRC.unpack(rest[length + STATUS_BYTES:])
    if crc16(head + rest[:length + STATUS_BYTES]) != crc:
        raise LinkError("reply failed its CRC check", complete=True)
    return Reply(byte, STATUS_NAMES.get(status, f"status {status}"), bytes(payload))


def check_reply(reply, expect_cmd, expect_len=None):
    """The payload of ``reply`` if it answers ``expect_cmd`` (a code) with OK and, when
    ``expect_len`` is not None, that many payload bytes; else a :class:`LinkError`
    (``complete``, with the ``status`` the board sent if it was not OK)."""
    if reply.cmd != expect_cmd:
        raise LinkError(f"reply to command {reply.cmd:#x}, expected {expect_cmd:#x}", complete=True)
    if reply.status != "OK":
        raise LinkError(f"the board answered {reply.status}", status=reply.status, complete=True)
    if expect_len is not None and len(reply.payload) != expect_len:
        raise LinkError(f"a reply of {len(reply.payload)} bytes, expected {expect_len}", complete=True)
    return reply.payload


def decode_reply(read, expect_cmd, expect_len=None, deadline=None):
    """:func:`read_reply` and then :func:`check_reply`: the payload of one reply that must
    answer ``expect_cmd`` with OK (and ``expect_len`` bytes)."""
    return check_reply(read_reply(read, deadline), expect_cmd, expect_len)
