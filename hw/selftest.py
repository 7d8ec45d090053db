"""The board's self-test (``hw/selftest_map.py`` declares it): a pseudo-random pixel source and a
checksum sink that an engine of the board streams between at full clock, with its registers
behind an AXI4-Lite slave.

- ``px``: the generated pixels (``pixel_bits`` wide: the widest engine's input), offered every
  clock until ``ST_PIXELS`` have been taken;
- ``result``: the chosen engine's output pixels (``result_bits`` wide, zero above that
  engine's), always taken, folded into the checksum;
- ``busy`` and ``engine``: the board routes the engine ``engine`` names to these ports while
  ``busy`` (and to the host bridge otherwise).
"""

from amaranth.hdl import Module, Signal, Cat, Mux
from amaranth.lib import wiring, stream
from amaranth.lib.wiring import In, Out

from .axi import AXI4Lite, AXI4LiteSlave
from .hostlink import ENGINE_BITS
from .selftest_map import (XORSHIFT, SEED_STRIDE, SELFTEST_REGISTERS, lane_offset, ST_CTRL,
                           ST_STATUS, ST_SEED, ST_PIXELS, ST_OUT, ST_CYCLES, ST_CHECKSUM)

__all__ = ["SelfTest", "SELFTEST_ADDRESS_BITS"]

#: byte address bits of the self-test's registers
SELFTEST_ADDRESS_BITS = (max(r.end for r in SELFTEST_REGISTERS) - 1).bit_length()


def _xorshift(x):
    a, b, c = XORSHIFT
    x = x ^ (x << a)[:32]
    x = x ^ (x >> b)
    return x ^ (x << c)[:32]


class SelfTest(wiring.Component):
    """The self-test of a board whose widest engine takes ``pixel_bits`` and gives
    ``result_bits`` (see the module docstring)."""

    def __init__(self, pixel_bits, result_bits):
        self._pixel_bits, self._result_bits = pixel_bits, result_bits
        self._lanes = -(-pixel_bits // 32)
        super().__init__({
            "axil": In(AXI4Lite(SELFTEST_ADDRESS_BITS)),
            "px": Out(stream.Signature(pixel_bits)),
            "result": In(stream.Signature(result_bits, always_ready=True)),
            "busy": Out(1),
            "engine": Out(ENGINE_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.slave = slave = AXI4LiteSlave(SELFTEST_ADDRESS_BITS)
        wiring.connect(m, wiring.flipped(self.axil), slave.axil)
        bus = slave.bus
        seed = Signal(32)
        count = Signal(32)
        fed = Signal(32)
        out = Signal(32)
        cycles = Signal(32)
        checksum = Signal(32)
        done = Signal()
        lanes = [Signal(32, name=f"lane_{j}") for j in range(self._lanes)]
        start = Signal()

        # --- registers: written a clock after the strobe, read back at once
        words = {ST_SEED.word: seed, ST_PIXELS.word: count, ST_OUT.word: out, ST_CYCLES.word: cycles,
                 ST_CHECKSUM.word: checksum,
                 ST_STATUS.word: Cat(self.busy, done)[:ST_STATUS.width]}
        assert ST_STATUS["busy"].lsb == 0 and ST_STATUS["done"].lsb == 1
        known = set(words) | {ST_CTRL.word}
        m.d.comb += bus.w_err.eq(~Cat(*(bus.w_addr == w for w in known)).any()
                                 | Cat(*(bus.w_addr == r.word for r in SELFTEST_REGISTERS
                                         if r.access == "ro")).any())
        with m.If(bus.w_stb & ~bus.w_err):
            with m.Switch(bus.w_addr):
                with m.Case(ST_SEED.word):
                    m.d.sync += seed.eq(bus.w_data)
                with m.Case(ST_PIXELS.word):
                    m.d.sync += count.eq(bus.w_data)
                with m.Case(ST_CTRL.word):
                    f_start, f_engine = ST_CTRL["start"], ST_CTRL["engine"]
                    # the start is a register: the write's decode stays off the counters' enables
                    m.d.sync += start.eq(bus.w_data[f_start.lsb] & ~self.busy)
                    with m.If(bus.w_data[f_start.lsb] & ~self.busy):
                        m.d.sync += self.engine.eq(bus.w_data[f_engine.lsb:f_engine.msb + 1])
        with m.If(start):
            m.d.sync += start.eq(0)
        r_data = Signal(32)
        with m.Switch(bus.r_addr):
            for w, v in words.items():
                with m.Case(w):
                    m.d.comb += r_data.eq(v)
        m.d.sync += [bus.r_ack.eq(bus.r_stb), bus.r_data.eq(r_data),
                     bus.r_err.eq(~Cat(*(bus.r_addr == w for w in known)).any())]

        # --- the run: the generator offers a pixel every clock until `count` are taken; the
        # checksum folds every result; done once `count` results are in. Down-counters with
        # their "one left" flags in registers keep the comparisons off the handshakes' paths.
        # each lane's first state, kept ready from the seed (written long before a start) in
        # two register steps: the lane's seed, then its first state
        firsts = [Signal(32, name=f"first_{j}") for j in range(self._lanes)]
        for j, first in enumerate(firsts):
            s = Signal(32, name=f"lane_seed_{j}")
            m.d.sync += s.eq(Mux(seed == lane_offset(j), SEED_STRIDE, seed ^ lane_offset(j)))  # (selftest_map.lane_seed)
            m.d.sync += first.eq(_xorshift(s))
        to_feed, to_get = Signal(32), Signal(32)
        feeding, last_one, cycles_full = Signal(), Signal(), Signal()
        with m.If(start):
            m.d.sync += [fed.eq(0), out.eq(0), cycles.eq(0), checksum.eq(0), cycles_full.eq(0),
                         to_feed.eq(count), to_get.eq(count), feeding.eq(count != 0),
                         last_one.eq(count == 1), self.busy.eq(count != 0), done.eq(count == 0)]
            m.d.sync += [lane.eq(first) for lane, first in zip(lanes, firsts)]
        m.d.comb += [self.px.payload.eq(Cat(*lanes)[:self._pixel_bits]),
                     self.px.valid.eq(self.busy & feeding)]
        with m.If(self.px.valid & self.px.ready):
            m.d.sync += [fed.eq(fed + 1), to_feed.eq(to_feed - 1), feeding.eq(to_feed != 1)]
            m.d.sync += [lane.eq(_xorshift(lane)) for lane in lanes]
        with m.If(self.busy):
            with m.If(~cycles_full):
                m.d.sync += [cycles.eq(cycles + 1), cycles_full.eq(cycles == 0xFFFFFFFE)]
            with m.If(self.result.valid):
                pieces = [self.result.payload[i:i + 32] for i in range(0, self._result_bits, 32)]
                folded = pieces[0]
                for p in pieces[1:]:
                    folded = folded ^ p
                m.d.sync += [checksum.eq(Cat(checksum[31], checksum[:31]) ^ folded), out.eq(out + 1),
                             to_get.eq(to_get - 1), last_one.eq(to_get == 2)]
                with m.If(last_one):
                    m.d.sync += [self.busy.eq(0), done.eq(1)]
        return m
