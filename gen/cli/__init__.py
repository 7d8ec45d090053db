"""The ``bfly`` command line. Each group module (``generate``, ``simulate``, ``implement``,
``deploy``, ``model``) registers its subcommands; :func:`main` runs the one chosen.

Errors a user can cause end in one line on stderr and a non-zero exit (2 for bad arguments or
configurations, 1 for a failed check), never a traceback.
"""

import argparse
import os
import sys

from bfly.hw.config import ConfigError

from . import generate, simulate, implement, deploy, model
from .common import UserError

__all__ = ["main", "build_parser", "GROUPS", "UserError"]

GROUPS = (generate, simulate, implement, deploy, model)     # their subcommands in --help, in order


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``bfly gen: error: ...``), not usage plus error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser():
    parser = _Parser(prog="bfly", description="Butterfly Transform engines for FPGAs.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()              # a closed pipe shows here, not at the interpreter's exit
        return code
    except (ConfigError, UserError) as e:
        print(f"bfly {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:             # bfly inspect --json | head: the reader has gone
        _silence_stdout()
        return 141                      # 128 + SIGPIPE, as a shell reports a tool the pipe ended
    except RuntimeError as e:           # a failed Verilator build or simulation run
        print(f"bfly {args.command}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"bfly {args.command}: error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"bfly {args.command}: interrupted", file=sys.stderr)
        return 130


def _silence_stdout():
    """Point stdout at /dev/null, so that the interpreter's final flush does not fail again."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError, AttributeError):
        pass
