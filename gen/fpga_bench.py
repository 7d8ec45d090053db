"""``make bench``: the FPGA benchmark table. Butterfly engines and the dense pointwise baseline at
the same ``n`` and (at most) the same multiplier budget, synthesized, placed and routed on the
ECP5-85F in one run (``gen/dse.py`` runs them in parallel); the table goes to
``build/bench/fpga.json`` and between the ``bench:fpga`` markers of docs/bench.md and the README
(the files of :data:`TABLE_FILES`, relative to the current directory).

The figure of merit is pixels per second per DSP; its butterfly/dense ratio is compared with the
ideal ``n / (k * log_k n)`` (the ratio of multiplications per pixel).
"""

import argparse
import json
import math
import sys
from pathlib import Path

from bfly.hw.config import EngineConfig
from bfly.sim.runner import work_dir
from .dse import run_sweep, dense_match
from .files import write_files
from .synth import TARGETS

__all__ = ["PAIRS", "bench_table", "main"]

START, END = "<!-- bench:fpga:start -->", "<!-- bench:fpga:end -->"
TABLE_FILES = ("docs/bench.md", "README.md")

# the butterflies, folded to fit the 156 DSPs; each is paired with the dense engine of about the
# same multiplier budget that `bfly dse` would choose (gen.dse.dense_match)
BUTTERFLIES = [EngineConfig.bft(16, 4), EngineConfig.bft(64, 4, lanes=8), EngineConfig.bft(256, 4, lanes=8)]


def _pair(bft):
    pe, simd = dense_match(bft.n_in, bft.multipliers, bft.lanes)
    return bft, EngineConfig.dense(bft.n_in, lanes=pe, simd=simd)


PAIRS = [_pair(b) for b in BUTTERFLIES]


def _per_dsp(row):
    return row["pixels_per_s"] / max(1, row["dsps"]) if row.get("status") == "ok" else None


def bench_table(rows_by_id):
    """Pair rows (from :func:`bfly.gen.dse.run_sweep`) into the table's comparisons."""
    pairs = []
    for bft, dense in PAIRS:
        b, d = rows_by_id.get(bft.id), rows_by_id.get(dense.id)
        k = bft.factors[0].r
        ideal = bft.n_in / (k * round(math.log(bft.n_in, k)))
        ratio = None
        if b and d and _per_dsp(b) and _per_dsp(d):
            ratio = _per_dsp(b) / _per_dsp(d)
        pairs.append({"n": bft.n_in, "k": k, "butterfly": bft.id, "dense": dense.id,
                      "ratio_per_dsp": ratio, "ideal": ideal,
                      "fraction_of_ideal": ratio / ideal if ratio else None})
    return pairs


def _fmt(v, spec, suffix=""):
    return "n/a" if v is None else format(v, spec) + suffix


def _router(target):
    """The nextpnr router the target uses (its ``--router`` argument), or None."""
    args = TARGETS[target].nextpnr if target in TARGETS else []
    return args[args.index("--router") + 1] if "--router" in args[:-1] else None


def markdown(rows, pairs, target, freq, ripup=False, router=None):
    how = (f" ({router})" if router else "") + (" with `--tmg-ripup`" if ripup else "")
    lines = [f"Measured by `make bench` on {target} (requested clock {freq:g} MHz, YoWASP yosys + "
             f"nextpnr{how}, seed 1, 8-bit data and weights, engine with its AXI4-Lite/AXI4-Stream shell, "
             f"inside the measurement shell of `hw/scanshell.py`, which the figures include):", "",
             "| engine | multipliers | LUTs | FFs | DSPs | BRAMs | Fmax MHz | pixels/clock | "
             "pixels/s | latency (clocks) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["status"] != "ok":
            reason = r["status"].split("; see ")[0]       # the log's path stays in the JSON
            lines.append(f"| `{r['id']}` | {r['multipliers']} | {reason} ||||||||")
            continue
        lines.append(
            f"| `{r['id']}` | {r['multipliers']} | {r['luts']:,} | {r['ffs']:,} | {r['dsps']} | "
            f"{r['brams']} | {r['fmax_mhz']:.1f} | 1/{r['interval']} | {r['pixels_per_s']:,.0f} | "
            f"{r['latency_cycles']} |")
    fallback = [f"`{r['id']}`" for r in rows if r.get("yosys_fallback")]
    if fallback:
        lines += ["", f"Synthesized with the fallback script (LUTs mapped by yosys's `abc`; its "
                      f"`abc9` fails an assertion on this netlist, see `gen/synth.py`): "
                      f"{', '.join(fallback)}."]
    lines += ["", "| n | butterfly | dense | butterfly/dense pixels/s per DSP | ideal n/(k log_k n) | "
              "fraction of ideal |", "|---:|---|---|---:|---:|---:|"]
    for p in pairs:
        lines.append(f"| {p['n']} | `{p['butterfly']}` | `{p['dense']}` | {_fmt(p['ratio_per_dsp'], '.2f', 'x')} | "
                     f"{p['ideal']:.2f}x | {_fmt(p['fraction_of_ideal'], '.0%')} |")
    return "\n".join(lines)


def update_readme(readme, text):
    body = readme.read_text()
    if START not in body or END not in body:
        raise SystemExit(f"{readme}: the {START} ... {END} markers are missing")
    head, rest = body.split(START, 1)
    _, tail = rest.split(END, 1)
    write_files(readme.parent, {readme.name: f"{head}{START}\n{text}\n{END}{tail}"})


def _publish(rows, pairs, target, freq, ripup, router, readme):
    """Print the table and, with ``readme``, put it into the :data:`TABLE_FILES`."""
    text = markdown(rows, pairs, target, freq, ripup, router)
    print(text)
    if readme:
        for name in TABLE_FILES:
            update_readme(Path(name), text)
            print(f"\nupdated {name}")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bfly.gen.fpga_bench", description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="ecp5-85k")
    ap.add_argument("--freq", type=float, default=200.0, help="requested clock in MHz (default 200)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--tmg-ripup", action="store_true",
                    help="nextpnr's timing-driven rip-up in the router for every engine (slower; "
                         "sometimes a faster result)")
    ap.add_argument("--time-limit", type=float, default=60.0, metavar="MINUTES",
                    help="stop a tool after this long; its engine is a row with that reason (default 60)")
    ap.add_argument("-o", "--output", default=str(work_dir("bench", "fpga.json")))
    ap.add_argument("--no-readme", action="store_true", help="do not update docs/bench.md and README.md")
    ap.add_argument("--from-json", metavar="JSON",
                    help="write the table of a saved run (its fpga.json) again, without synthesis")
    args = ap.parse_args(argv)
    if args.from_json:
        try:
            saved = json.loads(Path(args.from_json).read_text())
            rows, target, freq = saved["rows"], saved["target"], saved["requested_mhz"]
            ripup, router = saved.get("timing_ripup", False), saved.get("router")
        except (OSError, ValueError, KeyError) as e:
            ap.error(f"cannot read a saved run from {args.from_json}: {e}")
        _publish(rows, bench_table({r["id"]: r for r in rows}), target, freq, ripup, router,
                 not args.no_readme)
        return 0
    configs = [c for pair in reversed(PAIRS) for c in pair]       # the longest runs first
    if args.time_limit <= 0 or args.jobs < 1:
        ap.error("--time-limit and --jobs must be positive")
    rows = run_sweep(configs, args.target, args.freq, args.jobs, time_limit_s=args.time_limit * 60,
                     timing_ripup=args.tmg_ripup)
    pairs = bench_table({r["id"]: r for r in rows})
    out = Path(args.output)
    write_files(out.parent, {out.name: json.dumps({"target": args.target, "requested_mhz": args.freq,
                                                   "timing_ripup": args.tmg_ripup,
                                                   "router": _router(args.target),
                                                   "rows": rows, "pairs": pairs}, indent=2) + "\n"})
    print(f"wrote {out}\n")
    _publish(rows, pairs, args.target, args.freq, args.tmg_ripup, _router(args.target),
             not args.no_readme)
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
