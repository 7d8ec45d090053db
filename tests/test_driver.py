"""The driver against the simulated board (the real bridge RTL in Verilator, its UART on a TCP
socket): the trained, quantized block end to end, and link faults."""

import subprocess

import numpy as np
import pytest

from bfly.hw.config import EngineConfig
from bfly.hw.hostlink import SYNC_CMD, WINDOW
from bfly.sim.board_sim import build_board_sim
from boardsim import running_board, free_port
from bfly.sim.model import engine_forward, random_params
from bfly.examples.digits import block_inputs
from bfly.sw.driver import Accelerator, SerialTransport, DriverError
from bfly.sw.image import WeightImage
from bfly.sw.simboard import SimulatedBoard
from bfly.sw.quantize import quantize_input

CFG = EngineConfig.bft(16, 4, epilogue=True)


@pytest.fixture(scope="module")
def board():
    with running_board(CFG) as url:
        yield url


class FaultyTransport(SerialTransport):
    """Injects a fault into the link: after :meth:`arm` ``(fault, after=k)``, the ``k+1``-th frame
    written from then on is ``corrupt`` (one bit flipped: its CRC fails), ``drop`` (its second
    half never goes), ``junk`` (garbage bytes go before it, ending in a frame header of an
    unknown command whose declared bytes take in the frame) or ``reconnect`` (the connection is
    closed and opened again before it: the frames in flight are lost); ``garble`` damages the
    ``k+1``-th reply instead (one bit of its header)."""
    fault, after = None, 0

    def arm(self, fault, after=0):
        self.fault, self.after = fault, after

    def _due(self):
        if self.fault is None:
            return None
        if self.after:
            self.after -= 1
            return None
        fault, self.fault = self.fault, None
        return fault

    def write(self, data):
        fault = self._due() if self.fault != "garble" else None
        if fault == "corrupt":
            data = data[:10] + bytes([data[10] ^ 0x08]) + data[11:]
        elif fault == "drop":
            data = data[:len(data) // 2]
        elif fault == "junk":                 # then a bogus header whose declared bytes swallow the frame's
            data = bytes(range(0x10, 0x50)) + bytes([SYNC_CMD, 0x0E, 0x40, 0x00]) + data
        elif fault == "reconnect":
            self.reopen()
        super().write(data)

    def read(self, n):
        data = super().read(n)
        if self.fault == "garble" and n > 4 and self._due():
            data = data[:2] + bytes([data[2] ^ 0x01]) + data[3:]
        return data


def test_trained_block_end_to_end(board, trained):
    bft, _, images, (xte, _) = trained
    image = images["block1"]
    acc = Accelerator(SerialTransport(board))
    assert acc.config == EngineConfig.from_dict({**image.config.to_dict(), "name": ""})
    acc.load(image)
    fmaps = block_inputs(bft, xte[:6])["block1"].reshape(6, 8, 8, 16)
    for fmap in fmaps:
        x_int = quantize_input(fmap.reshape(-1, 16), image.input_scale, image.config)
        out = acc.run(x_int.T.reshape(16, 8, 8))
        want = engine_forward(image.config, image.params, x_int).y
        assert np.array_equal(out.reshape(16, -1).T, want)
    z = acc.infer(fmaps[0].transpose(2, 0, 1))
    assert z.shape == (16, 8, 8) and (z >= 0).all()         # ReLU in the epilogue
    acc.transport.close()


def test_link_faults_are_survived(board):
    """Issue 22 item 5: with several commands in flight (a map of 8 batches, a window of
    WINDOW), a corrupted frame, a dropped half frame, garbage bytes, a damaged reply and a
    reconnect, each in the middle of the window: every output bit-exact, each fault retried."""
    t = FaultyTransport(board, timeout=2.0)
    acc = Accelerator(t)
    params = random_params(CFG, np.random.default_rng(5))
    image = WeightImage(CFG, params, 0.1, 0.1)
    fmap = np.random.default_rng(6).integers(-128, 128, size=(16, 16, 32))
    want = engine_forward(CFG, params, fmap.reshape(16, -1).T).y.T.reshape(16, 16, 32)
    t.arm("corrupt", after=2)                 # CRC error on a write: retried
    acc.load(image)
    assert acc.stats["retries"] >= 1 and acc.link.window == WINDOW
    assert np.array_equal(acc.run(fmap), want)
    assert acc.stats["most_in_flight"] == WINDOW
    for fault in ("corrupt", "drop", "junk", "garble", "reconnect"):
        before = acc.stats["retries"]
        t.arm(fault, after=2)
        assert np.array_equal(acc.run(fmap), want), fault
        assert t.fault is None and acc.stats["retries"] > before, fault     # each one cost a retry
    # an image for another configuration is refused before anything is written
    before = acc.read_params()
    other = WeightImage(EngineConfig.bft(16, 4, epilogue=True, weight_bits=6),
                        random_params(EngineConfig.bft(16, 4, epilogue=True, weight_bits=6),
                                      np.random.default_rng(7)), 0.1, 0.1)
    with pytest.raises(DriverError, match="refused before writing anything: the image has 6-bit weights"):
        acc.load(other)
    after = acc.read_params()
    assert all(np.array_equal(a, b) for a, b in zip(before.weights, after.weights))
    t.close()


def test_sim_board_once_stops_when_the_client_leaves():
    exe, divisor = build_board_sim(CFG)
    port = free_port()
    proc = subprocess.Popen([str(exe), "--port", str(port), "--divisor", str(divisor), "--once"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("listening on")
    t = SerialTransport(f"socket://127.0.0.1:{port}")
    assert Accelerator(t).config == CFG.__class__.from_dict({**CFG.to_dict(), "name": ""})
    t.close()
    assert proc.wait(timeout=20) == 0
    assert "stopped" in proc.stdout.read()


@pytest.mark.parametrize("busy_reads", [0, 3, 10])
def test_commit_wait_is_bounded(busy_reads):
    image = WeightImage(CFG, random_params(CFG, np.random.default_rng(8)), 0.1, 0.1)
    dev = SimulatedBoard(CFG, 30, busy_reads=busy_reads)
    acc = Accelerator(dev, commit_polls=10)
    if busy_reads < 10:
        acc.load(image)
        assert acc.image is image and dev.status_reads == busy_reads + 1
    else:
        with pytest.raises(DriverError, match="the commit did not finish: STATUS.commit_busy was "
                                              "still set after 10 reads"):
            acc.load(image)
        assert acc.image is None and dev.status_reads == 10
