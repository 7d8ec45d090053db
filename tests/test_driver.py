"""The driver against the simulated board (the real bridge RTL in Verilator, its UART on a TCP
socket): the trained, quantized block end to end, and link faults."""

import subprocess

import numpy as np
import pytest

from bfly.hw.config import EngineConfig
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
    """Injects one fault on the next write (``corrupt``, ``drop``) or read (``garble``)."""
    fault = None

    def write(self, data):
        fault, self.fault = self.fault, None if self.fault in ("corrupt", "drop") else self.fault
        if fault == "corrupt":
            data = data[:10] + bytes([data[10] ^ 0x08]) + data[11:]
        elif fault == "drop":
            data = data[:len(data) // 2]
        super().write(data)

    def read(self, n):
        data = super().read(n)
        if self.fault == "garble" and n > 4:
            self.fault = None
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
    t = FaultyTransport(board, timeout=1.0)
    acc = Accelerator(t)
    params = random_params(CFG, np.random.default_rng(5))
    image = WeightImage(CFG, params, 0.1, 0.1)
    fmap = np.random.default_rng(6).integers(-128, 128, size=(16, 4, 4))
    want = engine_forward(CFG, params, fmap.reshape(16, -1).T).y.T.reshape(16, 4, 4)
    t.fault = "corrupt"                       # CRC error on a write: retried
    acc.load(image)
    assert acc.stats["retries"] == 1
    for fault in ("corrupt", "drop", "garble"):   # CRC error, timeout + resync, damaged reply
        t.fault = fault
        assert np.array_equal(acc.run(fmap), want), fault
    assert acc.stats["retries"] == 4
    t.reopen()                                # reconnect in the middle of a session
    assert np.array_equal(acc.run(fmap), want)
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
