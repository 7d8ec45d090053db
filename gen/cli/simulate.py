"""``bfly sim`` and ``bfly demo``: an engine under Verilator, checked against the golden model."""

from pathlib import Path

from bfly.hw.config import EngineConfig

from .common import (UserError, add_config_args, config_from_args, output_path, pixel_bar,
                     seed_arg, summary)

__all__ = ["register", "run_sim", "check_sim_args"]


def _check_prob(name, value):
    if not 0.0 <= value < 1.0:
        raise UserError(f"{name} must be in [0, 1), not {value}")


def check_sim_args(pixels, frames, commits, stall_prob, idle_prob):
    """The stream check's options (a :class:`UserError` for a bad one), before anything runs."""
    if pixels < 1:
        raise UserError(f"--pixels must be at least 1, not {pixels}")
    if frames < 1:
        raise UserError(f"--frames must be at least 1, not {frames}")
    if commits < 0:
        raise UserError(f"--commits must be >= 0, not {commits}")
    _check_prob("--stall-prob", stall_prob)
    _check_prob("--idle-prob", idle_prob)


def run_sim(cfg, pixels, seed, stall_prob, idle_prob, frames, commits, waves=False, quiet=False,
            bus_models=False, calm=False):
    """Build (cached) and run the stream check on ``cfg``, through the fast path (the harness's
    source and sink) or with ``bus_models`` through cocotb's; return ``(result dict, log
    path)``."""
    from bfly.sim.api import SimRequest, simulate, FAST_TESTS
    from bfly.sim.runner import work_dir, writable_dir
    check_sim_args(pixels, frames, commits, stall_prob, idle_prob)
    log = writable_dir(work_dir("sim"), "sim_log") / f"{cfg.id}.log"
    if not quiet:
        print(f"building {cfg.id} under Verilator (cached after the first time; log: {log})", flush=True)

    def built(seconds):
        if not quiet:
            print(f"  ready in {seconds:.1f} s; simulating {pixels} pixels (output stall "
                  f"probability {stall_prob}, input idle {idle_prob}, {frames} frame(s), {commits} "
                  f"commit(s) while streaming, seed {seed})", flush=True)

    test = "test_stream" if bus_models else FAST_TESTS[0]
    request = SimRequest(cfg, tests=(test,), seed=seed, pixels=pixels, fast_pixels=pixels,
                         frames=min(frames, pixels), commits=commits, stall_prob=stall_prob,
                         idle_prob=idle_prob, waves=waves, calm=calm)
    bar = []                    # made once the build is ready

    def progress(done, total):
        if not bar:
            bar.extend(pixel_bar(f"bfly sim {cfg.id}", total))
        bar[0](done)
    try:                        # a failed build: SimError, a RuntimeError
        res = simulate(request, log=log, on_built=built,
                       on_progress=None if quiet or bus_models else progress)
    finally:
        if bar:
            bar[1]()
    result = res.summaries.get(test)
    if result is not None:
        result["wall_seconds"] = res.sim_seconds
    return result, log


def cmd_sim(args):
    cfg = config_from_args(args)
    result, log = run_sim(cfg, args.pixels, args.seed, args.stall_prob, args.idle_prob,
                          args.frames, args.commits, waves=args.waves, bus_models=args.bus_models)
    if args.waves:
        from bfly.sim.runner import build_dir_for
        print(f"  waveform: {build_dir_for(cfg, waves=True) / 'run' / 'dump.vcd'}")
    return _report(result, log)


def _report(result, log):
    if result is None:
        print(f"FAIL the simulation ended without a result; see {log}")
        return 1
    mm = result["mismatch"]
    if mm is None and result["frames_ok"] and result["sat_counts"] == result["expected_sat_counts"]:
        rate = f", {result['pixels'] / result['run_seconds']:,.0f} pixels/s checked" \
            if result.get("run_seconds") else ""
        print(f"PASS {result['pixels']} pixels bit-exact in {result['cycles']} cycles{rate}")
        return 0
    if mm is not None:
        where = (f"pixel {mm['pixel']} channel {mm['channel']}: expected {mm['expected']}, got {mm['got']} "
                 f"({mm['mismatches']} mismatching values)" if "channel" in mm else mm["why"])
        print(f"FAIL first mismatch at {where}")
    elif not result["frames_ok"]:
        print("FAIL frame boundaries (tlast) differ from the input's")
    else:
        print(f"FAIL SAT_COUNT {result['sat_counts']}, model {result['expected_sat_counts']}")
    return 1


DEMO_SIM = {"stall_prob": 0.2, "idle_prob": 0.1, "frames": 4, "commits": 1}
DEMO_PIXELS = 56 * 56 * 32       # a 56x56 feature map, 32 times


def cmd_demo(args):
    cfg = EngineConfig.bft(64, 4)
    check_sim_args(args.pixels, **DEMO_SIM)         # before anything is written
    out = Path(args.output)
    from bfly.gen.emit import write_outputs
    man = write_outputs(cfg, out)
    print("bfly demo: the Butterfly Transform BFT(64, 4) as a pipelined engine")
    print(summary(cfg, man))
    print(f"  Verilog, manifest, register map and C header in {out}/")
    result, log = run_sim(cfg, args.pixels, seed=1, calm=True, **DEMO_SIM)
    status = _report(result, log)
    if result is not None:
        outputs = result["pixels"] * cfg.n_out
        share = ", ".join(f"{100 * v / outputs:.2f}%" for v in result["sat_counts"])
        print(f"  {result['frames']} frames with random idle and stall clocks; "
              f"{result['banks_used']} weight banks, one swapped in while streaming; saturated "
              f"outputs per stage {share}")
        print(f"  {result['wall_seconds']:.1f} s in the simulator process, {result['run_seconds']:.1f} s "
              f"streaming: "
              f"{result['harness_clocks'] / result['harness_seconds']:,.0f} clocks/s in Verilator, "
              f"{result['pixels'] / result['run_seconds']:,.0f} pixels/s generated, simulated "
              f"and checked")
        from bfly.sim.runner import build_dir_for
        print(f"  the simulator, its Verilog and the run's files: {build_dir_for(cfg)}/; log: {log}")
    return status


def register(sub):
    p = sub.add_parser("sim", help="simulate under Verilator against the golden model")
    add_config_args(p)
    p.add_argument("--pixels", type=int, default=2000, help="pixels to stream (default 2000)")
    p.add_argument("--seed", type=seed_arg, default=1, help="random seed (default 1)")
    p.add_argument("--stall-prob", type=float, default=0.0, help="probability the output is not ready")
    p.add_argument("--idle-prob", type=float, default=0.0, help="probability the input is idle")
    p.add_argument("--frames", type=int, default=4, help="frames (tlast) to split the pixels into")
    p.add_argument("--commits", type=int, default=0, help="new weight banks committed while streaming")
    p.add_argument("--waves", action="store_true", help="write a VCD waveform (in build/sim/<id>_waves/run/)")
    p.add_argument("--bus-models", action="store_true",
                   help="drive the stream with cocotb's AXI4-Stream models, clock by clock, "
                        "instead of the fast path's source and sink in the simulator (slower)")
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("demo", help="generate BFT(64, 4) and simulate it with random weights")
    p.add_argument("-o", "--output", default="build/demo", metavar="DIR", type=output_path, help="output directory")
    p.add_argument("--pixels", type=int, default=DEMO_PIXELS,
                   help=f"pixels to stream (default {DEMO_PIXELS})")
    p.set_defaults(func=cmd_demo)
