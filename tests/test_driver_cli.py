"""``bfly load`` and ``bfly run`` against the faulty board of ``tests/fakeboard.py`` and bad
input files: one line and exit 2, never a traceback or a hang; ``run --check IMAGE`` checks
against what the engine computes with; ``sim-board``'s child does not outlive it."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import bfly.sw.driver as driver
from bfly.gen.cli import main
from bfly.hw.regmap import WEIGHTS, CTRL
from bfly.sw.driver import Accelerator, SerialTransport

from fakeboard import FakeBoard
from test_driver_faults import CFG, TIMEOUT, _image, _fmap


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err):
    return err.count("\n") == 1 and "Traceback" not in err


# --- item 2: a device that never stops sending

@pytest.mark.parametrize("command", ["load", "run"])
def test_load_and_run_on_a_babbling_port_end_in_one_line_exit_2(capsys, tmp_path, command):
    _image().save(tmp_path / "w.bfly")
    np.save(tmp_path / "in.npy", _fmap())
    tail = ([str(tmp_path / "w.bfly")] if command == "load" else
            ["--input", str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.npy")])
    for kw in ({"on_connect": "junk"}, {"fault": lambda n, k: "junk_after" if n != "READ" else None}):
        with FakeBoard(CFG, **kw) as board:
            t0 = time.monotonic()
            code, _, err = run(capsys, command, "--port", board.url, "--timeout", str(TIMEOUT), *tail)
            assert time.monotonic() - t0 < 5
        assert code == 2 and _one_line(err) and "never goes quiet" in err, (kw, err)
    assert not (tmp_path / "out.npy").exists()


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_a_timeout_that_is_not_positive_is_refused(capsys, tmp_path, value):
    code, _, err = run(capsys, "load", "--port", "socket://127.0.0.1:9", "--timeout", value, "w.bfly")
    assert code == 2 and _one_line(err) and "--timeout must be a positive number" in err


# --- item 8 and 17: input files, checked before connecting

def _no_board(monkeypatch):
    opened = []

    class NoBoard:
        def __init__(self, *a, **kw):
            opened.append(a)
            raise driver.LinkError("no board here")
    monkeypatch.setattr(driver, "SerialTransport", NoBoard)
    return opened


def test_bad_feature_map_files_are_one_line_before_connecting(capsys, tmp_path, monkeypatch):
    opened = _no_board(monkeypatch)
    (tmp_path / "empty.npy").write_bytes(b"")
    (tmp_path / "text.npy").write_text("1 2 3\n")
    np.save(tmp_path / "zero.npy", np.zeros((16, 0, 4), dtype=np.int64))
    np.save(tmp_path / "flat.npy", np.zeros((16, 4), dtype=np.int64))
    np.save(tmp_path / "float.npy", np.zeros((16, 2, 2)))
    np.savez(tmp_path / "arch.npz", a=np.zeros((16, 2, 2), dtype=np.int64))
    full = tmp_path / "full.npy"
    np.save(full, np.zeros((16, 8, 8), dtype=np.int64))
    (tmp_path / "cut.npy").write_bytes(full.read_bytes()[:300])
    for name, message in [("empty.npy", "is empty, not a .npy array"),
                          ("text.npy", "is not a .npy array of numbers"),
                          ("zero.npy", "the feature map (16, 0, 4) has no pixels"),
                          ("flat.npy", "must be shaped (C, H, W), not (16, 4)"),
                          ("float.npy", "must hold integers, not float64"),
                          ("arch.npz", "is an .npz archive"),
                          ("cut.npy", "Failed to read all data"),
                          ("missing.npy", "cannot read")]:
        code, _, err = run(capsys, "run", "--port", "/dev/ttyUSB9", "--input", str(tmp_path / name),
                           "-o", str(tmp_path / "out.npy"))
        assert code == 2 and _one_line(err) and message in err and "unsafely" not in err, (name, err)
    assert opened == [] and not (tmp_path / "out.npy").exists()


def test_zero_size_feature_map_is_a_driver_error():
    from bfly.sw.simboard import SimulatedBoard
    acc = Accelerator(SimulatedBoard(CFG, 31))
    with pytest.raises(driver.DriverError, match="has no pixels"):
        acc.run(np.zeros((CFG.n_in, 0, 3), dtype=np.int64))


# --- item 3: --check against what the engine computes with

def test_check_compares_with_the_loaded_image_not_the_shadow_bank(capsys, tmp_path):
    image = _image()
    image.save(tmp_path / "w.bfly")
    np.save(tmp_path / "in.npy", _fmap())
    with FakeBoard(CFG) as board:
        acc = Accelerator(SerialTransport(board.url, timeout=TIMEOUT))
        acc.load(image)
        acc.write(acc.reg(WEIGHTS.name), [int(image.params.weights[0].flat[0]) + 1])   # not committed
        acc.transport.close()
        argv = ["run", "--port", board.url, "--input", str(tmp_path / "in.npy"), "-o", str(tmp_path / "o.npy")]
        code, out, _ = run(capsys, *argv, "--check", str(tmp_path / "w.bfly"))
        assert code == 0 and f"PASS 90 pixels equal the golden model with the parameters of {tmp_path / 'w.bfly'}" in out
        code, out, _ = run(capsys, *argv, "--check")
        assert code == 1 and "FAIL" in out and "shadow bank" in out and "--check IMAGE" in out
        acc = Accelerator(SerialTransport(board.url, timeout=TIMEOUT))
        acc.write(acc.reg(CTRL.name), [CTRL.pack(commit=1)])           # now the shadow is active
        acc.transport.close()
        code, out, _ = run(capsys, *argv, "--check")
        assert code == 0 and "PASS" in out and "shadow bank" in out
        other = tmp_path / "other.bfly"
        from bfly.hw.config import EngineConfig
        from bfly.sim.model import random_params
        from bfly.sw.image import WeightImage
        cfg8 = EngineConfig.bft(8, 2)
        WeightImage(cfg8, random_params(cfg8, np.random.default_rng(1)), 0.1, 0.1).save(other)
        code, _, err = run(capsys, *argv, "--check", str(other))
        assert code == 2 and _one_line(err) and f"--check {other}" in err


# --- item 14: the simulated board's process dies with bfly's

_PARENT = """
import sys
from bfly.gen.cli.deploy import run_child
sys.exit(run_child([sys.executable, "-c",
    "import os, time; print(os.getpid(), flush=True); time.sleep(60)"]))
"""


def _gone(pid, within=5.0):
    end = time.monotonic() + within
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.05)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and PDEATHSIG")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL])
def test_the_board_process_does_not_outlive_bfly(sig):
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    try:
        parent.send_signal(sig)                # to bfly alone, not to its process group
        code = parent.wait(timeout=10)
        assert code == (0 if sig != signal.SIGKILL else -signal.SIGKILL)
        assert _gone(child), f"the child {child} outlived its parent ({sig!r})"
    finally:
        if not _gone(child, 0):
            os.kill(child, signal.SIGKILL)
