"""The configuration type: constructors, derived facts, ids and the errors a user sees."""

import json
import math

import pytest

from bfly.hw.config import EngineConfig, ConfigError, Factor, radix_factorization


def test_bft_stages_follow_the_spec():
    cfg = EngineConfig.bft(64, 4)
    assert cfg.chain_rows() == [[64, 64, 4, 4, 16], [64, 64, 4, 4, 4], [64, 64, 4, 4, 1]]
    assert cfg.n_in == cfg.n_out == 64
    assert cfg.multipliers == 64 * 4 * 3          # n*k per stage, log_k n stages
    assert cfg.id == "n64_k4_d8w8"
    assert cfg.name == "bfly_n64_k4_d8w8"


def test_mixed_radix_and_ids():
    cfg = EngineConfig.mixed_radix([4, 4, 3])
    assert cfg.n_in == 48
    assert [f.t for f in cfg.factors] == [12, 3, 1]
    assert cfg.id == "n48_r4x4x3_d8w8"
    assert EngineConfig.bft(16, 4, rounding="floor", overflow="wrap").id == "n16_k4_d8w8_floor_wrap"
    assert EngineConfig.bft(16, 4, data_bits=5, weight_bits=11).id == "n16_k4_d5w11"


def test_debut_chain_changes_channel_count():
    cfg = EngineConfig.from_chain([[32, 64, 2, 4, 4], [16, 32, 1, 2, 8]])
    assert (cfg.n_in, cfg.n_out) == (64, 16)
    assert cfg.factors[0] == Factor(b=4, r=2, s=4, t=4)
    assert cfg.id.startswith("c64to16_")
    assert cfg.n_weights == 32 * 4 + 16 * 2


@pytest.mark.parametrize("text", [
    "[[32, 64, 2, 4, 4], [16, 32, 1, 2, 8]]",
    '{"chain": [[32, 64, 2, 4, 4], [16, 32, 1, 2, 8]]}',
    "# DeBut chain, input to output\n[32, 64, 2, 4, 4]\n[16, 32, 1, 2, 8]\n",
    "32 64 2 4 4\n16,32,1,2,8\n",
])
def test_chain_file_formats(text):
    cfg = EngineConfig.from_chain_text(text)
    assert cfg.chain_rows() == [[32, 64, 2, 4, 4], [16, 32, 1, 2, 8]]


@pytest.mark.parametrize("make,message", [
    (lambda: EngineConfig.bft(48, 4), "48 is not a power of 4; use --radices, e.g. 4,4,3"),
    (lambda: EngineConfig.bft(64, 4, data_bits=19), "--data-bits must be an integer from 2 to 18, not 19"),
    (lambda: EngineConfig.bft(64, 4, weight_bits=1), "--weight-bits must be an integer from 2 to 18, not 1"),
    (lambda: EngineConfig.bft(64, 4, rounding="nearest"), "--rounding must be one of floor, half_up, half_even"),
    (lambda: EngineConfig.bft(64, 4, overflow="clip"), "--overflow must be one of saturate, wrap"),
    (lambda: EngineConfig.from_chain([[16, 16, 4, 4, 1], [16, 8, 2, 1, 8]]),
     "factor 0 writes 16 channels but factor 1 reads 8"),
    (lambda: EngineConfig.from_chain([[16, 16, 4, 4, 3]]), "factor 0: [p=16, q=16, r=4, s=4, t=3] is not a butterfly factor"),
    (lambda: EngineConfig.from_chain([]), "the chain has no factors"),
    (lambda: EngineConfig.from_chain_text("1 2 3\n"), "factor 0: expected five integers"),
    (lambda: EngineConfig.from_chain_text("a b c d e\n", source="x.txt"), "x.txt:1: expected five integers"),
    (lambda: EngineConfig.bft(64, 4, name="my top"), "--name must be a Verilog identifier"),
    (lambda: EngineConfig.bft(64, 4, lanes=6), "--lanes 6 must divide the widest stage's 64 outputs"),
    (lambda: EngineConfig.from_chain([[8, 16, 1, 2, 4], [12, 8, 3, 2, 2]], lanes=4),
     "--lanes 4: stage 0 has 8 outputs, not a multiple of the 3 clocks per pixel"),
    (lambda: EngineConfig.dense(12, simd=5), "--simd 5 must divide stage 0's 12 inputs per node"),
    (lambda: EngineConfig.dense(300), "--n must be an integer from 1 to 256, not 300"),
])
def test_errors_say_what_to_change(make, message):
    with pytest.raises(ConfigError) as e:
        make()
    assert message in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("n,k,radices", [(48, 4, [4, 4, 3]), (64, 4, [4, 4, 4]), (12, 8, [6, 2]),
                                          (14, 4, [2, 7]), (7, 4, [7]), (1, 4, []),
                                          (2 * 11 * 13, 2, [2, 11, 13]), (96, 16, [16, 6])])
def test_radix_factorization(n, k, radices):
    assert radix_factorization(n, k) == radices
    assert math.prod(radices) == n


def test_power_of_k_hint_only_with_radices_up_to_k():
    with pytest.raises(ConfigError) as e:
        EngineConfig.bft(14, 4)                 # 7 is no radix of at most 4: no hint
    assert str(e.value) == "14 is not a power of 4"
    with pytest.raises(ConfigError) as e:
        EngineConfig.bft(12, 8)
    assert str(e.value) == "12 is not a power of 8; use --radices, e.g. 6,2"
    with pytest.raises(ConfigError) as e:
        EngineConfig.bft(7, 8)                  # one radix: no chain of radices to suggest
    assert str(e.value) == "7 is not a power of 8"


def test_round_trip_through_dict():
    cfg = EngineConfig.mixed_radix([2, 3], data_bits=6, weight_bits=9, rounding="floor", overflow="wrap")
    again = EngineConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.id == cfg.id


def test_folding_interval_and_multipliers():
    full = EngineConfig.bft(256, 4)
    folded = EngineConfig.bft(256, 4, lanes=8)
    assert (full.interval, full.multipliers) == (1, 4 * 256 * 4)
    assert (folded.interval, folded.multipliers) == (32, 4 * 8 * 4)
    assert folded.id == "n256_k4_d8w8_l8" and folded.stage_fold(0) == (8, 4, 32)
    # as many lanes as nodes is the fully parallel engine, with its id
    assert EngineConfig.bft(16, 4, lanes=16) == EngineConfig.bft(16, 4)
    # stages of different widths get lanes in proportion; simd splits the dot products
    chain = EngineConfig.from_chain([[8, 16, 1, 2, 4], [12, 8, 3, 2, 2]], lanes=6)
    assert [chain.stage_fold(l) for l in range(2)] == [(4, 2, 2), (6, 2, 2)] and chain.interval == 2
    dense = EngineConfig.dense(64, lanes=8, simd=16)
    assert dense.is_dense and dense.id == "dense64_d8w8_l8_s16"
    assert (dense.interval, dense.multipliers) == (8 * 4, 128)
    assert dense.chain_rows() == [[64, 64, 64, 64, 1]]
    again = EngineConfig.from_dict(json.loads(json.dumps(dense.to_dict())))
    assert again == dense
