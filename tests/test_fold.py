"""The fold schedule of a folded stage (bfly.hw.fold), exhaustively over factors and foldings, and
the hardware's weight-address decode (bfly.hw.folded.decode) against it."""

import itertools
from collections import Counter

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from bfly.hw.config import ConfigError, EngineConfig, Factor
from bfly.hw.connectivity import input_channel, node_coords
from bfly.hw.fold import FoldSchedule
from bfly.hw.folded import decode


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def _factor_schedules():
    """Every folding (lanes dividing p, simd dividing s) of many small factors."""
    for b, r, s, t in itertools.product((1, 2, 3, 4), (1, 2, 3, 4, 8), (1, 2, 3, 4, 8), (1, 2, 3, 4)):
        f = Factor(b=b, r=r, s=s, t=t)
        if f.p > 64:
            continue
        for lanes in _divisors(f.p):
            for simd in _divisors(f.s):
                yield FoldSchedule(f, lanes, simd, (f.p // lanes) * (f.s // simd))


CHAINS = [
    lambda **kw: EngineConfig.bft(16, 4, **kw),
    lambda **kw: EngineConfig.bft(64, 4, **kw),
    lambda **kw: EngineConfig.bft(8, 2, **kw),
    lambda **kw: EngineConfig.mixed_radix([2, 3, 2], **kw),
    lambda **kw: EngineConfig.from_chain([[8, 16, 1, 2, 4], [12, 8, 3, 2, 2]], **kw),
    lambda **kw: EngineConfig.dense(8, **kw),
    lambda **kw: EngineConfig.dense(6, n_out=5, **kw),
]


def _config_schedules():
    """Every stage of every folding that EngineConfig accepts for the chains above."""
    for make in CHAINS:
        base = make()
        max_p, max_s = max(f.p for f in base.factors), max(f.s for f in base.factors)
        for lanes in range(0, max_p + 1):
            for simd in range(0, max_s + 1):
                try:
                    cfg = make(lanes=lanes, simd=simd)
                except ConfigError:
                    continue
                for index in range(cfg.n_stages):
                    yield cfg, index


FACTOR_SCHEDULES = list(_factor_schedules())
CONFIG_SCHEDULES = list(_config_schedules())
SCHEDULES = FACTOR_SCHEDULES + [FoldSchedule.of(cfg, i) for cfg, i in CONFIG_SCHEDULES]


def test_the_sweep_covers_both_orders_and_accumulation():
    assert len(FACTOR_SCHEDULES) > 1000 and len(CONFIG_SCHEDULES) > 100
    assert any(s.grouped for s in SCHEDULES) and any(not s.grouped for s in SCHEDULES)
    assert any(s.folds > 1 and s.chunks > 1 for s in SCHEDULES)
    # a word address that is not a concatenation (folds not a power of two)
    assert any(s.folds & (s.folds - 1) for s in SCHEDULES)


def test_every_weight_lives_at_exactly_one_place():
    for s in SCHEDULES:
        f = s.factor
        held = Counter(s.weight(lane, word, slot) for lane in range(s.lanes)
                       for word in range(s.interval) for slot in range(s.simd))
        assert sorted(held) == list(range(f.n_weights)), s.__dict__
        assert set(held.values()) == {1}


def test_placement_is_the_inverse_of_the_memory_layout():
    for s in SCHEDULES:
        for index in range(s.factor.n_weights):
            lane, word, slot = s.placement(index)
            assert 0 <= lane < s.lanes and 0 <= word < s.interval and 0 <= slot < s.simd
            assert s.weight(lane, word, slot) == index


def test_every_node_input_pair_is_computed_once_per_pixel():
    for s in SCHEDULES:
        f = s.factor
        pairs = Counter()
        for lane in range(s.lanes):
            for phase in range(s.interval):
                o = s.node_at(lane, phase)
                for slot in range(s.simd):
                    j = s.input_index(phase, slot)
                    pairs[o, j] += 1
                    assert s.channel(lane, slot, phase) == input_channel(f, o, j)
                    # the weight it multiplies is the one in the lane's memory word of the phase
                    assert s.weight(lane, phase, slot) == o * f.s + j
        assert sorted(pairs) == [(o, j) for o in range(f.p) for j in range(f.s)]
        assert set(pairs.values()) == {1}


def test_node_order_is_a_permutation_with_the_group_rule():
    for s in SCHEDULES:
        f = s.factor
        order = [s.node(lane, chunk) for lane in range(s.lanes) for chunk in range(s.chunks)]
        assert sorted(order) == list(range(f.p))
        for o in range(f.p):
            assert s.node(*s.lane_chunk(o)) == o
        if s.grouped:
            # the r nodes that read the same inputs (block and u) are consecutive chunks of a lane
            for lane in range(s.lanes):
                for c in range(0, s.chunks, f.r):
                    coords = [node_coords(f, s.node(lane, c + i)) for i in range(f.r)]
                    assert len({(blk, u) for blk, _, u in coords}) == 1
                    assert [i for _, i, _ in coords] == list(range(f.r))
        else:
            assert order == list(range(f.p))


def test_channels_per_lane_and_slot():
    s = FoldSchedule(Factor(b=1, r=2, s=4, t=1), 1, 2, 4)        # dense 4 -> 2, one lane, simd 2
    assert s.channels(0, 0) == (0, 2, 0, 2) and s.channels(0, 1) == (1, 3, 1, 3)


@pytest.mark.parametrize("lanes, simd, interval", [(3, 4, 4), (4, 3, 4), (4, 4, 3), (0, 4, 1)])
def test_illegal_folding_is_refused(lanes, simd, interval):
    with pytest.raises(ValueError):
        FoldSchedule(Factor(b=1, r=4, s=4, t=4), lanes, simd, interval)


def _hardware_decode(schedule):
    """``decode`` evaluated by the simulator for every address: ``{addr: (lane, word, slot)}``."""
    m = Module()
    addr = Signal(range(schedule.factor.n_weights))
    fields = decode(schedule, addr)
    outs = [Signal(len(v), name=n) for v, n in zip(fields, ("lane", "word", "slot"))]
    m.d.comb += [o.eq(v) for o, v in zip(outs, fields)]
    got = {}

    async def bench(ctx):
        for a in range(schedule.factor.n_weights):
            ctx.set(addr, a)
            got[a] = tuple(ctx.get(o) for o in outs)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return got


def _decode_cases():
    """Each distinct schedule shape of the sweep once (with a cap on the factor-only ones)."""
    seen, cases = set(), []
    for s in [FoldSchedule.of(cfg, i) for cfg, i in CONFIG_SCHEDULES] + FACTOR_SCHEDULES[::7]:
        key = (s.factor, s.lanes, s.simd)
        if key not in seen:
            seen.add(key)
            cases.append(s)
    return cases


def test_hardware_decode_is_the_schedules_placement():
    cases = _decode_cases()
    assert any(s.grouped and s.decode_fields()[2] for s in cases) and any(not s.grouped for s in cases)
    assert any(s.folds & (s.folds - 1) and s.chunks > 1 for s in cases)
    for s in cases:
        got = _hardware_decode(s)
        for a, fields in got.items():
            assert fields == s.placement(a), (s.factor, s.lanes, s.simd, a)
