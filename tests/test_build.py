"""bfly build for the ULX3S (slow: marked long, run by make test-long)."""

import json

import pytest

from bfly.gen.build import build_board, BuildError
from bfly.hw.config import EngineConfig


def test_unknown_board_and_unreachable_baud(tmp_path):
    with pytest.raises(BuildError, match="unknown board 'nexys'"):
        build_board(EngineConfig.bft(4, 2), "nexys", tmp_path)
    with pytest.raises(BuildError, match="3000000 baud cannot be made from a 25 MHz clock"):
        build_board(EngineConfig.bft(4, 2), "ulx3s", tmp_path, baud=3_000_000)


@pytest.mark.long
def test_ulx3s_bitstream_meets_timing(tmp_path):
    report = build_board(EngineConfig.bft(16, 4), "ulx3s", tmp_path / "b")
    assert (tmp_path / "b" / "bfly_board.bit").stat().st_size > 100_000
    assert report["fmax_mhz"] >= report["clock_mhz"] and report["meets_timing"]
    assert report["used"]["dsps"] == 128
    assert json.loads((tmp_path / "b" / "build.json").read_text())["bitstream"].endswith(".bit")
