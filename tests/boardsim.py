"""The Verilated simulated board (``bfly sim-board``) as a process for tests."""

import contextlib
import socket
import subprocess

from bfly.sim.board_sim import build_board_sim


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_board(cfgs, byte_link=False, once=False, impl=None):
    """The simulated board of ``cfgs`` (built if needed) listening on a free port: yields its
    ``socket://`` URL; stopped (and checked to stop cleanly) afterwards."""
    exe, divisor = build_board_sim(cfgs, byte_link=byte_link, impl=impl)
    port = free_port()
    proc = subprocess.Popen([str(exe), "--port", str(port), "--divisor", str(divisor)]
                            + (["--once"] if once else []), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("listening on")
        yield f"socket://127.0.0.1:{port}"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0          # SIGTERM stops it cleanly
