"""The host bridge: parses command frames from a byte stream (the UART), acts as the AXI4-Lite
manager of the engine's registers and feeds/drains its AXI4-Stream ports, and answers with reply
frames. The protocol, and every size and layout of its frames, is ``hw/hostlink.py``; what the
bridge does with each frame is ``docs/spec.md`` §8.

Three blocks, wired in :class:`HostBridge`:

- :class:`FrameReceiver` takes the bytes (``valid`` only: a UART cannot be held back), checks
  each frame's header, length and CRC, queues a WRITE's words and a STREAM's pixels, and hands
  the commands in order to the executor over a :class:`CommandLink`; it holds up to
  ``WINDOW`` frames at once (in execution, waiting, arriving), and a frame that arrives while
  it holds that many has its declared bytes skipped; a frame it rejects is answered in its turn;
- :class:`CommandExecutor` checks the addresses against the register map, performs the command
  (AXI4-Lite reads and writes, the STREAM's pixels through the engine, released only once the
  frame's CRC has checked) and produces the reply over a :class:`ReplyLink`;
- :class:`ReplyTransmitter` frames the reply: sync, header, payload, status, CRC.

The receiver takes the next frames while a command executes and its reply goes out, so a host
keeps the link busy both ways with several commands in flight, each answered in order.
"""

import struct

from amaranth.hdl import Module, Signal, Cat, Mux
from amaranth.lib import wiring, stream, fifo, data
from amaranth.lib.wiring import In, Out

from .axi import AXI4Lite, RESP_OKAY
from .config import stream_bits
from .regmap import register_map, address_bits
from .hostlink import (SYNC_CMD, SYNC_REPLY, CMD, CMD_BITS, WINDOW, STATUS, MAX_READ_WORDS, MAX_WRITE_WORDS, LENGTH,
                       CRC, CRC_BITS, CRC_POLY, CRC_INIT, ADDRESS, WORD, READ_PAYLOAD, STREAM_HEAD,
                       STREAM_LAST, STREAM_ENGINE_SHIFT, ENGINE_BITS, ENGINE_ADDRESS_BITS, engine_base,
                       write_payload_bytes, stream_payload_bytes, stream_batch)
from .selftest_map import SELFTEST_BASE, SELFTEST_SLAVE, SELFTEST_REGISTERS

__all__ = ["HostBridge", "FrameReceiver", "CommandExecutor", "ReplyTransmitter", "CommandLink",
           "ReplyLink", "crc16_step", "address_runs"]


def _fields(st):
    """``(byte offset, size)`` of each field of the little-endian ``struct.Struct`` ``st``."""
    codes = st.format.lstrip("<")
    return [(struct.calcsize("<" + codes[:i]), struct.calcsize("<" + c)) for i, c in enumerate(codes)]


def _field(value, offset, size):
    return value[8 * offset:8 * (offset + size)]


# the fields of the payloads' heads: (offset, size) of the READ's address and count, of the
# STREAM's flags and pixel count; a WRITE's address is ADDRESS at offset 0
(_READ_ADDR, _READ_COUNT) = _fields(READ_PAYLOAD)
(_STREAM_FLAGS, _STREAM_COUNT) = _fields(STREAM_HEAD)
assert _READ_ADDR == (0, ADDRESS.size)
_PREFIX = {"READ": READ_PAYLOAD.size, "WRITE": ADDRESS.size, "STREAM": STREAM_HEAD.size}
_HEAD = 1 + LENGTH.size                # a frame's header after its sync byte: cmd, then L


def _crc16_taps():
    """For each bit of the next CRC, the CRC bits and byte bits it is the XOR of (the update is
    linear over GF(2)); derived once by running the bitwise algorithm of ``hostlink.crc16`` (its
    polynomial ``CRC_POLY``) on sets of symbols."""
    crc = [{("c", i)} for i in range(CRC_BITS)]
    for i in range(8):
        bit = crc[-1] ^ {("b", 7 - i)}
        shifted = [set()] + crc[:-1]
        crc = [s ^ bit if (CRC_POLY >> j) & 1 else s for j, s in enumerate(shifted)]
    return crc


_CRC16_TAPS = _crc16_taps()


def crc16_step(crc, byte):
    """CRC-16/CCITT-FALSE of one more byte, as a flat combinational expression."""
    bits = []
    for taps in _CRC16_TAPS:
        terms = [crc[i] if kind == "c" else byte[i] for kind, i in sorted(taps)]
        v = terms[0]
        for t in terms[1:]:
            v = v ^ t
        bits.append(v)
    return Cat(*bits)


def address_runs(cfg, writable, base=0):
    """The byte ranges ``(start, end)`` of consecutive mapped words of the engine of ``cfg`` whose
    registers start at ``base``: all of them, or with ``writable`` only the words a write may
    change (not read-only ones)."""
    return register_runs(register_map(cfg), writable, base)


def register_runs(registers, writable, base=0):
    """The byte ranges ``(start, end)`` of consecutive words of ``registers`` (in address
    order) at ``base``: all, or with ``writable`` the words a write may change."""
    runs = []
    for r in registers:
        if writable and r.access == "ro":
            continue
        if runs and runs[-1][1] == base + r.offset:
            runs[-1] = (runs[-1][0], base + r.end)
        else:
            runs.append((base + r.offset, base + r.end))
    return runs


def choose(index, values):
    """``values[index]`` for a short list of constants (or values): a chain of multiplexers;
    ``values[0]`` when ``index`` is past the end."""
    out = values[0]
    for i, v in enumerate(values[1:], 1):
        out = Mux(index == i, v, out)
    return out


def engine_address_bits(cfgs, selftest=False):
    """The AXI4-Lite byte address width that reaches every engine of ``cfgs`` (one engine: its
    own; more: engine ``e`` at :func:`bfly.hw.hostlink.engine_base` ``(e)``) and, with
    ``selftest``, the self-test's registers at ``SELFTEST_BASE``."""
    for e, cfg in enumerate(cfgs):
        if address_bits(cfg) > ENGINE_ADDRESS_BITS:
            raise ValueError(f"engine {e} ({cfg.id}) needs {address_bits(cfg)} address bits; a "
                             f"board's engines have {ENGINE_ADDRESS_BITS} each")
    if selftest:
        return ENGINE_ADDRESS_BITS + SELFTEST_SLAVE.bit_length()
    if len(cfgs) == 1:
        return address_bits(cfgs[0])
    return ENGINE_ADDRESS_BITS + (len(cfgs) - 1).bit_length()


COUNT_BITS = max(MAX_READ_WORDS, MAX_WRITE_WORDS, 1 << 8 * _STREAM_COUNT[1]).bit_length()

# a command handed from the receiver to the executor: its command byte, the receiver's verdict
# (OK, or the error status to answer), the address (READ, WRITE) and the count of words or
# pixels (READ: asked for; WRITE: received; STREAM: received, all of them when OK)
COMMAND = data.StructLayout({"cmd": 8, "status": 8, "addr": 8 * ADDRESS.size, "count": COUNT_BITS,
                             "engine": ENGINE_BITS})


class CommandLink(wiring.Signature):
    """From the receiver to the executor, in frame order: the ``command``s, the WRITEs' ``words``
    and the STREAMs' ``pixels`` (``pixel_bits``, ``last`` on top), each command's words or
    pixels (``count`` of them) before the next's; ``done`` marks the end of a command's
    execution (its reply's status handed on), which frees its place in the window."""

    def __init__(self, pixel_bits):
        self._pixel_bits = pixel_bits
        super().__init__({
            "command": Out(stream.Signature(COMMAND)),
            "words": Out(stream.Signature(8 * WORD.size)),
            "pixels": Out(stream.Signature(pixel_bits)),
            "done": In(1),
        })

    def __eq__(self, other):
        return isinstance(other, CommandLink) and other._pixel_bits == self._pixel_bits

    def __repr__(self):
        return f"CommandLink({self._pixel_bits})"


def reply_item(item_bytes):
    """One item of a reply's payload: ``size`` bytes of ``data``, lowest first; the item with
    ``last`` is the status byte."""
    return data.StructLayout({"data": 8 * item_bytes, "size": range(item_bytes + 1), "last": 1})


class ReplyLink(wiring.Signature):
    """From the executor to the transmitter: a reply's ``head`` (command byte, payload length),
    then its ``item``s, the payload in pieces of up to ``item_bytes`` bytes and the status."""

    def __init__(self, item_bytes):
        self._item_bytes = item_bytes
        super().__init__({
            "head": Out(stream.Signature(data.StructLayout({"cmd": 8, "length": 8 * LENGTH.size}))),
            "item": Out(stream.Signature(reply_item(item_bytes))),
        })

    def __eq__(self, other):
        return isinstance(other, ReplyLink) and other._item_bytes == self._item_bytes

    def __repr__(self):
        return f"ReplyLink({self._item_bytes})"


class FrameReceiver(wiring.Component):
    """Parses frames from ``rx`` into commands on ``commands``. A STREAM to engine ``e`` carries
    pixels ``pixel_bytes[e]`` wide, at most ``batch[e]`` of them (a single engine: two
    integers), and ``timeout`` clocks without a byte end a frame. Bytes come at least two clocks
    apart (a UART's are ten bit times apart): the header is judged in the clock after its last
    byte. Pixels go to the executor in ``max(pixel_bytes)`` bytes, the engine's low. It holds
    ``window`` frames at once: their commands, ``window`` batches of pixels and ``window``
    WRITEs' words."""

    def __init__(self, pixel_bytes, batch, timeout, window=WINDOW):
        self._sizes = tuple(pixel_bytes) if isinstance(pixel_bytes, (tuple, list)) else (pixel_bytes,)
        self._batches = tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)
        if len(self._sizes) != len(self._batches):
            raise ValueError("one pixel size and one batch per engine")
        self._ib, self._batch, self._timeout = max(self._sizes), max(self._batches), timeout
        self._window = window
        super().__init__({
            "rx": In(stream.Signature(8, always_ready=True)),
            "commands": Out(CommandLink(8 * self._ib + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        ib, link = self._ib, self.commands
        self.byte, self.stb = self.rx.payload, self.rx.valid
        self.head = Signal(8 * _HEAD)                   # cmd, L
        self.cmd, self.length = self.head[:8], self.head[8:]
        self.code = self.cmd[:CMD_BITS]                 # the command, without the host's tag
        self.count = Signal(8 * LENGTH.size + 1)        # bytes left: payload (and CRC when skipping)
        self.crc = Signal(CRC_BITS)
        self.crc_got = Signal(8 * CRC.size)
        self.idx = Signal(range(max(_HEAD, *_PREFIX.values(), WORD.size, ib, CRC.size)))
        self.prefix = Signal(8 * max(_PREFIX.values()))
        self.items = Signal(COUNT_BITS)                 # words or pixels kept
        self.word = Signal(8 * WORD.size)
        self.pixel = Signal(8 * ib)
        self.engine = Signal(ENGINE_BITS)               # a STREAM's, from its flags
        self.idle = Signal(range(self._timeout + 1))
        with m.If(self.stb):
            m.d.sync += self.idle.eq(0)
        with m.Elif(self.idle != self._timeout):
            m.d.sync += self.idle.eq(self.idle + 1)
        self.timed_out = self.idle == self._timeout

        # the frames held: taken at their header, until the executor is done with them; each
        # has at most one command, one batch of pixels or one WRITE's words in the queues, so
        # none of them overflows however slowly the engine or the link drains them
        self.held = Signal(range(self._window + 1))
        self.accept = Signal()
        m.d.sync += self.held.eq(self.held + self.accept - link.done)
        m.submodules.commands = self.cmdq = fifo.SyncFIFOBuffered(width=COMMAND.size, depth=self._window)
        m.submodules.words = self.words = fifo.SyncFIFOBuffered(width=8 * WORD.size,
                                                                 depth=self._window * MAX_WRITE_WORDS)
        m.submodules.pixels = self.pixels = fifo.SyncFIFOBuffered(width=8 * ib + 1,
                                                                  depth=self._window * self._batch)
        self.emitted = Signal(COMMAND)
        m.d.comb += self.cmdq.w_data.eq(self.emitted)
        for queue, port in ((self.cmdq, link.command), (self.words, link.words), (self.pixels, link.pixels)):
            m.d.comb += [port.valid.eq(queue.r_rdy), port.payload.eq(queue.r_data), queue.r_en.eq(port.ready)]

        with m.FSM(name="rx_fsm"):
            with m.State("HUNT"):
                with m.If(self.stb & (self.byte == SYNC_CMD)):
                    m.d.sync += [self.crc.eq(CRC_INIT), self.idx.eq(0)]
                    m.next = "HEAD"
            with m.State("HEAD"):
                with m.If(self.stb):
                    m.d.sync += [self.head.word_select(self.idx, 8).eq(self.byte),
                                 self.crc.eq(crc16_step(self.crc, self.byte)), self.idx.eq(self.idx + 1)]
                    with m.If(self.idx == _HEAD - 1):
                        m.next = "CHECK"
                with m.Elif(self.timed_out):
                    m.next = "HUNT"
            with m.State("CHECK"):
                self._check(m)
            with m.State("PREFIX"):
                self._prefix(m)
            with m.State("WORDS"):
                self._payload(m, self.word, WORD.size, self._keep_word)
            with m.State("PIXELS"):
                self._payload(m, self.pixel, ib, self._keep_pixel, choose(self.engine, self._sizes))
            with m.State("CRC"):
                self._crc(m)
            with m.State("SKIP"):
                with m.If(self.stb):
                    m.d.sync += self.count.eq(self.count - 1)
                    with m.If(self.count == 1):
                        m.next = "HUNT"
                with m.Elif(self.timed_out):
                    m.next = "HUNT"
        return m

    def _emit(self, m, status, count=0):
        """Hand the frame's command (or its error status) to the executor."""
        c = self.emitted
        m.d.comb += [self.cmdq.w_en.eq(1), c.cmd.eq(self.cmd), c.status.eq(status),
                     c.addr.eq(_field(self.prefix, *_READ_ADDR)), c.count.eq(count), c.engine.eq(self.engine)]

    def _skip(self, m, count):
        m.d.sync += self.count.eq(count)
        m.next = "SKIP"

    def _check(self, m):
        """The header is in: take the frame, or answer it (in its turn) and skip its declared
        bytes, or (``window`` frames are held already) skip it without an answer."""
        length = self.length
        fits = {
            "READ": length == READ_PAYLOAD.size,
            "WRITE": ((length >= write_payload_bytes(1)) & (length <= write_payload_bytes(MAX_WRITE_WORDS))
                      & ((length - ADDRESS.size) % WORD.size == 0)),
            "STREAM": length >= stream_payload_bytes(1, min(self._sizes)),
        }
        busy = self.held == self._window
        known = Cat(*(self.code == c for c in CMD.values())).any()
        ok = Cat(*((self.code == CMD[name]) & f for name, f in fits.items())).any()
        m.d.sync += [self.idx.eq(0), self.items.eq(0), self.count.eq(length), self.prefix.eq(0),
                     self.engine.eq(0)]
        with m.If(busy):
            self._skip(m, length + CRC.size)
        with m.Else():
            m.d.comb += self.accept.eq(1)
            with m.If(~known | ~ok):
                self._emit(m, Mux(known, STATUS["BAD_LEN"], STATUS["BAD_CMD"]))
                self._skip(m, length + CRC.size)
            with m.Else():
                m.next = "PREFIX"

    def _consume(self, m):
        """A payload byte: it enters the CRC and counts against the length."""
        m.d.sync += [self.crc.eq(crc16_step(self.crc, self.byte)), self.count.eq(self.count - 1)]

    def _prefix(self, m):
        """The payload's head: READ's address and count, WRITE's address, STREAM's flags and
        pixel count (which must account for the rest of the payload exactly)."""
        with m.If(self.stb):
            self._consume(m)
            m.d.sync += [self.prefix.word_select(self.idx, 8).eq(self.byte), self.idx.eq(self.idx + 1)]
            full = Signal.like(self.prefix)
            m.d.comb += [full.eq(self.prefix), full.word_select(self.idx, 8).eq(self.byte)]
            n_px = _field(full, *_STREAM_COUNT)
            engine = _field(full, *_STREAM_FLAGS)[STREAM_ENGINE_SHIFT:STREAM_ENGINE_SHIFT + ENGINE_BITS]
            for name, size in _PREFIX.items():
                with m.If((self.code == CMD[name]) & (self.idx == size - 1)):
                    m.d.sync += self.idx.eq(0)
                    if name == "READ":
                        m.next = "CRC"
                    elif name == "WRITE":
                        m.next = "WORDS"
                    else:
                        m.d.sync += self.engine.eq(engine)
                        fits = Cat(*((engine == e) & (n_px <= batch)
                                     & (self.length == stream_payload_bytes(n_px, size))
                                     for e, (size, batch) in enumerate(zip(self._sizes, self._batches))))
                        with m.If(engine >= len(self._sizes)):
                            self._emit(m, STATUS["NO_ENGINE"])
                            self._skip(m, self.count - 1 + CRC.size)
                        with m.Elif((n_px != 0) & fits.any()):
                            m.next = "PIXELS"
                        with m.Else():
                            self._emit(m, STATUS["BAD_LEN"])
                            self._skip(m, self.count - 1 + CRC.size)
        with m.Elif(self.timed_out):
            self._emit(m, STATUS["TIMEOUT"])
            m.next = "HUNT"

    def _payload(self, m, reg, size, keep, used=None):
        """WRITE's words or STREAM's pixels, ``size`` bytes each (``used`` of them, when it is
        given: the bytes enter at the top and end there), lowest byte first."""
        with m.If(self.stb):
            self._consume(m)
            whole = Cat(reg[8:], self.byte) if size > 1 else self.byte
            m.d.sync += [reg.eq(whole), self.idx.eq(self.idx + 1)]
            with m.If(self.idx == (size if used is None else used) - 1):
                keep(m, whole)
                m.d.sync += [self.idx.eq(0), self.items.eq(self.items + 1)]
            with m.If(self.count == 1):
                m.next = "CRC"
        with m.Elif(self.timed_out):
            self._emit(m, STATUS["TIMEOUT"], self.items)
            m.next = "HUNT"

    def _keep_word(self, m, word):
        m.d.comb += [self.words.w_en.eq(1), self.words.w_data.eq(word)]

    def _keep_pixel(self, m, pixel):
        flags, n_px = _field(self.prefix, *_STREAM_FLAGS), _field(self.prefix, *_STREAM_COUNT)
        last = (flags & STREAM_LAST).any() & (self.items == n_px - 1)
        # an engine's narrower pixel came in at the top: moved down to the low bytes
        aligned = choose(self.engine, [pixel[8 * (self._ib - size):] for size in self._sizes])
        m.d.comb += [self.pixels.w_en.eq(1), self.pixels.w_data.eq(Cat(aligned, last))]

    def _crc(self, m):
        """The CRC, then the command, or its error: BAD_CRC, or BAD_LEN for a READ count out of
        range or an address that is not a word's."""
        with m.If(self.stb):
            m.d.sync += [self.crc_got.word_select(self.idx, 8).eq(self.byte), self.idx.eq(self.idx + 1)]
            with m.If(self.idx == CRC.size - 1):
                got = Signal.like(self.crc_got)
                m.d.comb += [got.eq(self.crc_got), got.word_select(self.idx, 8).eq(self.byte)]
                n_read = _field(self.prefix, *_READ_COUNT)
                is_read = self.code == CMD["READ"]
                addressed = is_read | (self.code == CMD["WRITE"])
                misaligned = _field(self.prefix, *_READ_ADDR)[:(WORD.size - 1).bit_length()].any()
                bad_count = is_read & ((n_read == 0) | (n_read > MAX_READ_WORDS))
                status = Mux(got != self.crc, STATUS["BAD_CRC"],
                             Mux(bad_count | (addressed & misaligned), STATUS["BAD_LEN"], STATUS["OK"]))
                self._emit(m, status, Mux(is_read, n_read, self.items))
                m.next = "HUNT"
        with m.Elif(self.timed_out):
            self._emit(m, STATUS["TIMEOUT"], self.items)
            m.next = "HUNT"


class CommandExecutor(wiring.Component):
    """Performs the commands of ``commands`` on the engines of ``cfgs`` (a configuration, or a
    list of them): their registers through ``axil`` (engine ``e``'s at
    :func:`bfly.hw.hostlink.engine_base` ``(e)`` when there are several), their pixels through
    ``px_out`` and ``px_in`` (the widest engine's width, an engine's in the low bits; ``engine``
    says which engine they are for); answers each over ``reply``. An access that is not all
    inside one engine's register map (or, for a WRITE, touches a read-only word) is refused whole
    with AXI_ERROR, before any register is touched."""

    def __init__(self, cfgs, selftest=False):
        self._cfgs = cfgs = list(cfgs) if isinstance(cfgs, (list, tuple)) else [cfgs]
        self._selftest = selftest
        self._ibs = [stream_bits(c.n_in, c.data_bits) // 8 for c in cfgs]
        self._obs = [stream_bits(c.n_out, c.data_bits) // 8 for c in cfgs]
        self._ib, self._ob = max(self._ibs), max(self._obs)
        super().__init__({
            "commands": In(CommandLink(8 * self._ib + 1)),
            "reply": Out(ReplyLink(max(WORD.size, self._ob))),
            "axil": Out(AXI4Lite(engine_address_bits(cfgs, selftest))),
            "px_out": Out(stream.Signature(8 * self._ib + 1)),
            "px_in": In(stream.Signature(8 * self._ob + 1)),
            "engine": Out(ENGINE_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        c = self.commands.command
        axil = self.axil
        self.cmd = Signal(COMMAND)
        self.idx = Signal(COUNT_BITS)
        self.length = Signal(8 * LENGTH.size)
        self.err = Signal()
        self.end = Signal(8 * ADDRESS.size + 1)          # the byte address after the last word
        self.at = (self.cmd.addr + self.idx * WORD.size)[:len(axil.awaddr)]
        m.d.comb += [axil.wstrb.eq((1 << WORD.size) - 1), axil.bready.eq(1), axil.rready.eq(1),
                     self.engine.eq(self.cmd.engine)]
        kind = {name: self.cmd.cmd[:CMD_BITS] == code for name, code in CMD.items()}
        # a WRITE's words or a STREAM's pixels taken from the receiver's queue (to the
        # registers, into the engine, or discarded): exactly the command's own, as the next
        # command's follow them in the queue
        taken = Signal(COUNT_BITS)
        more = taken != self.cmd.count
        pixels, words = self.commands.pixels, self.commands.words
        with m.If(pixels.valid & pixels.ready | words.valid & words.ready):
            m.d.sync += taken.eq(taken + 1)
        self.more = more

        with m.FSM(name="exec_fsm"):
            with m.State("IDLE"):
                m.d.comb += c.ready.eq(1)
                with m.If(c.valid):
                    m.d.sync += [self.cmd.eq(c.payload), self.idx.eq(0), self.err.eq(0), taken.eq(0),
                                 self.end.eq(c.payload.addr + c.payload.count * WORD.size)]
                    m.next = "CHECK"
            with m.State("CHECK"):
                self._check(m, kind)
            with m.State("FLUSH"):     # a refused command's words or pixels go nowhere
                m.d.comb += [pixels.ready.eq(more & kind["STREAM"]), words.ready.eq(more & kind["WRITE"])]
                with m.If(~more | ~(kind["STREAM"] | kind["WRITE"])):
                    m.next = "HEAD"
            with m.State("HEAD"):
                self._head(m, kind)
            with m.State("READ"):
                self._read(m)
            with m.State("WRITE"):
                self._write(m)
            with m.State("STREAM"):
                self._stream(m)
            with m.State("STATUS"):
                item = self.reply.item
                m.d.comb += [item.valid.eq(1), item.payload.size.eq(1), item.payload.last.eq(1),
                             item.payload.data.eq(Mux(self.err, STATUS["AXI_ERROR"], self.cmd.status))]
                with m.If(item.ready):
                    m.d.comb += self.commands.done.eq(1)
                    m.next = "IDLE"
        return m

    def _fits(self, writable):
        """The command's words are all inside one run of mapped (or writable) words."""
        addr = self.cmd.addr
        single = len(self._cfgs) == 1 and not self._selftest
        bases = [0] if single else [engine_base(e) for e in range(len(self._cfgs))]
        runs = [run for cfg, base in zip(self._cfgs, bases) for run in address_runs(cfg, writable, base)]
        if self._selftest:
            runs += register_runs(SELFTEST_REGISTERS, writable, SELFTEST_BASE)
        return Cat(*((addr >= lo) & (self.end <= hi) for lo, hi in runs)).any()

    def _check(self, m, kind):
        ok = self.cmd.status == STATUS["OK"]
        m.d.sync += self.length.eq(0)
        # a refused command goes through FLUSH: a WRITE's words and a STREAM's pixels leave the
        # queue and go nowhere (a READ has none)
        with m.If(~ok):
            m.next = "FLUSH"
        with m.Elif(kind["READ"] & ~self._fits(writable=False) | kind["WRITE"] & ~self._fits(writable=True)):
            m.d.sync += self.cmd.status.eq(STATUS["AXI_ERROR"])
            m.next = "FLUSH"
        with m.Elif(kind["READ"]):
            m.d.sync += self.length.eq(self.cmd.count * WORD.size)
            m.next = "HEAD"
        with m.Elif(kind["WRITE"]):
            m.next = "WRITE"
        with m.Else():
            m.d.sync += self.length.eq(choose(self.cmd.engine, [self.cmd.count * ob for ob in self._obs]))
            m.next = "HEAD"

    def _head(self, m, kind):
        """The reply's head; then the payload, or straight the status."""
        head = self.reply.head
        m.d.comb += [head.valid.eq(1), head.payload.cmd.eq(self.cmd.cmd), head.payload.length.eq(self.length)]
        with m.If(head.ready):
            ok = self.cmd.status == STATUS["OK"]
            with m.If(ok & kind["READ"]):
                m.next = "READ"
            with m.Elif(ok & kind["STREAM"]):
                m.next = "STREAM"
            with m.Else():
                m.next = "STATUS"

    def _read(self, m):
        """One AXI read per word, each word an item of the reply as soon as it is read."""
        axil, item = self.axil, self.reply.item
        word = Signal(8 * WORD.size)
        have = Signal()
        issued = Signal()
        with m.If(~issued & ~have):
            m.d.sync += [axil.araddr.eq(self.at), axil.arvalid.eq(1), issued.eq(1)]
        with m.If(axil.arvalid & axil.arready):
            m.d.sync += axil.arvalid.eq(0)
        with m.If(issued & axil.rvalid):
            m.d.sync += [word.eq(axil.rdata), have.eq(1), issued.eq(0), self.err.eq(self.err | (axil.rresp != RESP_OKAY))]
        m.d.comb += [item.valid.eq(have), item.payload.data.eq(word), item.payload.size.eq(WORD.size)]
        with m.If(have & item.ready):
            m.d.sync += [have.eq(0), self.idx.eq(self.idx + 1)]
            with m.If(self.idx + 1 == self.cmd.count):
                m.next = "STATUS"

    def _write(self, m):
        """One AXI write per word from the receiver's queue, then the reply."""
        axil, words = self.axil, self.commands.words
        step = Signal()              # 0: take the next word and issue it, 1: wait for the response
        with m.Switch(step):
            with m.Case(0):
                m.d.comb += words.ready.eq(1)
                with m.If(words.valid):
                    m.d.sync += [axil.awaddr.eq(self.at), axil.wdata.eq(words.payload),
                                 axil.awvalid.eq(1), axil.wvalid.eq(1), step.eq(1)]
            with m.Case(1):
                with m.If(axil.awready):
                    m.d.sync += axil.awvalid.eq(0)
                with m.If(axil.wready):
                    m.d.sync += axil.wvalid.eq(0)
                with m.If(axil.bvalid):
                    m.d.sync += [step.eq(0), self.idx.eq(self.idx + 1),
                                 self.err.eq(self.err | (axil.bresp != RESP_OKAY))]
                    with m.If(self.idx + 1 == self.cmd.count):
                        m.next = "HEAD"

    def _stream(self, m):
        """The checked batch into the engine; each output pixel an item of the reply."""
        pixels, item = self.commands.pixels, self.reply.item
        m.d.comb += [self.px_out.valid.eq(pixels.valid & self.more), self.px_out.payload.eq(pixels.payload),
                     pixels.ready.eq(self.px_out.ready & self.more)]
        m.d.comb += [item.valid.eq(self.px_in.valid), item.payload.data.eq(self.px_in.payload[:8 * self._ob]),
                     item.payload.size.eq(choose(self.cmd.engine, self._obs)), self.px_in.ready.eq(item.ready)]
        with m.If(self.px_in.valid & item.ready):
            m.d.sync += self.idx.eq(self.idx + 1)
            with m.If(self.idx + 1 == self.cmd.count):
                m.next = "STATUS"


class ReplyTransmitter(wiring.Component):
    """Frames the replies of ``reply`` onto ``tx``: sync, command, length, the payload items,
    the status, and the CRC over command .. status."""

    def __init__(self, item_bytes):
        self._item_bytes = item_bytes
        super().__init__({
            "reply": In(ReplyLink(item_bytes)),
            "tx": Out(stream.Signature(8)),
        })

    def elaborate(self, platform):
        m = Module()
        head, item = self.reply.head, self.reply.item
        crc = Signal(CRC_BITS)
        fields = Signal(8 * _HEAD)                      # cmd, L
        current = Signal(reply_item(self._item_bytes))
        idx = Signal(range(max(_HEAD, self._item_bytes, CRC.size)))
        sent = self.tx.valid & self.tx.ready

        def emit(byte, last, nxt, add_crc=True):
            """Send ``byte`` (the ``idx``-th of its field); after the one for which ``last``
            holds, go to ``nxt``."""
            m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(byte)]
            with m.If(sent):
                if add_crc:
                    m.d.sync += crc.eq(crc16_step(crc, byte))
                m.d.sync += idx.eq(idx + 1)
                with m.If(last):
                    m.d.sync += idx.eq(0)
                    m.next = nxt

        with m.FSM(name="tx_fsm"):
            with m.State("IDLE"):
                m.d.comb += head.ready.eq(1)
                with m.If(head.valid):
                    m.d.sync += [fields.eq(Cat(head.payload.cmd, head.payload.length)), crc.eq(CRC_INIT),
                                 idx.eq(0)]
                    m.next = "SYNC"
            with m.State("SYNC"):
                emit(SYNC_REPLY, 1, "HEAD", add_crc=False)
            with m.State("HEAD"):
                emit(fields.word_select(idx, 8), idx == _HEAD - 1, "ITEM")
            with m.State("ITEM"):
                m.d.comb += item.ready.eq(1)
                with m.If(item.valid):
                    m.d.sync += [current.eq(item.payload), idx.eq(0)]
                    m.next = "BYTES"
            with m.State("BYTES"):
                done = idx == current.size - 1
                emit(current.data.word_select(idx, 8), done, "ITEM")
                with m.If(sent & done & current.last):
                    m.next = "CRC"
            with m.State("CRC"):
                emit(crc.word_select(idx, 8), idx == CRC.size - 1, "IDLE", add_crc=False)
        return m


class HostBridge(wiring.Component):
    """Bridge for the engines built from ``cfgs`` (a configuration, or a list of them for a board
    with several); ``timeout`` is the number of clocks without a byte after which a
    half-received frame is abandoned."""

    def __init__(self, cfgs, timeout, selftest=False):
        if not isinstance(timeout, int) or timeout < 16:
            raise ValueError(f"timeout must be an integer number of clocks >= 16, not {timeout!r}")
        self._cfgs = cfgs = list(cfgs) if isinstance(cfgs, (list, tuple)) else [cfgs]
        self._timeout = timeout
        self._selftest = selftest
        self._in_sizes = [stream_bits(c.n_in, c.data_bits) // 8 for c in cfgs]
        self._out_sizes = [stream_bits(c.n_out, c.data_bits) // 8 for c in cfgs]
        self._batches = [stream_batch(i, o) for i, o in zip(self._in_sizes, self._out_sizes)]
        super().__init__({
            "rx": In(stream.Signature(8, always_ready=True)),
            "tx": Out(stream.Signature(8)),
            # AXI4-Lite manager of the engines' registers
            "axil": Out(AXI4Lite(engine_address_bits(cfgs, selftest))),
            # AXI4-Stream towards the engine that `engine` names, and back
            # pixels: payload = word (docs/spec.md §4, padded to bytes; the widest engine's width,
            # an engine's word in the low bits) with `last` as the top bit
            "px_out": Out(stream.Signature(max(self._in_sizes) * 8 + 1)),
            "px_in": In(stream.Signature(max(self._out_sizes) * 8 + 1)),
            "engine": Out(ENGINE_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.receiver = receiver = FrameReceiver(self._in_sizes, self._batches, self._timeout)
        m.submodules.executor = executor = CommandExecutor(self._cfgs, self._selftest)
        m.submodules.transmitter = transmitter = ReplyTransmitter(max(WORD.size, *self._out_sizes))
        wiring.connect(m, wiring.flipped(self.rx), receiver.rx)
        wiring.connect(m, receiver.commands, executor.commands)
        wiring.connect(m, executor.reply, transmitter.reply)
        wiring.connect(m, transmitter.tx, wiring.flipped(self.tx))
        wiring.connect(m, executor.axil, wiring.flipped(self.axil))
        wiring.connect(m, executor.px_out, wiring.flipped(self.px_out))
        wiring.connect(m, wiring.flipped(self.px_in), executor.px_in)
        m.d.comb += self.engine.eq(executor.engine)
        return m
