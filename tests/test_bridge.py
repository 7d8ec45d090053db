"""The board top (UART + host bridge + engine) in Amaranth's simulator, bit by bit on the UART:
register reads and writes, a STREAM, and damaged frames."""

import struct

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from bfly.hw.config import EngineConfig
from bfly.hw.hostlink import (crc16, CMD, MAX_PAYLOAD, MAX_STREAM_PIXELS, MAX_WRITE_WORDS, HEAD_BYTES,
                              CRC, LENGTH, STATUS_BYTES, STATUS_NAMES, SYNC_REPLY, ADDRESS, WORD,
                              STREAM_HEAD, STREAM_LAST, stream_batch, stream_payload_bytes,
                              reply_frame_bytes, WINDOW, command_byte)
from bfly.hw.regmap import BFLY_ID, register_map, config_words, address_bits, param_window
from bfly.hw.board import BoardTop, LinkedEngine, uart_divisor
from bfly.hw.bridge import crc16_step
from bfly.sim.model import random_params, engine_forward
from bfly.sim.words import pack_pixels, unpack_pixels, param_words, stream_bits
from bfly.sw.link import encode, read_cmd, write_cmd, stream_cmd, decode_reply, LinkError
from bfly.sw.driver import stream_frames


def test_crc_step_matches_the_reference():
    m = Module()
    crc, byte, nxt = Signal(16), Signal(8), Signal(16)
    m.d.comb += nxt.eq(crc16_step(crc, byte))
    data = bytes(np.random.default_rng(0).integers(0, 256, size=40).tolist())
    got = []

    async def tb(ctx):
        value = 0xFFFF
        for b in data:
            ctx.set(crc, value)
            ctx.set(byte, b)
            value = ctx.get(nxt)
        got.append(value)
    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
    assert got == [crc16(data)]
    assert crc16(b"123456789") == 0x29B1


def test_uart_divisor():
    assert uart_divisor(40e6, 10e6) == 4
    with pytest.raises(ValueError, match="cannot be made"):
        uart_divisor(25e6, 3e6)


def _run_board(cfg, frames, idle_cycles=4000):
    """Send ``frames`` (bytes, each followed by a reply) to the board; return all received bytes."""
    dut = BoardTop(cfg, 40e6, 10e6, timeout_bytes=8)
    div = dut.divisor
    received = bytearray()

    async def host(ctx):
        ctx.set(dut.uart_rx, 1)
        await ctx.tick().repeat(10)
        for frame in frames:
            for byte in frame:
                for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                    ctx.set(dut.uart_rx, bit)
                    await ctx.tick().repeat(div)
            await ctx.tick().repeat(idle_cycles)

    async def listen(ctx):
        while True:
            while ctx.get(dut.uart_tx):
                await ctx.tick()
            await ctx.tick().repeat(div // 2 + div)
            byte = 0
            for i in range(8):
                byte |= ctx.get(dut.uart_tx) << i
                await ctx.tick().repeat(div)
            received.append(byte)

    sim = Simulator(dut)
    sim.add_clock(25e-9)
    sim.add_testbench(host)
    sim.add_testbench(listen, background=True)
    sim.run()
    return bytes(received)


class _Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def __call__(self, n):
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out


def test_register_read_write_and_stream():
    cfg = EngineConfig.bft(4, 2)
    regs = {r.name: r for r in register_map(cfg)}
    params = random_params(cfg, np.random.default_rng(1))
    words = param_words(cfg, params)
    pixels = np.random.default_rng(2).integers(-128, 128, size=(5, 4))
    frames = [read_cmd(regs["ID"].offset, 2),
              write_cmd(regs["WEIGHTS"].offset, words),
              write_cmd(regs["SHIFT"].offset, params.shifts),
              write_cmd(regs["CTRL"].offset, [1]),
              read_cmd(regs["WEIGHTS"].offset, len(words)),
              stream_cmd(b"".join(w.to_bytes(4, "little") for w in pack_pixels(pixels, 8)), 5, True)]
    rd = _Reader(_run_board(cfg, frames))
    assert struct.unpack("<2I", decode_reply(rd, CMD["READ"])) == (BFLY_ID, config_words(cfg, 0)["CONFIG0"])
    for _ in range(3):
        assert decode_reply(rd, CMD["WRITE"]) == b""
    assert list(struct.unpack(f"<{len(words)}I", decode_reply(rd, CMD["READ"]))) == words
    out = decode_reply(rd, CMD["STREAM"])
    got = unpack_pixels([int.from_bytes(out[i:i + 4], "little") for i in range(0, 20, 4)], 4, 8)
    np.testing.assert_array_equal(got, engine_forward(cfg, params, pixels).y)


def test_damaged_frames_get_error_replies_and_change_nothing():
    cfg = EngineConfig.bft(4, 2)
    regs = {r.name: r for r in register_map(cfg)}
    good = write_cmd(regs["SHIFT"].offset, [5, 6])
    corrupted = good[:8] + bytes([good[8] ^ 0x40]) + good[9:]
    frames = [b"\x00\x13\x77",                                   # garbage between frames
              corrupted,                                        # CRC error: nothing written
              read_cmd(regs["SHIFT"].offset, 2),
              good[:7],                                         # dropped bytes: link goes quiet
              read_cmd(regs["SHIFT"].offset, 2),
              good, read_cmd(regs["SHIFT"].offset, 2)]
    rd = _Reader(_run_board(cfg, frames))
    with pytest.raises(LinkError) as e:
        decode_reply(rd, CMD["WRITE"])
    assert e.value.status == "BAD_CRC"
    assert struct.unpack("<2I", decode_reply(rd, CMD["READ"])) == (0, 0)
    with pytest.raises(LinkError) as e:
        decode_reply(rd, CMD["WRITE"])
    assert e.value.status == "TIMEOUT"
    assert struct.unpack("<2I", decode_reply(rd, CMD["READ"])) == (0, 0)
    assert decode_reply(rd, CMD["WRITE"]) == b""
    assert struct.unpack("<2I", decode_reply(rd, CMD["READ"])) == (5, 6)


def test_stream_batch_fits_the_length_field():
    assert stream_batch(4, 4) == MAX_STREAM_PIXELS
    for in_bytes, out_bytes in [(1100, 4), (4, 1100), (2000, 3000), (MAX_PAYLOAD - 3, 1)]:
        n = stream_batch(in_bytes, out_bytes)
        assert n >= 1
        assert stream_payload_bytes(n, in_bytes) <= MAX_PAYLOAD and n * out_bytes <= MAX_PAYLOAD
        assert (stream_payload_bytes(n + 1, in_bytes) > MAX_PAYLOAD or (n + 1) * out_bytes > MAX_PAYLOAD
                or n == MAX_STREAM_PIXELS)


def test_the_drivers_largest_stream_is_what_the_bridge_takes():
    """The driver's frames for one more pixel than a STREAM takes: a full batch, then one pixel;
    the bridge answers both, and refuses a STREAM of one more pixel than the batch."""
    cfg = EngineConfig.bft(4, 2)
    regs = {r.name: r for r in register_map(cfg)}
    params = random_params(cfg, np.random.default_rng(5))
    batch = stream_batch(4, 4)
    pixels = np.random.default_rng(6).integers(-128, 128, size=(batch + 1, 4))
    frames = stream_frames(cfg, pixels)
    assert [n for _, n in frames] == [batch, 1]
    assert len(frames[0][0].frame()) == HEAD_BYTES + stream_payload_bytes(batch, 4) + CRC.size
    too_long = stream_cmd(bytes(4 * (batch + 1)), batch + 1, True)
    rd = _Reader(_run_link(cfg, [write_cmd(regs["WEIGHTS"].offset, param_words(cfg, params)),
                                  write_cmd(regs["SHIFT"].offset, params.shifts),
                                  write_cmd(regs["CTRL"].offset, [1])]
                            + [f.frame() for f, _ in frames] + [too_long]))
    for _ in range(3):
        assert decode_reply(rd, CMD["WRITE"]) == b""
    out = decode_reply(rd, CMD["STREAM"]) + decode_reply(rd, CMD["STREAM"])
    got = unpack_pixels([int.from_bytes(out[i:i + 4], "little") for i in range(0, len(out), 4)], 4, 8)
    np.testing.assert_array_equal(got, engine_forward(cfg, params, pixels).y)
    with pytest.raises(LinkError) as e:
        decode_reply(rd, CMD["STREAM"])
    assert e.value.status == "BAD_LEN"


# --- the bridge and the engine on the link's byte streams (no UART: fast), byte by byte

BYTE_CLOCKS = 12          # clocks between link bytes, both ways (a UART byte takes 10 bit times)
TIMEOUT = 8 * BYTE_CLOCKS


class Early(bytes):
    """A frame the host sends without waiting for its reply."""


class Quiet(bytes):
    """Bytes the host sends expecting no reply."""


def _complete_replies(data):
    n, pos = 0, 0
    while pos + HEAD_BYTES <= len(data):
        end = pos + reply_frame_bytes(LENGTH.unpack_from(data, pos + 2)[0])
        if end > len(data):
            break
        n, pos = n + 1, end
    return n


def _run_link(cfg, items, tail=500, patience=40000, engine_period=None):
    """Send ``items`` to the engine behind the bridge, taking reply bytes at the link's pace, and
    return the reply bytes. An item is a frame (sent one byte every BYTE_CLOCKS, then the host
    waits for its reply, at most ``patience`` clocks), an :class:`Early` frame (sent without
    waiting), :class:`Quiet` bytes (that get no reply) or an int (that many idle clocks).
    ``engine_period``: the engines in a clock domain of their own with this period (seconds;
    the bridge's clock is 10 ns)."""
    dut = LinkedEngine(cfg, TIMEOUT, engine_domain="engine" if engine_period else None)
    received = bytearray()

    async def host(ctx):
        expected = 0
        for item in items:
            if isinstance(item, int):
                if item:
                    await ctx.tick().repeat(item)
                continue
            for byte in item:
                ctx.set(dut.rx.payload, byte)
                ctx.set(dut.rx.valid, 1)
                await ctx.tick()
                ctx.set(dut.rx.valid, 0)
                await ctx.tick().repeat(BYTE_CLOCKS - 1)
            if isinstance(item, Quiet):
                continue
            expected += 1
            if not isinstance(item, Early):
                for _ in range(patience // BYTE_CLOCKS):
                    if _complete_replies(received) >= expected:
                        break
                    await ctx.tick().repeat(BYTE_CLOCKS)
        await ctx.tick().repeat(tail)

    async def listen(ctx):
        while True:
            ctx.set(dut.tx.ready, 1)
            _, _, valid, byte = await ctx.tick().sample(dut.tx.valid, dut.tx.payload)
            if valid:
                received.append(byte)
                ctx.set(dut.tx.ready, 0)
                for _ in range(BYTE_CLOCKS - 1):
                    await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    if engine_period:
        sim.add_clock(engine_period, domain="engine")
    sim.add_testbench(host)
    sim.add_testbench(listen, background=True)
    sim.run()
    return bytes(received)


def _replies(data):
    """Split reply bytes into ``(cmd, payload, status name)``, checking every frame strictly:
    sync, declared length, CRC; nothing may be left over."""
    out, pos = [], 0
    while pos < len(data):
        assert data[pos] == SYNC_REPLY, f"byte {pos}: 0x{data[pos]:02X} where a reply starts"
        (length,) = LENGTH.unpack_from(data, pos + 2)
        end = pos + reply_frame_bytes(length)
        assert end <= len(data), f"a reply at byte {pos} declares {length} bytes, {len(data) - pos} follow"
        body = data[pos + 1:end - CRC.size]
        assert CRC.unpack_from(data, end - CRC.size)[0] == crc16(body), f"reply at byte {pos}: bad CRC"
        out.append((data[pos + 1], bytes(body[1 + LENGTH.size:-STATUS_BYTES]), STATUS_NAMES[body[-1]]))
        pos = end
    return out


def _words(payload):
    return [w for (w,) in WORD.iter_unpack(payload)]


def _cfg_regs():
    cfg = EngineConfig.bft(4, 2)
    return cfg, {r.name: r for r in register_map(cfg)}


def test_unmapped_addresses_answer_axi_error_and_change_nothing():
    """Issue 19 item 3: the 32-bit address is decoded whole (no aliasing on the low
    address_bits), holes in the map and words past its end answer AXI_ERROR with an empty
    payload, and a WRITE with one bad word writes none of its words."""
    cfg, regs = _cfg_regs()
    shift, weights = regs["SHIFT"].offset, regs["WEIGHTS"].offset
    span = 1 << address_bits(cfg)
    hole = regs["CONFIG3"].end                      # between CONFIG3 and FACTOR
    assert not any(r.offset <= hole < r.end for r in regs.values())
    bad_writes = [0x80000000 | shift, span + shift, span + weights, hole,
                  regs["WEIGHTS"].end, 0xFFFFFFFC]
    frames = [write_cmd(a, [7]) for a in bad_writes]
    frames += [write_cmd(shift + 4, [3, 4]),        # SHIFT[1] and the word after it
               write_cmd(regs["STATUS"].offset - 4, [1, 1]),   # CTRL, then read-only STATUS
               read_cmd(span + weights, 1), read_cmd(hole, 1), read_cmd(regs["WEIGHTS"].end - 4, 2),
               read_cmd(shift, 2), read_cmd(weights, 1), read_cmd(regs["ID"].offset, 1)]
    replies = _replies(_run_link(cfg, frames))
    assert [(c, p, s) for c, p, s in replies[:len(bad_writes) + 2]] == \
        [(CMD["WRITE"], b"", "AXI_ERROR")] * (len(bad_writes) + 2)
    assert replies[len(bad_writes) + 2:] == [(CMD["READ"], b"", "AXI_ERROR")] * 3 + [
        (CMD["READ"], WORD.pack(0) * 2, "OK"), (CMD["READ"], WORD.pack(0), "OK"),
        (CMD["READ"], WORD.pack(BFLY_ID), "OK")]


def test_misaligned_addresses_are_refused():
    cfg, regs = _cfg_regs()
    shift = regs["SHIFT"].offset
    replies = _replies(_run_link(cfg, [write_cmd(shift + 2, [5]), read_cmd(shift + 1, 1),
                                       read_cmd(shift, 1)]))
    assert replies == [(CMD["WRITE"], b"", "BAD_LEN"), (CMD["READ"], b"", "BAD_LEN"),
                       (CMD["READ"], WORD.pack(0), "OK")]


def _saturating_load(cfg, regs):
    """Weights of all ones and shifts of 0 (so a pixel of large values saturates), committed."""
    words = [1] * param_window(cfg)[1]
    return [write_cmd(regs["WEIGHTS"].offset, words), write_cmd(regs["SHIFT"].offset, [0] * cfg.n_stages),
            write_cmd(regs["CTRL"].offset, [1])]


def test_a_bad_stream_frame_changes_nothing():
    """Issue 19 item 5: a STREAM with a bad CRC, or cut off mid-way, puts no pixel through the
    engine (SAT_COUNT stays 0) and gets an empty error reply; a good one saturates."""
    cfg, regs = _cfg_regs()
    sat = regs["SAT_COUNT"]
    pixels = bytes([0x7F] * 4 * 3)
    good = stream_cmd(pixels, 3, True)
    bad_crc = good[:-1] + bytes([good[-1] ^ 1])
    frames = _saturating_load(cfg, regs) + [bad_crc, read_cmd(sat.offset, sat.count),
                                            Early(good[:-6]), 3 * TIMEOUT, read_cmd(sat.offset, sat.count),
                                            good, read_cmd(sat.offset, sat.count)]
    replies = _replies(_run_link(cfg, frames))
    assert [s for _, _, s in replies[:3]] == ["OK"] * 3
    assert replies[3] == (CMD["STREAM"], b"", "BAD_CRC")
    assert replies[4] == (CMD["READ"], WORD.pack(0) * sat.count, "OK")
    assert replies[5] == (CMD["STREAM"], b"", "TIMEOUT")
    assert replies[6] == (CMD["READ"], WORD.pack(0) * sat.count, "OK")
    assert replies[7][0] == CMD["STREAM"] and replies[7][2] == "OK" and len(replies[7][1]) == 3 * 4
    assert _words(replies[8][1])[0] > 0


def test_a_command_during_a_reply_is_queued():
    """Issue 19 item 6: a READ arriving 0 to 3 byte times after a long READ, while that READ's
    reply goes out, is answered after it, both frames intact."""
    cfg, regs = _cfg_regs()
    weights, shift = regs["WEIGHTS"].offset, regs["SHIFT"].offset
    n = regs["WEIGHTS"].count
    long_reply = (CMD["READ"], b"".join(WORD.pack(w) for w in range(n)), "OK")
    id_reply = (CMD["READ"], WORD.pack(BFLY_ID) + WORD.pack(config_words(cfg, 0)["CONFIG0"]), "OK")
    for gap in (0, 1, 3):
        frames = [write_cmd(weights, list(range(n))), Early(read_cmd(weights, n)), gap * BYTE_CLOCKS,
                  read_cmd(regs["ID"].offset, 2), read_cmd(shift, 2)]
        assert _replies(_run_link(cfg, frames)) == [
            (CMD["WRITE"], b"", "OK"), long_reply, id_reply, (CMD["READ"], WORD.pack(0) * 2, "OK")], \
            f"gap {gap}"


@pytest.mark.parametrize("engine_period", [None, 7e-9])
def test_a_window_of_commands_is_answered_in_order_and_one_more_is_skipped(engine_period):
    """Issue 22 item 2: WINDOW frames sent back to back, while the first one's long reply goes
    out, are all taken and answered in order, each echoing its command byte (its tag); a frame
    that arrives while WINDOW are held is skipped whole: no reply, nothing written. Also with
    the registers in the engines' own clock domain."""
    cfg, regs = _cfg_regs()
    weights, shift = regs["WEIGHTS"].offset, regs["SHIFT"].offset
    n = regs["WEIGHTS"].count
    read, write = command_byte(CMD["READ"], 5), command_byte(CMD["WRITE"], 6)
    long_reply = (CMD["READ"], b"".join(WORD.pack(w) for w in range(n)), "OK")
    window = [Early(read_cmd(weights, n)), Early(read_cmd(regs["ID"].offset, 2, tag=5)),
              Early(write_cmd(shift, [9, 10], tag=6)), Early(read_cmd(shift, 2, tag=7))]
    assert len(window) == WINDOW
    frames = [write_cmd(weights, list(range(n))), *window, Quiet(write_cmd(shift, [1, 2], tag=8)),
              (n + 20) * WORD.size * BYTE_CLOCKS, read_cmd(shift, 2, tag=9)]
    assert _replies(_run_link(cfg, frames, engine_period=engine_period)) == [
        (CMD["WRITE"], b"", "OK"), long_reply,
        (read, WORD.pack(BFLY_ID) + WORD.pack(config_words(cfg, 0)["CONFIG0"]), "OK"),
        (write, b"", "OK"), (command_byte(CMD["READ"], 7), WORD.pack(9) + WORD.pack(10), "OK"),
        (command_byte(CMD["READ"], 9), WORD.pack(9) + WORD.pack(10), "OK")]


@pytest.mark.parametrize("engine_period", [None, 3.3e-9, 27e-9])
def test_streams_in_flight_are_each_checked_and_answered_in_order(engine_period):
    """Issue 22 item 2: STREAMs sent back to back, one of them damaged and a WRITE among them
    refused: every good batch goes through the engine once, in order; the damaged one answers
    BAD_CRC and the refused WRITE AXI_ERROR, and their words and pixels reach nothing (the
    batches after them are intact). Also with the engines in a clock domain of their own, faster
    or slower than the bridge's (issue 22 item 1: the registers and pixels cross through
    asynchronous FIFOs)."""
    cfg, regs = _cfg_regs()
    params = random_params(cfg, np.random.default_rng(8))
    load = [write_cmd(regs["WEIGHTS"].offset, param_words(cfg, params)),
            write_cmd(regs["SHIFT"].offset, params.shifts)]
    commit = write_cmd(regs["CTRL"].offset, [1])
    pixels = np.random.default_rng(9).integers(cfg.data_min, cfg.data_max + 1, size=(9, cfg.n_in))
    batches = [stream_frames(cfg, pixels[i:i + 3])[0][0].frame() for i in range(0, 9, 3)]
    bad = bytearray(batches[1])
    bad[-3] ^= 0x40
    refused = write_cmd(regs["ID"].offset, [1, 2])
    frames = [*load, commit, 400, Early(batches[0]), Early(bytes(bad)), Early(refused), batches[2]]
    replies = _replies(_run_link(cfg, frames, engine_period=engine_period))
    n_load = len(load) + 1
    assert replies[:n_load] == [(CMD["WRITE"], b"", "OK")] * n_load
    out_bytes = stream_bits(cfg.n_out, cfg.data_bits) // 8

    def pixels_of(payload):
        words = [int.from_bytes(payload[i:i + out_bytes], "little") for i in range(0, len(payload), out_bytes)]
        return unpack_pixels(words, cfg.n_out, cfg.data_bits)
    want = engine_forward(cfg, params, pixels).y
    got = replies[n_load:]
    assert [(c, s) for c, _, s in got] == [(CMD["STREAM"], "OK"), (CMD["STREAM"], "BAD_CRC"),
                                           (CMD["WRITE"], "AXI_ERROR"), (CMD["STREAM"], "OK")]
    assert np.array_equal(pixels_of(got[0][1]), want[0:3])
    assert np.array_equal(pixels_of(got[3][1]), want[6:9])


def test_a_rejected_frames_declared_bytes_are_skipped():
    """Issue 19 item 7: a valid command inside the payload of a rejected frame (a WRITE of
    MAX_WRITE_WORDS + 1 words, a STREAM whose pixel count contradicts its length, an unknown
    command) is not executed; the next frame is."""
    cfg, regs = _cfg_regs()
    shift = regs["SHIFT"].offset
    inner = write_cmd(shift, [5, 6])
    pad = lambda n: inner + bytes(n - len(inner))
    too_long = encode(CMD["WRITE"], ADDRESS.pack(shift) + pad(WORD.size * (MAX_WRITE_WORDS + 1)))
    wrong_count = encode(CMD["STREAM"], STREAM_HEAD.pack(STREAM_LAST, 1) + pad(40))
    unknown = encode(0x7E, inner)
    frames = [too_long, read_cmd(shift, 2), wrong_count, read_cmd(shift, 2), unknown,
              read_cmd(shift, 2), inner, read_cmd(shift, 2)]
    replies = _replies(_run_link(cfg, frames))
    zeros = (CMD["READ"], WORD.pack(0) * 2, "OK")
    assert replies == [(CMD["WRITE"], b"", "BAD_LEN"), zeros, (CMD["STREAM"], b"", "BAD_LEN"), zeros,
                       (0x7E, b"", "BAD_CMD"), zeros, (CMD["WRITE"], b"", "OK"),
                       (CMD["READ"], WORD.pack(5) + WORD.pack(6), "OK")]


def test_a_rejected_frame_that_never_ends_times_out_quietly():
    """The skip of a rejected frame's declared bytes ends when the link goes quiet; the next
    command is then taken. A frame cut off in its header gets no reply, one cut off after it
    gets TIMEOUT."""
    cfg, regs = _cfg_regs()
    shift = regs["SHIFT"].offset
    cut = encode(CMD["WRITE"], ADDRESS.pack(shift) + bytes(WORD.size * (MAX_WRITE_WORDS + 1)))[:40]
    good = write_cmd(shift, [1, 2])
    frames = [Early(cut), 3 * TIMEOUT, Quiet(good[:HEAD_BYTES - 1]), 3 * TIMEOUT,
              Early(good[:HEAD_BYTES + 1]), 3 * TIMEOUT, read_cmd(shift, 2)]
    assert _replies(_run_link(cfg, frames)) == [
        (CMD["WRITE"], b"", "BAD_LEN"), (CMD["WRITE"], b"", "TIMEOUT"),
        (CMD["READ"], WORD.pack(0) * 2, "OK")]


def test_register_semantics_over_the_link_are_the_documented_ones():
    """docs/spec.md §8.3: a register keeps its width of a written word (SHIFT: 6 bits), a
    window word its weight_bits (read back sign-extended), and write-only CTRL reads as 0."""
    cfg, regs = _cfg_regs()
    shift, weights = regs["SHIFT"], regs["WEIGHTS"]
    replies = _replies(_run_link(cfg, [
        write_cmd(shift.offset, [(1 << shift.width) + 1]), write_cmd(weights.offset, [0x1FF]),
        read_cmd(shift.offset, 1), read_cmd(weights.offset, 1), read_cmd(regs["CTRL"].offset, 1)]))
    assert replies[2:] == [(CMD["READ"], WORD.pack(1), "OK"), (CMD["READ"], WORD.pack(0xFFFFFFFF), "OK"),
                           (CMD["READ"], WORD.pack(0), "OK")]


@pytest.mark.parametrize("engine_period", [None, 7e-9, 27e-9])
def test_every_register_block_answers_through_the_clock_crossing(engine_period):
    """Issue 22 item 1: with the engines in their own clock domain, the engine's and the
    self-test's registers (two slaves of the decoder, which needs each address held until its
    response) are written and read back across the crossing."""
    from bfly.hw.selftest_map import SELFTEST_BASE, ST_SEED
    cfg, regs = _cfg_regs()
    seed, shift = SELFTEST_BASE + ST_SEED.offset, regs["SHIFT"].offset
    frames = [write_cmd(seed, [0x1234, 77]), write_cmd(shift, [3, 4]), read_cmd(seed, 2),
              read_cmd(shift, 2), read_cmd(regs["ID"].offset, 1)]
    assert _replies(_run_link(cfg, frames, engine_period=engine_period)) == [
        (CMD["WRITE"], b"", "OK"), (CMD["WRITE"], b"", "OK"),
        (CMD["READ"], WORD.pack(0x1234) + WORD.pack(77), "OK"), (CMD["READ"], WORD.pack(3) + WORD.pack(4), "OK"),
        (CMD["READ"], WORD.pack(BFLY_ID), "OK")]


@pytest.mark.parametrize("engine_period", [None, 7e-9])
def test_short_self_test_runs_count_every_pixel(engine_period):
    """The self-test's counters at their edges (0, 1, 2 and 7 pixels), through the bridge and,
    with ``engine_period``, the clock crossing: its OUT and CHECKSUM are the model's, and a run
    of 0 pixels is done at once."""
    from bfly.hw.selftest_map import SELFTEST_BASE, ST_CTRL, ST_STATUS, ST_SEED, ST_OUT
    from bfly.sim.selftest import selftest_pixels, selftest_checksum
    cfg, regs = _cfg_regs()
    params = random_params(cfg, np.random.default_rng(12))
    load = [write_cmd(regs["WEIGHTS"].offset, param_words(cfg, params)),
            write_cmd(regs["SHIFT"].offset, params.shifts), write_cmd(regs["CTRL"].offset, [1])]
    counts = [0, 1, 2, 7]
    frames = list(load)
    for n in counts:
        frames += [write_cmd(SELFTEST_BASE + ST_SEED.offset, [9, n]),
                   write_cmd(SELFTEST_BASE + ST_CTRL.offset, [ST_CTRL.pack(start=1, engine=0)]), 300,
                   read_cmd(SELFTEST_BASE + ST_STATUS.offset, 1), read_cmd(SELFTEST_BASE + ST_OUT.offset, 3)]
    replies = _replies(_run_link(cfg, frames, engine_period=engine_period))[len(load):]
    for k, n in enumerate(counts):
        _, _, status, results = replies[4 * k:4 * k + 4]
        assert ST_STATUS.unpack(_words(status[1])[0]) == {"busy": 0, "done": 1}, n
        out, cycles, checksum = _words(results[1])
        want = selftest_checksum(cfg, engine_forward(cfg, params, selftest_pixels(cfg, 9, n)).y)
        assert (out, checksum) == (n, want), n
        assert (cycles == 0) if n == 0 else (n <= cycles < n + 40), (n, cycles)
