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
