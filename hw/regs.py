"""The register bank: decodes the register bus against the declared register map
(``hw/regmap.py``), each register's behaviour chosen by its access kind:

- ``ro`` with a constant word (``ID``, ``CONFIG*``, ``FACTOR[l]``): the word from the
  configuration; ``ro`` without one (``STATUS``): each field reads the input port of its name;
- ``rw`` outside the parameter window (``SHIFT[l]``, ``EPI_CTRL``, ``OUT_SHIFT``): a shadow register
  of the register's width, driving an output port (:func:`shadow_port`);
- ``rw_clear`` (``SAT_COUNT[l]``): a saturating counter of the port's counts, cleared by a write;
- ``wo`` (``CTRL``): each one-bit field is a strobe ``<field>_stb`` when written with the bit set;
  reads answer 0;
- the parameter window (weights, epilogue multipliers and biases) is forwarded to the engine, whose
  blocks keep those shadow registers beside the multipliers that use them.
"""

from amaranth.hdl import Module, Signal, Cat, Const, Mux, Array, Shape
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out

from .regmap import register_map, config_words, constant_words, address_bits, param_window
from .arith import in_range, delay
from .axi import RegisterBus
from .ports import ParamPort

__all__ = ["RegisterBank", "shadow_port"]


def _or_all(values):
    result = values[0]
    for v in values[1:]:
        result = result | v
    return result

SAT_COUNT_BITS = 32
_NETLIST_NAMES = {"SHIFT": "shadow_sh"}      # a shadow register's name in the netlists so far


def shadow_port(reg):
    """The bank's port for a register held here: ``shadow_<name>`` for a shadow register,
    ``<name>`` for a counter; plural for an array (one element per word)."""
    base = reg.name.lower() + ("s" if reg.array else "")
    return base if reg.access == "rw_clear" else "shadow_" + base


class RegisterBank(wiring.Component):
    """Registers of the engine built from ``cfg`` whose latency is ``latency`` clocks.

    ``bus`` is the target side of a :class:`RegisterBus` (reads answer
    ``max(param_read_cycles, 4) + 2`` cycles after ``r_stb``, or that long after a commit in progress
    ends); the remaining ports face the engine. Shadow shifts are reset-less: a reset clears
    the stream, not the loaded parameters.
    """

    def __init__(self, cfg, latency, sat_count_shape, param_read_cycles):
        self._cfg = cfg
        self._latency = latency
        self._param_read = param_read_cycles
        regs = register_map(cfg)
        self._regs = {r.name: r for r in regs}
        self._shadows = [r for r in regs if r.access == "rw" and not r.window]
        self._strobes = [r for r in regs if r.access == "wo"]
        self._status = [r for r in regs if r.access == "ro" and r.name not in constant_words(cfg, 0)]
        (self._counter,) = [r for r in regs if r.access == "rw_clear"]
        _, n_params = param_window(cfg)
        ports = {
            "bus": In(RegisterBus(address_bits(cfg) - 2)),
            "params": Out(ParamPort(n_params, 32)),
        }
        for r in self._shadows:
            ports[shadow_port(r)] = Out(data.ArrayLayout(r.width, r.count) if r.array else r.width)
        ports.update({f.name + "_stb": Out(1) for r in self._strobes for f in r.fields})
        ports.update({f.name: In(f.width) for r in self._status for f in r.fields})
        ports[shadow_port(self._counter)] = In(data.ArrayLayout(sat_count_shape, self._counter.count))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        w_base, n_params = param_window(cfg)
        n_sat = self._counter.count
        # the shadow registers: one signal each, an array of words for an array register
        shadows = {}
        for r in sorted(self._shadows, key=lambda r: not r.array):     # (the netlists' order)
            port = getattr(self, shadow_port(r))
            name = _NETLIST_NAMES.get(r.name, r.name.lower())
            shadows[r.name] = Signal.like(port, name=name, reset_less=True)
            m.d.comb += port.eq(shadows[r.name])
        sat_counts = [Signal(SAT_COUNT_BITS, name=f"sat_count_{l}") for l in range(n_sat)]
        sat_clear = [Signal(name=f"sat_clear_{l}") for l in range(n_sat)]
        self._writes(m, w_base, w_base + n_params, shadows, sat_clear)
        self._counters(m, sat_counts, sat_clear)
        self._reads(m, w_base, w_base + n_params, shadows, sat_counts)
        return m

    def _writes(self, m, w_base, w_end, shadows, sat_clear):
        """Writes (the AXI shell holds them while a commit propagates). The word address is
        still for WRITE_SETUP clocks before the strobe, so it is decoded into registers first."""
        bus = self.bus
        w_in_window = Signal()
        p_addr = Signal.like(self.params.addr, name="p_addr")
        m.d.sync += [w_in_window.eq(in_range(bus.w_addr, w_base, w_end)), p_addr.eq(bus.w_addr - w_base)]
        m.d.comb += [
            bus.w_wait.eq(self.commit_busy),
            self.params.addr.eq(p_addr),
            self.params.data.eq(bus.w_data),
            self.params.en.eq(bus.w_stb & w_in_window),
        ]
        hits = []
        for r in self._regs.values():
            if r.access == "ro" or r.window:
                continue
            for i in range(r.count):
                hit = Signal(name=f"w_hit_{r.name.lower()}_{i}")
                m.d.sync += hit.eq(bus.w_addr == r.word + i)
                hits.append(hit)
                if r.access == "wo":
                    for f in r.fields:
                        # a write with the field's bit set, decoded ahead (the data is held
                        # too): the strobe is one gate after the write strobe
                        req = Signal(name=f"{f.name}_req")
                        m.d.sync += req.eq((bus.w_addr == r.word + i) & bus.w_data[f.lsb])
                        m.d.comb += getattr(self, f.name + "_stb").eq(bus.w_stb & req)
                elif r.access == "rw_clear":
                    # a clock after the write (registered: the counter's clear is a wide enable)
                    m.d.sync += sat_clear[i].eq(bus.w_stb & hit)
                else:
                    reg = shadows[r.name][i] if r.array else shadows[r.name]
                    with m.If(bus.w_stb & hit):
                        m.d.sync += reg.eq(bus.w_data[:len(reg)])
        m.d.comb += bus.w_err.eq(~(w_in_window | Cat(*hits).any()))

    def _counters(self, m, sat_counts, sat_clear):
        """The rw_clear counters: add each cycle's count, saturate at all ones, clear on write."""
        counts = getattr(self, shadow_port(self._counter))
        # Two 16-bit halves with the carry between them registered (short carry chains); the
        # high half takes hi + 1, kept in a register beside it (with counts below 2**15 a carry
        # comes at most every other clock, so it is up to date: no carry chain between the
        # carry and the count); a sticky overflow flag stops the count; what reads see is
        # rebuilt two clocks later (the halves and the overflow registered beside the counter,
        # then the all-ones choice).
        rare_carry = Shape.cast(counts.shape().elem_shape).width <= 15
        for l in range(len(sat_counts)):
            lo = Signal(16, name=f"sat_lo_{l}")
            carry = Signal(name=f"sat_carry_{l}")
            hi = Signal(16, name=f"sat_hi_{l}")
            full = Signal(name=f"sat_full_{l}")
            lo_sum = Signal(17, name=f"sat_lo_sum_{l}")
            hi_sum = Signal(17, name=f"sat_hi_sum_{l}")
            # the stage's count, registered here first: the stages are across the device
            count = Signal.like(counts[l], name=f"sat_in_{l}")
            m.d.sync += count.eq(counts[l])
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

    def _reads(self, m, w_base, w_end, shadows, sat_counts):
        """Reads, in ``max(param_read_cycles, 4) + 2`` register steps (the word address is held for the
        whole read): (1) each group of registers is looked up (from the bank's copy of the
        address), the engine decodes a parameter address; (2) the group that matched is kept,
        (3) combined, while the parameter is read in its block, the word waiting for it; (4) the
        parameter or the register is selected; (5) registered for the shell."""
        bus = self.bus
        m.d.comb += self.params.raddr.eq(bus.r_addr - w_base)
        # the bank's own copy of the read address (the bus's register also feeds the engine's
        # decode, across the device); the copy is a clock behind, which the wait for the engine's
        # answer below takes back
        r_addr = Signal.like(bus.r_addr, name="r_addr_here")
        m.d.sync += r_addr.eq(bus.r_addr)
        r_in_window = in_range(r_addr, w_base, w_end)
        # the scalar registers are words 0..15: the low four address bits pick the value (one
        # LUT per bit), the rest of the address only decides whether it is a hit
        # (the cases are disjoint; they are listed as the netlists always had them, the words
        # that are the same in every engine, then the configuration's, then the shadow registers)
        config = config_words(self._cfg, self._latency)
        scalars = sorted((r for r in self._regs.values() if not r.array),
                         key=lambda r: 2 if r.access == "rw" else int(r.name in config))
        scalar_words = {r.word: self._read_values(r, shadows, sat_counts)[0] for r in scalars}
        assert max(scalar_words) < 16
        scalar_value = Signal(32)
        known = Signal()
        with m.Switch(r_addr[:4]):
            for w, value in scalar_words.items():
                with m.Case(w):
                    m.d.comb += [scalar_value.eq(value), known.eq(1)]
        scalar_hit = known & (r_addr[4:] == 0)
        groups = [(scalar_value, scalar_hit)]
        for r in self._regs.values():
            if not r.array or r.window:
                continue
            values = self._read_values(r, shadows, sat_counts)
            hit = in_range(r_addr, r.word, r.word + len(values))
            value = Signal(32, name=f"r_{r.name.lower()}")
            m.d.comb += value.eq(Array(values)[(r_addr - r.word)[:(len(values) - 1).bit_length()]])
            groups.append((value, hit))
        self._read_steps(m, groups, r_in_window)

    def _read_values(self, r, shadows, sat_counts):
        """What each word of register ``r`` reads (one value per word)."""
        if r.access == "wo":
            return [Const(0, 32)] * r.count
        if r.access == "rw_clear":
            return sat_counts
        if r.access == "rw":
            return list(shadows[r.name]) if r.array else [shadows[r.name]]
        constants = constant_words(self._cfg, self._latency)
        if r.name in constants:
            return [Const(v, 32) for v in constants[r.name]]
        # a live ro register: each field reads the port of its name (gaps read 0)
        parts, pos = [], 0
        for f in sorted(r.fields, key=lambda f: f.lsb):
            if f.lsb > pos:
                parts.append(Const(0, f.lsb - pos))
            parts.append(getattr(self, f.name))
            pos = f.msb + 1
        return [Cat(*parts)]

    def _read_steps(self, m, groups, r_in_window):
        """Steps 1 to 5 of a read from ``groups`` (``(word, hit)`` per group of registers)."""
        bus = self.bus
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
        # steps 4 .. param_read_cycles + 1: the engine answers the parameter window
        # param_read_cycles clocks after the address; the other words (a clock behind it, from
        # the copy of the address) wait for it, or it for them
        steps = max(self._param_read, 4)
        wait = steps - 4
        param_rdata = delay(m, self.params.rdata, steps - self._param_read, "r_param_rdata")
        value_w = delay(m, value_2, wait, "r_value_w")
        param_w = delay(m, param_2, wait, "r_param_w")
        err_w = delay(m, err_2, wait, "r_err_w")
        value_3 = Signal(32)
        err_3 = Signal()
        m.d.sync += [value_3.eq(Mux(param_w, param_rdata, value_w)), err_3.eq(err_w)]
        # a read waits while a commit propagates (a folded stage's copy uses the read-back port)
        r_held = Signal()
        r_go = (bus.r_stb | r_held) & ~self.commit_busy
        m.d.sync += r_held.eq((bus.r_stb | r_held) & self.commit_busy)
        ack = delay(m, r_go, steps + 1, "r_ack")
        # then the bus
        m.d.sync += [bus.r_data.eq(value_3), bus.r_err.eq(err_3), bus.r_ack.eq(ack)]
