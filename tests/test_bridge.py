"""The board top (UART + host bridge + engine) in Amaranth's simulator, bit by bit on the UART:
register reads and writes, a STREAM, and damaged frames."""

import struct

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from bfly.hw.config import EngineConfig
from bfly.hw.hostlink import (crc16, CMD, MAX_PAYLOAD, MAX_STREAM_PIXELS, HEAD_BYTES, CRC,
                              stream_batch, stream_payload_bytes)
from bfly.hw.regmap import BFLY_ID, register_map, config_words
from bfly.hw.board import BoardTop, uart_divisor
from bfly.hw.bridge import crc16_step
from bfly.sim.model import random_params, engine_forward
from bfly.sim.words import pack_pixels, unpack_pixels, param_words
from bfly.sw.link import read_cmd, write_cmd, stream_cmd, decode_reply, LinkError
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
    assert len(frames[0][0]) == HEAD_BYTES + stream_payload_bytes(batch, 4) + CRC.size
    too_long = stream_cmd(bytes(4 * (batch + 1)), batch + 1, True)
    rd = _Reader(_run_board(cfg, [write_cmd(regs["WEIGHTS"].offset, param_words(cfg, params)),
                                  write_cmd(regs["SHIFT"].offset, params.shifts),
                                  write_cmd(regs["CTRL"].offset, [1])]
                            + [f for f, _ in frames] + [too_long]))
    for _ in range(3):
        assert decode_reply(rd, CMD["WRITE"]) == b""
    out = decode_reply(rd, CMD["STREAM"]) + decode_reply(rd, CMD["STREAM"])
    got = unpack_pixels([int.from_bytes(out[i:i + 4], "little") for i in range(0, len(out), 4)], 4, 8)
    np.testing.assert_array_equal(got, engine_forward(cfg, params, pixels).y)
    with pytest.raises(LinkError) as e:
        decode_reply(rd, CMD["STREAM"])
    assert e.value.status == "BAD_LEN"
