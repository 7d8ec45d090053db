"""The register bank: decodes the register bus against the table in ``gen/regmap.py``.

It holds the shadow shifts (and the epilogue's control word and output shift), the commit strobe,
status, the saturation counters and the read-only identification words; the parameter window
(weights, epilogue multipliers and biases) is forwarded to the engine, whose blocks keep those
shadow registers beside the multipliers that use them.
"""

from amaranth.hdl import Module, Signal, Cat, Const, Mux, Array, Shape
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out

from .regmap import register_map, config_words, address_bits, param_window, BFLY_ID, SHIFT_BITS
from .arith import in_range, delay
from .axi import RegisterBus
from .engine import PARAM_READ_CYCLES
from .epilogue import EPI_CTRL_BITS

__all__ = ["RegisterBank"]


def _or_all(values):
    result = values[0]
    for v in values[1:]:
        result = result | v
    return result

SAT_COUNT_BITS = 32


class RegisterBank(wiring.Component):
    """Registers of the engine built from ``cfg`` whose latency is ``latency`` clocks.

    ``bus`` is the target side of a :class:`RegisterBus` (reads answer
    ``PARAM_READ_CYCLES + 2`` cycles after ``r_stb``, or that long after a commit in progress
    ends); the remaining ports face the engine. Shadow shifts are reset-less: a reset clears
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

        # --- writes (the AXI shell holds them while a commit propagates). The word address is
        # still for WRITE_SETUP clocks before the strobe, so it is decoded into registers first.
        w_in_window = Signal()
        p_addr = Signal.like(self.p_addr)
        m.d.sync += [w_in_window.eq(in_range(bus.w_addr, w_base, w_end)), p_addr.eq(bus.w_addr - w_base)]
        m.d.comb += [
            bus.w_wait.eq(self.commit_busy),
            self.p_addr.eq(p_addr),
            self.p_data.eq(bus.w_data),
            self.p_en.eq(bus.w_stb & w_in_window),
        ]
        targets = [("CTRL", 0, None)] + [(name, 0, reg) for name, reg in scalars] \
            + [("SHIFT", l, shadow_sh[l]) for l in range(cfg.n_stages)] \
            + [("SAT_COUNT", l, None) for l in range(n_sat)]
        hits = []
        for name, i, reg in targets:
            hit = Signal(name=f"w_hit_{name.lower()}_{i}")
            m.d.sync += hit.eq(bus.w_addr == word(name, i))
            hits.append(hit)
            if name == "CTRL":
                # a write of CTRL with bit 0 set, decoded ahead (the data is held too): the
                # commit strobe is one gate after the write strobe
                commit_req = Signal(name="commit_req")
                m.d.sync += commit_req.eq((bus.w_addr == word(name, i)) & bus.w_data[0])
                m.d.comb += self.commit_stb.eq(bus.w_stb & commit_req)
            elif name == "SAT_COUNT":
                # a clock after the write (registered: the counter's clear is a wide enable)
                m.d.sync += sat_clear[i].eq(bus.w_stb & hit)
            else:
                with m.If(bus.w_stb & hit):
                    m.d.sync += reg.eq(bus.w_data[:len(reg)])
        m.d.comb += bus.w_err.eq(~(w_in_window | Cat(*hits).any()))

        # --- saturation counters: add each cycle's count, saturate at all ones, clear on write.
        # Two 16-bit halves with the carry between them registered (short carry chains); the
        # high half takes hi + 1, kept in a register beside it (with counts below 2**15 a carry
        # comes at most every other clock, so it is up to date: no carry chain between the
        # carry and the count); a sticky overflow flag stops the count; what reads see is
        # rebuilt two clocks later (the halves and the overflow registered beside the counter,
        # then the all-ones choice).
        rare_carry = Shape.cast(self.sat_counts.shape().elem_shape).width <= 15
        for l in range(n_sat):
            lo = Signal(16, name=f"sat_lo_{l}")
            carry = Signal(name=f"sat_carry_{l}")
            hi = Signal(16, name=f"sat_hi_{l}")
            full = Signal(name=f"sat_full_{l}")
            lo_sum = Signal(17, name=f"sat_lo_sum_{l}")
            hi_sum = Signal(17, name=f"sat_hi_sum_{l}")
            # the stage's count, registered here first: the stages are across the device
            count = Signal.like(self.sat_counts[l], name=f"sat_in_{l}")
            m.d.sync += count.eq(self.sat_counts[l])
            m.d.comb += lo_sum.eq(lo + count)
            if rare_carry:
                hi_inc = Signal(17, name=f"sat_hi_inc_{l}", init=1)
                m.d.sync += hi_inc.eq(hi + 1)
                m.d.comb += hi_sum.eq(Mux(carry, hi_inc, hi))
            else:
                m.d.comb += hi_sum.eq(hi + carry)
            with m.If(sat_clear[l]):
                m.d.sync += [lo.eq(0), carry.eq(0), hi.eq(0), full.eq(0)]
            with m.Elif(~full):
                m.d.sync += [lo.eq(lo_sum[:16]), carry.eq(lo_sum[16]), hi.eq(hi_sum[:16]),
                             full.eq(hi_sum[16])]
            view_lo = Signal(16, name=f"sat_view_lo_{l}")
            view_hi = Signal(16, name=f"sat_view_hi_{l}")
            view_full = Signal(name=f"sat_view_full_{l}")
            m.d.sync += [view_lo.eq(lo), view_hi.eq(hi_sum[:16]), view_full.eq(full | hi_sum[16])]
            m.d.sync += sat_counts[l].eq(Mux(view_full, Const(-1, SAT_COUNT_BITS), Cat(view_lo, view_hi)))

        # --- reads, in PARAM_READ_CYCLES + 2 register steps (the word address is held for the
        # whole read): (1) each group of registers is looked up (from the bank's copy of the
        # address), the engine decodes a parameter address; (2) the group that matched is kept,
        # (3) combined, while the parameter is read in its block, the word waiting for it; (4) the
        # parameter or the register is selected; (5) registered for the shell.
        m.d.comb += self.p_raddr.eq(bus.r_addr - w_base)
        # the bank's own copy of the read address (the bus's register also feeds the engine's
        # decode, across the device); the copy is a clock behind, which the wait for the engine's
        # answer below takes back
        r_addr = Signal.like(bus.r_addr, name="r_addr_here")
        m.d.sync += r_addr.eq(bus.r_addr)
        r_in_window = in_range(r_addr, w_base, w_end)
        # the scalar registers are words 0..15: the low four address bits pick the value (one
        # LUT per bit), the rest of the address only decides whether it is a hit
        scalar_words = {word("ID"): Const(BFLY_ID, 32), word("CTRL"): Const(0, 32),
                        word("STATUS"): Cat(self.commit_busy, self.stream_busy)}
        scalar_words.update({word(name): Const(words[name], 32)
                             for name in ("CONFIG0", "CONFIG1", "CONFIG2", "CONFIG3")})
        scalar_words.update({word(name): reg for name, reg in scalars})
        assert max(scalar_words) < 16
        scalar_value = Signal(32)
        known = Signal()
        with m.Switch(r_addr[:4]):
            for w, value in scalar_words.items():
                with m.Case(w):
                    m.d.comb += [scalar_value.eq(value), known.eq(1)]
        scalar_hit = known & (r_addr[4:] == 0)
        groups = [(scalar_value, scalar_hit)]
        for name, values in (("FACTOR", [Const(v, 32) for v in words["FACTOR"]]),
                             ("SHIFT", list(shadow_sh)), ("SAT_COUNT", sat_counts)):
            lo = word(name)
            hit = in_range(r_addr, lo, lo + len(values))
            value = Signal(32, name=f"r_{name.lower()}")
            m.d.comb += value.eq(Array(values)[(r_addr - lo)[:(len(values) - 1).bit_length()]])
            groups.append((value, hit))
        # step 1: each group's word and whether the address is in it
        values_0 = [Signal(32, name=f"r_value_0_{i}") for i in range(len(groups))]
        hits_0 = [Signal(name=f"r_hit_0_{i}") for i in range(len(groups))]
        param_0 = Signal()
        m.d.sync += [v.eq(g) for v, (g, _) in zip(values_0, groups)]
        m.d.sync += [h0.eq(h) for h0, (_, h) in zip(hits_0, groups)]
        m.d.sync += param_0.eq(r_in_window)
        # step 2: the matching group's word (others zero); the parameter window's word
        values_1 = [Signal(32, name=f"r_value_1_{i}") for i in range(len(groups))]
        param_1 = Signal()
        err_1 = Signal()
        m.d.sync += [v1.eq(Mux(h0, v0, 0)) for v1, v0, h0 in zip(values_1, values_0, hits_0)]
        m.d.sync += [param_1.eq(param_0), err_1.eq(~(param_0 | Cat(*hits_0).any()))]
        # step 3
        value_2 = Signal(32)
        param_2 = Signal()
        err_2 = Signal()
        m.d.sync += [value_2.eq(_or_all(values_1)), param_2.eq(param_1), err_2.eq(err_1)]
        # steps 4 .. PARAM_READ_CYCLES + 1: the engine answers the parameter window
        # PARAM_READ_CYCLES clocks after the address; the other words (a clock behind it, from
        # the copy of the address) wait for it
        wait = PARAM_READ_CYCLES - 4
        assert wait >= 0
        value_w = delay(m, value_2, wait, "r_value_w")
        param_w = delay(m, param_2, wait, "r_param_w")
        err_w = delay(m, err_2, wait, "r_err_w")
        value_3 = Signal(32)
        err_3 = Signal()
        m.d.sync += [value_3.eq(Mux(param_w, self.p_rdata, value_w)), err_3.eq(err_w)]
        # a read waits while a commit propagates (a folded stage's copy uses the read-back port)
        r_held = Signal()
        r_go = (bus.r_stb | r_held) & ~self.commit_busy
        m.d.sync += r_held.eq((bus.r_stb | r_held) & self.commit_busy)
        ack = delay(m, r_go, PARAM_READ_CYCLES + 1, "r_ack")
        # then the bus
        m.d.sync += [bus.r_data.eq(value_3), bus.r_err.eq(err_3), bus.r_ack.eq(ack)]
        return m
