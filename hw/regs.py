"""The register bank: shadow weights and shifts, commit, status, saturation counters and the
read-only identification words, decoded from the table in ``gen/regmap.py``.
"""

from amaranth.hdl import Module, Signal, Cat, Const, signed
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out

from gen.regmap import register_map, config_words, address_bits, BFLY_ID, SHIFT_BITS
from .axi import RegisterBus

__all__ = ["RegisterBank"]

SAT_COUNT_BITS = 32


class RegisterBank(wiring.Component):
    """Registers of the engine built from ``cfg`` whose latency is ``latency`` clocks.

    ``bus`` is the target side of a :class:`RegisterBus`; the remaining ports face the engine.
    Shadow registers are reset-less: a reset clears the stream, not the loaded parameters.
    """

    def __init__(self, cfg, latency, sat_count_shape):
        self._cfg = cfg
        self._latency = latency
        self._regs = {r.name: r for r in register_map(cfg)}
        super().__init__({
            "bus": In(RegisterBus(address_bits(cfg) - 2)),
            "shadow_weights": Out(data.ArrayLayout(signed(cfg.weight_bits), cfg.n_weights)),
            "shadow_shifts": Out(data.ArrayLayout(SHIFT_BITS, cfg.n_stages)),
            "commit_stb": Out(1),
            "commit_busy": In(1),
            "stream_busy": In(1),
            "sat_counts": In(data.ArrayLayout(sat_count_shape, cfg.n_stages)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, regs, bus = self._cfg, self._regs, self.bus

        def word(name, i=0):
            return regs[name].offset // 4 + i

        words = config_words(cfg, self._latency)
        shadow_w = Signal.like(self.shadow_weights, reset_less=True)
        shadow_sh = Signal.like(self.shadow_shifts, reset_less=True)
        m.d.comb += [self.shadow_weights.eq(shadow_w), self.shadow_shifts.eq(shadow_sh)]
        sat_counts = [Signal(SAT_COUNT_BITS, name=f"sat_count_{l}") for l in range(cfg.n_stages)]
        sat_clear = [Signal(name=f"sat_clear_{l}") for l in range(cfg.n_stages)]

        # --- writes (the AXI shell holds them while a commit propagates)
        m.d.comb += [bus.w_wait.eq(self.commit_busy), bus.w_err.eq(1)]
        with m.If(bus.w_stb):
            with m.Switch(bus.w_addr):
                with m.Case(word("CTRL")):
                    m.d.comb += [bus.w_err.eq(0), self.commit_stb.eq(bus.w_data[0])]
                for l in range(cfg.n_stages):
                    with m.Case(word("SHIFT", l)):
                        m.d.comb += bus.w_err.eq(0)
                        m.d.sync += shadow_sh[l].eq(bus.w_data[:SHIFT_BITS])
                    with m.Case(word("SAT_COUNT", l)):
                        m.d.comb += [bus.w_err.eq(0), sat_clear[l].eq(1)]
                for i in range(cfg.n_weights):
                    with m.Case(word("WEIGHTS", i)):
                        m.d.comb += bus.w_err.eq(0)
                        m.d.sync += shadow_w[i].eq(bus.w_data[:cfg.weight_bits])
        with m.Else():
            m.d.comb += bus.w_err.eq(0)

        # --- saturation counters: add each cycle's count, saturate at all ones, clear on write
        for l in range(cfg.n_stages):
            total = Signal(SAT_COUNT_BITS + 1, name=f"sat_sum_{l}")
            m.d.comb += total.eq(sat_counts[l] + self.sat_counts[l])
            with m.If(sat_clear[l]):
                m.d.sync += sat_counts[l].eq(0)
            with m.Elif(total[SAT_COUNT_BITS]):
                m.d.sync += sat_counts[l].eq(Const(-1, SAT_COUNT_BITS))
            with m.Else():
                m.d.sync += sat_counts[l].eq(total[:SAT_COUNT_BITS])

        # --- reads: registered on r_stb
        r_next = Signal(32)
        m.d.comb += bus.r_err.eq(0)
        with m.Switch(bus.r_addr):
            with m.Case(word("ID")):
                m.d.comb += r_next.eq(BFLY_ID)
            for name in ("CONFIG0", "CONFIG1", "CONFIG2"):
                with m.Case(word(name)):
                    m.d.comb += r_next.eq(words[name])
            with m.Case(word("CTRL")):
                m.d.comb += r_next.eq(0)
            with m.Case(word("STATUS")):
                m.d.comb += r_next.eq(Cat(self.commit_busy, self.stream_busy))
            for l in range(cfg.n_stages):
                with m.Case(word("FACTOR", l)):
                    m.d.comb += r_next.eq(words["FACTOR"][l])
                with m.Case(word("SHIFT", l)):
                    m.d.comb += r_next.eq(shadow_sh[l])
                with m.Case(word("SAT_COUNT", l)):
                    m.d.comb += r_next.eq(sat_counts[l])
            for i in range(cfg.n_weights):
                with m.Case(word("WEIGHTS", i)):
                    m.d.comb += r_next.eq(shadow_w[i])   # sign-extends
            with m.Default():
                m.d.comb += [r_next.eq(0), bus.r_err.eq(1)]
        with m.If(bus.r_stb):
            m.d.sync += bus.r_data.eq(r_next)
        return m
