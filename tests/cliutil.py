"""Calling the ``bfly`` command in-process from tests."""

from bfly.gen.cli import main


def run(capsys, *argv):
    """``bfly ARGV``: (exit code, stdout, stderr); a usage error exits from argparse."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err
