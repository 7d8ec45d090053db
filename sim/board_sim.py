"""``bfly sim-board``: the board top (UART, host bridge, engines) Verilated with a C++ harness
(``board_harness.cpp``) that serves its UART on a TCP socket (or, with the byte link, the bridge's
byte streams without the UART). Builds are cached per configuration in ``build/board_sim/<id>/``."""

import fcntl
import hashlib
import os
import subprocess
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bfly.hw.board import BoardTop, LinkedEngine, config_list
from .runner import work_dir, verilator_env

__all__ = ["SIM_CLK_HZ", "SIM_BAUD", "SIM_ENGINE_HZ", "BYTE_LINK_CLOCKS", "UART_BYTE_CLOCKS", "build_board_sim", "board_id"]

SIM_CLK_HZ = 40_000_000
SIM_BAUD = 10_000_000          # 4 clocks per bit: the simulated link is as fast as it can be
#: the engines' clock (their own domain, as on a board with a PLL): faster than the link's, and
#: not a multiple of it, so the crossings see every phase
SIM_ENGINE_HZ = 50_000_000
#: clocks per byte on the simulated UART (8N1: ten bits)
UART_BYTE_CLOCKS = 10 * SIM_CLK_HZ // SIM_BAUD
#: the byte link's clocks per byte (the bridge's receiver takes a byte at most every 2 clocks)
BYTE_LINK_CLOCKS = 2
#: the bridge's timeout on the byte link, in clocks (TCP may deliver a frame in pieces)
BYTE_LINK_TIMEOUT = 1 << 16
HARNESS = Path(__file__).with_name("board_harness.cpp")


def board_id(cfgs):
    """The build directory name of a board holding ``cfgs`` (a configuration, or a list: one
    engine each)."""
    cfgs = config_list(cfgs)
    if len(cfgs) == 1:
        return cfgs[0].id
    ids = "+".join(c.id for c in cfgs)
    return f"{len(cfgs)}engines_" + hashlib.sha256(ids.encode()).hexdigest()[:10]


class ByteLinkBoard(wiring.Component):
    """The engines of ``cfgs`` behind the host bridge, its byte streams as plain ports (no
    UART): ``rx_data`` is taken in a clock where ``rx_valid`` is high, ``tx_data`` goes out in a
    clock where ``tx_valid`` and ``tx_ready`` are."""

    rx_data: In(8)
    rx_valid: In(1)
    tx_data: Out(8)
    tx_valid: Out(1)
    tx_ready: In(1)

    def __init__(self, cfgs, timeout, impl=None, engine_domain=None):
        self._linked = LinkedEngine(cfgs, timeout, impl, engine_domain=engine_domain)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.linked = linked = self._linked
        m.d.comb += [linked.rx.payload.eq(self.rx_data), linked.rx.valid.eq(self.rx_valid),
                     self.tx_data.eq(linked.tx.payload), self.tx_valid.eq(linked.tx.valid),
                     linked.tx.ready.eq(self.tx_ready)]
        return m


def build_board_sim(cfgs, log=None, byte_link=False, impl=None):
    """Return ``(executable, divisor)`` for the simulated board of ``cfgs`` (a configuration, or
    a list of them: one engine each), building it if needed. ``byte_link``: the host bridge's
    byte streams go to the socket as they are, without the UART (a byte every
    ``BYTE_LINK_CLOCKS`` clocks instead of ten bit times: for runs that move many pixels);
    ``divisor`` is then 0. ``impl``: the engines' implementation (one, or a list: one each)."""
    if byte_link:
        top = ByteLinkBoard(cfgs, BYTE_LINK_TIMEOUT, impl, engine_domain="engine")
        divisor = 0
    else:
        top = BoardTop(cfgs, SIM_CLK_HZ, SIM_BAUD, impl=impl, engine_domain="engine")
        divisor = top.divisor
    text = verilog.convert(top, name="board", emit_src=False)
    tuned = "" if impl is None else "_" + hashlib.sha256(repr(impl).encode()).hexdigest()[:8]
    work = work_dir("board_sim", board_id(cfgs) + tuned + ("_bytes" if byte_link else ""))
    work.mkdir(parents=True, exist_ok=True)
    # one build of a board at a time across processes (pytest-xdist workers share the cache)
    with open(work / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_locked(text, work, byte_link, divisor, log)


def _build_locked(text, work, byte_link, divisor, log):
    defines = ["-CFLAGS", f"-DBYTE_LINK_CLOCKS={BYTE_LINK_CLOCKS}"] if byte_link else []
    half_ps = lambda hz: round(1e12 / (2 * hz))
    defines += ["-CFLAGS", f"-DLINK_HALF_PS={half_ps(SIM_CLK_HZ)}", "-CFLAGS", f"-DENGINE_HALF_PS={half_ps(SIM_ENGINE_HZ)}"]
    digest = hashlib.sha256(text.encode() + HARNESS.read_bytes() + " ".join(defines).encode()).hexdigest()
    exe = work / "obj" / "board_sim"
    stamp = work / "build.stamp"
    if exe.exists() and stamp.exists() and stamp.read_text() == digest:
        return exe, divisor
    (work / "board.v").write_text(text)
    stamp.unlink(missing_ok=True)
    env = {**os.environ, **verilator_env()}
    cmd = ["verilator", "--cc", "--exe", "--build", "-j", "2", "-O2", "-Wno-fatal", "-Wno-WIDTHEXPAND",
           "-Wno-WIDTHTRUNC", "--top-module", "board", "-Mdir", str(work / "obj"), "-o", "board_sim",
           *defines, str(work / "board.v"), str(HARNESS)]
    with open(log or work / "build.log", "w") as f:
        res = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
    if res.returncode != 0:
        raise RuntimeError(f"the Verilator build of the simulated board failed; see {log or work / 'build.log'}")
    stamp.write_text(digest)
    return exe, divisor
