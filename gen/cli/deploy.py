"""``bfly build``, ``bfly sim-board``, ``bfly load`` and ``bfly run``: the board design as a
bitstream or simulated behind a TCP socket, and the host side that loads weights and streams
feature maps over its UART."""

import math
import os
import sys
import time
from pathlib import Path

from bfly.hw.boards import BOARDS, DEFAULT_BOARD
from bfly.hw.hostlink import MAX_ENGINES
from bfly.sim.board_sim import BYTE_LINK_CLOCKS, UART_BYTE_CLOCKS

from .common import UserError, add_config_args, board_baud, config_from_args, connect, load_image, \
    output_path, add_link_args, CONFIG_KEYS, positive_int, positive_float, seed_arg

__all__ = ["register"]


def cmd_build(args):
    from bfly.gen.build import build_board, board_clocks, BuildError, ClockError, default_engine_mhz
    cfgs, impls, plan = board_engines(args)
    baud = board_baud(args.board, args.baud)
    print(f"building {_engines_text(cfgs)} for {args.board} (synthesis, place and route, bitstream: "
          f"minutes)", flush=True)
    if plan is not None:
        if plan.get("target") != BOARDS[args.board].target:
            raise UserError(f"{args.plan} is a plan for {plan.get('target')}; the {args.board} has "
                            f"{BOARDS[args.board].target} (bfly plan --target {BOARDS[args.board].target})")
    engine_mhz = args.engine_mhz
    if BOARDS[args.board].pll and engine_mhz is None:
        engine_mhz, source = default_engine_mhz(cfgs, args.board)
        print(f"  engine clock: {engine_mhz:g} MHz at most, from {source} (--engine-mhz to choose)")
    engines = cfgs if len(cfgs) > 1 else cfgs[0]
    try:
        board_clocks(engines, args.board, baud, engine_mhz)      # the clocks can be made
    except ClockError as e:
        raise UserError(str(e))
    try:
        r = build_board(engines, args.board, args.output, baud, impls, engine_mhz)
    except BuildError as e:
        raise RuntimeError(str(e))
    u, a = r["used"], r["available"]
    ffs = f", flip-flops {u['ffs']:,}" if "ffs" in u else ""       # iCE40 logic cells hold both
    print(f"  LUTs {u['luts']:,} of {a['luts']:,}{ffs}, DSPs {u['dsps']} of {a['dsps']}, "
          f"block RAMs {u['brams']} of {a['brams']}")
    for name, c in r["clocks"].items():
        print(f"  {name} clock {c['mhz']:.6g} MHz: Fmax {c['fmax_mhz'] or 0:.1f} MHz")
    print(f"  UART {r['baud']:,} baud ({r['uart_clocks_per_bit']} link clocks a bit)")
    if plan is not None:
        est = {k: sum(e["estimate"].get(k, 0) for e in plan["engines"]) for k in ("luts", "ffs", "dsps", "brams")}
        print(f"  the plan estimated the engines at LUTs {est['luts']:,}, flip-flops {est['ffs']:,}, "
              f"DSPs {est['dsps']}, block RAMs {est['brams']} (the bridge and UART come on top)")
    print(f"  bitstream {r['bitstream']}; report {Path(args.output) / 'build.json'}")
    if args.program:
        print(f"program the board with:  {r['program']}")
    return 0


def _die_with_parent(parent):
    """For ``preexec_fn``: on Linux, the child gets SIGTERM when the process that started it
    dies, however it dies (``prctl(PR_SET_PDEATHSIG)``)."""
    def setup():
        import ctypes
        import signal
        PR_SET_PDEATHSIG = 1
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            return
        if os.getppid() != parent:      # the parent died before the prctl
            os._exit(1)
    return setup if sys.platform.startswith("linux") else None


class _Stopped(Exception):
    pass


def run_child(cmd):
    """Run ``cmd`` (the simulated board) until it exits and return its exit code; it does not
    outlive this process: SIGINT, SIGTERM or SIGHUP here stops it (then 0 is returned), and on
    Linux it is sent SIGTERM if this process dies any other way."""
    import signal
    import subprocess

    def stop(signum, frame):
        raise _Stopped(signum)
    # the handlers come first: a signal while the child starts stops it too (and if it comes
    # before Popen returns, the child, which dies with this process, goes when it exits)
    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    proc = None
    try:
        proc = subprocess.Popen(cmd, preexec_fn=_die_with_parent(os.getpid()))
        return proc.wait()
    except (KeyboardInterrupt, _Stopped):
        return 0
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def board_engines(args):
    """``(configurations, implementations, plan)`` of the board ``build`` or ``sim-board``
    makes: the engines of ``--plan`` (``bfly plan``'s file: the network's engines, folded, with
    their implementations), of ``--network`` (an export's ``network.json``), else the one of
    the configuration options; ``implementations`` and ``plan`` are None without ``--plan``."""
    if not args.network:
        if getattr(args, "plan", None):
            raise UserError("--plan goes with --network (the network it was made for)")
        return [config_from_args(args)], None, None
    set_options = [f"--{k.replace('_', '-')}" for k in CONFIG_KEYS if getattr(args, k, None)]
    if set_options:
        raise UserError(f"--network gives the engines; leave out {', '.join(set_options)}")
    impls = plan = None
    if getattr(args, "plan", None):
        cfgs, impls, plan = _plan(args)
    else:
        from bfly.sw.export import load_export, engine_configs
        from bfly.sw.network import ModelError
        try:
            cfgs = engine_configs(load_export(args.network))
        except ModelError as e:
            raise UserError(str(e))
    if len(cfgs) > MAX_ENGINES:
        raise UserError(f"{args.network}: {len(cfgs)} engine configurations; a board holds at most "
                        f"{MAX_ENGINES}")
    return cfgs, impls, plan


def _plan(args):
    """``(configurations, implementations, plan)`` of ``--plan``, checked against ``--network``."""
    import json
    from bfly.hw.config import EngineConfig, ConfigError
    from bfly.hw.impl import Implementation
    from bfly.sw.export import load_export, engine_configs
    from bfly.sw.network import ModelError
    from dataclasses import replace
    try:            # (first: a ModelError is a ValueError, which the plan's parsing catches)
        wanted = engine_configs(load_export(args.network))
    except ModelError as e:
        raise UserError(str(e))
    try:
        plan = json.loads(Path(args.plan).read_text())
        cfgs = [EngineConfig.from_dict(e["config"]) for e in plan["engines"]]
        impls = [Implementation(**e.get("implementation", {})) for e in plan["engines"]]
    except OSError as e:
        raise UserError(f"cannot read {args.plan}: {e.strerror or e}")
    except (ValueError, KeyError, TypeError, ConfigError) as e:
        raise UserError(f"{args.plan}: not a plan from bfly plan ({e})")
    def unfolded(c):            # (name, lanes and simd in one step: the name derives from both)
        return replace(c, lanes=0, simd=0, name="")
    if [unfolded(c) for c in cfgs] != [unfolded(c) for c in wanted]:
        raise UserError(f"{args.plan} was made for other engines than {args.network}'s")
    return cfgs, impls, plan


def _engines_text(cfgs):
    return cfgs[0].id if len(cfgs) == 1 else f"{len(cfgs)} engines ({', '.join(c.id for c in cfgs)})"


def cmd_sim_board(args):
    from dataclasses import replace
    from bfly.sim.board_sim import build_board_sim
    cfgs, impls, _ = board_engines(args)
    host, _, port = args.listen.rpartition(":")
    if host not in ("127.0.0.1", "localhost") or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--listen must be 127.0.0.1:PORT, not {args.listen!r}")
    print(f"building the simulated board for {_engines_text(cfgs)} (cached after the first time)", flush=True)
    # (the simulated board takes the plan's choices in generic logic: the same values as the
    # target's primitives, which Verilator has no models of here)
    impl = [replace(i, family=None) for i in impls] if impls else None
    exe, divisor = build_board_sim(cfgs, byte_link=args.byte_link, impl=impl)
    cmd = [str(exe), "--port", port, "--divisor", str(divisor)] + (["--once"] if args.once else [])
    return run_child(cmd)


def _check_timeout(args):
    if not (args.timeout > 0 and math.isfinite(args.timeout)):
        raise UserError(f"--timeout must be a positive number of seconds, not {args.timeout:g}")


def _link_error(args, e):
    """A link failure in the middle of ``load`` or ``run``: one line, exit 2."""
    return UserError(f"{args.port}: {e}")


def cmd_load(args):
    from bfly.sw.driver import DriverError, LinkError
    _check_timeout(args)
    image = load_image(args.image)
    acc = connect(args)
    t0 = time.time()
    try:
        acc.load(image)
    except DriverError as e:
        raise UserError(str(e))
    except LinkError as e:
        raise _link_error(args, e)
    print(f"loaded {args.image} onto {acc.config.id} in {time.time() - t0:.2f} s "
          f"({acc.stats['retries']} retries), committed")
    return 0


def read_fmap(path):
    """The integer ``(C, H, W)`` feature map in the ``.npy`` file ``path``; anything else is a
    :class:`UserError`."""
    import numpy as np
    try:
        fmap = np.load(path, allow_pickle=False)
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}")
    except EOFError:
        raise UserError(f"{path} is empty, not a .npy array")
    except ValueError as e:
        raise UserError(f"{path} is not a .npy array of numbers" if "pickle" in str(e)
                        else f"{path}: {e}")
    if not isinstance(fmap, np.ndarray):
        fmap.close()
        raise UserError(f"{path} is an .npz archive, not a .npy array")
    if fmap.ndim != 3:
        raise UserError(f"{path}: the feature map must be shaped (C, H, W), not {fmap.shape}")
    if fmap.size == 0:
        raise UserError(f"{path}: the feature map {fmap.shape} has no pixels")
    if not np.issubdtype(fmap.dtype, np.integer):
        raise UserError(f"{path}: the feature map must hold integers, not {fmap.dtype}")
    return fmap


def cmd_run(args):
    import numpy as np
    from bfly.sw.driver import DriverError, LinkError
    from bfly.sim.model import engine_forward
    _check_timeout(args)
    fmap = read_fmap(args.input)
    image = load_image(args.check) if isinstance(args.check, str) else None
    out_path = Path(args.output)
    out_dir = out_path.parent
    if out_path.is_dir() or (out_dir.exists() and not out_dir.is_dir()):
        raise UserError(f"-o {args.output}: not a place for a .npy file")
    acc = connect(args)
    try:
        _check_fits(acc, image, args.check)
        t0 = time.time()
        out = acc.run(fmap)
        dt = time.time() - t0
        if image is not None:
            params, source = acc.bank_params(image), f"of {args.check}"
        elif args.check:
            params, source = acc.read_params(), "read back from the board's shadow bank"
    except DriverError as e:
        raise UserError(str(e))
    except LinkError as e:
        raise _link_error(args, e)
    pixels = fmap.shape[1] * fmap.shape[2]
    from bfly.gen.files import write_files
    import io
    buf = io.BytesIO()
    np.save(buf, out)
    try:
        write_files(out_dir, {out_path.name: buf.getvalue()})
    except OSError as e:
        raise UserError(f"-o {args.output}: cannot write it: {e.strerror or e}")
    resent = acc.stats["resent_streams"]
    print(f"{pixels} pixels in {dt:.2f} s ({pixels / max(dt, 1e-9):,.0f} pixels/s); wrote {args.output} {out.shape}"
          + (f" ({resent} batches sent again after a lost reply: SAT_COUNT counts them twice)"
             if resent else ""))
    if args.check:
        want = engine_forward(acc.config, params, fmap.reshape(fmap.shape[0], -1).T).y
        got = out.reshape(out.shape[0], -1).T
        if not np.array_equal(got, want):
            bad = np.argwhere(got != want)[0]
            hint = "" if image is not None else (" (the shadow bank is what the engine computes with "
                                                 "only if nothing was written since the last commit: "
                                                 "--check IMAGE checks against the image loaded)")
            print(f"FAIL pixel {bad[0]} channel {bad[1]}: board {got[tuple(bad)]}, golden model "
                  f"{want[tuple(bad)]} with the parameters {source}{hint}")
            return 1
        print(f"PASS {pixels} pixels equal the golden model with the parameters {source}")
    return 0


def _check_fits(acc, image, path):
    """A :class:`DriverError` unless ``image`` (``--check PATH``; None: nothing to check) fits the
    engine of ``acc``."""
    from bfly.sw.driver import DriverError
    from bfly.sw.image import ImageError
    if image is None:
        return
    try:
        image.check_engine({"config": acc.config.to_dict()})
    except ImageError as e:
        raise DriverError(f"--check {path}: {e}")


def cmd_selftest(args):
    """``bfly selftest``: the board's on-chip self-test on one engine, against the golden model."""
    from bfly.sw.driver import DriverError, LinkError
    from bfly.sim.model import engine_forward
    from bfly.sim.selftest import selftest_pixels, selftest_checksum
    _check_timeout(args)
    image = load_image(args.check) if args.check else None
    acc = connect(args)
    try:
        _check_fits(acc, image, args.check)
        if image is not None:
            params, source = acc.bank_params(image), f"of {args.check}"
        else:
            params, source = acc.read_params(), "read back from the board's shadow bank"
        r = acc.selftest(args.pixels, args.seed, timeout=args.run_timeout)
    except DriverError as e:
        raise UserError(str(e))
    except LinkError as e:
        raise _link_error(args, e)
    cfg = acc.config
    want = selftest_checksum(cfg, engine_forward(cfg, params, selftest_pixels(cfg, args.seed, args.pixels)).y)
    rate = r["out"] / r["cycles"] if r["cycles"] else 0.0
    if r["out"] != args.pixels or r["checksum"] != want:
        print(f"FAIL {r['out']} of {args.pixels} pixels out, checksum 0x{r['checksum']:08X}; the golden "
              f"model with the parameters {source} gives 0x{want:08X}")
        return 1
    print(f"PASS {args.pixels} pixels bit-exact, {rate:.3f} pixels/clock at the engine clock "
          f"({r['cycles']:,} clocks; checksum 0x{want:08X}, parameters {source})")
    return 0


def _network_arg(p):
    p.add_argument("--network", metavar="DIR", help="an engine for each configuration of a network "
                                                    "that bfly export wrote (its directory or network.json)")


def register(sub):
    p = sub.add_parser("build", help="bitstream for a board (engine + UART bridge) with timing report")
    add_config_args(p)
    _network_arg(p)
    p.add_argument("--plan", metavar="JSON", help="with --network: the engines folded as bfly plan chose")
    p.add_argument("--board", default=DEFAULT_BOARD, choices=list(BOARDS),
                   help=f"board (default {DEFAULT_BOARD})")
    p.add_argument("-o", "--output", required=True, metavar="DIR", type=output_path, help="build directory")
    p.add_argument("--baud", type=int, default=None, help="UART baud rate (default: the board's fastest exact rate)")
    p.add_argument("--engine-mhz", type=positive_float, default=None, metavar="MHZ",
                   help="the engines' clock from the PLL, at most (default: the lowest Fmax of the engines' "
                        "bfly synth reports for the board, else bfly plan's estimate)")
    p.add_argument("--program", action="store_true", help="print the command that programs the board")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("sim-board", help="run the board design in Verilator, its UART on a TCP socket")
    add_config_args(p)
    _network_arg(p)
    p.add_argument("--plan", metavar="JSON", help="with --network: the engines folded as bfly plan chose")
    p.add_argument("--listen", default="127.0.0.1:4321", help="address to serve (default 127.0.0.1:4321)")
    p.add_argument("--once", action="store_true", help="stop when the client disconnects")
    p.add_argument("--byte-link", action="store_true",
                   help=f"leave the UART out: the bridge's bytes go to the socket as they are, "
                        f"a byte every {BYTE_LINK_CLOCKS} clocks instead of {UART_BYTE_CLOCKS} (for "
                        f"runs that move many pixels)")
    p.set_defaults(func=cmd_sim_board)

    for name, func, helptext in (("load", cmd_load, "load a weight image onto a board and commit it"),
                                 ("run", cmd_run, "stream a feature map through a board"),
                                 ("selftest", cmd_selftest, "the board's on-chip self-test at full "
                                  "clock, checked against the golden model")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--port", required=True, help="serial port or pyserial URL (socket://127.0.0.1:4321)")
        add_link_args(p)
        p.add_argument("--engine", type=int, default=0, choices=range(MAX_ENGINES), metavar="E",
                       help="which engine of a board with several (default 0)")
        if name == "load":
            p.add_argument("image", help="a .bfly weight image")
        elif name == "selftest":
            p.add_argument("--pixels", type=positive_int, default=1_000_000,
                           help="pseudo-random pixels the board feeds its engine (default 10**6)")
            p.add_argument("--seed", type=seed_arg, default=1, help="the generator's seed (default 1)")
            p.add_argument("--check", metavar="IMAGE", help="the weight image loaded onto the board "
                           "(default: the shadow bank read back)")
            p.add_argument("--run-timeout", type=float, default=600.0, metavar="SECONDS",
                           help="longest wait for the run to finish (default 600)")
        else:
            p.add_argument("--input", required=True, help="integer feature map (C, H, W), .npy")
            p.add_argument("-o", "--output", required=True, type=output_path, help="output feature map (P, H, W), .npy")
            p.add_argument("--check", nargs="?", const=True, default=False, metavar="IMAGE",
                           help="compare with the golden model: with the parameters of IMAGE, the "
                                "weight image loaded onto the board (what the engine computes with), "
                                "or without it with the shadow bank read back from the board")
        p.set_defaults(func=func)
