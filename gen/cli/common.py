"""What the ``bfly`` subcommands share: the user's error type, the engine configuration options
and the :class:`EngineConfig` they describe, input files, the one-line engine summary, and the
connection to a board."""

import argparse
import contextlib
import json
import math
import sys
from pathlib import Path

from bfly.hw.boards import BOARDS, DEFAULT_BOARD
from bfly.hw.config import (EngineConfig, ConfigError, ROUNDING_MODES, OVERFLOW_MODES, DERIVED_KEYS,
                            loads_json)

__all__ = ["UserError", "add_config_args", "config_from_args", "read_text", "read_json",
           "load_image", "load_npy", "pixels_per_clock_text", "summary", "time_limit", "port_baud",
           "connect", "nonempty", "output_path", "positive_float", "seed_arg", "board_baud",
           "MIN_BAUD", "MAX_SEED", "add_link_args", "CONFIG_KEYS", "positive_int"]

MIN_BAUD = 300              # the slowest standard serial rate
MAX_SEED = 2 ** 32 - 1      # seeds go to numpy and to the simulator as unsigned 32-bit numbers


class UserError(Exception):
    """A problem with the user's input; printed as one line, exit code 2."""


# --- argparse types: a bad value is a one-line usage error (exit 2) before anything runs

def nonempty(text):
    """A string option that must not be empty (``--chain ''`` is not "no --chain")."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty value is not allowed")
    return text


def output_path(text):
    """An output file or directory: not empty (``-o ''`` would write into the current directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path is not allowed (use . for the current directory)")
    return text


def positive_float(text):
    """A finite number above 0 (``nan``, ``inf``, ``0`` and negatives are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}")
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def positive_int(text):
    """An integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, not {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def seed_arg(text):
    """A random seed, 0 to :data:`MAX_SEED`."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, not {text!r}")
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to {MAX_SEED}, not {text}")
    return value


def board_baud(board, baud):
    """``--baud`` for ``board`` (a name of :data:`BOARDS`): None gives the board's own rate;
    otherwise a rate of at least :data:`MIN_BAUD` that the board's clock divides into within the
    UART's tolerance (:func:`bfly.hw.board.uart_divisor`), else a :class:`UserError`."""
    b = BOARDS[board]
    if baud is None:
        return b.baud
    from bfly.hw.board import uart_divisor, MIN_CLOCKS_PER_BIT
    from bfly.hw.pll import LINK_MAX_HZ
    link_hz = LINK_MAX_HZ if b.pll else b.clk_hz          # a PLL makes the link's clock
    fastest = int(link_hz // MIN_CLOCKS_PER_BIT)
    if not MIN_BAUD <= baud <= fastest:
        raise UserError(f"--baud {baud}: the {board} board's UART runs at {MIN_BAUD:,} to {fastest:,} "
                        f"baud (a {link_hz / 1e6:g} MHz clock at most, at least {MIN_CLOCKS_PER_BIT} clocks per "
                        f"bit; default {b.baud:,})")
    if not b.pll:
        try:
            uart_divisor(b.clk_hz, baud)
        except ValueError as e:
            raise UserError(f"--baud {baud}: {e}")
    return baud


def add_config_args(p):
    g = p.add_argument_group("configuration (one of --n/--k, --radices, --chain, --config-from; "
                             "default BFT(64, 4))")
    g.add_argument("--n", type=int, help="channels of BFT(n, k); n must be a power of k")
    g.add_argument("--k", type=int, help="radix of BFT(n, k) (default 4)")
    g.add_argument("--radices", type=nonempty,
                   help="mixed radices k0,k1,... with n = k0*k1*... (e.g. 4,4,3)")
    g.add_argument("--chain", metavar="FILE", type=nonempty,
                   help="DeBut chain: [p, q, r, s, t] per factor, input to output (text or JSON)")
    g.add_argument("--config-from", metavar="FILE", type=nonempty,
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


#: the configuration options' argparse names (add_config_args)
CONFIG_KEYS = ("n", "k", "radices", "chain", "config_from", "data_bits", "weight_bits", "rounding",
               "overflow", "name", "epilogue", "dense", "lanes", "simd")


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
    if args.config_from is not None:
        return _config_from_file(args.config_from, kwargs)
    if args.chain is not None:
        return EngineConfig.from_chain_text(read_text(args.chain), source=args.chain, **kwargs)
    if args.radices is not None:
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


def _config_from_file(path, overrides):
    """``--config-from``: a weight image (by its magic bytes) or a manifest.json, whatever the
    file's name; ``overrides`` (the other options given) replace its options."""
    from bfly.sw.image import MAGIC
    try:
        with open(path, "rb") as f:
            is_image = f.read(len(MAGIC)) == MAGIC
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}")
    if is_image:
        cfg_dict = load_image(path).config.to_dict()
        cfg_dict["name"] = ""
    else:
        data = read_json(path)
        cfg_dict = data.get("config", data) if isinstance(data, dict) else None
        if not isinstance(cfg_dict, dict) or "chain" not in cfg_dict:
            raise UserError(f"{path}: not a bfly manifest or weight image (no \"config\" with a \"chain\")")
        try:
            cfg_dict = EngineConfig.from_dict(cfg_dict).to_dict()       # the file as it is
        except ConfigError as e:
            raise UserError(f"{path}: {e}")
        top = data.get("top")
        if top is not None:
            if not isinstance(top, str):
                raise UserError(f"{path}: \"top\" must be a module name, not {top!r}")
            cfg_dict["name"] = top
    options = {k: v for k, v in cfg_dict.items() if k not in DERIVED_KEYS}
    return EngineConfig.from_dict({**options, **overrides})


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
    """The JSON document in ``path``; NaN and Infinity (not JSON) and deep nesting are refused."""
    text = read_text(path)
    try:
        return loads_json(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})")
    except ValueError as e:
        raise UserError(f"{path}: not valid JSON ({e})")
    except RecursionError:
        raise UserError(f"{path}: the JSON is nested too deeply")


def load_npy(path, what="array"):
    """The array in the ``.npy`` file ``path``, without pickles; anything else is a
    :class:`UserError` that says what the file is instead."""
    import numpy as np
    try:
        arr = np.load(path, allow_pickle=False)
    except OSError as e:
        raise UserError(f"cannot read {what} {path}: {e.strerror or e}")
    except (ValueError, EOFError):
        raise UserError(f"{path}: not a .npy array file ({what})")
    if not isinstance(arr, np.ndarray):             # an .npz (or a torch .pt) is a zip archive
        arr.close()
        raise UserError(f"{path}: a zip archive (.npz or .pt), not a .npy array file ({what})")
    return arr


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
    if not math.isfinite(args.time_limit) or args.time_limit <= 0:
        raise UserError(f"--time-limit must be positive, not {args.time_limit:g}")
    return args.time_limit * 60


def add_link_args(p):
    """``--board``, ``--baud`` and ``--timeout`` of a command that talks to a board on a port."""
    p.add_argument("--board", default=DEFAULT_BOARD, choices=list(BOARDS),
                   help=f"the board on the port (default {DEFAULT_BOARD}); --baud defaults to its "
                        "UART rate")
    p.add_argument("--baud", type=int, default=None,
                   help=f"baud rate of a real port (default: the rate bfly build gives --board's UART, "
                        f"{BOARDS[DEFAULT_BOARD].baud} for {DEFAULT_BOARD})")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for a reply (default 2)")


def port_baud(args):
    """The baud rate of ``bfly load``/``bfly run``: ``--baud``, else ``--board``'s UART rate
    (a rate that board cannot make is a :class:`UserError`)."""
    return board_baud(args.board, args.baud)


def connect(args):
    from bfly.sw.driver import Accelerator, SerialTransport, DriverError, LinkError
    try:
        return Accelerator(SerialTransport(args.port, port_baud(args), args.timeout),
                           progress=sys.stderr.isatty(), engine=getattr(args, "engine", 0))
    except LinkError as e:
        if e.status == "AXI_ERROR" and getattr(args, "engine", 0):
            raise UserError(f"{args.port}: the board has no engine {args.engine}")
        raise UserError(f"{args.port}: {e}")
    except DriverError as e:
        raise UserError(f"{args.port}: {e}")


@contextlib.contextmanager
def step_bar(desc):
    """A one-line display on a terminal's stderr of the step a long command is in and the time
    so far (nothing when stderr is not a terminal); yields ``progress(step)``."""
    from tqdm import tqdm
    bar = tqdm(total=None, desc=desc, leave=False, disable=not sys.stderr.isatty(),
               bar_format="{desc}{postfix} [{elapsed}]")      # tqdm puts ", " before the postfix
    try:
        yield bar.set_postfix_str
    finally:
        bar.close()


def pixel_bar(desc, total):
    """A progress bar of ``total`` pixels on a terminal's stderr (disabled elsewhere); returns
    ``(update(done), close())``."""
    from tqdm import tqdm
    bar = tqdm(total=total, desc=desc, unit="pixel", unit_scale=True, leave=False,
               disable=not sys.stderr.isatty())

    def update(done):
        bar.update(done - bar.n)
    return update, bar.close

