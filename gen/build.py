"""``bfly build``: the board design (engine, UART, host bridge) as a bitstream for a real board,
through amaranth-boards and the YoWASP tools, with its timing and utilisation report as JSON."""

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from amaranth.hdl import Elaboratable, Module

from bfly.hw.board import BoardTop, config_list, uart_divisor
from bfly.hw.boards import BOARDS
from bfly.hw.pll import ecp5_pll, ECP5Clocks, PLLError
from .synth import read_pnr_report, read_pnr_clocks, ABC9_FAULT, ECP5_ABC_LUTS

__all__ = ["BOARDS", "BuildError", "ClockError", "board_clocks", "board_design", "build_board", "default_engine_mhz"]


class BuildError(RuntimeError):
    """The design does not fit, misses timing, or a tool failed."""


class ClockError(BuildError):
    """The clocks or the baud rate asked for cannot be made on the board (a user's error)."""


class _BoardDesign(Elaboratable):
    def __init__(self, cfg, clk_hz, baud, impl=None, pll=None):
        self.baud, self.pll = baud, pll
        link_hz = pll.link_hz if pll is not None else clk_hz
        self.board = BoardTop(cfg, link_hz, baud, impl=impl, engine_domain="engine" if pll else None)

    def elaborate(self, platform):
        m = Module()
        if self.pll is not None:
            clk = platform.request(platform.default_clk)
            m.submodules.clocks = ECP5Clocks(clk.i, self.pll)
        m.submodules.board = self.board
        uart = platform.request("uart", 0)
        m.d.comb += [self.board.uart_rx.eq(uart.rx.i), uart.tx.o.eq(self.board.uart_tx)]
        return m


def default_engine_mhz(cfgs, board):
    """The engine clock ``bfly build`` runs ``cfgs`` at on ``board`` when not told: the lowest
    Fmax among the engines, each from its ``bfly synth`` report for the board's device when
    there is one, else from ``bfly plan``'s estimate for its shape. Returns ``(MHz, where from)``."""
    from .plan import estimate
    from .synth import report_path
    target = BOARDS[board].target
    figures = []
    for cfg in config_list(cfgs):
        path = report_path(cfg, target)
        report = json.loads(path.read_text()) if path.exists() else {}
        if report.get("fmax_mhz"):
            figures.append((report["fmax_mhz"], f"the synthesis report {path}"))
        else:
            figures.append((estimate(cfg, target)["fmax_mhz"], f"bfly plan's estimate for {cfg.id}"))
    return min(figures)


def board_clocks(cfg, board, baud=None, engine_mhz=None):
    """``(oscillator Hz, baud, PLL plan or None)`` of the board design of ``cfg`` for ``board``:
    the UART at ``baud`` (default: ``board``'s rate in :data:`BOARDS`); on a board with a PLL,
    the engines at ``engine_mhz`` at most (default :func:`default_engine_mhz`) and the link at a
    clock that makes the baud rate (:func:`bfly.hw.pll.ecp5_pll`). A :class:`ClockError` if they
    cannot be made."""
    if board not in BOARDS:
        raise BuildError(f"unknown board {board!r}; choose from {', '.join(BOARDS)}")
    b = BOARDS[board]
    clk_hz, baud = b.clk_hz, baud or b.baud
    if b.pll:
        if engine_mhz is None:
            engine_mhz = default_engine_mhz(cfg, board)[0]
        try:
            return clk_hz, baud, ecp5_pll(clk_hz, engine_mhz * 1e6, baud)
        except PLLError as e:
            raise ClockError(str(e))
    if engine_mhz is not None:
        raise ClockError(f"the {board} has no PLL here: its engines run at its {clk_hz / 1e6:g} MHz clock "
                         f"(leave out --engine-mhz)")
    try:
        uart_divisor(clk_hz, baud)
    except ValueError as e:
        raise ClockError(str(e))
    return clk_hz, baud, None


def board_design(cfg, board, baud=None, impl=None, engine_mhz=None):
    """The design :func:`build_board` builds: the board top of ``cfg`` (a configuration, or a
    list: one engine each) with the clocks of :func:`board_clocks`. ``impl`` (default: the
    device's implementation, as ``bfly synth`` builds the engine; with several engines, without
    DSP sites)."""
    clk_hz, baud, pll = board_clocks(cfg, board, baud, engine_mhz)
    if impl is None:
        from bfly.hw.targets import HARDWARE_TARGETS
        impl = HARDWARE_TARGETS[BOARDS[board].target].implementation()
        if len(config_list(cfg)) > 1:
            impl = replace(impl, dsp_sites=())
    return _BoardDesign(cfg, clk_hz, baud, impl, pll)


def build_board(cfg, board, outdir, baud=None, impl=None, engine_mhz=None):
    """Build ``cfg`` (a configuration, or a list: one engine each) for ``board`` into ``outdir``;
    return the report (also ``build.json``). ``impl``: the engines' implementation (one, or a
    list: one per engine); ``engine_mhz``: :func:`board_design`."""
    import importlib
    design = board_design(cfg, board, baud, impl, engine_mhz)
    b = BOARDS[board]
    clk_hz, baud, cells = b.clk_hz, design.baud, b.cells
    bindir = Path(sys.executable).parent
    for tool in ("yosys", "nextpnr-ecp5", "ecppack", "nextpnr-ice40", "icepack"):
        os.environ[tool.upper().replace("-", "_")] = str(bindir / f"yowasp-{tool}")
    outdir = Path(outdir)
    name = "bfly_board"
    fallback = False

    def attempt(**yosys):
        platform = getattr(importlib.import_module(b.module), b.platform)()    # (one build each)
        platform.build(design, name=name, do_build=False, nextpnr_opts=f"--report {name}_report.json "
                       f"--timing-allow-fail", **yosys).execute_local(str(outdir))
    try:
        try:
            attempt(synth_opts=b.synth_opts)
        except Exception:
            log = outdir / f"{name}.rpt"
            if not (b.target.startswith("ecp5") and log.exists() and ABC9_FAULT in log.read_text(errors="replace")):
                raise
            # yosys's abc9 fault (gen/synth.py): synth_ecp5 up to its LUT mapping, abc, the rest
            fallback = True
            attempt(synth_opts=f"{b.synth_opts} -run begin:map_luts".strip(),
                    script_after_synth=f"{ECP5_ABC_LUTS}; synth_ecp5 -top {name} -run map_cells:")
    except Exception as e:          # the toolchain's own failure (does not fit, tool error)
        log = outdir / f"{name}.tim"
        errors = [l for l in log.read_text().splitlines() if l.startswith("ERROR")] if log.exists() else []
        if not errors and (outdir / f"{name}.rpt").exists():     # nextpnr-ice40 logs to its report
            errors = [l for l in (outdir / f"{name}.rpt").read_text().splitlines() if l.startswith("ERROR")]
        if any("no BELs remaining" in l or "Failed to expand region" in l for l in errors):
            raise BuildError(f"the design does not fit the {board}: {errors[0][7:]} "
                             f"(logs in {outdir})") from e
        raise BuildError(f"the build failed: {errors[0][7:] if errors else e} (logs in {outdir})") from e
    used, avail, _ = read_pnr_report(outdir / f"{name}_report.json", cells)
    achieved = read_pnr_clocks(outdir / f"{name}_report.json")
    bitstream = next((outdir / f"{name}{ext}" for ext in (".bit", ".bin") if (outdir / f"{name}{ext}").exists()),
                     None)
    if bitstream is None:
        raise BuildError(f"the tools finished but wrote no bitstream (logs in {outdir})")
    pll = design.pll
    wanted = {"engine": pll.engine_hz, "link": pll.link_hz} if pll else {"link": clk_hz}

    clocks = {}
    for d, hz in wanted.items():
        # the engine domain's clock net is engine_clk; the link's (sync) is clk
        fmax = min((v for net, (v, _) in achieved.items() if ("engine_clk" in net) == (d == "engine")),
                   default=None)
        clocks[d] = {"mhz": hz / 1e6, "fmax_mhz": fmax, "meets_timing": fmax is not None and fmax >= hz / 1e6}
    report = {
        "board": board, "engines": [c.to_dict() for c in config_list(cfg)],
        "clock_mhz": clk_hz / 1e6, "clocks": clocks,
        "pll": None if pll is None else {"clki_div": pll.clki_div, "clkfb_div": pll.clkfb_div,
                                         "clkop_div": pll.clkop_div, "clkos_div": pll.clkos_div,
                                         "vco_mhz": pll.vco_hz / 1e6},
        "baud": baud,
        "uart_clocks_per_bit": design.board.divisor,
        "yosys_abc_fallback": fallback,
        "fmax_mhz": min((c["fmax_mhz"] or 0) for c in clocks.values()),
        "meets_timing": all(c["meets_timing"] for c in clocks.values()),
        "used": used,
        "available": avail,
        "bitstream": str(bitstream),
        "program": f"openFPGALoader --board {board} {bitstream}",
    }
    (outdir / "build.json").write_text(json.dumps(report, indent=2) + "\n")
    missed = [f"the {d} clock's Fmax {c['fmax_mhz'] or 0:.1f} MHz < {c['mhz']:.6g} MHz"
              for d, c in clocks.items() if not c["meets_timing"]]
    if missed:
        raise BuildError(f"the design misses timing: {'; '.join(missed)} (report in {outdir / 'build.json'})")
    return report
