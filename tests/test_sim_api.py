"""The typed simulation API without a simulator: requests check their fields and travel to the
testbench's run directory and back unchanged."""

import numpy as np
import pytest

from bfly.hw.config import EngineConfig
from bfly.sim.api import SimRequest, REQUEST_FILE
from bfly.sim.model import random_params

CFG = EngineConfig.bft(16, 4, epilogue=True)


def test_request_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    params = random_params(CFG, rng)
    x = rng.integers(CFG.data_min, CFG.data_max + 1, size=(40, CFG.n_in))
    req = SimRequest(CFG, tests=["test_image"], seed=7, frames=3, idle_prob=0.1, inputs=x,
                     params=params, target="ecp5-85k", models=[tmp_path / "m.v"])
    req.write(tmp_path, latency=40)
    assert (tmp_path / REQUEST_FILE).exists()
    back, latency = SimRequest.read(tmp_path)
    assert latency == 40
    assert back == req                       # every scalar field, the configuration, the tests
    assert back.tests == ("test_image",) and back.models == (str(tmp_path / "m.v"),)
    assert (back.inputs == x).all()
    assert all((a == b).all() for a, b in zip(back.params.weights, params.weights))
    assert back.params.shifts == [int(v) for v in params.shifts]
    e, f = back.params.epilogue, params.epilogue
    assert (e.mult == f.mult).all() and (e.bias == f.bias).all()
    assert (e.gain, e.out_shift, e.relu) == (f.gain, f.out_shift, f.relu)


def test_request_without_arrays(tmp_path):
    req = SimRequest(EngineConfig.bft(8, 2), pixels=10)
    req.write(tmp_path, latency=5)
    back, _ = SimRequest.read(tmp_path)
    assert back == req and back.inputs is None and back.params is None


@pytest.mark.parametrize("fields, message", [
    ({"pixels": -1}, "pixels must be >= 0, not -1"),
    ({"stall_prob": 1.0}, r"stall_prob must be in \[0, 1\), not 1.0"),
    ({"inputs": np.zeros((3, 5))}, r"inputs must be shaped \(N, 16\), not \(3, 5\)"),
])
def test_request_rejects_bad_fields(fields, message):
    with pytest.raises(ValueError, match=message):
        SimRequest(CFG, **fields)


def test_request_needs_a_configuration():
    with pytest.raises(TypeError, match="cfg must be an EngineConfig"):
        SimRequest({"n": 16})


def test_the_fast_path_reports_progress_and_its_clocks(tmp_path):
    """simulate() passes on the fast path's progress after each chunk, up to every pixel; the
    summary has the harness's clocks, one pixel per clock and the latency when nothing stalls."""
    from bfly.sim.api import FAST_TESTS, simulate
    from bfly.sim.harness import CHUNK_PIXELS
    cfg = EngineConfig.bft(16, 4)
    n = 2 * CHUNK_PIXELS + 5
    seen = []
    res = simulate(SimRequest(cfg, tests=FAST_TESTS, fast_pixels=n, frames=3, commits=0,
                              idle_prob=0, stall_prob=0),
                   run_dir=tmp_path, log=tmp_path / "sim.log", on_progress=lambda d, t: seen.append((d, t)))
    assert res.passed, res.log
    summary = res.summaries["test_fast_stream"]
    assert summary["mismatch"] is None and summary["frames_ok"]
    assert seen and all(t == n for _, t in seen)
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] <= n
    # three chunks: each drains the pipeline, so n pixels take n + 3 * (latency - 1) clocks of stream
    from bfly.hw.targets import engine_verilog
    latency = engine_verilog(cfg)[1].latency
    assert summary["cycles"] == n + 3 * (latency - 1)
    assert summary["harness_clocks"] >= summary["cycles"]
