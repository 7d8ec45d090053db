"""The host bridge: parses command frames from a byte stream (the UART), acts as the AXI4-Lite
master of the engine's registers and feeds/drains its AXI4-Stream ports, and answers with reply
frames. The protocol, and every size and layout of its frames, is ``hw/hostlink.py``.

Bytes in come with ``valid`` only (a UART cannot be held back); bytes out are a stream. The
receive side and the reply side run concurrently, so a STREAM command's output pixels leave while
its input pixels still arrive.
"""

from amaranth.hdl import Module, Signal, Cat, Mux
from amaranth.lib import wiring, stream, fifo
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .axi import AXI4Lite
from .config import stream_bits
from .hostlink import (SYNC_CMD, SYNC_REPLY, CMD, STATUS, MAX_READ_WORDS, MAX_WRITE_WORDS, LENGTH,
                       ADDRESS, WORD, READ_PAYLOAD, STREAM_HEAD, STREAM_LAST, write_payload_bytes,
                       stream_payload_bytes, stream_batch)

# the receive states take the fields of this layout byte by byte into 32-bit shift registers
# (a READ's count lands in the top half of `word`), and a STREAM's flags then count in states of
# their own
assert (ADDRESS.size, WORD.size, READ_PAYLOAD.format, STREAM_HEAD.format, STREAM_LAST) == \
    (4, 4, "<IH", "<BH", 1)

__all__ = ["HostBridge", "crc16_step"]


def _crc16_taps():
    """For each bit of the next CRC, the CRC bits and byte bits it is the XOR of (the update is
    linear over GF(2)); derived once by running the bitwise algorithm on sets of symbols."""
    crc = [{("c", i)} for i in range(16)]
    for i in range(8):
        bit = crc[15] ^ {("b", 7 - i)}
        crc = [bit] + [crc[j - 1] ^ bit if j in (5, 12) else crc[j - 1] for j in range(1, 16)]
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


class HostBridge(wiring.Component):
    """Bridge for the engine built from ``cfg``; ``timeout`` is the number of clocks without a
    byte after which a half-received frame is abandoned."""

    def __init__(self, cfg, timeout):
        if not isinstance(timeout, int) or timeout < 16:
            raise ValueError(f"timeout must be an integer number of clocks >= 16, not {timeout!r}")
        self._cfg = cfg
        self._timeout = timeout
        self._in_bytes = stream_bits(cfg.n_in, cfg.data_bits) // 8
        self._out_bytes = stream_bits(cfg.n_out, cfg.data_bits) // 8
        self._batch = stream_batch(self._in_bytes, self._out_bytes)
        super().__init__({
            "rx": In(stream.Signature(8, always_ready=True)),
            "tx": Out(stream.Signature(8)),
            # AXI4-Lite manager of the engine's registers
            "axil": Out(AXI4Lite(8 * ADDRESS.size)),
            # AXI4-Stream towards the engine and back
            # pixels: payload = word (docs/spec.md §4, padded to bytes) with `last` as the top bit
            "px_out": Out(stream.Signature(self._in_bytes * 8 + 1)),
            "px_in": In(stream.Signature(self._out_bytes * 8 + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        ib, ob, batch = self._in_bytes, self._out_bytes, self._batch
        rx_byte, rx_stb = self.rx.payload, self.rx.valid
        m.d.comb += self.axil.wstrb.eq(0b1111)      # every register is written whole

        # ---------------------------------------------------------------- receive side
        cmd = Signal(8)
        length = Signal(8 * LENGTH.size)
        count = Signal(8 * LENGTH.size)    # bytes of payload left to receive
        crc_rx = Signal(16)
        crc_got = Signal(16)
        addr = Signal(32)
        n_words = Signal(range(MAX_READ_WORDS + 1))
        word = Signal(32)
        byte_idx = Signal(range(max(WORD.size, ib) + 1))
        idle = Signal(range(self._timeout + 1))
        wbuf = Memory(shape=32, depth=MAX_WRITE_WORDS, init=[])
        m.submodules.wbuf = wbuf
        wbuf_w = wbuf.write_port()
        wbuf_r = wbuf.read_port()

        # requests from the receive side to the reply side
        reply_start = Signal()
        reply_cmd = Signal(8)
        reply_len = Signal(8 * LENGTH.size)
        reply_mode = Signal(2)             # 0 empty, 1 read words, 2 stream pixels
        reply_status = Signal(8)
        reply_busy = Signal()
        stream_done = Signal()             # the STREAM's input part is over (pushed is final)
        stream_status = Signal(8)
        pixels_total = Signal(range(batch + 1))
        pixels_received = Signal(range(batch + 1))
        last_flag = Signal()
        pixel = Signal(ib * 8)
        # A whole batch fits in this FIFO, so no input pixel is ever lost, however slowly the
        # replies (which can be longer than the inputs) drain the engine.
        m.submodules.px_fifo = px_fifo = fifo.SyncFIFOBuffered(width=ib * 8 + 1, depth=batch)
        px_push = Signal()
        m.d.comb += [px_fifo.w_en.eq(px_push),
                     px_fifo.w_data.eq(Cat(pixel, last_flag & (pixels_received == pixels_total - 1))),
                     self.px_out.valid.eq(px_fifo.r_rdy), self.px_out.payload.eq(px_fifo.r_data),
                     px_fifo.r_en.eq(self.px_out.ready)]
        with m.If(px_push):
            m.d.sync += pixels_received.eq(pixels_received + 1)
        write_start = Signal()
        write_status = Signal(8)

        with m.If(rx_stb):
            m.d.sync += idle.eq(0)
        with m.Elif(idle != self._timeout):
            m.d.sync += idle.eq(idle + 1)
        timed_out = idle == self._timeout

        def consume(*stmts):
            """Take a received payload byte: it enters the CRC and counts against the length."""
            m.d.sync += [crc_rx.eq(crc16_step(crc_rx, rx_byte)), count.eq(count - 1), *stmts]

        def abort():
            """The link went quiet mid-frame: end a STREAM (the reply side pads it), or answer
            TIMEOUT; either way, hunt for the next frame."""
            with m.If(cmd == CMD["STREAM"]):
                m.d.sync += [stream_status.eq(STATUS["TIMEOUT"]), stream_done.eq(1)]
            with m.Else():
                reply(STATUS["TIMEOUT"])
            m.next = "HUNT"

        def reply(status, mode=0, length_=0):
            m.d.sync += [reply_start.eq(1), reply_cmd.eq(cmd), reply_status.eq(status),
                         reply_mode.eq(mode), reply_len.eq(length_)]

        m.d.sync += [reply_start.eq(0), write_start.eq(0), wbuf_w.en.eq(0), px_push.eq(0)]
        with m.FSM(name="rx_fsm"):
            with m.State("HUNT"):
                with m.If(rx_stb & (rx_byte == SYNC_CMD)):
                    m.d.sync += crc_rx.eq(0xFFFF)
                    m.next = "CMD"
            with m.State("CMD"):
                with m.If(rx_stb):
                    m.d.sync += [cmd.eq(rx_byte), crc_rx.eq(crc16_step(crc_rx, rx_byte))]
                    m.next = "LEN0"
                with m.Elif(timed_out):
                    m.next = "HUNT"
            with m.State("LEN0"):
                with m.If(rx_stb):
                    m.d.sync += [length[:8].eq(rx_byte), crc_rx.eq(crc16_step(crc_rx, rx_byte))]
                    m.next = "LEN1"
                with m.Elif(timed_out):
                    m.next = "HUNT"
            with m.State("LEN1"):
                with m.If(rx_stb):
                    full = Cat(length[:8], rx_byte)
                    m.d.sync += [length[8:].eq(rx_byte), crc_rx.eq(crc16_step(crc_rx, rx_byte)),
                                 count.eq(full), byte_idx.eq(0), addr.eq(0), n_words.eq(0)]
                    m.next = "CHECK"
                with m.Elif(timed_out):
                    m.next = "HUNT"
            with m.State("CHECK"):
                # a command is only taken when the reply side is free
                with m.If(~reply_busy & ~reply_start):
                    with m.Switch(cmd):
                        with m.Case(CMD["READ"]):
                            with m.If(length == READ_PAYLOAD.size):
                                m.next = "ADDR"
                            with m.Else():
                                reply(STATUS["BAD_LEN"])
                                m.next = "HUNT"
                        with m.Case(CMD["WRITE"]):
                            # (address and words are 4 bytes: whole words when length[:2] == 0)
                            with m.If((length >= write_payload_bytes(1)) & (length[:2] == 0)
                                      & (length <= write_payload_bytes(MAX_WRITE_WORDS))):
                                m.next = "ADDR"
                            with m.Else():
                                reply(STATUS["BAD_LEN"])
                                m.next = "HUNT"
                        with m.Case(CMD["STREAM"]):
                            with m.If(length >= stream_payload_bytes(1, ib)):
                                m.next = "FLAGS"
                            with m.Else():
                                reply(STATUS["BAD_LEN"])
                                m.next = "HUNT"
                        with m.Default():
                            reply(STATUS["BAD_CMD"])
                            m.next = "HUNT"
            with m.State("ADDR"):
                with m.If(rx_stb):
                    consume(addr.eq(Cat(addr[8:], rx_byte)), byte_idx.eq(byte_idx + 1))
                    with m.If(byte_idx == ADDRESS.size - 1):
                        m.d.sync += byte_idx.eq(0)
                        m.next = "COUNT"
                with m.Elif(timed_out):
                    abort()
            with m.State("COUNT"):
                # READ: two bytes of word count; WRITE: the words themselves
                with m.If(rx_stb):
                    consume(word.eq(Cat(word[8:], rx_byte)), byte_idx.eq(byte_idx + 1))
                    with m.If(cmd == CMD["READ"]):
                        with m.If(byte_idx == READ_PAYLOAD.size - ADDRESS.size - 1):
                            m.d.sync += byte_idx.eq(0)
                            m.next = "CRC0"
                    with m.Elif(byte_idx == WORD.size - 1):
                        m.d.sync += [byte_idx.eq(0), wbuf_w.en.eq(1), wbuf_w.addr.eq(n_words),
                                     wbuf_w.data.eq(Cat(word[8:], rx_byte)), n_words.eq(n_words + 1)]
                        with m.If(count == 1):
                            m.next = "CRC0"
                with m.Elif(timed_out):
                    abort()
            with m.State("FLAGS"):
                with m.If(rx_stb):
                    consume(last_flag.eq(rx_byte[0]))          # STREAM_LAST
                    m.next = "NPIX0"
                with m.Elif(timed_out):
                    m.next = "HUNT"
            with m.State("NPIX0"):
                with m.If(rx_stb):
                    consume(word[:8].eq(rx_byte))
                    m.next = "NPIX1"
                with m.Elif(timed_out):
                    m.next = "HUNT"
            with m.State("NPIX1"):
                with m.If(rx_stb):
                    n_px = Cat(word[:8], rx_byte)
                    consume()
                    # the pixel count must account for the rest of the payload exactly
                    with m.If((n_px != 0) & (n_px <= batch)
                              & (length == stream_payload_bytes(n_px, ib))):
                        m.d.sync += [pixels_total.eq(n_px), pixels_received.eq(0), byte_idx.eq(0),
                                     stream_done.eq(0), stream_status.eq(STATUS["OK"])]
                        reply(STATUS["OK"], mode=2, length_=n_px * ob)
                        m.next = "PIXELS"
                    with m.Else():
                        reply(STATUS["BAD_LEN"])
                        m.next = "HUNT"
                with m.Elif(timed_out):
                    m.next = "HUNT"
            with m.State("PIXELS"):
                with m.If(rx_stb):
                    consume(pixel.eq(Cat(pixel[8:], rx_byte)) if ib > 1 else pixel.eq(rx_byte),
                            byte_idx.eq(byte_idx + 1))
                    with m.If(byte_idx == ib - 1):
                        m.d.sync += [byte_idx.eq(0), px_push.eq(1)]
                    with m.If(count == 1):
                        m.next = "CRC0"
                with m.Elif(timed_out):
                    abort()
            with m.State("CRC0"):
                with m.If(rx_stb):
                    m.d.sync += crc_got[:8].eq(rx_byte)
                    m.next = "CRC1"
                with m.Elif(timed_out):
                    abort()
            with m.State("CRC1"):
                with m.If(rx_stb):
                    good = Cat(crc_got[:8], rx_byte) == crc_rx
                    with m.If(cmd == CMD["STREAM"]):
                        m.d.sync += [stream_status.eq(Mux(good, STATUS["OK"], STATUS["BAD_CRC"])),
                                     stream_done.eq(1)]
                        m.next = "HUNT"
                    with m.Elif(~good):
                        reply(STATUS["BAD_CRC"])
                        m.next = "HUNT"
                    with m.Elif(cmd == CMD["READ"]):
                        with m.If((word[16:] == 0) | (word[16:] > MAX_READ_WORDS)):
                            reply(STATUS["BAD_LEN"])
                        with m.Else():
                            m.d.sync += n_words.eq(word[16:])
                            reply(STATUS["OK"], mode=1, length_=word[16:] * WORD.size)
                        m.next = "HUNT"
                    with m.Else():
                        m.d.sync += write_start.eq(1)
                        m.next = "WRITING"
                with m.Elif(timed_out):
                    abort()
            with m.State("WRITING"):
                with m.If(~write_start & (write_status != 0xFF)):
                    reply(write_status)
                    m.next = "HUNT"

        # ---------------------------------------------------------------- AXI4-Lite writes
        w_idx = Signal(range(MAX_WRITE_WORDS + 1))
        m.d.comb += [wbuf_r.addr.eq(w_idx), self.axil.bready.eq(1)]
        with m.FSM(name="axi_w"):
            with m.State("IDLE"):
                with m.If(write_start):
                    m.d.sync += [w_idx.eq(0), write_status.eq(0xFF)]
                    m.next = "FETCH"
            with m.State("FETCH"):             # the buffer's read port is registered
                m.next = "ISSUE"
            with m.State("ISSUE"):
                m.d.sync += [self.axil.awaddr.eq(addr + (w_idx << 2)), self.axil.wdata.eq(wbuf_r.data),
                             self.axil.awvalid.eq(1), self.axil.wvalid.eq(1)]
                m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(self.axil.awready):
                    m.d.sync += self.axil.awvalid.eq(0)
                with m.If(self.axil.wready):
                    m.d.sync += self.axil.wvalid.eq(0)
                with m.If(self.axil.bvalid):
                    with m.If(self.axil.bresp != 0):
                        m.d.sync += write_status.eq(STATUS["AXI_ERROR"])
                    with m.If(w_idx + 1 == n_words):
                        with m.If(self.axil.bresp == 0):
                            m.d.sync += write_status.eq(Mux(write_status == 0xFF, STATUS["OK"], write_status))
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += w_idx.eq(w_idx + 1)
                        m.next = "FETCH"

        # ---------------------------------------------------------------- reply side
        crc_tx = Signal(16)
        t_len = Signal(8 * LENGTH.size)
        t_cmd = Signal(8)
        t_mode = Signal(2)
        t_status = Signal(8)
        t_word = Signal(32)
        t_byte = Signal(range(max(WORD.size, ob) + 1))
        t_items = Signal(range(max(MAX_READ_WORDS, batch) + 1))
        out_px = Signal(ob * 8)
        axi_err = Signal()
        tx_byte = Signal(8)
        m.d.comb += [self.tx.payload.eq(tx_byte), self.axil.rready.eq(1), self.px_in.ready.eq(0)]
        sent = self.tx.valid & self.tx.ready

        def emit(value, nxt, add_crc=True):
            m.d.comb += [self.tx.valid.eq(1), tx_byte.eq(value)]
            with m.If(sent):
                if add_crc:
                    m.d.sync += crc_tx.eq(crc16_step(crc_tx, tx_byte))
                m.next = nxt

        with m.FSM(name="tx_fsm"):
            with m.State("IDLE"):
                with m.If(reply_start):
                    m.d.sync += [reply_busy.eq(1), t_cmd.eq(reply_cmd), t_len.eq(reply_len),
                                 t_mode.eq(reply_mode), t_status.eq(reply_status), crc_tx.eq(0xFFFF),
                                 t_items.eq(0), t_byte.eq(0), axi_err.eq(0)]
                    m.next = "SYNC"
            with m.State("SYNC"):
                emit(SYNC_REPLY, "CMD", add_crc=False)
            with m.State("CMD"):
                emit(t_cmd, "LEN0")
            with m.State("LEN0"):
                emit(t_len[:8], "LEN1")
            with m.State("LEN1"):
                emit(t_len[8:], "ITEM")
            with m.State("ITEM"):          # fetch the next payload item, or finish
                with m.If(t_mode == 1):
                    with m.If(t_items == n_words):
                        m.next = "STATUS"
                    with m.Else():
                        m.d.sync += [self.axil.araddr.eq(addr + (t_items << 2)), self.axil.arvalid.eq(1)]
                        m.next = "READ_WAIT"
                with m.Elif(t_mode == 2):
                    with m.If(t_items == pixels_total):
                        with m.If(stream_done):
                            m.d.sync += t_status.eq(stream_status)
                            m.next = "STATUS"
                    with m.Elif(t_items < pixels_received):
                        m.d.comb += self.px_in.ready.eq(1)
                        with m.If(self.px_in.valid):
                            m.d.sync += [out_px.eq(self.px_in.payload[:ob * 8]), t_byte.eq(0)]
                            m.next = "PIXEL"
                    with m.Elif(stream_done):
                        m.d.sync += [out_px.eq(0), t_byte.eq(0)]     # never pushed: padding
                        m.next = "PIXEL"
                with m.Else():
                    m.next = "STATUS"
            with m.State("READ_WAIT"):
                with m.If(self.axil.arready):
                    m.d.sync += self.axil.arvalid.eq(0)
                with m.If(self.axil.rvalid):
                    m.d.sync += [t_word.eq(self.axil.rdata), t_byte.eq(0)]
                    with m.If(self.axil.rresp != 0):
                        m.d.sync += axi_err.eq(1)
                    m.next = "WORD"
            with m.State("WORD"):
                m.d.comb += [self.tx.valid.eq(1), tx_byte.eq(t_word.word_select(t_byte[:2], 8))]
                with m.If(sent):
                    m.d.sync += [crc_tx.eq(crc16_step(crc_tx, tx_byte)), t_byte.eq(t_byte + 1)]
                    with m.If(t_byte == WORD.size - 1):
                        m.d.sync += t_items.eq(t_items + 1)
                        m.next = "ITEM"
            with m.State("PIXEL"):
                m.d.comb += [self.tx.valid.eq(1), tx_byte.eq(out_px.word_select(t_byte, 8))]
                with m.If(sent):
                    m.d.sync += [crc_tx.eq(crc16_step(crc_tx, tx_byte)), t_byte.eq(t_byte + 1)]
                    with m.If(t_byte == ob - 1):
                        m.d.sync += t_items.eq(t_items + 1)
                        m.next = "ITEM"
            with m.State("STATUS"):
                emit(Mux(axi_err, STATUS["AXI_ERROR"], t_status), "CRC0")
            with m.State("CRC0"):
                emit(crc_tx[:8], "CRC1", add_crc=False)
            with m.State("CRC1"):
                m.d.comb += [self.tx.valid.eq(1), tx_byte.eq(crc_tx[8:])]
                with m.If(sent):
                    m.d.sync += reply_busy.eq(0)
                    m.next = "IDLE"
        return m
