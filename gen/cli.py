"""The ``bfly`` command line: ``gen``, ``sim`` and ``demo``.

Errors a user can cause end in one line on stderr and a non-zero exit (2 for bad arguments or
configurations, 1 for a failed check), never a traceback.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bfly.hw.config import EngineConfig, ConfigError, ROUNDING_MODES, OVERFLOW_MODES

__all__ = ["main"]


class UserError(Exception):
    """A problem with the user's input; printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``bfly gen: error: ...``), not usage plus error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_config_args(p):
    g = p.add_argument_group("configuration (one of --n/--k, --radices, --chain, --config-from; "
                             "default BFT(64, 4))")
    g.add_argument("--n", type=int, help="channels of BFT(n, k); n must be a power of k")
    g.add_argument("--k", type=int, help="radix of BFT(n, k) (default 4)")
    g.add_argument("--radices", help="mixed radices k0,k1,... with n = k0*k1*... (e.g. 4,4,3)")
    g.add_argument("--chain", metavar="FILE",
                   help="DeBut chain: [p, q, r, s, t] per factor, input to output (text or JSON)")
    g.add_argument("--config-from", metavar="FILE",
                   help="take the configuration from a manifest.json or a .bfly weight image")
    g.add_argument("--data-bits", type=int, default=None, help="activation width, 2..18 (default 8)")
    g.add_argument("--weight-bits", type=int, default=None, help="weight width, 2..18 (default 8)")
    g.add_argument("--rounding", choices=ROUNDING_MODES, default=None,
                   help="requantization rounding (default half_even)")
    g.add_argument("--overflow", choices=OVERFLOW_MODES, default=None,
                   help="requantization overflow (default saturate)")
    g.add_argument("--name", default=None, help="Verilog top module name (default bfly_<id>)")
    g.add_argument("--epilogue", action="store_true", default=None,
                   help="add the block epilogue of SPEC 3 (residual, per-channel multiplier and bias, ReLU)")
    g.add_argument("--dense", action="store_true",
                   help="the dense n x n pointwise baseline (FINN's MVAU: --lanes PEs x --simd) instead of a butterfly")
    g.add_argument("--lanes", type=int, default=None,
                   help="fold: output nodes computed per clock in the widest stage (default all: 1 pixel per clock)")
    g.add_argument("--simd", type=int, default=None,
                   help="fold: inputs per node per clock (default all; the dense engine's SIMD)")


def config_from_args(args):
    """The :class:`EngineConfig` that the arguments describe (raises ConfigError/UserError)."""
    chosen = [opt for opt, val in (("--n", args.n), ("--radices", args.radices),
                                   ("--chain", args.chain), ("--config-from", args.config_from))
              if val is not None]
    if len(chosen) > 1:
        raise UserError(f"choose one of {', '.join(chosen)}")
    if args.k is not None and args.n is None:
        raise UserError("--k goes with --n")
    if args.dense and (args.k is not None or len(chosen) > (args.n is not None)):
        raise UserError("--dense takes --n only (the dense n x n layer), not --k, --radices, --chain or --config-from")
    kwargs = {key: getattr(args, key) for key in ("data_bits", "weight_bits", "rounding", "overflow",
                                                  "name", "epilogue", "lanes", "simd")
              if getattr(args, key) is not None}
    if args.config_from and Path(args.config_from).suffix == ".bfly":
        from bfly.sw.image import WeightImage, ImageError
        try:
            cfg = WeightImage.load(args.config_from).config
        except ImageError as e:
            raise UserError(str(e))
        return EngineConfig.from_dict({**cfg.to_dict(), "name": "", **kwargs})
    if args.config_from:
        data = _read_json(args.config_from)
        cfg_dict = data.get("config", data) if isinstance(data, dict) else None
        if not isinstance(cfg_dict, dict) or "chain" not in cfg_dict:
            raise UserError(f"{args.config_from}: not a bfly manifest (no \"config\" with a \"chain\")")
        merged = dict(cfg_dict)
        merged.update(kwargs)
        if "name" not in kwargs and "top" in data:
            merged["name"] = data["top"]
        return EngineConfig.from_dict(merged)
    if args.chain:
        return EngineConfig.from_chain_text(_read_text(args.chain), source=args.chain, **kwargs)
    if args.radices:
        try:
            radices = [int(v) for v in args.radices.replace("x", ",").split(",") if v.strip()]
        except ValueError:
            raise UserError(f"--radices must be integers separated by commas, not {args.radices!r}")
        return EngineConfig.mixed_radix(radices, **kwargs)
    n = 64 if args.n is None else args.n
    if args.dense:
        return EngineConfig.dense(n, **kwargs)
    k = 4 if args.k is None else args.k
    return EngineConfig.bft(n, k, **kwargs)


def _read_text(path):
    try:
        return Path(path).read_text()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a text file")


def _read_json(path):
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})")


def pixels_per_clock_text(cfg):
    return "1 pixel per clock" if cfg.interval == 1 else f"1 pixel every {cfg.interval} clocks"


def _summary(cfg, man):
    dense = cfg.n_in * cfg.n_out + (cfg.n_out if cfg.epilogue else 0)
    epi = (", epilogue" + (" with residual" if cfg.has_residual else "")) if cfg.epilogue else ""
    fold = f", folded: {cfg.lanes or 'all'} lanes x {cfg.simd or 'all'} simd" if cfg.interval > 1 else ""
    return (f"{cfg.name}: chain {cfg.chain_rows()}  data {cfg.data_bits} bit, weights "
            f"{cfg.weight_bits} bit, {cfg.rounding}, {cfg.overflow}{epi}{fold}\n"
            f"  {cfg.multipliers} multipliers (a dense {cfg.n_out}x{cfg.n_in} layer needs {dense} "
            f"fully parallel), latency {man['latency_cycles']} clocks, {pixels_per_clock_text(cfg)}")


def cmd_gen(args):
    from .emit import write_outputs
    cfg = config_from_args(args)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise UserError(f"-o {out}: exists and is not a directory")
    man = write_outputs(cfg, out, target=args.target)
    print(_summary(cfg, man))
    for name in (f"{cfg.name}.v", "manifest.json", "regmap.json", f"{cfg.name}_regs.h"):
        print(f"  wrote {out / name}")
    return 0


def _check_prob(name, value):
    if not 0.0 <= value < 1.0:
        raise UserError(f"{name} must be in [0, 1), not {value}")


def run_sim(cfg, pixels, seed, stall_prob, idle_prob, frames, commits, waves=False, quiet=False):
    """Build (cached) and run the stream check on ``cfg``; return ``(result dict, log path)``."""
    from bfly.sim.runner import build, run_tb, work_dir
    if pixels < 1:
        raise UserError(f"--pixels must be at least 1, not {pixels}")
    if frames < 1:
        raise UserError(f"--frames must be at least 1, not {frames}")
    if commits < 0:
        raise UserError(f"--commits must be >= 0, not {commits}")
    _check_prob("--stall-prob", stall_prob)
    _check_prob("--idle-prob", idle_prob)
    work_dir("sim").mkdir(parents=True, exist_ok=True)
    log = work_dir("sim", f"{cfg.id}.log")
    if not quiet:
        print(f"building {cfg.id} under Verilator (cached after the first time; log: {log})", flush=True)
    t0 = time.time()
    build(cfg, waves=waves, log=log)
    if not quiet:
        print(f"  ready in {time.time() - t0:.1f} s; simulating {pixels} pixels (output stall "
              f"probability {stall_prob}, input idle {idle_prob}, {frames} frame(s), {commits} "
              f"commit(s) while streaming, seed {seed})", flush=True)
    fd, result_path = tempfile.mkstemp(prefix="bfly_sim_", suffix=".json")
    os.close(fd)
    try:
        env = {"BFLY_PIXELS": str(pixels), "BFLY_FRAMES": str(min(frames, pixels)),
               "BFLY_COMMITS": str(commits), "BFLY_STALL_PROB": str(stall_prob),
               "BFLY_IDLE_PROB": str(idle_prob), "BFLY_RESULT": result_path}
        t0 = time.time()
        run_tb(cfg, env=env, testcase="test_stream", seed=seed, waves=waves, log=log)
        wall = time.time() - t0
        text = Path(result_path).read_text()
        result = json.loads(text) if text.strip() else None
    finally:
        os.unlink(result_path)
    if result is not None:
        result["wall_seconds"] = wall
    return result, log


def cmd_sim(args):
    cfg = config_from_args(args)
    result, log = run_sim(cfg, args.pixels, args.seed, args.stall_prob, args.idle_prob,
                          args.frames, args.commits, waves=args.waves)
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
        print(f"PASS {result['pixels']} pixels bit-exact in {result['cycles']} cycles")
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


def cmd_demo(args):
    cfg = EngineConfig.bft(64, 4)
    out = Path(args.output)
    from .emit import write_outputs
    man = write_outputs(cfg, out)
    print("bfly demo: the Butterfly Transform BFT(64, 4) as a pipelined engine")
    print(_summary(cfg, man))
    print(f"  Verilog, manifest, register map and C header in {out}/")
    result, log = run_sim(cfg, args.pixels, seed=1, stall_prob=0.2, idle_prob=0.1, frames=4, commits=1)
    status = _report(result, log)
    if result is not None:
        outputs = result["pixels"] * cfg.n_out
        print(f"  {result['frames']} frames; {result['banks_used']} weight banks used, swapped while "
              f"streaming; saturated outputs per stage {result['sat_counts']} of {outputs} each "
              f"(the random shifts are tight on purpose); {result['wall_seconds']:.1f} s of simulation")
    return status


def cmd_train_demo(args):
    import io
    import numpy as np
    from bfly.sw.digits import train_demo, save_model
    from .files import write_files
    if args.epochs < 1:
        raise UserError(f"--epochs must be at least 1, not {args.epochs}")
    print(f"training the digits network with BFT pointwise layers (k = 4) and the dense baseline, "
          f"{args.epochs} epochs, seed {args.seed}", flush=True)
    bft, dense, calib, report = train_demo(args.epochs, args.seed, progress=_epoch_progress(args.epochs))
    files = {}
    for name, model in (("model.pt", bft), ("dense.pt", dense)):
        buf = io.BytesIO()
        save_model(model, buf, extra={"report": report})
        files[name] = buf.getvalue()
    buf = io.BytesIO()
    np.save(buf, calib)
    files["calib.npy"] = buf.getvalue()
    files["train_report.json"] = json.dumps(report, indent=2) + "\n"
    write_files(args.output, files)
    b, d = report["bft"], report["dense"]
    print(f"  {'pointwise':<10} {'test accuracy':>14} {'pointwise MACs/image':>22}")
    print(f"  {'BFT (k=4)':<10} {b['accuracy']:>13.2%} {b['pointwise_macs_per_image']:>22,}")
    print(f"  {'dense':<10} {d['accuracy']:>13.2%} {d['pointwise_macs_per_image']:>22,}")
    print(f"wrote {args.output}/model.pt (BFT), dense.pt, calib.npy ({len(calib)} training images), "
          f"train_report.json")
    return 0


def _epoch_progress(epochs):
    """A tqdm bar per network, on stderr."""
    from tqdm import tqdm
    bars = {}

    def progress(name, epoch, loss):
        if name not in bars:
            bars[name] = tqdm(total=epochs, desc=f"  {name}", unit="epoch", leave=False,
                              disable=not sys.stderr.isatty())
        bars[name].update(1)
        bars[name].set_postfix(loss=f"{loss:.3f}")
        if epoch == epochs - 1:
            bars[name].close()
    return progress


def cmd_quantize(args):
    import numpy as np
    from bfly.sw.digits import load_model, quantize_model, quantized_accuracy, evaluate, load_digits_split, \
        ModelFileError
    from bfly.sw.quantize import QuantizeError
    from .files import write_files
    try:
        model = load_model(args.model)
    except ModelFileError as e:
        raise UserError(str(e))
    try:
        calib = np.load(args.calib, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read calibration images {args.calib}: {e}")
    if calib.ndim != 4 or calib.shape[1:] != (1, 8, 8) or len(calib) == 0:
        raise UserError(f"{args.calib}: expected images shaped (N, 1, 8, 8), not {calib.shape}")
    engine = {"data_bits": args.data_bits, "weight_bits": args.weight_bits,
              "rounding": args.rounding, "overflow": args.overflow}
    try:
        EngineConfig.bft(4, 2, **engine)          # validates widths and modes with the usual messages
        images = quantize_model(model, calib.astype(np.float32), **engine)
    except QuantizeError as e:
        raise UserError(str(e))
    _, _, xte, yte = load_digits_split()
    acc_float = evaluate(model, xte, yte)
    acc_quant = quantized_accuracy(model, images)
    report = {"engine": engine, "float_accuracy": acc_float, "quantized_accuracy": acc_quant,
              "blocks": {name: img.report for name, img in images.items()}}
    files = {f"{name}.bfly": img.to_bytes() for name, img in images.items()}
    files["quantize_report.json"] = json.dumps(report, indent=2) + "\n"
    write_files(args.output, files)
    for name, img in images.items():
        r = img.report
        sat = max(s["saturation_rate"] for s in r["stages"])
        print(f"  {name}.bfly  chain {img.config.chain_rows()}  shifts {img.params.shifts}  "
              f"final SQNR {r['final_sqnr_db']:.1f} dB, worst stage saturation {sat:.2%}")
    print(f"test accuracy: float {acc_float:.2%}, every BFT block {args.data_bits}-bit through the "
          f"golden model {acc_quant:.2%}")
    print(f"wrote {len(images)} weight images and quantize_report.json to {args.output}")
    return 0


def cmd_inspect(args):
    from bfly.sw.image import WeightImage, ImageError
    try:
        img = WeightImage.load(args.image)
    except ImageError as e:
        raise UserError(str(e))
    cfg, p = img.config, img.params
    info = {
        "config": cfg.to_dict(),
        "chain": cfg.chain_rows(),
        "shifts": p.shifts,
        "epilogue": None if p.epilogue is None else {
            "gain": p.epilogue.gain, "out_shift": p.epilogue.out_shift, "relu": p.epilogue.relu,
            "mult_range": [int(p.epilogue.mult.min()), int(p.epilogue.mult.max())],
            "bias_range": [int(p.epilogue.bias.min()), int(p.epilogue.bias.max())]},
        "input_scale": img.input_scale,
        "output_scale": img.output_scale,
        "report": img.report,
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{args.image}: {cfg.n_in} -> {cfg.n_out} channels, {cfg.data_bits}-bit data, "
          f"{cfg.weight_bits}-bit weights, {cfg.rounding}, {cfg.overflow}"
          f"{', epilogue' if cfg.epilogue else ''}")
    stages = {s["stage"]: s for s in img.report.get("stages", [])}
    for l, f in enumerate(cfg.factors):
        r = stages.get(l, {})
        extra = (f"  SQNR {r['sqnr_db']:.1f} dB, saturation {r['saturation_rate']:.3%}" if r else "")
        print(f"  stage {l}: [p,q,r,s,t] = {f.as_row()}  shift {p.shifts[l]}{extra}")
    if p.epilogue is not None:
        e = info["epilogue"]
        sat = img.report.get("epilogue", {}).get("saturation_rate")
        print(f"  epilogue: residual gain {e['gain']}, output shift {e['out_shift']}, "
              f"ReLU {'on' if e['relu'] else 'off'}, A in {e['mult_range']}, Bias in {e['bias_range']}"
              + (f", saturation {sat:.3%}" if sat is not None else ""))
    print(f"  input scale {img.input_scale:.6g}, output scale {img.output_scale:.6g}"
          + (f", final SQNR {img.report['final_sqnr_db']:.1f} dB on {img.report['calibration_pixels']} "
             f"calibration pixels" if "final_sqnr_db" in img.report else ""))
    return 0


def _time_limit(args):
    """``--time-limit`` (minutes) in seconds, or None."""
    if args.time_limit is None:
        return None
    if args.time_limit <= 0:
        raise UserError(f"--time-limit must be positive, not {args.time_limit:g}")
    return args.time_limit * 60


def cmd_synth(args):
    from .synth import synthesize, SynthError
    from tqdm import tqdm
    cfg = config_from_args(args)
    if args.freq <= 0:
        raise UserError(f"--freq must be positive, not {args.freq}")
    bar = tqdm(total=2, desc=f"{cfg.id} on {args.target}", unit="step", leave=False,
               disable=not sys.stderr.isatty(), bar_format="{desc}: {postfix} [{elapsed}]")

    def progress(step, done, total):
        bar.n = done
        bar.set_postfix_str(step)
    try:
        report = synthesize(cfg, args.target, args.freq, args.seed, progress=progress,
                            time_limit_s=_time_limit(args), timing_ripup=args.tmg_ripup)
    except SynthError as e:
        raise RuntimeError(str(e))
    finally:
        bar.close()
    u, a = report["used"], report["available"]
    fmax = report["fmax_mhz"]
    print(f"{cfg.name} on {args.target}" + (" (cached)" if report["cached"] else ""))
    for key, label in (("luts", "LUTs (logic cells)" if "ice40" in args.target else "LUTs"),
                       ("ffs", "flip-flops"), ("dsps", "DSPs"), ("brams", "block RAMs"),
                       ("lutram", "LUT RAM"), ("spram", "SPRAM")):
        if key in u:
            print(f"  {label:<20} {u[key]:>8,} of {a[key]:,} ({u[key] / a[key]:.1%})" if a[key] else
                  f"  {label:<20} {u[key]:>8,}")
    if "shell" in report:
        sh = report["shell"]
        print(f"  (includes the measurement shell: {sh['input_flip_flops']} input flip-flops and an "
              f"XOR tree over {sh['xor_tree_inputs']} output bits, "
              f"{sh.get('xor_tree_flip_flops', 0)} flip-flops)")
    verdict = "meets" if report["meets_timing"] else "MISSES"
    print(f"  Fmax {fmax:.1f} MHz ({verdict} the requested {args.freq:g} MHz); "
          f"{cfg.multipliers} multipliers, {pixels_per_clock_text(cfg)}, latency {report['latency_cycles']} clocks")
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.output}")
    return 0


def _int_list(flag, text, lo, allow_all=False):
    """``"64,128"`` -> ``[64, 128]`` (``"all"`` -> 0 where allowed), without repeats."""
    values = []
    for item in (v.strip() for v in text.split(",")):
        if not item:
            continue
        if allow_all and item == "all":
            value = 0
        else:
            try:
                value = int(item)
            except ValueError:
                raise UserError(f"{flag} must be integers separated by commas"
                                f"{' (or all)' if allow_all else ''}, not {text!r}")
            if value < lo:
                raise UserError(f"{flag} values must be at least {lo}, not {value}")
        if value not in values:
            values.append(value)
    if not values:
        raise UserError(f"{flag} needs at least one value")
    return values


def cmd_dse(args):
    from .dse import sweep_configs, run_sweep, pareto_fronts, write_outputs
    from .synth import TARGETS
    from tqdm import tqdm
    if args.target not in TARGETS:
        raise UserError(f"unknown target {args.target!r}; choose from {', '.join(TARGETS)}")
    ns = _int_list("--n", args.n, 2)
    ks = _int_list("--k", args.k, 2)
    lanes = _int_list("--lanes", args.lanes, 0, allow_all=True)
    if args.freq <= 0:
        raise UserError(f"--freq must be positive, not {args.freq}")
    jobs = (os.cpu_count() or 1) if args.jobs is None else args.jobs
    if jobs < 1:
        raise UserError(f"--jobs must be at least 1, not {jobs}")
    time_limit_s = _time_limit(args)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise UserError(f"-o {out}: exists and is not a directory")
    EngineConfig.bft(4, 2, data_bits=args.data_bits, weight_bits=args.weight_bits)   # the widths' own errors
    configs, skipped = sweep_configs(ns, ks, lanes, args.data_bits, args.weight_bits, dense=not args.dense_off)
    if not configs:
        more = f" and {len(skipped) - 2} more" if len(skipped) > 2 else ""
        raise UserError(f"no configuration to synthesize: {'; '.join(skipped[:2])}{more}")
    for line in skipped:
        print(f"  skipped {line}")
    print(f"synthesizing {len(configs)} configurations for {args.target} at {args.freq:g} MHz, "
          f"{jobs} at a time (earlier results are reused from build/synth/)", flush=True)
    bar = tqdm(total=len(configs), desc="bfly dse", unit="config", disable=not sys.stderr.isatty())

    def progress(done, total, row):
        bar.update(1)
        bar.set_postfix_str(row["id"])
    try:
        rows = run_sweep(configs, args.target, args.freq, jobs, progress=progress,
                         time_limit_s=time_limit_s)
    finally:
        bar.close()
    names = write_outputs(rows, out, args.target, skipped)
    front = {r["id"] for key in ("dsps", "luts") for f in pareto_fronts(rows, key).values() for r in f}

    def num(v, fmt="{:,}", scale=1):
        return "-" if v is None else fmt.format(v if scale == 1 else v / scale)
    print(f"  {'id':<26} {'mults':>6} {'clk/px':>6} {'LUTs':>7} {'FFs':>7} {'DSPs':>5} {'BRAMs':>5} "
          f"{'Fmax':>6} {'Mpx/s':>7}")
    for r in rows:
        mark = "*" if r["id"] in front else " "
        tail = "" if r["status"] == "ok" else f"  {r['status']}"
        print(f"{mark} {r['id']:<26} {r['multipliers']:>6,} {r['interval']:>6} {num(r['luts']):>7} "
              f"{num(r['ffs']):>7} {num(r['dsps']):>5} {num(r['brams']):>5} {num(r['fmax_mhz'], '{:.1f}'):>6} "
              f"{num(r['pixels_per_s'], '{:.2f}', 1e6):>7}{tail}")
    print("  (* on the Pareto front of its n: pixels/s against DSPs or LUTs)")
    for name in names:
        print(f"  wrote {out / name}")
    ok = sum(r["status"] == "ok" for r in rows)
    if not ok:
        raise RuntimeError(f"none of the {len(rows)} configurations was synthesized; see the status "
                           f"column of {out / 'dse.csv'}")
    return 0


def cmd_build(args):
    from .build import build_board, BuildError
    cfg = config_from_args(args)
    print(f"building {cfg.id} for {args.board} (synthesis, place and route, bitstream: minutes)", flush=True)
    try:
        r = build_board(cfg, args.board, args.output, args.baud)
    except BuildError as e:
        raise RuntimeError(str(e))
    u, a = r["used"], r["available"]
    ffs = f", flip-flops {u['ffs']:,}" if "ffs" in u else ""       # iCE40 logic cells hold both
    print(f"  LUTs {u['luts']:,} of {a['luts']:,}{ffs}, DSPs {u['dsps']} of {a['dsps']}, "
          f"block RAMs {u['brams']} of {a['brams']}")
    print(f"  Fmax {r['fmax_mhz']:.1f} MHz at a {r['clock_mhz']:g} MHz clock; UART {r['baud']} baud")
    print(f"  bitstream {r['bitstream']}; report {Path(args.output) / 'build.json'}")
    if args.program:
        print(f"program the board with:  {r['program']}")
    return 0


def cmd_sim_board(args):
    import subprocess
    from bfly.sim.board_sim import build_board_sim
    cfg = config_from_args(args)
    host, _, port = args.listen.rpartition(":")
    if host not in ("127.0.0.1", "localhost") or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--listen must be 127.0.0.1:PORT, not {args.listen!r}")
    print(f"building the simulated board for {cfg.id} (cached after the first time)", flush=True)
    exe, divisor = build_board_sim(cfg)
    cmd = [str(exe), "--port", port, "--divisor", str(divisor)] + (["--once"] if args.once else [])
    proc = subprocess.Popen(cmd)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.wait()
        return 0


def _connect(args):
    from bfly.sw.driver import Accelerator, SerialTransport, DriverError, LinkError
    try:
        return Accelerator(SerialTransport(args.port, args.baud, args.timeout), progress=sys.stderr.isatty())
    except (LinkError, DriverError) as e:
        raise UserError(f"{args.port}: {e}")


def cmd_load(args):
    from bfly.sw.image import WeightImage, ImageError
    from bfly.sw.driver import DriverError, LinkError
    try:
        image = WeightImage.load(args.image)
    except ImageError as e:
        raise UserError(str(e))
    acc = _connect(args)
    t0 = time.time()
    try:
        acc.load(image)
    except DriverError as e:
        raise UserError(str(e))
    except LinkError as e:
        raise RuntimeError(f"{args.port}: {e}")
    print(f"loaded {args.image} onto {acc.config.id} in {time.time() - t0:.2f} s "
          f"({acc.stats['retries']} retries), committed")
    return 0


def cmd_run(args):
    import numpy as np
    from bfly.sw.driver import DriverError, LinkError
    from bfly.sim.model import engine_forward
    try:
        fmap = np.load(args.input, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {args.input}: {e}")
    acc = _connect(args)
    t0 = time.time()
    try:
        out = acc.run(fmap)
        dt = time.time() - t0
        params = acc.read_params() if args.check else None
    except DriverError as e:
        raise UserError(str(e))
    except LinkError as e:
        raise RuntimeError(f"{args.port}: {e}")
    pixels = fmap.shape[1] * fmap.shape[2]
    from .files import write_files
    import io
    buf = io.BytesIO()
    np.save(buf, out)
    out_path = Path(args.output)
    write_files(out_path.parent, {out_path.name: buf.getvalue()})
    print(f"{pixels} pixels in {dt:.2f} s ({pixels / dt:,.0f} pixels/s); wrote {args.output} {out.shape}")
    if args.check:
        want = engine_forward(acc.config, params, fmap.reshape(fmap.shape[0], -1).T).y
        got = out.reshape(out.shape[0], -1).T
        if not np.array_equal(got, want):
            bad = np.argwhere(got != want)[0]
            print(f"FAIL pixel {bad[0]} channel {bad[1]}: board {got[tuple(bad)]}, golden model {want[tuple(bad)]}")
            return 1
        print(f"PASS {pixels} pixels equal the golden model with the parameters read back from the board")
    return 0


def build_parser():
    parser = _Parser(prog="bfly", description="Butterfly Transform engines for FPGAs.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)

    from .synth import TARGETS as SYNTH_TARGETS
    p = sub.add_parser("gen", help="generate Verilog, manifest.json, regmap.json and a C header")
    _add_config_args(p)
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    p.add_argument("--target", default=None, choices=list(SYNTH_TARGETS),
                   help="the engine Verilog that bfly synth places and routes for this device, "
                        "vendor primitives included (default: generic Verilog)")
    p.set_defaults(func=cmd_gen)

    p = sub.add_parser("sim", help="simulate under Verilator against the golden model")
    _add_config_args(p)
    p.add_argument("--pixels", type=int, default=2000, help="pixels to stream (default 2000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--stall-prob", type=float, default=0.0, help="probability the output is not ready")
    p.add_argument("--idle-prob", type=float, default=0.0, help="probability the input is idle")
    p.add_argument("--frames", type=int, default=4, help="frames (tlast) to split the pixels into")
    p.add_argument("--commits", type=int, default=0, help="new weight banks committed while streaming")
    p.add_argument("--waves", action="store_true", help="write a VCD waveform (in build/sim/<id>_waves/run/)")
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("synth", help="synthesize, place and route an engine; report LUT/FF/DSP/BRAM and Fmax")
    _add_config_args(p)
    p.add_argument("--target", default="ecp5-85k", choices=["ecp5-85k", "ice40-up5k"],
                   help="device (default ecp5-85k; both measure the engine inside a scan shell)")
    p.add_argument("--freq", type=float, default=100.0, help="requested clock in MHz (default 100)")
    p.add_argument("--seed", type=int, default=1, help="placer seed (default 1)")
    p.add_argument("--tmg-ripup", action="store_true",
                   help="nextpnr reroutes nets on failing paths (slower; often a higher Fmax when "
                        "the requested clock is near reach, very slow when it is far)")
    p.add_argument("--time-limit", type=float, default=None, metavar="MINUTES",
                   help="stop a tool that runs longer than this (default: no limit)")
    p.add_argument("-o", "--output", metavar="JSON", help="also write the report here")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("dse", help="design-space sweep: synthesize butterflies and dense baselines in "
                                   "parallel; dse.csv, dse.json and a Pareto plot")
    p.add_argument("--target", default="ecp5-85k", help="device (default ecp5-85k; see bfly synth --target)")
    p.add_argument("--n", required=True, help="channel counts, comma-separated (e.g. 64,128,256)")
    p.add_argument("--k", required=True, help="radices, comma-separated (e.g. 2,4,8)")
    p.add_argument("--lanes", default="all",
                   help="fold factors, comma-separated, all = fully parallel (default all)")
    p.add_argument("--data-bits", type=int, default=8, help="activation width (default 8)")
    p.add_argument("--weight-bits", type=int, default=8, help="weight width (default 8)")
    p.add_argument("--freq", type=float, default=100.0, help="requested clock in MHz (default 100)")
    p.add_argument("--jobs", type=int, default=None, help="syntheses at a time (default: one per CPU)")
    p.add_argument("--time-limit", type=float, default=60.0, metavar="MINUTES",
                   help="a configuration whose synthesis or place and route runs longer is a row "
                        "with that reason (default 60)")
    p.add_argument("--no-dense", dest="dense_off", action="store_true",
                   help="butterflies only, no dense baselines")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    p.set_defaults(func=cmd_dse)

    p = sub.add_parser("build", help="bitstream for a board (engine + UART bridge) with timing report")
    _add_config_args(p)
    p.add_argument("--board", default="ulx3s", choices=["ulx3s", "icebreaker"], help="board (default ulx3s)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="build directory")
    p.add_argument("--baud", type=int, default=None, help="UART baud rate (default: the board's fastest exact rate)")
    p.add_argument("--program", action="store_true", help="print the command that programs the board")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("sim-board", help="run the board design in Verilator, its UART on a TCP socket")
    _add_config_args(p)
    p.add_argument("--listen", default="127.0.0.1:4321", help="address to serve (default 127.0.0.1:4321)")
    p.add_argument("--once", action="store_true", help="stop when the client disconnects")
    p.set_defaults(func=cmd_sim_board)

    for name, func, helptext in (("load", cmd_load, "load a weight image onto a board and commit it"),
                                 ("run", cmd_run, "stream a feature map through a board")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--port", required=True, help="serial port or pyserial URL (socket://127.0.0.1:4321)")
        p.add_argument("--baud", type=int, default=3_000_000, help="baud rate of a real port (default 3000000)")
        p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for a reply (default 2)")
        if name == "load":
            p.add_argument("image", help="a .bfly weight image")
        else:
            p.add_argument("--input", required=True, help="integer feature map (C, H, W), .npy")
            p.add_argument("-o", "--output", required=True, help="output feature map (P, H, W), .npy")
            p.add_argument("--check", action="store_true",
                           help="compare with the golden model using the parameters read back from the board")
        p.set_defaults(func=func)

    p = sub.add_parser("train-demo", help="train the digits network (BFT and dense), save model.pt")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    p.add_argument("--epochs", type=int, default=40, help="training epochs (default 40)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=cmd_train_demo)

    p = sub.add_parser("quantize", help="quantize every BFT block of a trained model into weight images")
    p.add_argument("model", help="model.pt written by bfly train-demo")
    p.add_argument("--calib", required=True, metavar="NPY", help="calibration images, (N, 1, 8, 8)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    p.add_argument("--data-bits", type=int, default=8, help="engine activation width (default 8)")
    p.add_argument("--weight-bits", type=int, default=8, help="engine weight width (default 8)")
    p.add_argument("--rounding", choices=ROUNDING_MODES, default="half_even", help="engine rounding")
    p.add_argument("--overflow", choices=OVERFLOW_MODES, default="saturate", help="engine overflow")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("inspect", help="show a weight image: configuration, shifts, SQNR, saturation")
    p.add_argument("image", help="a .bfly weight image")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("demo", help="generate BFT(64, 4) and simulate it with random weights")
    p.add_argument("-o", "--output", default="build/demo", metavar="DIR", help="output directory")
    p.add_argument("--pixels", type=int, default=3000, help="pixels to stream (default 3000)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, UserError) as e:
        print(f"bfly {args.command}: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:           # a failed Verilator build or simulation run
        print(f"bfly {args.command}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"bfly {args.command}: error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"bfly {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
