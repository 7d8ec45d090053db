"""``bfly build``: the board design (engine, UART, host bridge) as a bitstream for a real board,
through amaranth-boards and the YoWASP tools, with its timing and utilisation report as JSON."""

import json
import os
import sys
from pathlib import Path

from amaranth.hdl import Elaboratable, Module

from bfly.hw.board import BoardTop, config_list, uart_divisor
from bfly.hw.boards import BOARDS
from .synth import read_pnr_report

__all__ = ["BOARDS", "BuildError", "board_design", "build_board"]


class BuildError(RuntimeError):
    """The design does not fit, misses timing, or a tool failed."""


class _BoardDesign(Elaboratable):
    def __init__(self, cfg, clk_hz, baud, impl=None):
        self.baud = baud
        self.board = BoardTop(cfg, clk_hz, baud, impl=impl)

    def elaborate(self, platform):
        m = Module()
        m.submodules.board = self.board
        uart = platform.request("uart", 0)
        m.d.comb += [self.board.uart_rx.eq(uart.rx.i), uart.tx.o.eq(self.board.uart_tx)]
        return m


def board_design(cfg, board, baud=None, impl=None):
    """The design :func:`build_board` builds: the board top of ``cfg`` (a configuration, or a
    list: one engine each) with its UART at ``baud`` bits per second (default: ``board``'s rate
    in :data:`BOARDS`)."""
    if board not in BOARDS:
        raise BuildError(f"unknown board {board!r}; choose from {', '.join(BOARDS)}")
    clk_hz, baud = BOARDS[board].clk_hz, baud or BOARDS[board].baud
    try:
        uart_divisor(clk_hz, baud)
    except ValueError as e:
        raise BuildError(str(e))
    return _BoardDesign(cfg, clk_hz, baud, impl)


def build_board(cfg, board, outdir, baud=None, impl=None):
    """Build ``cfg`` (a configuration, or a list: one engine each) for ``board`` into ``outdir``;
    return the report (also ``build.json``). ``impl``: the engines' implementation (one, or a
    list: one per engine)."""
    import importlib
    design = board_design(cfg, board, baud, impl)
    b = BOARDS[board]
    clk_hz, baud, cells = b.clk_hz, design.baud, b.cells
    platform = getattr(importlib.import_module(b.module), b.platform)()
    bindir = Path(sys.executable).parent
    for tool in ("yosys", "nextpnr-ecp5", "ecppack", "nextpnr-ice40", "icepack"):
        os.environ[tool.upper().replace("-", "_")] = str(bindir / f"yowasp-{tool}")
    outdir = Path(outdir)
    name = "bfly_board"
    try:
        plan = platform.build(design, name=name, do_build=False, synth_opts=b.synth_opts,
                              nextpnr_opts=f"--report {name}_report.json --timing-allow-fail")
        plan.execute_local(str(outdir))
    except Exception as e:          # the toolchain's own failure (does not fit, tool error)
        log = outdir / f"{name}.tim"
        errors = [l for l in log.read_text().splitlines() if l.startswith("ERROR")] if log.exists() else []
        if not errors and (outdir / f"{name}.rpt").exists():     # nextpnr-ice40 logs to its report
            errors = [l for l in (outdir / f"{name}.rpt").read_text().splitlines() if l.startswith("ERROR")]
        if any("no BELs remaining" in l for l in errors):
            raise BuildError(f"the design does not fit the {board}: {errors[0][7:]} "
                             f"(logs in {outdir})") from e
        raise BuildError(f"the build failed: {errors[0][7:] if errors else e} (logs in {outdir})") from e
    used, avail, fmax = read_pnr_report(outdir / f"{name}_report.json", cells)
    bitstream = next((outdir / f"{name}{ext}" for ext in (".bit", ".bin") if (outdir / f"{name}{ext}").exists()),
                     None)
    if bitstream is None:
        raise BuildError(f"the tools finished but wrote no bitstream (logs in {outdir})")
    report = {
        "board": board, "engines": [c.to_dict() for c in config_list(cfg)], "clock_mhz": clk_hz / 1e6,
        "baud": baud,
        "uart_clocks_per_bit": design.board.divisor, "fmax_mhz": fmax,
        "meets_timing": fmax is not None and fmax >= clk_hz / 1e6,
        "used": used,
        "available": avail,
        "bitstream": str(bitstream),
        "program": f"openFPGALoader --board {board} {bitstream}",
    }
    (outdir / "build.json").write_text(json.dumps(report, indent=2) + "\n")
    if not report["meets_timing"]:
        raise BuildError(f"the design misses timing: Fmax {fmax:.1f} MHz < {clk_hz / 1e6:g} MHz "
                         f"(report in {outdir / 'build.json'})")
    return report
