"""The boards ``bfly build`` makes bitstreams for, in one table: each board's clock and the UART
rate its board top runs at (``bfly build`` builds at it; ``bfly load``/``bfly run`` and the
driver talk at it by default), with the amaranth-boards platform and the nextpnr cell names its
report is read with. Plain data, so the host driver reads it without importing Amaranth."""

from dataclasses import dataclass

__all__ = ["Board", "BOARDS", "DEFAULT_BOARD"]


@dataclass(frozen=True)
class Board:
    name: str
    module: str         # amaranth-boards module holding the platform class
    platform: str       # platform class name in ``module``
    clk_hz: float       # the board's oscillator
    baud: int           # UART rate, bits per second
    cells: dict         # report key -> nextpnr cell types
    target: str         # the device, as bfly synth and bfly plan name it
    synth_opts: str = ""    # options of yosys's synth_<family> for this board's device
    pll: str = ""           # the PLL that makes the engine's and the link's clocks ("ecp5"), or
                            # "": the oscillator clocks the whole design


# The ULX3S's FT231X goes to 3 Mbaud: the PLL makes a link clock that divides into it (the
# 25 MHz oscillator alone would need 8.33 clocks a bit).
BOARDS = {b.name: b for b in (
    Board("ulx3s", "amaranth_boards.ulx3s", "ULX3S_85F_Platform", 25e6, 3_000_000,
          {"luts": ["TRELLIS_COMB"], "ffs": ["TRELLIS_FF"], "dsps": ["MULT18X18D"], "brams": ["DP16KD"]},
          "ecp5-85k", pll="ecp5"),
    # iCE40UP5K: 8 SB_MAC16 DSPs (synth_ice40 maps multipliers to them only with -dsp), so a
    # BFT(16,4) fits folded to one lane (8 multipliers)
    Board("icebreaker", "amaranth_boards.icebreaker", "ICEBreakerPlatform", 12e6, 1_000_000,
          {"luts": ["ICESTORM_LC"], "dsps": ["ICESTORM_DSP"], "brams": ["ICESTORM_RAM"]},
          "ice40-up5k", synth_opts="-dsp"),
)}

DEFAULT_BOARD = "ulx3s"
