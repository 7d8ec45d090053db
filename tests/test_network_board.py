"""Boards with several engines, in RTL (the Verilated board): the driver finds every engine, each
computes bit-exact with the golden model however the streams interleave, an image is refused by
an engine it does not fit, and a STREAM to a missing engine is refused; then (``make test-long``:
a board build each) whole networks through the simulated board, every block compared with the
golden model. The default suite runs networks on the in-process board (tests/test_export.py)."""

import json

import numpy as np
import pytest
import torch

from boardsim import running_board
from cliutil import run
from bfly.hw.config import EngineConfig
from bfly.sim.model import engine_forward, random_params
from bfly.sw.driver import Accelerator, Board, DriverError, SerialTransport, LinkError
from bfly.sw.export import engine_configs
from bfly.sw.image import WeightImage
from bfly.sw.infer import accelerated_model, BoardBackend, EmulatedBackend
from bfly.sw.link import stream_request

CFGS = [EngineConfig.bft(4, 2, epilogue=True), EngineConfig.bft(8, 2, data_bits=6, weight_bits=5),
        EngineConfig.from_chain([[6, 4, 3, 2, 1]], epilogue=True)]


def _plain(cfg):
    return cfg.__class__.from_dict({**cfg.to_dict(), "name": ""})


def test_every_engine_of_a_board_is_found_and_runs_bit_exact():
    rng = np.random.default_rng(7)
    with running_board(CFGS) as url:
        board = Board(SerialTransport(url, timeout=2.0))
        assert [a.config for a in board.engines] == [_plain(c) for c in CFGS]
        params = []
        for acc in board.engines:
            p = random_params(acc.config, rng, calm=True)
            acc.load(WeightImage(acc.config, p, 0.1, 0.1))
            params.append(p)
        for rep in range(2):                        # interleaved: each engine keeps its bank
            for acc, p in zip(board.engines, params):
                cfg = acc.config
                fmap = rng.integers(cfg.data_min, cfg.data_max + 1, size=(cfg.n_in, 7, 11 + rep))
                want = engine_forward(cfg, p, fmap.reshape(cfg.n_in, -1).T).y
                assert np.array_equal(acc.run(fmap), want.T.reshape(cfg.n_out, 7, 11 + rep)), cfg.id
        other = CFGS[1]
        with pytest.raises(DriverError, match="refused before writing anything"):
            board.engines[0].load(WeightImage(other, random_params(other, rng), 0.1, 0.1))
        with pytest.raises(LinkError, match="NO_ENGINE"):
            board.link.pipeline([stream_request(bytes(4), 1, True, engine=3, out_bytes=4)])
        with pytest.raises(LinkError, match="AXI_ERROR"):
            Accelerator(board.link, engine=3)
        # a single-engine driver still talks to engine 0 (the board serves one client at a time)
        board.transport.close()
        assert Accelerator(SerialTransport(url, timeout=2.0)).config == _plain(CFGS[0])


def _through_board(model, export, x, cfgs=None, impl=None):
    """``(emulated trace, board trace, board backend, outputs equal)`` on the byte-link board of
    ``cfgs`` (default: the export's engines, fully parallel)."""
    emu_trace, board_trace = [], []
    with running_board(cfgs or engine_configs(export), byte_link=True, impl=impl) as url:
        board = Board(SerialTransport(url, timeout=10.0))
        backend = BoardBackend(board, export)
        with torch.no_grad():
            a = accelerated_model(model, export, EmulatedBackend(), emu_trace)(torch.from_numpy(x))
            b = accelerated_model(model, export, backend, board_trace)(torch.from_numpy(x))
    return emu_trace, board_trace, backend, torch.equal(a, b)


@pytest.mark.long
def test_a_network_through_the_simulated_board(own_net):
    """The second network (tests/own_net.py) on a board with its three engines as a plan makes
    them (each folded two steps down, the residual engine's epilogue in LUTs): 16 test images, every
    block's integers equal to the golden model's."""
    from bfly.hw.impl import Implementation
    _, _, _, test, model, export = own_net
    x = np.load(test)["x"]
    from bfly.gen.plan import lanes_options
    cfgs = [lanes_options(c)[2] for c in engine_configs(export)]        # the second fold down
    impls = [Implementation(epilogue_products="lut" if c.has_residual else "dsp") for c in cfgs]
    assert any(c.has_residual for c in cfgs)
    emu, brd, backend, same = _through_board(model, export, x[:16], cfgs, impls)
    assert same and len(brd) == len(export.layers) == 3 and backend.loads == 3
    assert all(na == nb and np.array_equal(qa, qb) and np.array_equal(ya, yb)
               for (na, qa, ya), (nb, qb, yb) in zip(emu, brd))


@pytest.mark.long
def test_digits_every_test_image_through_the_simulated_board(capsys, tmp_path, trained):
    """All 450 test images of the digits network through the simulated board (its three
    engines, the byte link): the accuracy equals the golden model's and every block is
    bit-exact (bfly evaluate's PASS)."""
    bft, _, _, (xte, yte) = trained
    from bfly.examples.digits import save_model, load_digits_split
    save_model(bft, tmp_path / "model.pt")
    xtr = load_digits_split()[0]
    np.save(tmp_path / "calib.npy", xtr[:256])
    np.savez(tmp_path / "test.npz", x=xte, y=yte)
    code, _, err = run(capsys, "export", tmp_path / "model.pt", "--calib", tmp_path / "calib.npy",
                       "-o", tmp_path / "net")
    assert code == 0, err
    from bfly.sw.export import load_export
    cfgs = engine_configs(load_export(tmp_path / "net"))
    with running_board(cfgs, byte_link=True) as url:
        code, out, err = run(capsys, "evaluate", tmp_path / "net", "--data", tmp_path / "test.npz",
                             "--port", url, "--timeout", "10", "-o", tmp_path / "eval")
    assert code == 0, err
    report = json.loads((tmp_path / "eval" / "evaluate.json").read_text())
    assert report["images"] == 450 and report["bit_exact"]
    assert report["board_accuracy"] == report["emulated_accuracy"]
    print(out)
