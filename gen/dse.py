"""``bfly dse``: a design-space sweep. Butterfly engines BFT(n, k) at several fold factors
(``lanes``) and dense pointwise baselines are synthesized in parallel (each through
:func:`bfly.gen.synth.synthesize`, cached per configuration), and their throughput is set against
their resources: ``dse.csv``, ``dse.json`` and ``pareto.png`` (pixels/s against DSPs and LUTs,
with the butterfly Pareto front).

The dense baseline of a butterfly configuration has about the same multiplier budget: among the
dense ``n x n`` engines (FINN's MVAU: PE = ``lanes``, SIMD = ``simd``, both dividing n) it is the
one whose ``PE * SIMD`` is closest to the butterfly's multiplier count (on a tie the larger, so the
baseline never gets fewer multipliers), and of those the one whose PE is closest to the
butterfly's lanes. Equal budgets make the comparison one of throughput at equal cost; the dense
engine at the butterfly's throughput instead (PE = lanes, SIMD = n) needs n / (k log_k n) times
the multipliers, e.g. 4096 for a fully parallel 64 x 64 layer, which no ECP5 holds and which would
take yosys a long time to find out. Several butterflies of one n can share a baseline; it is
synthesized once.
"""

import concurrent.futures
import csv
import io
import json
import math
import os

from bfly.hw.config import EngineConfig, ConfigError
from .files import write_files
from .synth import synthesize, SynthError

__all__ = ["FIELDS", "sweep_configs", "dense_match", "run_sweep", "pareto_front", "pareto_fronts",
           "short_label", "write_outputs"]

# the columns of a result row (dse.csv), in order
FIELDS = ["kind", "id", "n", "k", "lanes", "simd", "multipliers", "interval", "luts", "ffs", "dsps",
          "brams", "fmax_mhz", "pixels_per_clock", "pixels_per_s", "latency_cycles", "yosys_fallback",
          "status"]


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def dense_match(n, multipliers, lanes=0):
    """``(pe, simd)`` of the dense ``n x n`` engine matching a butterfly with ``multipliers``
    multipliers and ``lanes`` lanes (0: fully parallel): see the module docstring."""
    want_pe = lanes or n
    candidates = [(pe, simd) for pe in _divisors(n) for simd in _divisors(n)]
    return min(candidates, key=lambda c: (abs(c[0] * c[1] - multipliers), -c[0] * c[1],
                                          abs(math.log(c[0] / want_pe)), -c[1]))


def sweep_configs(ns, ks, lanes_options, data_bits=8, weight_bits=8, dense=True):
    """The configurations of a sweep: ``(configs, skipped)``.

    ``configs`` holds BFT(n, k) for every ``n`` in ``ns`` and ``k < n`` in ``ks`` that exists, at every
    lanes option in ``lanes_options`` (0 or ``"all"``: fully parallel) that divides n, each followed
    (``dense=True``) by its dense baseline (:func:`dense_match`) unless an earlier one is the same
    engine. ``skipped`` lists the impossible combinations, one line each, with the reason.
    """
    configs, skipped, seen = [], [], {}
    widths = {"data_bits": data_bits, "weight_bits": weight_bits}
    for n in ns:
        for k in ks:
            try:
                full = EngineConfig.bft(n, k, **widths)
            except ConfigError as e:
                skipped.append(f"butterfly n={n} k={k}: {e}")
                continue
            if full.is_dense:
                skipped.append(f"butterfly n={n} k={k}: one stage of radix n is the dense layer, not a butterfly")
                continue
            for lanes in lanes_options:
                lanes = 0 if lanes == "all" else lanes
                what = f"butterfly n={n} k={k} lanes {lanes or 'all'}"
                try:
                    cfg = EngineConfig.bft(n, k, lanes=lanes, **widths)
                except ConfigError as e:
                    skipped.append(f"{what}: {e}")
                    continue
                if cfg.id in seen:
                    skipped.append(f"{what}: the same engine as {seen[cfg.id]} (lanes >= n is fully parallel)")
                    continue
                seen[cfg.id] = what
                configs.append(cfg)
                if not dense:
                    continue
                pe, simd = dense_match(n, cfg.multipliers, cfg.lanes)
                try:
                    base = EngineConfig.dense(n, lanes=pe, simd=simd, **widths)
                except ConfigError as e:
                    if f"dense n={n}: {e}" not in skipped:
                        skipped.append(f"dense n={n}: {e}")
                    continue
                if base.id not in seen:
                    seen[base.id] = f"dense n={n} PE {base.lanes or 'all'} SIMD {base.simd or 'all'}"
                    configs.append(base)
    return configs, skipped


def _row(cfg, report=None, status="ok"):
    """The result row of ``cfg`` (resources and Fmax from ``report``, None without one)."""
    used = report["used"] if report else {}
    fmax = report.get("fmax_mhz") if report else None
    return {
        "kind": "dense" if cfg.is_dense else "butterfly",
        "id": cfg.id,
        "n": cfg.n_in,
        "k": None if cfg.is_dense else cfg.factors[0].r,
        "lanes": cfg.lanes,
        "simd": cfg.simd,
        "multipliers": cfg.multipliers,
        "interval": cfg.interval,
        "luts": used.get("luts"),
        "ffs": used.get("ffs"),
        "dsps": used.get("dsps"),
        "brams": used.get("brams"),
        "fmax_mhz": fmax,
        "pixels_per_clock": 1 / cfg.interval,
        "pixels_per_s": None if fmax is None else fmax * 1e6 / cfg.interval,
        "latency_cycles": report.get("latency_cycles") if report else None,
        # synthesized with the target's fallback script (gen/synth.py: a known yosys fault)
        "yosys_fallback": report.get("fallback_script", False) if report else None,
        "status": status,
    }


def _one(cfg, target, freq_mhz, root, time_limit_s, timing_ripup):
    try:
        return _row(cfg, synthesize(cfg, target, freq_mhz, root=root, time_limit_s=time_limit_s,
                                    timing_ripup=timing_ripup))
    except SynthError as e:
        return _row(cfg, status=" ".join(str(e).split()))
    except Exception as e:            # one broken configuration must not end an hour-long sweep
        return _row(cfg, status=" ".join(f"{type(e).__name__}: {e}".split()))


def run_sweep(configs, target, freq_mhz=100.0, jobs=None, root=None, progress=None, time_limit_s=None,
              timing_ripup=False):
    """Synthesize ``configs`` for ``target``, ``jobs`` at a time (default: one per CPU); return
    their rows (:data:`FIELDS`) in the order of ``configs``. A configuration that fails (or whose
    tools run past ``time_limit_s`` seconds) has its one-line error as ``status`` and None for
    its results; the others go on. ``timing_ripup`` as in :func:`bfly.gen.synth.synthesize`.

    ``progress(done, total, row)`` is called (in the calling thread) as each one finishes.
    """
    jobs = jobs or os.cpu_count() or 1
    rows = [None] * len(configs)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = {pool.submit(_one, cfg, target, freq_mhz, root, time_limit_s, timing_ripup): i
                   for i, cfg in enumerate(configs)}
        for done, fut in enumerate(concurrent.futures.as_completed(futures), 1):
            rows[futures[fut]] = fut.result()
            if progress:
                progress(done, len(configs), rows[futures[fut]])
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return rows


def pareto_front(rows, cost_key):
    """The ok rows that no other ok row dominates (no more ``cost_key``, no fewer pixels/s, and
    better in one), by rising cost. Pixels of different ``n`` are different work: pass the rows
    of one ``n`` (:func:`pareto_fronts` does)."""
    ok = [r for r in rows if r["status"] == "ok" and r[cost_key] is not None
          and r["pixels_per_s"] is not None]

    def dominates(a, b):
        return (a[cost_key] <= b[cost_key] and a["pixels_per_s"] >= b["pixels_per_s"]
                and (a[cost_key] < b[cost_key] or a["pixels_per_s"] > b["pixels_per_s"]))
    front = [r for r in ok if not any(dominates(o, r) for o in ok)]
    return sorted(front, key=lambda r: (r[cost_key], r["pixels_per_s"]))


def pareto_fronts(rows, cost_key, kind=None):
    """``{n: pareto_front(rows of that n [and kind])}`` for every n that has rows."""
    fronts = {}
    for n in sorted({r["n"] for r in rows}):
        front = pareto_front([r for r in rows if r["n"] == n and kind in (None, r["kind"])], cost_key)
        if front:
            fronts[n] = front
    return fronts


def short_label(row):
    """A plot label: ``n64 k4`` or ``n64 k4 L8`` for butterflies, ``D64 8x16`` (PE x SIMD) for
    dense engines."""
    if row["kind"] == "dense":
        n = row["n"]
        return f"D{n} {row['lanes'] or n}x{row['simd'] or n}"
    return f"n{row['n']} k{row['k']}" + (f" L{row['lanes']}" if row["lanes"] else "")


def _csv(rows):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r[k] is None else r[k]) for k in FIELDS})
    return buf.getvalue()


def _plot(rows, target):
    """``pareto.png`` as bytes: pixels/s against DSPs and against LUTs. Marker by kind (filled
    circles: butterflies, open squares: dense), colour by n; each n's butterfly Pareto front is a
    dashed step line with its points ringed."""
    from matplotlib.figure import Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.lines import Line2D
    fig = Figure(figsize=(13, 5.8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    colours = {n: f"C{i % 10}" for i, n in enumerate(sorted({r["n"] for r in rows}))}
    failed = sum(r["status"] != "ok" for r in rows)
    for ax, (key, label) in zip(axes, (("dsps", "DSPs"), ("luts", "LUTs"))):
        ok = [r for r in rows if r["status"] == "ok" and r[key] is not None and r["pixels_per_s"]]
        for r in ok:
            c = colours[r["n"]]
            if r["kind"] == "dense":
                ax.scatter(r[key], r["pixels_per_s"], marker="s", s=30, facecolors="white",
                           edgecolors=c, linewidths=1.3, zorder=3)
            else:
                ax.scatter(r[key], r["pixels_per_s"], marker="o", s=30, color=c, zorder=3)
            ax.annotate(short_label(r), (r[key], r["pixels_per_s"]), textcoords="offset points",
                        xytext=(4, 3), fontsize=6)
        for n, front in pareto_fronts(ok, key, "butterfly").items():
            xs, ys = [r[key] for r in front], [r["pixels_per_s"] for r in front]
            ax.step(xs, ys, where="post", color=colours[n], linestyle="--", linewidth=1, zorder=2)
            ax.scatter(xs, ys, s=120, facecolors="none", edgecolors="k", linewidths=0.9, zorder=4)
        if ok:
            ax.set_xscale("log" if min(r[key] for r in ok) > 0 else "symlog")
            ax.set_yscale("log")
            handles = [Line2D([], [], marker="o", color="grey", linestyle="", label="butterfly BFT(n, k)"),
                       Line2D([], [], marker="s", color="grey", markerfacecolor="white", linestyle="",
                              label="dense n x n (MVAU PE x SIMD)"),
                       Line2D([], [], marker="o", color="k", markerfacecolor="none", markersize=10,
                              linestyle="--", label="butterfly Pareto front (per n)")]
            handles += [Line2D([], [], marker="o", color=c, linestyle="", label=f"n = {n}")
                        for n, c in colours.items() if any(r["n"] == n for r in ok)]
            ax.legend(handles=handles, fontsize=7, loc="best")
        else:
            ax.text(0.5, 0.5, "no configuration synthesized", ha="center", va="center",
                    transform=ax.transAxes)
        ax.set_xlabel(f"{label} used")
        ax.set_ylabel("pixels / s (Fmax / clocks per pixel)")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(f"throughput against {label}")
    note = f"; {failed} configuration(s) failed or did not fit (see dse.csv)" if failed else ""
    fig.suptitle(f"bfly dse on {target}{note}. Labels: n k [L lanes]; dense D n PE x SIMD", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    return buf.getvalue()


def write_outputs(rows, outdir, target, skipped=()):
    """Write ``dse.csv``, ``dse.json`` (rows, the Pareto fronts of each n by id, of all kinds and
    of butterflies only, and the skipped combinations) and ``pareto.png`` into ``outdir`` (all
    made first, then written together); return their names."""
    fronts = {key: {str(n): {"all": [r["id"] for r in front],
                             "butterfly": [r["id"] for r in pareto_front(
                                 [r for r in rows if r["n"] == n and r["kind"] == "butterfly"], key)]}
                    for n, front in pareto_fronts(rows, key).items()}
              for key in ("dsps", "luts")}
    files = {
        "dse.csv": _csv(rows),
        "dse.json": json.dumps({"target": target, "fields": FIELDS, "rows": rows,
                                "pareto": fronts, "skipped": list(skipped)}, indent=2) + "\n",
        "pareto.png": _plot(rows, target),
    }
    write_files(outdir, files)
    return list(files)
