"""``bfly build``, ``bfly sim-board``, ``bfly load`` and ``bfly run``: the board design as a
bitstream or simulated behind a TCP socket, and the host side that loads weights and streams
feature maps over its UART."""

import time
from pathlib import Path

from bfly.hw.boards import BOARDS, DEFAULT_BOARD

from .common import UserError, add_config_args, board_baud, config_from_args, connect, load_image, \
    output_path

__all__ = ["register"]


def cmd_build(args):
    from bfly.gen.build import build_board, BuildError
    cfg = config_from_args(args)
    baud = board_baud(args.board, args.baud)
    print(f"building {cfg.id} for {args.board} (synthesis, place and route, bitstream: minutes)", flush=True)
    try:
        r = build_board(cfg, args.board, args.output, baud)
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


def cmd_load(args):
    from bfly.sw.driver import DriverError, LinkError
    image = load_image(args.image)
    acc = connect(args)
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
    acc = connect(args)
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
    from bfly.gen.files import write_files
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


def register(sub):
    p = sub.add_parser("build", help="bitstream for a board (engine + UART bridge) with timing report")
    add_config_args(p)
    p.add_argument("--board", default=DEFAULT_BOARD, choices=list(BOARDS),
                   help=f"board (default {DEFAULT_BOARD})")
    p.add_argument("-o", "--output", required=True, metavar="DIR", type=output_path, help="build directory")
    p.add_argument("--baud", type=int, default=None, help="UART baud rate (default: the board's fastest exact rate)")
    p.add_argument("--program", action="store_true", help="print the command that programs the board")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("sim-board", help="run the board design in Verilator, its UART on a TCP socket")
    add_config_args(p)
    p.add_argument("--listen", default="127.0.0.1:4321", help="address to serve (default 127.0.0.1:4321)")
    p.add_argument("--once", action="store_true", help="stop when the client disconnects")
    p.set_defaults(func=cmd_sim_board)

    for name, func, helptext in (("load", cmd_load, "load a weight image onto a board and commit it"),
                                 ("run", cmd_run, "stream a feature map through a board")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--port", required=True, help="serial port or pyserial URL (socket://127.0.0.1:4321)")
        p.add_argument("--board", default=DEFAULT_BOARD, choices=list(BOARDS),
                       help=f"the board on the port (default {DEFAULT_BOARD}); --baud defaults to its "
                            "UART rate")
        p.add_argument("--baud", type=int, default=None,
                       help=f"baud rate of a real port (default: the rate bfly build gives --board's UART, "
                            f"{BOARDS[DEFAULT_BOARD].baud} for {DEFAULT_BOARD})")
        p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for a reply (default 2)")
        if name == "load":
            p.add_argument("image", help="a .bfly weight image")
        else:
            p.add_argument("--input", required=True, help="integer feature map (C, H, W), .npy")
            p.add_argument("-o", "--output", required=True, type=output_path, help="output feature map (P, H, W), .npy")
            p.add_argument("--check", action="store_true",
                           help="compare with the golden model using the parameters read back from the board")
        p.set_defaults(func=func)
