"""Training-side benchmark (``make bench-sw``): prints figures and writes ``build/bench/sw.json``.

Forward plus backward time of :class:`bfly.sw.butterfly.ButterflyTransform` (gather-free batched
products per factor, ``sum(p*s)`` multiplies a pixel) against the approach of the BFT paper's
own code, which materializes the dense ``n x n`` matrix from the factors at every step and
multiplies by it: ``n = 256``, ``k = 4``, a batch of 32 feature maps of 32x32. Both run in the
same process, alternating, and the ratio of medians is reported (these machines are noisy).
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from bfly.hw.config import EngineConfig
from bfly.sim.runner import work_dir
from bfly.sw.butterfly import ButterflyTransform, _factor_matrix


def dense_materialized(transform, x):
    """The paper code's way: build the dense matrix from the factors, then one matrix product."""
    m = None
    for f, w in zip(transform.factors, transform.weights):
        fm = _factor_matrix(f, w)
        m = fm if m is None else fm @ m
    return x @ m.T


def _time(fn, x, transform):
    for w in transform.weights:
        w.grad = None
    t0 = time.perf_counter()
    y = fn(x)
    y.square().mean().backward()
    return time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--hw", type=int, default=32)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("-o", "--output", default=str(work_dir("bench", "sw.json")))
    args = p.parse_args(argv)

    torch.manual_seed(0)
    transform = ButterflyTransform(EngineConfig.bft(args.n, args.k))
    x = torch.randn(args.batch * args.hw * args.hw, args.n)
    torch.testing.assert_close(transform(x[:64]), dense_materialized(transform, x[:64]),
                               rtol=1e-4, atol=1e-5)
    times = {"butterfly": [], "dense_materialized": []}
    _time(transform, x, transform)                          # warm-up both
    _time(lambda v: dense_materialized(transform, v), x, transform)
    for _ in range(args.repeats):
        times["butterfly"].append(_time(transform, x, transform))
        times["dense_materialized"].append(_time(lambda v: dense_materialized(transform, v), x, transform))
    med = {k: statistics.median(v) for k, v in times.items()}
    report = {"n": args.n, "k": args.k, "pixels": len(x), "threads": torch.get_num_threads(),
              "multiplies_per_pixel": {"butterfly": transform.config.n_weights, "dense": args.n * args.n},
              "seconds": times, "median_seconds": med,
              "speedup": med["dense_materialized"] / med["butterfly"]}
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"forward+backward, BFT({args.n},{args.k}) on {args.batch} maps of {args.hw}x{args.hw} "
          f"({len(x)} pixels), {torch.get_num_threads()} threads, median of {args.repeats}:")
    print(f"  ButterflyTransform        {med['butterfly'] * 1e3:8.1f} ms  "
          f"({transform.config.n_weights} multiplies a pixel)")
    print(f"  dense matrix every step   {med['dense_materialized'] * 1e3:8.1f} ms  "
          f"({args.n * args.n} multiplies a pixel)")
    print(f"  ratio dense / butterfly   {report['speedup']:8.2f}x")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
