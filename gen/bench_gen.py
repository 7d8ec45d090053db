"""Generation benchmark (``make bench-gen``): prints figures and writes ``build/bench/gen.json``.

For each engine, in one run: the time, peak memory and Verilog size of ``bfly gen`` (the engine
top's Verilog, :func:`bfly.hw.top.elaborate`) with repeated blocks as shared modules (what
``bfly gen`` writes) and, beside it, flat (a module per block instance, as before hierarchical
generation). Each generation runs in a process of its own, so its peak memory is its own. Then
the Verilator build of BFT(64,4) from the hierarchical Verilog, from scratch.

Not a test: these machines are noisy, so the figures are reported, not asserted.
"""

import argparse
import json
import multiprocessing
import resource
import shutil
import sys
import time
from pathlib import Path

from bfly.hw.config import EngineConfig

#: the DeBut LeNet-300-100 FC1 chain of the paper (400 -> 128, 7,680 multipliers)
FC1_CHAIN = [[256, 400, 16, 25, 1], [256, 256, 2, 2, 16], [128, 256, 1, 2, 32],
             [128, 128, 2, 2, 64], [128, 128, 2, 2, 32]]

ENGINES = [
    ("BFT(64,4)", lambda: EngineConfig.bft(64, 4)),
    ("BFT(256,4)", lambda: EngineConfig.bft(256, 4)),
    ("DeBut FC1", lambda: EngineConfig.from_chain(FC1_CHAIN)),
    ("BFT(1024,4) l16", lambda: EngineConfig.bft(1024, 4, lanes=16)),
]


def _generate(label, hierarchy, queue):
    from bfly.hw.top import elaborate
    cfg = dict(ENGINES)[label]()
    t0 = time.perf_counter()
    text, _ = elaborate(cfg, hierarchy=hierarchy)
    seconds = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put({"seconds": seconds, "peak_mb": peak_kb / 1024, "verilog_bytes": len(text.encode()),
               "modules": text.count("\nmodule ") + text.startswith("module ")})


def generate(label, hierarchy):
    """One generation in a fresh process: its figures."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_generate, args=(label, hierarchy, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def verilator_build(cfg, root):
    """Seconds to Verilate and compile ``cfg`` (its hierarchical Verilog) in a fresh directory."""
    import os
    from bfly.sim import runner
    old = os.environ.get(runner.BUILD_DIR_ENV)
    os.environ[runner.BUILD_DIR_ENV] = str(root)
    try:
        shutil.rmtree(runner.build_dir_for(cfg), ignore_errors=True)
        t0 = time.perf_counter()
        runner.build(cfg, log=root / "verilator.log")
        return time.perf_counter() - t0
    finally:
        if old is None:
            del os.environ[runner.BUILD_DIR_ENV]
        else:
            os.environ[runner.BUILD_DIR_ENV] = old


def main(argv=None):
    from bfly.sim.runner import work_dir
    ap = argparse.ArgumentParser(prog="python -m bfly.gen.bench_gen", description=__doc__.split("\n")[0])
    ap.add_argument("--no-flat", action="store_true", help="skip the flat generations (minutes)")
    ap.add_argument("--no-verilator", action="store_true", help="skip the Verilator build")
    ap.add_argument("-o", "--output", type=Path, default=None, help="JSON file (build/bench/gen.json)")
    args = ap.parse_args(argv)
    out = args.output or work_dir("bench") / "gen.json"
    rows = []
    print(f"{'engine':<18} {'form':<13} {'seconds':>8} {'peak MB':>8} {'Verilog MB':>11} {'modules':>8}")
    for label, make in ENGINES:
        cfg = make()
        for hierarchy in (True, False):
            if not hierarchy and args.no_flat:
                continue
            r = generate(label, hierarchy)
            r.update({"engine": label, "config": cfg.id, "multipliers": cfg.multipliers,
                      "form": "hierarchical" if hierarchy else "flat"})
            rows.append(r)
            print(f"{label:<18} {r['form']:<13} {r['seconds']:>8.1f} {r['peak_mb']:>8.0f} "
                  f"{r['verilog_bytes'] / 1e6:>11.2f} {r['modules']:>8}", flush=True)
    report = {"generation": rows}
    by = {(r["engine"], r["form"]): r for r in rows}
    report["ratios"] = {label: {"seconds": by[label, "flat"]["seconds"] / by[label, "hierarchical"]["seconds"],
                                "verilog_bytes": by[label, "flat"]["verilog_bytes"]
                                / by[label, "hierarchical"]["verilog_bytes"]}
                        for label, _ in ENGINES if (label, "flat") in by}
    for label, ratio in report["ratios"].items():
        print(f"{label}: flat/hierarchical {ratio['seconds']:.1f}x the time, "
              f"{ratio['verilog_bytes']:.1f}x the Verilog")
    if not args.no_verilator:
        root = work_dir("bench", "gen_verilator")
        root.mkdir(parents=True, exist_ok=True)
        seconds = verilator_build(EngineConfig.bft(64, 4), root)
        report["verilator_build"] = {"config": EngineConfig.bft(64, 4).id, "seconds": seconds}
        print(f"Verilator build of BFT(64,4), from scratch: {seconds:.1f} s")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
