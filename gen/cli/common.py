"""What the ``bfly`` subcommands share: the user's error type, the engine configuration options
and the :class:`EngineConfig` they describe, input files, the one-line engine summary, and the
connection to a board."""

import json
import sys
from pathlib import Path

from bfly.hw.boards import BOARDS
from bfly.hw.config import EngineConfig, ROUNDING_MODES, OVERFLOW_MODES

__all__ = ["UserError", "add_config_args", "config_from_args", "read_text", "read_json",
           "load_image", "pixels_per_clock_text", "summary", "time_limit", "port_baud", "connect"]


class UserError(Exception):
    """A problem with the user's input; printed as one line, exit code 2."""


def add_config_args(p):
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
                   help="add the block epilogue of docs/spec.md §3 (residual, per-channel multiplier and bias, ReLU)")
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
        cfg = load_image(args.config_from).config
        return EngineConfig.from_dict({**cfg.to_dict(), "name": "", **kwargs})
    if args.config_from:
        data = read_json(args.config_from)
        cfg_dict = data.get("config", data) if isinstance(data, dict) else None
        if not isinstance(cfg_dict, dict) or "chain" not in cfg_dict:
            raise UserError(f"{args.config_from}: not a bfly manifest (no \"config\" with a \"chain\")")
        merged = dict(cfg_dict)
        merged.update(kwargs)
        if "name" not in kwargs and "top" in data:
            merged["name"] = data["top"]
        return EngineConfig.from_dict(merged)
    if args.chain:
        return EngineConfig.from_chain_text(read_text(args.chain), source=args.chain, **kwargs)
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


def load_image(path):
    """The weight image at ``path`` (:class:`bfly.sw.image.WeightImage`); a file that is not
    one is a :class:`UserError`."""
    from bfly.sw.image import WeightImage, ImageError
    try:
        return WeightImage.load(path)
    except ImageError as e:
        raise UserError(str(e))


def read_text(path):
    try:
        return Path(path).read_text()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a text file")


def read_json(path):
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})")


def pixels_per_clock_text(cfg):
    return "1 pixel per clock" if cfg.interval == 1 else f"1 pixel every {cfg.interval} clocks"


def summary(cfg, man):
    dense = cfg.n_in * cfg.n_out + (cfg.n_out if cfg.epilogue else 0)
    epi = (", epilogue" + (" with residual" if cfg.has_residual else "")) if cfg.epilogue else ""
    fold = f", folded: {cfg.lanes or 'all'} lanes x {cfg.simd or 'all'} simd" if cfg.interval > 1 else ""
    return (f"{cfg.name}: chain {cfg.chain_rows()}  data {cfg.data_bits} bit, weights "
            f"{cfg.weight_bits} bit, {cfg.rounding}, {cfg.overflow}{epi}{fold}\n"
            f"  {cfg.multipliers} multipliers (a dense {cfg.n_out}x{cfg.n_in} layer needs {dense} "
            f"fully parallel), latency {man['latency_cycles']} clocks, {pixels_per_clock_text(cfg)}")


def time_limit(args):
    """``--time-limit`` (minutes) in seconds, or None."""
    if args.time_limit is None:
        return None
    if args.time_limit <= 0:
        raise UserError(f"--time-limit must be positive, not {args.time_limit:g}")
    return args.time_limit * 60


def port_baud(args):
    """The baud rate of ``bfly load``/``bfly run``: ``--baud``, else ``--board``'s UART rate."""
    return BOARDS[args.board].baud if args.baud is None else args.baud


def connect(args):
    from bfly.sw.driver import Accelerator, SerialTransport, DriverError, LinkError
    try:
        return Accelerator(SerialTransport(args.port, port_baud(args), args.timeout),
                           progress=sys.stderr.isatty())
    except (LinkError, DriverError) as e:
        raise UserError(f"{args.port}: {e}")
