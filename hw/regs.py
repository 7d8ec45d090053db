"""The register bank: decodes the register bus against the table in ``gen/regmap.py``.

It holds the shadow shifts (and the epilogue's control word and output shift), the commit strobe,
status, the saturation counters and the read-only identification words; the parameter window
(weights, epilogue multipliers and biases) is forwarded to the engine, whose blocks keep those
shadow registers beside the multipliers that use them.
"""

from amaranth.hdl import Module, Signal, Cat, Const, Mux
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out

from gen.regmap import register_map, config_words, address_bits, param_window, BFLY_ID, SHIFT_BITS
from .axi import RegisterBus
from .epilogue import EPI_CTRL_BITS

__all__ = ["RegisterBank"]

SAT_COUNT_BITS = 32


class RegisterBank(wiring.Component):
    """Registers of the engine built from ``cfg`` whose latency is ``latency`` clocks.

    ``bus`` is the target side of a :class:`RegisterBus` (reads answer two cycles after
    ``r_stb``, or two cycles after a commit in progress ends); the remaining ports face the engine. Shadow shifts are reset-less: a reset clears
    the stream, not the loaded parameters.
    """

    def __init__(self, cfg, latency, sat_count_shape):
        self._cfg = cfg
        self._latency = latency
        self._regs = {r.name: r for r in register_map(cfg)}
        _, n_params = param_window(cfg)
        ports = {
            "bus": In(RegisterBus(address_bits(cfg) - 2)),
            "p_addr": Out(range(n_params)),
            "p_data": Out(32),
            "p_en": Out(1),
            "p_raddr": Out(range(n_params)),
            "p_rdata": In(32),
            "shadow_shifts": Out(data.ArrayLayout(SHIFT_BITS, cfg.n_stages)),
            "commit_stb": Out(1),
            "commit_busy": In(1),
            "stream_busy": In(1),
            "sat_counts": In(data.ArrayLayout(sat_count_shape, self._regs["SAT_COUNT"].count)),
        }
        if cfg.epilogue:
            ports["shadow_epi_ctrl"] = Out(EPI_CTRL_BITS)
            ports["shadow_out_shift"] = Out(SHIFT_BITS)
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        cfg, regs, bus = self._cfg, self._regs, self.bus

        def word(name, i=0):
            return regs[name].offset // 4 + i

        w_base, n_params = param_window(cfg)
        w_end = w_base + n_params
        n_sat = regs["SAT_COUNT"].count
        words = config_words(cfg, self._latency)
        shadow_sh = Signal.like(self.shadow_shifts, reset_less=True)
        m.d.comb += self.shadow_shifts.eq(shadow_sh)
        sat_counts = [Signal(SAT_COUNT_BITS, name=f"sat_count_{l}") for l in range(n_sat)]
        sat_clear = [Signal(name=f"sat_clear_{l}") for l in range(n_sat)]
        scalars = []    # (register name, shadow register) of the epilogue's scalar parameters
        if cfg.epilogue:
            epi_ctrl = Signal(EPI_CTRL_BITS, reset_less=True)
            out_shift = Signal(SHIFT_BITS, reset_less=True)
            m.d.comb += [self.shadow_epi_ctrl.eq(epi_ctrl), self.shadow_out_shift.eq(out_shift)]
            scalars = [("EPI_CTRL", epi_ctrl), ("OUT_SHIFT", out_shift)]

        # --- writes (the AXI shell holds them while a commit propagates)
        w_in_window = (bus.w_addr >= w_base) & (bus.w_addr < w_end)
        m.d.comb += [
            bus.w_wait.eq(self.commit_busy),
            self.p_addr.eq(bus.w_addr - w_base),
            self.p_data.eq(bus.w_data),
            self.p_en.eq(bus.w_stb & w_in_window),
            bus.w_err.eq(~w_in_window),
        ]
        with m.If(bus.w_stb):
            with m.Switch(bus.w_addr):
                with m.Case(word("CTRL")):
                    m.d.comb += [bus.w_err.eq(0), self.commit_stb.eq(bus.w_data[0])]
                for name, reg in scalars:
                    with m.Case(word(name)):
                        m.d.comb += bus.w_err.eq(0)
                        m.d.sync += reg.eq(bus.w_data[:len(reg)])
                for l in range(cfg.n_stages):
                    with m.Case(word("SHIFT", l)):
                        m.d.comb += bus.w_err.eq(0)
                        m.d.sync += shadow_sh[l].eq(bus.w_data[:SHIFT_BITS])
                for l in range(n_sat):
                    with m.Case(word("SAT_COUNT", l)):
                        m.d.comb += [bus.w_err.eq(0), sat_clear[l].eq(1)]

        # --- saturation counters: add each cycle's count, saturate at all ones, clear on write
        for l in range(n_sat):
            total = Signal(SAT_COUNT_BITS + 1, name=f"sat_sum_{l}")
            m.d.comb += total.eq(sat_counts[l] + self.sat_counts[l])
            with m.If(sat_clear[l]):
                m.d.sync += sat_counts[l].eq(0)
            with m.Elif(total[SAT_COUNT_BITS]):
                m.d.sync += sat_counts[l].eq(Const(-1, SAT_COUNT_BITS))
            with m.Else():
                m.d.sync += sat_counts[l].eq(total[:SAT_COUNT_BITS])

        # --- reads: registers decoded here at the first edge after the read may go, weights come from the engine
        # (registered in their stage); the answer is selected and registered at the second edge
        r_value = Signal(32)
        r_err = Signal()
        r_in_window = (bus.r_addr >= w_base) & (bus.r_addr < w_end)
        m.d.comb += [self.p_raddr.eq(bus.r_addr - w_base), r_err.eq(~r_in_window)]
        with m.Switch(bus.r_addr):
            with m.Case(word("ID")):
                m.d.comb += [r_value.eq(BFLY_ID), r_err.eq(0)]
            for name in ("CONFIG0", "CONFIG1", "CONFIG2", "CONFIG3"):
                with m.Case(word(name)):
                    m.d.comb += [r_value.eq(words[name]), r_err.eq(0)]
            with m.Case(word("CTRL")):
                m.d.comb += [r_value.eq(0), r_err.eq(0)]
            with m.Case(word("STATUS")):
                m.d.comb += [r_value.eq(Cat(self.commit_busy, self.stream_busy)), r_err.eq(0)]
            for name, reg in scalars:
                with m.Case(word(name)):
                    m.d.comb += [r_value.eq(reg), r_err.eq(0)]
            for l in range(cfg.n_stages):
                with m.Case(word("FACTOR", l)):
                    m.d.comb += [r_value.eq(words["FACTOR"][l]), r_err.eq(0)]
                with m.Case(word("SHIFT", l)):
                    m.d.comb += [r_value.eq(shadow_sh[l]), r_err.eq(0)]
            for l in range(n_sat):
                with m.Case(word("SAT_COUNT", l)):
                    m.d.comb += [r_value.eq(sat_counts[l]), r_err.eq(0)]
        value_1 = Signal(32)
        err_1 = Signal()
        param_1 = Signal()
        ack_1 = Signal()
        # a read waits while a commit propagates (a folded stage's copy uses the read-back port)
        r_held = Signal()
        r_go = (bus.r_stb | r_held) & ~self.commit_busy
        m.d.sync += r_held.eq((bus.r_stb | r_held) & self.commit_busy)
        m.d.sync += [value_1.eq(r_value), err_1.eq(r_err), param_1.eq(r_in_window),
                     ack_1.eq(r_go)]
        m.d.sync += [bus.r_data.eq(Mux(param_1, self.p_rdata, value_1)), bus.r_err.eq(err_1),
                     bus.r_ack.eq(ack_1)]
        return m
