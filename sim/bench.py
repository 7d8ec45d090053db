"""Core benchmark (``make bench-core``): prints figures and writes ``build/bench/core.json``.

- golden-model throughput (pixels per second) of BFT(64, 4) on a 56x56 feature map;
- RTL simulation throughput (simulated clock cycles per wall-clock second) of the Verilated
  engine driven by the cocotb testbench, for BFT(16, 4) and BFT(64, 4).

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
from bfly.sim.runner import work_dir, build, run_tb

CLOCK_NS = 10     # the testbench's clock period


def model_throughput(cfg, pixels, repeats):
    rng = np.random.default_rng(0)
    weights, shifts = random_weights(cfg, rng), random_shifts(cfg, rng)
    x = rng.integers(cfg.data_min, cfg.data_max + 1, size=(pixels, cfg.n_in))
    chain_forward(cfg, weights, shifts, x)             # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        chain_forward(cfg, weights, shifts, x)
        times.append(time.perf_counter() - t0)
    best = min(times)
    return {"config": cfg.id, "pixels": pixels, "repeats": repeats, "best_seconds": best,
            "median_seconds": float(np.median(times)), "pixels_per_second": pixels / best}


def rtl_throughput(cfg, pixels, workdir):
    t0 = time.time()
    build(cfg, log=workdir / f"{cfg.id}_build.log")
    build_seconds = time.time() - t0
    test_dir = workdir / cfg.id
    env = {"BFLY_PIXELS": str(pixels), "BFLY_FRAMES": "1", "BFLY_COMMITS": "0",
           "BFLY_STALL_PROB": "0", "BFLY_IDLE_PROB": "0", "BFLY_RESULT": str(test_dir / "stream.json")}
    test_dir.mkdir(parents=True, exist_ok=True)
    xml = run_tb(cfg, env=env, testcase="test_stream", test_dir=test_dir, log=test_dir / "sim.log")
    case = ET.parse(xml).getroot().find(".//testcase[@name='test_stream']")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    result = json.loads((test_dir / "stream.json").read_text())
    if result["mismatch"] is not None or case.find("failure") is not None:
        raise RuntimeError(f"{cfg.id}: the simulation did not pass; see {test_dir / 'sim.log'}")
    cycles = float(props["sim_time_duration"]) / CLOCK_NS
    wall = float(case.get("time"))
    return {"config": cfg.id, "pixels": pixels, "simulated_cycles": cycles, "wall_seconds": wall,
            "cycles_per_second": cycles / wall, "pixels_per_second": pixels / wall,
            "stream_cycles": result["cycles"], "build_seconds_this_run": build_seconds}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pixels", type=int, default=20000, help="pixels per RTL run (default 20000)")
    p.add_argument("-o", "--output", default=str(work_dir("bench", "core.json")))
    args = p.parse_args(argv)
    out = Path(args.output)
    workdir = out.parent / "core"
    workdir.mkdir(parents=True, exist_ok=True)

    report = {"golden_model": model_throughput(EngineConfig.bft(64, 4), 56 * 56, repeats=50), "rtl": []}
    gm = report["golden_model"]
    print(f"golden model {gm['config']}: {gm['pixels_per_second']:,.0f} pixels/s "
          f"({gm['pixels']} pixels in {gm['best_seconds'] * 1e3:.2f} ms, best of {gm['repeats']})")
    for cfg in (EngineConfig.bft(16, 4), EngineConfig.bft(64, 4)):
        r = rtl_throughput(cfg, args.pixels, workdir)
        report["rtl"].append(r)
        print(f"RTL simulation {r['config']}: {r['cycles_per_second']:,.0f} cycles/s "
              f"({r['simulated_cycles']:,.0f} cycles incl. weight loading in {r['wall_seconds']:.1f} s; "
              f"{r['pixels']} pixels streamed in {r['stream_cycles']} cycles)")
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
