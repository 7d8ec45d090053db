"""The simulation API: a typed request in, a typed result out.

:func:`simulate` builds the configuration's Verilog under Verilator (cached, ``sim/runner.py``),
writes the request into the run directory, runs the cocotb testbench (``sim/tb_engine.py``) there
and returns what it found. The testbench reads the request from its working directory and writes
one summary per test beside it; nothing passes between the caller and the testbench through
environment variables.
"""

import concurrent.futures
import functools
import json
import time
from dataclasses import dataclass, field, asdict
from pathlib import Path

import numpy as np

from bfly.hw.config import EngineConfig
from .model import BlockParams, save_params, load_params

__all__ = ["SimRequest", "SimResult", "SimError", "simulate", "summary_path", "progress_path", "REQUEST_FILE", "ALL_TESTS",
           "FAST_TESTS"]

REQUEST_FILE = "request.json"
_ARRAYS_FILE = "request_inputs.npy"
_PARAMS_FILE = "request_params.npz"

#: the testbench's tests that need nothing but the configuration
ALL_TESTS = ("test_registers", "test_stream", "test_throughput", "test_reset_mid_stream",
             "test_fast_stream")
#: the fast path alone (``bfly sim``): the stream through the harness's source and sink
FAST_TESTS = ("test_fast_stream",)


class SimError(RuntimeError):
    """The simulation could not be built or run (not: it ran and found a mismatch)."""


@dataclass(frozen=True)
class SimRequest:
    """What to simulate.

    ``tests``: names of the testbench's tests to run (``ALL_TESTS``, ``FAST_TESTS``, or
    ``("test_image",)`` with ``inputs`` and ``params``). ``pixels`` random pixels in ``frames``
    frames for ``test_stream`` (cocotb's bus models, a monitor in every clock), with ``commits``
    weight commits while they flow; ``fast_pixels`` for ``test_fast_stream`` (the harness's
    source and sink, ``sim/harness.py``), with as many frames and commits; ``idle_prob`` (input
    not valid) and ``stall_prob`` (output not ready) per clock; ``throughput_pixels`` for
    ``test_throughput``. ``calm``: random banks whose shifts rarely saturate
    (:func:`bfly.sim.model.calm_shifts`) instead of random shifts that often do.
    ``inputs``: given integer pixels, shape ``(N, n_in)``; ``params``: the bank to load
    (:class:`bfly.sim.model.BlockParams`). ``target``: simulate the netlist made for that target
    (vendor primitives) instead of the generic one, with ``models``: Verilog files that model the
    primitives yosys ships no simulation model of (:func:`bfly.sim.runner.build`).
    """
    cfg: EngineConfig
    tests: tuple = ALL_TESTS
    seed: int = 1
    pixels: int = 600
    frames: int = 4
    commits: int = 2
    idle_prob: float = 0.2
    stall_prob: float = 0.3
    throughput_pixels: int = 300
    fast_pixels: int = 20000
    calm: bool = False
    inputs: np.ndarray = field(default=None, compare=False)
    params: BlockParams = field(default=None, compare=False)
    waves: bool = False
    target: str = None
    models: tuple = ()

    def __post_init__(self):
        if not isinstance(self.cfg, EngineConfig):
            raise TypeError(f"cfg must be an EngineConfig, not {self.cfg!r}")
        object.__setattr__(self, "tests", tuple(self.tests))
        object.__setattr__(self, "models", tuple(str(m) for m in self.models))
        for name in ("pixels", "frames", "commits", "throughput_pixels", "fast_pixels"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, not {getattr(self, name)!r}")
        for name in ("idle_prob", "stall_prob"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), not {getattr(self, name)!r}")
        if self.inputs is not None:
            x = np.asarray(self.inputs)
            if x.ndim != 2 or x.shape[1] != self.cfg.n_in:
                raise ValueError(f"inputs must be shaped (N, {self.cfg.n_in}), not {x.shape}")

    def write(self, run_dir, latency):
        """Write the request (and the engine's ``latency``) into ``run_dir`` for the testbench."""
        run_dir = Path(run_dir)
        doc = {k: v for k, v in asdict(self).items() if k not in ("cfg", "inputs", "params")}
        doc.update(config=self.cfg.to_dict(), latency=int(latency), tests=list(self.tests),
                   models=list(self.models), inputs=None, params=None)
        if self.inputs is not None:
            np.save(run_dir / _ARRAYS_FILE, np.asarray(self.inputs, dtype=np.int64))
            doc["inputs"] = _ARRAYS_FILE
        if self.params is not None:
            save_params(run_dir / _PARAMS_FILE, self.params)
            doc["params"] = _PARAMS_FILE
        (run_dir / REQUEST_FILE).write_text(json.dumps(doc, indent=1) + "\n")

    @classmethod
    def read(cls, run_dir):
        """``(request, latency)`` as :meth:`write` left them in ``run_dir``."""
        run_dir = Path(run_dir)
        doc = json.loads((run_dir / REQUEST_FILE).read_text())
        latency = doc.pop("latency")
        doc["cfg"] = EngineConfig.from_dict(doc.pop("config"))
        doc["inputs"] = np.load(run_dir / doc["inputs"]) if doc["inputs"] else None
        doc["params"] = load_params(run_dir / doc["params"]) if doc["params"] else None
        return cls(**doc), latency


def summary_path(run_dir, test):
    """Where the testbench writes the summary of ``test``."""
    return Path(run_dir) / f"result_{test}.json"


def progress_path(run_dir):
    """Where the fast path writes how many pixels it has checked (after each chunk)."""
    return Path(run_dir) / "progress.json"


def _read_progress(run_dir):
    try:
        doc = json.loads(progress_path(run_dir).read_text())
        return doc["done"], doc["total"]
    except (OSError, ValueError, KeyError):
        return None


@dataclass(frozen=True)
class SimResult:
    """What a simulation found: cocotb's counts, each test's summary (``{test: dict}``, as the
    testbench wrote it: pixels, cycles, first mismatch, saturation counts, ...), the run
    directory, cocotb's results file, the log and the seconds spent building and simulating."""
    tests: int
    failures: int
    summaries: dict
    run_dir: Path
    results_xml: Path
    log: Path = None
    build_seconds: float = 0.0
    sim_seconds: float = 0.0

    @property
    def passed(self):
        """Every requested test ran and none failed."""
        return self.failures == 0 and self.tests > 0


def simulate(request, run_dir=None, log=None, on_built=None, on_progress=None):
    """Run ``request`` (a :class:`SimRequest`); return a :class:`SimResult`.

    ``run_dir``: where the testbench runs (default ``build/sim/<id>/run``, or a temporary
    directory where the build cannot be written); ``log``: the build
    and simulation log (default: printed); ``on_built``: called with the build's seconds once
    the Verilator build is ready; ``on_progress(done, total)``: called a few times a second
    with the fast path's pixels checked so far. Raises :class:`SimError` when the build fails
    or the simulation writes no results.
    """
    from .runner import build, run_cocotb, results_ok, writable_dir
    t0 = time.perf_counter()
    try:
        build_dir, info = build(request.cfg, waves=request.waves, log=log, target=request.target,
                                models=request.models)
    except RuntimeError as e:
        raise SimError(str(e)) from e
    build_seconds = time.perf_counter() - t0
    if on_built:
        on_built(build_seconds)
    run_dir = Path(run_dir) if run_dir else writable_dir(build_dir / "run", f"{request.cfg.id}_run")
    run_dir.mkdir(parents=True, exist_ok=True)
    for old in [*run_dir.glob("result_*.json"), progress_path(run_dir)]:
        old.unlink(missing_ok=True)
    request.write(run_dir, info["latency_cycles"])
    t0 = time.perf_counter()
    run = functools.partial(run_cocotb, request.cfg, build_dir, run_dir, tests=request.tests,
                            seed=request.seed, waves=request.waves, log=log)
    xml = _watching(run, run_dir, on_progress) if on_progress else run()
    if not Path(xml).exists():
        raise SimError(f"the simulation of {request.cfg.id} wrote no results; see {log or 'the output above'}")
    sim_seconds = time.perf_counter() - t0
    tests, failures = results_ok(xml)
    summaries = {t: json.loads(summary_path(run_dir, t).read_text())
                 for t in request.tests if summary_path(run_dir, t).exists()}
    return SimResult(tests=tests, failures=failures, summaries=summaries, run_dir=run_dir,
                     results_xml=Path(xml), log=log, build_seconds=build_seconds,
                     sim_seconds=sim_seconds)


def _watching(run, run_dir, on_progress, every=0.25):
    """``run()`` in a thread, calling ``on_progress`` with the progress file's figures meanwhile."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(run)
        while True:
            try:
                return future.result(timeout=every)
            except concurrent.futures.TimeoutError:
                seen = _read_progress(run_dir)
                if seen:
                    on_progress(*seen)

