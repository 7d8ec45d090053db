"""bfly build for the ULX3S (slow: marked long, run by make test-long)."""

import json

import pytest

from bfly.gen.build import build_board, board_design, BuildError, ClockError
from bfly.hw.board import uart_divisor, BAUD_TOLERANCE
from bfly.hw.config import EngineConfig
from bfly.hw.pll import ecp5_pll, LINK_MAX_HZ


def test_unknown_board_and_unreachable_baud(tmp_path):
    with pytest.raises(BuildError, match="unknown board 'nexys'"):
        build_board(EngineConfig.bft(4, 2), "nexys", tmp_path)
    with pytest.raises(ClockError, match="2500000 baud cannot be made from a 12 MHz clock"):
        build_board(EngineConfig.bft(4, 2), "icebreaker", tmp_path, baud=2_500_000)
    with pytest.raises(ClockError, match="the PLL cannot make an engine clock of at most 1 MHz"):
        build_board(EngineConfig.bft(4, 2), "ulx3s", tmp_path, engine_mhz=1)


@pytest.mark.parametrize("engine_mhz", [150, 175, 219.9, 100, 60])
@pytest.mark.parametrize("baud", [3_000_000, 1_000_000, 115_200])
def test_the_pll_makes_the_engine_clock_and_the_baud_rate(engine_mhz, baud):
    """Issue 22 item 1: the EHXPLLL dividers within the ECP5's limits, the engine clock the
    fastest not above the one asked for (within 1%), the link's making the baud rate."""
    p = ecp5_pll(25e6, engine_mhz * 1e6, baud)
    assert 400e6 <= p.vco_hz <= 800e6 and 3.125e6 <= 25e6 / p.clki_div
    assert p.engine_hz == pytest.approx(p.vco_hz / p.clkop_div) and p.link_hz == pytest.approx(p.vco_hz / p.clkos_div)
    assert 0.99 * engine_mhz * 1e6 <= p.engine_hz <= engine_mhz * 1e6 * (1 + 1e-9)
    assert p.link_hz <= LINK_MAX_HZ
    div = uart_divisor(p.link_hz, baud)
    assert abs(p.link_hz / div - baud) <= BAUD_TOLERANCE * baud
    design = board_design(EngineConfig.bft(4, 2), "ulx3s", baud=baud, engine_mhz=engine_mhz)
    assert design.pll == p and design.board.divisor == div


@pytest.mark.long
def test_ulx3s_bitstream_meets_timing(tmp_path):
    report = build_board(EngineConfig.bft(16, 4), "ulx3s", tmp_path / "b")
    assert (tmp_path / "b" / "bfly_board.bit").stat().st_size > 100_000
    assert report["fmax_mhz"] >= report["clock_mhz"] and report["meets_timing"]
    assert report["used"]["dsps"] == 128
    assert json.loads((tmp_path / "b" / "build.json").read_text())["bitstream"].endswith(".bit")
