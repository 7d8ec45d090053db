"""An in-process simulated board: a transport for :class:`bfly.sw.driver.Accelerator` that
answers the link protocol (``hw/hostlink.py``) itself, with the register behaviour the register
map declares (``hw/regmap.py``: read-only constants, shadow registers, counters a write clears, the
commit strobe) and the golden model (``sim/model.py``) for STREAM. It lets the driver's logic be
tested, and a host program be tried, without a Verilator build; ``bfly sim-board`` is the
cycle-accurate board behind a socket.

What it does not model: timing (a commit completes at once; ``busy_reads`` makes the first reads
of ``STATUS`` after each commit report ``commit_busy`` all the same), the bridge's timeouts, and
bytes lost on the wire. ``corrupt_replies`` damages the CRC of chosen replies (by their index,
counted from 0) so the driver's retries can be exercised.
"""

from bfly.hw.hostlink import (SYNC_CMD, SYNC_REPLY, CMD, STATUS as LINK_STATUS, LENGTH, CRC, HEAD_BYTES,
                              ADDRESS, WORD, READ_PAYLOAD, STREAM_HEAD, MAX_READ_WORDS,
                              MAX_WRITE_WORDS, MAX_ENGINES, STREAM_ENGINE_SHIFT, engine_base, command_code,
                              crc16)
from bfly.hw.csr import WORD_MASK
from bfly.hw.regmap import BFLY_ID, ID, CTRL, STATUS, register_map, config_words
from bfly.sim.model import engine_forward
from bfly.sim.words import (pack_pixels, unpack_pixels, params_from_registers, stream_bits,
                            to_signed)

__all__ = ["SimulatedBoard"]

_CMD_NAMES = {v: k for k, v in CMD.items()}


class SimulatedBoard:
    """A board holding the engine of ``cfg`` (an :class:`~bfly.hw.config.EngineConfig`) whose
    latency is ``latency`` clocks (the value its ``CONFIG2`` reports); or, with a list of
    configurations and one of latencies, an engine for each (engine ``e``'s registers at
    :func:`bfly.hw.hostlink.engine_base` ``(e)``). ``untagged``: a board built before command
    bytes carried tags (it takes the whole byte for the command)."""

    def __init__(self, cfg, latency, corrupt_replies=(), busy_reads=0, untagged=False):
        self.cfgs = list(cfg) if isinstance(cfg, (list, tuple)) else [cfg]
        latencies = list(latency) if isinstance(latency, (list, tuple)) else [latency]
        if len(latencies) != len(self.cfgs) or not 1 <= len(self.cfgs) <= MAX_ENGINES:
            raise ValueError(f"1 to {MAX_ENGINES} engines, one latency each")
        self.cfg = self.cfgs[0]
        self.corrupt_replies = set(corrupt_replies)
        self.busy_reads = busy_reads
        self.untagged = untagged
        self.replies = 0
        self.status_reads = 0
        self._busy = 0
        self._regs = [register_map(c) for c in self.cfgs]
        self._bases = [engine_base(e) // WORD.size for e in range(len(self.cfgs))]
        self._words = {}                 # word address -> value, for every mapped word
        self._active = [None] * len(self.cfgs)
        for e, (c, lat, regs, base) in enumerate(zip(self.cfgs, latencies, self._regs, self._bases)):
            consts = config_words(c, lat)
            self._words[base + ID.word] = BFLY_ID
            for r in regs:
                values = consts.get(r.name)
                if r.access == "ro" and values is not None:
                    for i, v in enumerate(values if isinstance(values, list) else [values]):
                        self._words[base + r.word + i] = v
                else:
                    for i in range(r.count):
                        self._words.setdefault(base + r.word + i, 0)
            self._commit(e)              # registers power up at 0: the active bank is all zeros
        self._busy = 0
        self._out = bytearray()

    # --- the transport interface of the driver: its replies are ready at once (no byte takes
    # time; a reply that is not there does not come)

    timeout = 1.0
    byte_time = 0.0

    def write(self, data):
        data = bytes(data)
        while data:
            start = data.find(bytes([SYNC_CMD]))
            if start < 0:
                return
            cmd, (length,) = data[start + 1], LENGTH.unpack(data[start + 2:start + HEAD_BYTES])
            end = start + HEAD_BYTES + length + CRC.size
            frame, data = data[start:end], data[end:]
            (crc,) = CRC.unpack(frame[-CRC.size:])
            payload = frame[HEAD_BYTES:-CRC.size]
            if crc16(frame[1:-CRC.size]) != crc:
                self._reply(cmd, b"", "BAD_CRC")
            else:
                self._command(cmd, payload)

    def read(self, n):
        out, self._out = bytes(self._out[:n]), self._out[n:]
        return out

    def drain(self, quiet=0.0, limit=None):
        self._out.clear()
        return True

    def reopen(self):
        self._out.clear()

    def close(self):
        pass

    # --- the board

    def _reply(self, cmd, payload, status="OK"):
        body = bytes([cmd]) + LENGTH.pack(len(payload)) + payload + bytes([LINK_STATUS[status]])
        crc = crc16(body)
        if self.replies in self.corrupt_replies:
            crc ^= 1
        self.replies += 1
        self._out += bytes([SYNC_REPLY]) + body + CRC.pack(crc)

    def _register(self, word):
        """``(engine, register)`` of the word at ``word``, or ``(None, None)``."""
        for e, (regs, base) in enumerate(zip(self._regs, self._bases)):
            r = next((r for r in regs if r.word <= word - base < r.word + r.count), None)
            if r is not None:
                return e, r
        return None, None

    def _command(self, cmd, payload):
        name = _CMD_NAMES.get(cmd if self.untagged else command_code(cmd))
        if name == "READ" and len(payload) == READ_PAYLOAD.size:
            addr, count = READ_PAYLOAD.unpack(payload)
            self._read(cmd, addr, count)
        elif name == "WRITE" and len(payload) > ADDRESS.size and (len(payload) - ADDRESS.size) % WORD.size == 0:
            (addr,) = ADDRESS.unpack(payload[:ADDRESS.size])
            words = [w for (w,) in WORD.iter_unpack(payload[ADDRESS.size:])]
            self._write(cmd, addr, words)
        elif name == "STREAM" and len(payload) >= STREAM_HEAD.size:
            self._stream(cmd, payload)
        else:
            self._reply(cmd, b"", "BAD_CMD" if name is None else "BAD_LEN")

    def _read(self, cmd, addr, count):
        if not 1 <= count <= MAX_READ_WORDS or addr % WORD.size:
            return self._reply(cmd, b"", "BAD_LEN")
        words = []
        for w in range(addr // WORD.size, addr // WORD.size + count):
            _, r = self._register(w)
            if r is None:
                return self._reply(cmd, b"", "AXI_ERROR")
            if r.name == STATUS.name:
                self.status_reads += 1
                self._busy, busy = max(0, self._busy - 1), self._busy > 0
                words.append(STATUS.pack(commit_busy=busy))
            else:
                words.append(0 if r.access == "wo" else self._words[w] & WORD_MASK)
        self._reply(cmd, b"".join(WORD.pack(v) for v in words))

    def _write(self, cmd, addr, words):
        first = addr // WORD.size
        targets = [self._register(w) for w in range(first, first + len(words))]
        if len(words) > MAX_WRITE_WORDS or addr % WORD.size:
            return self._reply(cmd, b"", "BAD_LEN")
        if any(r is None or r.access == "ro" for _, r in targets):
            return self._reply(cmd, b"", "AXI_ERROR")   # nothing of the frame is written
        for w, ((e, r), value) in enumerate(zip(targets, words), start=first):
            if r.access == "rw_clear":
                self._words[w] = 0
            elif r.name == CTRL.name:
                if CTRL.unpack(value)["commit"]:
                    self._commit(e)
            else:
                self._words[w] = self._kept(self.cfgs[e], r, value)
        self._reply(cmd, b"")

    def _kept(self, cfg, r, value):
        """What the engine of ``cfg`` keeps of a word written to ``r`` (and reads back)."""
        if r.window:
            bits = cfg.weight_bits if r.name != "EPI_BIAS" else r.width
            return int(to_signed(value, bits)) & WORD_MASK
        return value & ((1 << r.width) - 1)

    def _commit(self, e):
        regs, base = {r.name: r for r in self._regs[e]}, self._bases[e]
        self._busy = self.busy_reads
        self._active[e] = params_from_registers(
            self.cfgs[e], lambda name, n: [self._words[base + regs[name].word + i] for i in range(n)])

    def _stream(self, cmd, payload):
        flags, count = STREAM_HEAD.unpack(payload[:STREAM_HEAD.size])
        e = flags >> STREAM_ENGINE_SHIFT & (MAX_ENGINES - 1)
        if e >= len(self.cfgs):
            return self._reply(cmd, b"", "NO_ENGINE")
        cfg, base = self.cfgs[e], self._bases[e]
        in_bytes = stream_bits(cfg.n_in, cfg.data_bits) // 8
        out_bytes = stream_bits(cfg.n_out, cfg.data_bits) // 8
        data = payload[STREAM_HEAD.size:]
        if count < 1 or len(data) != count * in_bytes:
            return self._reply(cmd, b"", "BAD_LEN")
        words = [int.from_bytes(data[i:i + in_bytes], "little") for i in range(0, len(data), in_bytes)]
        res = engine_forward(cfg, self._active[e], unpack_pixels(words, cfg.n_in, cfg.data_bits))
        sat = base + next(r for r in self._regs[e] if r.name == "SAT_COUNT").word
        for l, c in enumerate(res.sat_counts):
            self._words[sat + l] = min(self._words[sat + l] + int(c), WORD_MASK)
        self._reply(cmd, b"".join(v.to_bytes(out_bytes, "little")
                                  for v in pack_pixels(res.y, cfg.data_bits)))
