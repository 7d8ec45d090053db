"""A faulty board on 127.0.0.1 for the driver's tests: a TCP server speaking the host link
(``hw/hostlink.py``) whose replies come from the in-process :class:`SimulatedBoard` and are then
damaged, delayed, dripped or withheld as the test asks.

``fault(name, k)`` is called for the k-th command (counted from 0 per command name, over the
server's life) and returns one of :data:`MODES` or None; ``on_connect`` is ``"junk"`` (bytes
without a reply sync, forever) or ``"leftovers"`` (complete replies an earlier client left).
``early`` counts commands that arrived while a reply was still being sent or delayed: the
driver must never send one (one command in flight).
"""

import os
import select
import socket
import threading
import time

from bfly.hw.hostlink import SYNC_CMD, SYNC_REPLY, CMD, LENGTH, CRC, HEAD_BYTES, WORD, command_code, crc16
from bfly.sw.simboard import SimulatedBoard

MODES = ("silent", "short", "long", "cut3", "pixel_short", "pixel_long", "stale", "wrong_sync",
         "drip", "late", "junk_after")
_NAMES = {v: k for k, v in CMD.items()}


def reply_frame(cmd, payload, status=0):
    body = bytes([cmd]) + LENGTH.pack(len(payload)) + payload + bytes([status])
    return bytes([SYNC_REPLY]) + body + CRC.pack(crc16(body))


def split_reply(frame):
    (length,) = LENGTH.unpack(frame[2:HEAD_BYTES])
    return frame[1], frame[HEAD_BYTES:HEAD_BYTES + length], frame[HEAD_BYTES + length]


def junk(n):
    return bytes(b for b in os.urandom(n) if b != SYNC_REPLY)


class FakeBoard:
    def __init__(self, cfg, fault=None, on_connect=None, latency=31, out_bytes=None,
                 drip=0.02, late=0.5):
        self.board = SimulatedBoard(cfg, latency)
        self.fault = fault or (lambda name, k: None)
        self.on_connect = on_connect
        self.out_bytes = out_bytes
        self.drip, self.late = drip, late
        self.counts = {}
        self.early = 0
        self.log = []                    # (command name, mode) in arrival order
        self._stop = threading.Event()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(1)
        self.url = f"socket://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._stop.set()
        self._sock.close()
        self._thread.join(timeout=5)

    # --- the server

    def _serve(self):
        while not self._stop.is_set():
            try:
                self._sock.settimeout(0.05)
                conn, _ = self._sock.accept()
            except (socket.timeout, OSError):
                continue
            with conn:
                try:
                    self._session(conn)
                except OSError:
                    pass

    def _pending(self, conn):
        return bool(select.select([conn], [], [], 0)[0])

    def _session(self, conn):
        if self.on_connect == "leftovers":
            conn.sendall(b"".join(reply_frame(CMD["READ"], WORD.pack(0xDEAD0000 + i)) for i in range(3)))
        elif self.on_connect == "junk":
            return self._junk(conn)
        buf = bytearray()
        conn.settimeout(0.05)
        last = None
        while not self._stop.is_set():
            try:
                data = conn.recv(65536)
            except socket.timeout:
                continue
            if not data:
                return
            buf += data
            while True:
                start = buf.find(SYNC_CMD)
                if start < 0:
                    buf.clear()
                    break
                del buf[:start]
                if len(buf) < HEAD_BYTES:
                    break
                (length,) = LENGTH.unpack(buf[2:HEAD_BYTES])
                end = HEAD_BYTES + length + CRC.size
                if len(buf) < end:
                    break
                frame, buf[:] = bytes(buf[:end]), buf[end:]
                self.board.write(frame)
                reply = self.board.read(1 << 20)
                name = _NAMES.get(command_code(frame[1]), "?")
                k = self.counts.get(name, 0)
                self.counts[name] = k + 1
                mode = self.fault(name, k)
                self.log.append((name, mode))
                self._send(conn, mode, reply, last)
                last = reply

    def _junk(self, conn):
        while not self._stop.is_set():
            conn.sendall(junk(256))
            time.sleep(0.001)

    def _send(self, conn, mode, reply, last):
        cmd, payload, status = split_reply(reply)
        if mode is None:
            return conn.sendall(reply)
        if mode == "silent":
            return
        if mode in ("short", "long", "cut3", "pixel_short", "pixel_long"):
            px = self.out_bytes or WORD.size
            change = {"short": -WORD.size, "long": WORD.size, "cut3": -3, "pixel_short": -px,
                      "pixel_long": px}[mode]
            payload = payload[:len(payload) + change] if change < 0 else payload + bytes(change)
            return conn.sendall(reply_frame(cmd, payload, status))
        if mode == "stale":              # the reply, then a complete earlier one
            return conn.sendall(reply + (last or reply))
        if mode == "wrong_sync":
            return conn.sendall(bytes([SYNC_REPLY ^ 0xFF]) + reply[1:])
        if mode == "junk_after":         # answer, then never stop sending
            conn.sendall(reply)
            return self._junk(conn)
        if mode == "late":
            self._wait(conn, self.late)
            return conn.sendall(reply)
        if mode == "drip":
            for b in reply:
                if self._stop.is_set():
                    return
                conn.sendall(bytes([b]))
                self._wait(conn, self.drip)
            return
        raise ValueError(mode)

    def _wait(self, conn, seconds):
        """Sleep ``seconds``; a command that arrives meanwhile counts as sent too early."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if select.select([conn], [], [], left)[0]:
                if conn.recv(1, socket.MSG_PEEK):        # not the client leaving
                    self.early += 1
                time.sleep(left)
                return
