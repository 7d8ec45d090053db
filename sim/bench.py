"""Core benchmark (``make bench-core``): prints figures and writes ``build/bench/core.json``.

- golden-model throughput (pixels per second) of BFT(64, 4) on a 56x56 feature map;
- RTL simulation throughput (simulated clock cycles per wall-clock second) of the Verilated
  engine, for BFT(16, 4) and BFT(64, 4), on both paths in the same run: cocotb's AXI4-Stream bus
  models and a monitor in every clock (``test_stream``), and the fast path, the harness's source
  and sink in the simulator (``test_fast_stream``: its clocks per second while the harness
  runs, and its pixels per second generated, simulated and checked end to end).

Not a test: these machines are noisy, so the figures are reported, not asserted.
"""

import argparse
import json
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from bfly.hw.config import EngineConfig
from bfly.sim.model import chain_forward, random_weights, random_shifts
from bfly.sim.api import SimRequest, simulate, FAST_TESTS
from bfly.sim.harness import CLOCK_NS
from bfly.sim.runner import work_dir


def model_throughput(cfg, pixels, repeats, allow_float=True):
    rng = np.random.default_rng(0)
    weights, shifts = random_weights(cfg, rng), random_shifts(cfg, rng)
    x = rng.integers(cfg.data_min, cfg.data_max + 1, size=(pixels, cfg.n_in))
    chain_forward(cfg, weights, shifts, x, allow_float)             # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        chain_forward(cfg, weights, shifts, x, allow_float)
        times.append(time.perf_counter() - t0)
    best = min(times)
    return {"config": cfg.id, "pixels": pixels, "repeats": repeats, "best_seconds": best,
            "median_seconds": float(np.median(times)), "pixels_per_second": pixels / best,
            "path": "float32 or float64 (BLAS) where exact" if allow_float else "int64"}


def _stream_run(cfg, test, test_dir, **counts):
    """Run ``test`` alone on ``cfg`` with no stalls, in one frame, without commits; return
    ``(SimResult, its summary)``, or raise if it did not pass."""
    test_dir.mkdir(parents=True, exist_ok=True)
    request = SimRequest(cfg, tests=(test,), frames=1, commits=0, stall_prob=0, idle_prob=0, **counts)
    res = simulate(request, run_dir=test_dir, log=test_dir / "sim.log")
    result = res.summaries.get(test)
    if result is None or result["mismatch"] is not None or not res.passed:
        raise RuntimeError(f"{cfg.id}: the simulation did not pass; see {test_dir / 'sim.log'}")
    return res, result


def fast_throughput(cfg, pixels, workdir):
    _, result = _stream_run(cfg, FAST_TESTS[0], workdir / f"{cfg.id}_fast", fast_pixels=pixels)
    return {"config": cfg.id, "path": "fast", "pixels": pixels,
            "harness_clocks": result["harness_clocks"], "harness_seconds": result["harness_seconds"],
            "cycles_per_second": result["harness_clocks"] / result["harness_seconds"],
            "checked_pixels_per_second": pixels / result["run_seconds"],
            "run_seconds": result["run_seconds"]}


def rtl_throughput(cfg, pixels, workdir):
    res, result = _stream_run(cfg, "test_stream", workdir / cfg.id, pixels=pixels)
    build_seconds = res.build_seconds
    case = ET.parse(res.results_xml).getroot().find(".//testcase[@name='test_stream']")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    cycles = float(props["sim_time_duration"]) / CLOCK_NS
    wall = float(case.get("time"))
    return {"config": cfg.id, "path": "bus models", "pixels": pixels, "simulated_cycles": cycles,
            "wall_seconds": wall,
            "cycles_per_second": cycles / wall, "pixels_per_second": pixels / wall,
            "stream_cycles": result["cycles"], "build_seconds_this_run": build_seconds}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pixels", type=int, default=20000,
                   help="pixels per RTL run through the bus models (default 20000)")
    p.add_argument("--fast-pixels", type=int, default=1_000_000,
                   help="pixels per RTL run through the fast path (default 1000000)")
    p.add_argument("--no-rtl", action="store_true", help="the golden model only")
    p.add_argument("-o", "--output", default=str(work_dir("bench", "core.json")))
    args = p.parse_args(argv)
    out = Path(args.output)
    workdir = out.parent / "core"
    workdir.mkdir(parents=True, exist_ok=True)

    # the two paths of the golden model side by side, alternating, so the ratio sees the same load
    cfg, runs = EngineConfig.bft(64, 4), {True: [], False: []}
    for _ in range(3):
        for allow_float in (True, False):
            runs[allow_float].append(model_throughput(cfg, 56 * 56 * 4, 20, allow_float))
    best = {k: max(v, key=lambda r: r["pixels_per_second"]) for k, v in runs.items()}
    report = {"golden_model": best[True], "golden_model_int64": best[False],
              "golden_model_speedup": best[True]["pixels_per_second"] / best[False]["pixels_per_second"],
              "rtl": []}
    for r in (best[True], best[False]):
        print(f"golden model {r['config']}, {r['path']}: {r['pixels_per_second']:,.0f} pixels/s "
              f"({r['pixels']} pixels in {r['best_seconds'] * 1e3:.2f} ms, best of {r['repeats']} x 3)")
    print(f"  float path / int64 path: {report['golden_model_speedup']:.2f}x")
    for cfg in () if args.no_rtl else (EngineConfig.bft(16, 4), EngineConfig.bft(64, 4)):
        r = rtl_throughput(cfg, args.pixels, workdir)
        f = fast_throughput(cfg, args.fast_pixels, workdir)
        report["rtl"] += [r, f]
        print(f"RTL simulation {r['config']}, bus models: {r['cycles_per_second']:,.0f} cycles/s "
              f"({r['simulated_cycles']:,.0f} cycles incl. weight loading in {r['wall_seconds']:.1f} s; "
              f"{r['pixels']} pixels streamed in {r['stream_cycles']} cycles)")
        print(f"RTL simulation {f['config']}, fast path:  {f['cycles_per_second']:,.0f} cycles/s "
              f"({f['harness_clocks']:,} clocks in {f['harness_seconds']:.2f} s), "
              f"{f['checked_pixels_per_second']:,.0f} pixels/s generated, simulated and checked "
              f"({f['pixels']:,} pixels); {f['cycles_per_second'] / r['cycles_per_second']:.1f}x "
              f"the bus models' cycles/s")
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
