"""The register table and the CONFIG words software rebuilds the configuration from."""

import pytest

from bfly.hw.config import EngineConfig, ConfigError
from bfly.hw.regmap import register_map, config_words, config_from_words, address_bits

CONFIGS = [
    EngineConfig.bft(64, 4),
    EngineConfig.bft(256, 2, data_bits=18, weight_bits=2, rounding="floor"),
    EngineConfig.mixed_radix([4, 4, 3], overflow="wrap"),
    EngineConfig.from_chain([[128, 400, 8, 25, 1], [128, 128, 4, 4, 8]], rounding="half_up"),  # 400 -> 128
    EngineConfig.bft(256, 4, lanes=8),
    EngineConfig.dense(256, lanes=8, simd=16),       # r = s = 256: FACTOR holds r - 1 and s - 1
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.id)
def test_config_words_round_trip(cfg):
    w = config_words(cfg, latency=37)
    rebuilt, latency = config_from_words(w["CONFIG0"], w["CONFIG1"], w["CONFIG2"], w["FACTOR"],
                                         name=cfg.name, config3=w["CONFIG3"])
    assert rebuilt == cfg and latency == 37


def test_inconsistent_words_are_refused():
    w = config_words(EngineConfig.bft(16, 4), latency=10)
    with pytest.raises(ConfigError, match="stages"):
        config_from_words(w["CONFIG0"], w["CONFIG1"], w["CONFIG2"], w["FACTOR"][:1])
    with pytest.raises(ConfigError, match="does not fit"):
        config_from_words(w["CONFIG0"], w["CONFIG1"], w["CONFIG2"], [w["FACTOR"][0], 3 | 3 << 8 | 5 << 16])
    with pytest.raises(ConfigError, match="output channels"):
        config_from_words(w["CONFIG0"], w["CONFIG1"], 17, w["FACTOR"])


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.id)
def test_registers_do_not_overlap_and_fit_the_address_space(cfg):
    regs = sorted(register_map(cfg), key=lambda r: r.offset)
    for a, b in zip(regs, regs[1:]):
        assert a.end <= b.offset, (a.name, b.name)
    assert regs[-1].end <= 1 << address_bits(cfg)
    assert all(r.offset % 4 == 0 for r in regs)


# --- the declarations: fields, codes, limits

import numpy as np

from bfly.hw.config import ROUNDING_MODES, OVERFLOW_MODES, MAX_SHIFT, MAX_STAGES
from bfly.hw.csr import Field, Register, ACCESS
from bfly.hw.regmap import (DECLARED, Rounding, Overflow, CONFIG0, CONFIG1, EPI_CTRL, SHIFT, STATUS,
                            CTRL, ID, BFLY_ID, SHIFT_BITS, RESIDUAL_SHIFT_MAX, epi_ctrl_word,
                            epi_ctrl_fields, constant_words)


def _random_value(f, rng):
    if f.enum is not None:
        return f.enum(int(rng.choice([int(m) for m in f.enum])))
    return int(rng.integers(f.min, f.max + 1))


@pytest.mark.parametrize("reg", DECLARED, ids=lambda r: r.name)
def test_pack_unpack_round_trip(reg):
    rng = np.random.default_rng(len(reg.name))
    assert reg.fields
    extremes = [{f.name: f.min if f.enum is None else min(f.enum) for f in reg.fields},
                {f.name: f.max if f.enum is None else max(f.enum) for f in reg.fields}]
    for values in extremes + [{f.name: _random_value(f, rng) for f in reg.fields} for _ in range(20)]:
        word = reg.pack(**values)
        assert 0 <= word < 1 << 32
        assert reg.unpack(word) == values
    assert reg.unpack(reg.pack()) == {f.name: f.decode(0) for f in reg.fields}


@pytest.mark.parametrize("reg", DECLARED, ids=lambda r: r.name)
def test_fields_do_not_overlap_and_fit_a_word(reg):
    assert reg.access in ACCESS and all(reg.field_access(f) in ACCESS for f in reg.fields)
    bits = [b for f in reg.fields for b in range(f.lsb, f.msb + 1)]
    assert len(bits) == len(set(bits)) and max(bits) < 32
    for f in reg.fields:
        if f.enum is None:
            assert reg.pack(**{f.name: -1 if f.signed else f.max}) == f.mask == sum(1 << b for b in range(f.lsb, f.msb + 1))


def test_out_of_range_values_name_the_field():
    with pytest.raises(ValueError, match=r"SHIFT\.shift = 64 is outside \[0, 63\]"):
        SHIFT.pack(shift=64)
    with pytest.raises(ValueError, match=r"SHIFT\.shift = -1 is outside"):
        SHIFT.pack(shift=-1)
    with pytest.raises(ValueError, match=r"CONFIG1\.n_in = 65536 is outside \[0, 65535\]"):
        CONFIG1.pack(n_in=1 << 16)
    with pytest.raises(ValueError, match=r"CONFIG0\.rounding = 'nearest' is not one of floor \(0\)"):
        CONFIG0.pack(rounding="nearest")
    with pytest.raises(ValueError, match=r"CONFIG0\.rounding = 3 is not one of"):
        CONFIG0.pack(rounding=3)
    with pytest.raises(ValueError, match="has no field speed"):
        CTRL.pack(speed=1)
    with pytest.raises(ValueError, match=r"CONFIG0\.rounding = 3 is not a code of Rounding"):
        CONFIG0.unpack(3 << CONFIG0["rounding"].lsb)
    with pytest.raises(ValueError, match="not a 32-bit word"):
        STATUS.unpack(1 << 32)


def test_declarations_refuse_overlaps_and_bad_fields():
    with pytest.raises(ValueError, match="field b overlaps"):
        Register("X", 0x0, "rw", fields=(Field("a", 4, 0), Field("b", 4, 3)))
    with pytest.raises(ValueError, match="not inside a 32-bit word"):
        Field("a", 8, 28)
    with pytest.raises(ValueError, match="not an array"):
        Register("X", 0x0, "rw", count=2, fields=(Field("a", 1, 0),))
    with pytest.raises(ValueError, match="unknown access"):
        Register("X", 0x0, "rw_set", fields=(Field("a", 1, 0),))
    with pytest.raises(ValueError, match="needs more than 1 bits"):
        Field("r", 1, 0, enum=Rounding)


def test_codes_and_limits_are_declared_once():
    assert [(m.name, int(m)) for m in Rounding] == [("floor", 0), ("half_up", 1), ("half_even", 2)]
    assert [(m.name, int(m)) for m in Overflow] == [("saturate", 0), ("wrap", 1)]
    assert ROUNDING_MODES == ("floor", "half_up", "half_even") and OVERFLOW_MODES == ("saturate", "wrap")
    assert CONFIG0["rounding"].enum is Rounding and CONFIG0["overflow"].enum is Overflow
    assert SHIFT["shift"].width == SHIFT_BITS == 6 and MAX_SHIFT == 2 ** SHIFT_BITS - 1 == 63
    assert RESIDUAL_SHIFT_MAX == EPI_CTRL["g"].max == 15
    assert MAX_STAGES == 48 and BFLY_ID == 0xBF100002 == ID.pack(version=2, magic=0xBF10)


def _old_config_words(cfg, latency):
    """The CONFIG and FACTOR words as register map version 2 has always laid them out."""
    rounding = {"floor": 0, "half_up": 1, "half_even": 2}[cfg.rounding]
    overflow = {"saturate": 0, "wrap": 1}[cfg.overflow]
    return {"CONFIG0": cfg.data_bits | cfg.weight_bits << 8 | rounding << 16 | overflow << 18
                       | int(cfg.epilogue) << 19 | int(cfg.has_residual) << 20,
            "CONFIG1": cfg.n_in | cfg.n_stages << 16,
            "CONFIG2": cfg.n_out | min(latency, 0xFFFF) << 16,
            "CONFIG3": cfg.lanes | cfg.simd << 16,
            "FACTOR": [(f.r - 1) | (f.s - 1) << 8 | f.t << 16 for f in cfg.factors]}


@pytest.mark.parametrize("cfg", CONFIGS + [EngineConfig.bft(16, 4, epilogue=True)], ids=lambda c: c.id)
def test_words_are_laid_out_as_before(cfg):
    for latency in (37, 70000):
        assert config_words(cfg, latency) == _old_config_words(cfg, latency)
    assert constant_words(cfg, 5)["ID"] == [BFLY_ID]


def test_epi_ctrl_bits_as_before():
    assert epi_ctrl_word(False, 0) == 0 and epi_ctrl_word(True, 0) == 1
    assert epi_ctrl_word(True, -8) == 1 | 1 << 1 | 1 << 2 | 3 << 8
    assert epi_ctrl_word(False, 1 << 15) == 1 << 1 | 15 << 8
    for relu in (False, True):
        for gain in (0, 1, -1, 4, -(1 << 15)):
            assert epi_ctrl_fields(epi_ctrl_word(relu, gain)) == (relu, gain)
    with pytest.raises(ValueError, match="residual gain"):
        epi_ctrl_word(False, 1 << 16)
    with pytest.raises(ValueError, match="residual gain"):
        epi_ctrl_word(False, 3)


def test_offsets_as_before():
    cfg = EngineConfig.bft(16, 4, epilogue=True)
    got = {r.name: (r.offset, r.count, r.access) for r in register_map(cfg)}
    assert got == {"ID": (0x000, 1, "ro"), "CONFIG0": (0x004, 1, "ro"), "CONFIG1": (0x008, 1, "ro"),
                   "CONFIG2": (0x00C, 1, "ro"), "CTRL": (0x010, 1, "wo"), "STATUS": (0x014, 1, "ro"),
                   "EPI_CTRL": (0x018, 1, "rw"), "OUT_SHIFT": (0x01C, 1, "rw"),
                   "CONFIG3": (0x020, 1, "ro"), "FACTOR": (0x040, 2, "ro"), "SHIFT": (0x100, 2, "rw"),
                   "SAT_COUNT": (0x200, 3, "rw_clear"), "WEIGHTS": (0x1000, 128, "rw"),
                   "EPI_MULT": (0x1200, 16, "rw"), "EPI_BIAS": (0x1240, 16, "rw")}
    assert [r.name for r in register_map(EngineConfig.bft(16, 4))] == [
        "ID", "CONFIG0", "CONFIG1", "CONFIG2", "CTRL", "STATUS", "CONFIG3", "FACTOR", "SHIFT",
        "SAT_COUNT", "WEIGHTS"]
    spans = {r.name: [f.span() for f in r.fields] for r in register_map(cfg)}
    assert spans == {
        "ID": ["[15:0]", "[31:16]"],
        "CONFIG0": ["[7:0]", "[15:8]", "[17:16]", "[18]", "[19]", "[20]"],
        "CONFIG1": ["[15:0]", "[23:16]"], "CONFIG2": ["[15:0]", "[31:16]"],
        "CTRL": ["[0]"], "STATUS": ["[0]", "[1]"], "EPI_CTRL": ["[0]", "[1]", "[2]", "[11:8]"],
        "OUT_SHIFT": ["[5:0]"], "CONFIG3": ["[15:0]", "[31:16]"],
        "FACTOR": ["[7:0]", "[15:8]", "[31:16]"], "SHIFT": ["[5:0]"], "SAT_COUNT": ["[31:0]"],
        "WEIGHTS": ["[31:0]"], "EPI_MULT": ["[31:0]"], "EPI_BIAS": ["[31:0]"]}
    assert (STATUS["commit_busy"].lsb, STATUS["stream_busy"].lsb, CTRL["commit"].lsb) == (0, 1, 0)


def test_unknown_rounding_code_is_a_config_error():
    w = config_words(EngineConfig.bft(16, 4), latency=10)
    with pytest.raises(ConfigError, match="unknown code"):
        config_from_words(w["CONFIG0"] | 3 << 16, w["CONFIG1"], w["CONFIG2"], w["FACTOR"])


def test_most_stages_fit_without_overlap():
    cfg = EngineConfig.from_chain([[4, 4, 1, 1, 4]] * MAX_STAGES, epilogue=True)
    test_registers_do_not_overlap_and_fit_the_address_space(cfg)
    with pytest.raises(ConfigError, match="at most 48"):
        EngineConfig.from_chain([[4, 4, 1, 1, 4]] * (MAX_STAGES + 1))
