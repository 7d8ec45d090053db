"""Link benchmark (``make bench-link``): streaming throughput through the simulated board (the
real UART, bridge and engine RTL in Verilator, ``bfly sim-board``), with one command in flight
and with the driver's window, side by side in one run; prints figures and writes
``build/bench/link.json``.

Throughput is measured in the simulation's own time: the board reports the clocks each client
session lasted, and the link runs at ``SIM_BAUD`` from a ``SIM_CLK_HZ`` clock (8N1: ten bits a
byte). For a stream of whole batches of ``N`` pixels, ``i`` bytes in and ``o`` bytes out each,
the link allows at most

    pixels/s = (baud / 10) * N / max(HEAD + 3 + N*i + CRC, HEAD + N*o + 1 + CRC)

(``HEAD_BYTES``, the STREAM head, ``CRC.size``, the status byte: ``hw/hostlink.py``), since the
two directions run at once; the figure reported is the fraction of that bound reached. The
session also carries the driver's connect (a few register reads), which the bound leaves out.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bfly.hw.config import EngineConfig
from bfly.hw.hostlink import (WINDOW, HEAD_BYTES, CRC, STREAM_HEAD, stream_batch,
                              stream_payload_bytes, reply_frame_bytes)
from bfly.sim.board_sim import build_board_sim, SIM_CLK_HZ, SIM_BAUD
from bfly.sim.model import engine_forward, random_params
from bfly.sim.runner import work_dir
from bfly.sim.words import stream_bits
from .driver import Accelerator, SerialTransport
from .image import WeightImage

__all__ = ["link_bound", "main"]


def link_bound(cfg, baud):
    """The most pixels per second a link of ``baud`` (8N1) carries for ``cfg``'s pixels, in
    whole batches, both directions at once."""
    i, o = (stream_bits(n, cfg.data_bits) // 8 for n in (cfg.n_in, cfg.n_out))
    n = stream_batch(i, o)
    frame_in = HEAD_BYTES + stream_payload_bytes(n, i) + CRC.size
    frame_out = reply_frame_bytes(n * o)
    assert stream_payload_bytes(0, i) == STREAM_HEAD.size
    return baud / 10 * n / max(frame_in, frame_out)


def _session(url, proc, cfg, image, fmap, window):
    """Connect, run ``fmap``, leave; returns (wall seconds of the run, simulated clocks of the
    session, the driver's stats)."""
    acc = Accelerator(SerialTransport(url, timeout=5.0), window=window)
    t0 = time.perf_counter()
    out = acc.run(fmap)
    wall = time.perf_counter() - t0
    want = engine_forward(cfg, image.params, fmap.reshape(cfg.n_in, -1).T).y.T.reshape(out.shape)
    if not np.array_equal(out, want):
        raise SystemExit("bfly bench-link: the board's outputs differ from the golden model's")
    stats = dict(acc.stats)
    acc.transport.close()
    line = proc.stdout.readline()
    if not line.startswith("session:"):
        raise SystemExit(f"bfly bench-link: the simulated board said {line!r}")
    return wall, int(line.split()[1]), stats


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--pixels", type=int, default=4096)
    p.add_argument("-o", "--output", default=str(work_dir("bench", "link.json")))
    args = p.parse_args(argv)

    cfg = EngineConfig.bft(args.n, args.k)
    print(f"building the simulated board of {cfg.id} ...", flush=True)
    exe, divisor = build_board_sim(cfg)
    from socket import socket
    with socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(exe), "--port", str(port), "--divisor", str(divisor)],
                            stdout=subprocess.PIPE, text=True)
    try:
        if not proc.stdout.readline().startswith("listening on"):
            raise SystemExit("bfly bench-link: the simulated board did not start")
        url = f"socket://127.0.0.1:{port}"
        rng = np.random.default_rng(0)
        image = WeightImage(cfg, random_params(cfg, rng), 0.1, 0.1)
        loader = Accelerator(SerialTransport(url, timeout=5.0))
        loader.load(image)
        loader.transport.close()
        proc.stdout.readline()
        fmap = rng.integers(cfg.data_min, cfg.data_max + 1, size=(cfg.n_in, 1, args.pixels))
        baud = SIM_CLK_HZ / divisor
        bound = link_bound(cfg, baud)
        runs = {}
        for window in (1, WINDOW):
            wall, clocks, stats = _session(url, proc, cfg, image, fmap, window)
            sim_rate = args.pixels / (clocks / SIM_CLK_HZ)
            runs[str(window)] = {"window": window, "wall_seconds": wall, "wall_pixels_per_s": args.pixels / wall,
                                 "clocks": clocks, "pixels_per_s": sim_rate, "of_bound": sim_rate / bound,
                                 "most_in_flight": stats["most_in_flight"], "retries": stats["retries"]}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    report = {"engine": cfg.id, "pixels": args.pixels, "clk_hz": SIM_CLK_HZ, "baud": baud,
              "nominal_baud": SIM_BAUD, "bound_pixels_per_s": bound, "runs": runs,
              "speedup": runs[str(WINDOW)]["pixels_per_s"] / runs["1"]["pixels_per_s"]}
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{cfg.id}, {args.pixels} pixels through the simulated board: link {baud / 1e6:g} Mbaud from "
          f"a {SIM_CLK_HZ / 1e6:g} MHz clock, at most {bound:,.0f} pixels/s of simulated time")
    for r in runs.values():
        print(f"  window {r['window']}: {r['pixels_per_s']:>10,.0f} pixels/s simulated "
              f"({100 * r['of_bound']:5.1f}% of the link), {r['wall_pixels_per_s']:8,.0f} pixels/s wall, "
              f"{r['most_in_flight']} in flight at most")
    print(f"  ratio window {WINDOW} / window 1: {report['speedup']:.2f}x")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
