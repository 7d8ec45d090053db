"""``bfly synth``, ``bfly plan`` and ``bfly dse``: an engine, the engines of a network, or a sweep
of them, through synthesis, place and route on an FPGA target (a plan: by estimates first)."""

import json
import os
import sys
from pathlib import Path

from bfly.gen.synth import TARGETS
from bfly.hw.config import EngineConfig

from .common import UserError, add_config_args, config_from_args, output_path, pixels_per_clock_text, \
    positive_float, seed_arg, time_limit, step_bar

__all__ = ["register"]


def cmd_synth(args):
    from bfly.gen.synth import synthesize, SynthError
    from tqdm import tqdm
    cfg = config_from_args(args)
    bar = tqdm(total=2, desc=f"{cfg.id} on {args.target}", unit="step", leave=False,
               disable=not sys.stderr.isatty(), bar_format="{desc}: {postfix} [{elapsed}]")

    def progress(step, done, total):
        bar.n = done
        bar.set_postfix_str(step)
    try:
        report = synthesize(cfg, args.target, args.freq, args.seed, progress=progress,
                            time_limit_s=time_limit(args), timing_ripup=args.tmg_ripup)
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
    from bfly.gen.dse import sweep_configs, run_sweep, pareto_fronts, write_outputs
    from bfly.gen.synth import TARGETS
    from tqdm import tqdm
    if args.target not in TARGETS:
        raise UserError(f"unknown target {args.target!r}; choose from {', '.join(TARGETS)}")
    ns = _int_list("--n", args.n, 2)
    ks = _int_list("--k", args.k, 2)
    lanes = _int_list("--lanes", args.lanes, 0, allow_all=True)
    jobs = (os.cpu_count() or 1) if args.jobs is None else args.jobs
    if jobs < 1:
        raise UserError(f"--jobs must be at least 1, not {jobs}")
    time_limit_s = time_limit(args)
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


def cmd_plan(args):
    """``bfly plan NETWORK``: the lanes of each engine of an exported network for a device."""
    from bfly.gen.files import write_files
    from bfly.gen.plan import plan_network, PlanError
    from bfly.sw.export import load_export, engine_configs
    from bfly.sw.network import ModelError
    try:
        export = load_export(args.network)
    except ModelError as e:
        raise UserError(str(e))
    layers = export.layers
    if any("pixels_per_input" not in l for l in layers):
        raise UserError(f"{args.network}: the manifest has no pixels_per_input (an older bfly "
                        f"export): export the network again")
    cfgs = engine_configs(export)
    loads = [sum(l["pixels_per_input"] for l in layers if l["engine"] == e) for e in range(len(cfgs))]
    try:
        with step_bar("planning") as progress:
            plan = plan_network(cfgs, loads, args.target, args.target_inputs_per_s, progress=progress)
    except PlanError as e:
        raise UserError(str(e))
    plan["network"] = str(Path(args.network).resolve())
    print(f"plan for {args.target}: {len(cfgs)} engines, estimates without synthesis")
    print(f"  {'engine':<32} {'layers':<22} {'lanes':>5} {'clk/px':>6} {'DSPs':>5} {'LUTs':>7} "
          f"{'FFs':>7} {'BRAMs':>5} {'MHz':>5} {'px/input':>8} {'inputs/s':>10}")
    for e in plan["engines"]:
        est = e["estimate"]
        names = ",".join(l["name"] for l in layers if l["engine"] == e["engine"])
        epi = " (epilogue in LUTs)" if e["implementation"]["epilogue_products"] == "lut" else ""
        print(f"  {e['config']['id']:<32} {names[:22]:<22} {e['lanes'] or 'all':>5} {e['interval']:>6} "
              f"{est['dsps']:>5} {est['luts']:>7,} {est['ffs']:>7,} {est['brams']:>5} {est['fmax_mhz']:>5.0f} "
              f"{e['pixels_per_input']:>8} {e['inputs_per_s']:>10,.0f}{epi}")
    u, a = plan["used"], plan["available"]
    print(f"  total: DSPs {u['dsps']} of {a['dsps']}, LUTs {u['luts']:,.0f} of {a['luts']:,}, "
          f"flip-flops {u['ffs']:,.0f} of {a['ffs']:,}, block RAMs {u['brams']} of {a['brams']}")
    print(f"network: {plan['inputs_per_s']:,.0f} inputs/s at the estimated clocks, bound by engine "
          f"{plan['bound_by']}" + ("" if plan["meets_target"] else
                                   f"; the target {args.target_inputs_per_s:,.0f} inputs/s is not met"))
    if args.output:
        write_files(Path(args.output).parent or ".", {Path(args.output).name: json.dumps(plan, indent=2) + "\n"})
        print(f"wrote {args.output} (bfly build --network {args.network} --plan {args.output})")
    return 0


def register(sub):
    p = sub.add_parser("synth", help="synthesize, place and route an engine; report LUT/FF/DSP/BRAM and Fmax")
    add_config_args(p)
    p.add_argument("--target", default="ecp5-85k", choices=list(TARGETS),
                   help="device (default ecp5-85k; both measure the engine inside a scan shell)")
    p.add_argument("--freq", type=positive_float, default=100.0, help="requested clock in MHz (default 100)")
    p.add_argument("--seed", type=seed_arg, default=1, help="placer seed (default 1)")
    p.add_argument("--tmg-ripup", action="store_true",
                   help="nextpnr reroutes nets on failing paths (slower; often a higher Fmax when "
                        "the requested clock is near reach, very slow when it is far)")
    p.add_argument("--time-limit", type=float, default=None, metavar="MINUTES",
                   help="stop a tool that runs longer than this (default: no limit)")
    p.add_argument("-o", "--output", metavar="JSON", type=output_path, help="also write the report here")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("plan", help="choose the lanes of each engine of an exported network so that "
                                    "all fit one device, with resource and Fmax estimates")
    p.add_argument("network", help="the directory bfly export wrote (or its network.json)")
    p.add_argument("--target", default="ecp5-85k", help="device (default ecp5-85k)")
    p.add_argument("--target-inputs-per-s", type=positive_float, default=None, metavar="R",
                   help="the fewest DSPs that reach R model inputs per second (default: the most "
                        "inputs per second that fit)")
    p.add_argument("-o", "--output", metavar="JSON", type=output_path, help="write the plan here")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("dse", help="design-space sweep: synthesize butterflies and dense baselines in "
                                   "parallel; dse.csv, dse.json and a Pareto plot")
    p.add_argument("--target", default="ecp5-85k", help="device (default ecp5-85k; see bfly synth --target)")
    p.add_argument("--n", required=True, help="channel counts, comma-separated (e.g. 64,128,256)")
    p.add_argument("--k", required=True, help="radices, comma-separated (e.g. 2,4,8)")
    p.add_argument("--lanes", default="all",
                   help="fold factors, comma-separated, all = fully parallel (default all)")
    p.add_argument("--data-bits", type=int, default=8, help="activation width (default 8)")
    p.add_argument("--weight-bits", type=int, default=8, help="weight width (default 8)")
    p.add_argument("--freq", type=positive_float, default=100.0, help="requested clock in MHz (default 100)")
    p.add_argument("--jobs", type=int, default=None, help="syntheses at a time (default: one per CPU)")
    p.add_argument("--time-limit", type=float, default=60.0, metavar="MINUTES",
                   help="a configuration whose synthesis or place and route runs longer is a row "
                        "with that reason (default 60)")
    p.add_argument("--no-dense", dest="dense_off", action="store_true",
                   help="butterflies only, no dense baselines")
    p.add_argument("-o", "--output", required=True, metavar="DIR", type=output_path, help="output directory")
    p.set_defaults(func=cmd_dse)
