"""The generic export and the whole-network runner on a network that is not the digits CNN
(``tests/own_net.py``, the user's own file, trained in the ``own_net`` fixture for a few epochs on
the digits data)."""

import json

import numpy as np
import pytest
import torch

from cliutil import run
from bfly.sw.export import load_export, trace_blocks, engine_configs
from bfly.sw.infer import accelerated_model, EmulatedBackend, BoardBackend, evaluate
from bfly.sw.network import layer_inputs, ModelError
from bfly.sw.quantize import quantize_input, emulate, sqnr_db
from bfly.sw.simboard import SimulatedBoard
from bfly.sw.driver import Board, DriverError


FOLDED = {
    "expand": ["expand_bn (BatchNorm2d)", "ReLU"],
    "mix": ["residual add of the layer's input", "mix_bn (BatchNorm2d)", "ReLU"],
    "reduce": [],
}


@pytest.fixture(scope="module")
def user_net(own_net):
    spec, weights, calib, test, model, _ = own_net
    return spec, weights, calib, test, model


@pytest.fixture(scope="module")
def exported(own_net):
    return own_net[-1]


def test_what_is_folded_follows_the_graph(exported):
    layers = {l["name"]: l for l in exported.layers}
    assert {n: l["folded"] for n, l in layers.items()} == FOLDED
    assert "used 2 times" in layers["reduce"]["on_host_after"]
    assert (layers["expand"]["c_in"], layers["expand"]["c_out"]) == (8, 32)
    assert (layers["reduce"]["c_in"], layers["reduce"]["c_out"]) == (32, 16)
    cfgs = engine_configs(exported)
    assert len(cfgs) == 3 and [c.has_residual for c in cfgs] == [False, True, False]
    assert all(c.epilogue for c in cfgs)


def test_each_block_computes_what_it_replaces(user_net, exported):
    """Each image, through the golden model, against the float block it stands for (the layer and
    what was folded), on the calibration pixels."""
    _, _, calib, _, model = user_net
    blocks, _, _ = trace_blocks(model)
    inputs = layer_inputs(model, np.load(calib), [(b.name, b.layer) for b in blocks])
    for b, layer in zip(blocks, exported.layers):
        x = inputs[b.name]
        with torch.no_grad():
            t = torch.from_numpy(x).float()[:, :, None, None]
            want = b.layer(t)
            if b.residual:
                want = want + t
            if b.bn:
                want = b.bn[1](want)
            if b.relu:
                want = torch.relu(want)
        img = exported.image(layer)
        got = emulate(img, quantize_input(x, img.input_scale, img.config)) * img.output_scale
        assert sqnr_db(want[:, :, 0, 0].double().numpy(), got) > 20, b.name


def test_the_network_runs_with_every_block_emulated(user_net, exported):
    _, _, _, test, model = user_net
    z = np.load(test)
    x, y = z["x"], z["y"]
    acc_float, _ = evaluate(model, x, y)
    trace = []
    emu = accelerated_model(model, exported, EmulatedBackend(), trace=trace)
    acc_emu, _ = evaluate(emu, x, y)
    assert acc_float > 0.8 and abs(acc_emu - acc_float) < 0.05, (acc_float, acc_emu)
    # every block ran on the engine's integers, once per batch of 64
    batches = -(-len(x) // 64)
    assert [name for name, _, _ in trace] == [l["name"] for l in exported.layers] * batches
    # the reduction's batch norm and the add after it stayed in torch
    assert "reduce_bn" in emu.code and "bfly_block_2" in emu.code


def test_a_board_runs_the_network_bit_exact(user_net, exported):
    """The in-process simulated board with the three engines: the same integers as the golden
    model for every block, layer by layer; two layers that share an engine reload it."""
    _, _, _, test, model = user_net
    x = np.load(test)["x"][:40]
    cfgs = engine_configs(exported)
    board = Board(SimulatedBoard(cfgs, [30, 40, 50]))
    assert [a.config for a in board.engines] == [c.__class__.from_dict({**c.to_dict(), "name": ""})
                                                 for c in cfgs]
    emu_trace, board_trace = [], []
    with torch.no_grad():
        a = accelerated_model(model, exported, EmulatedBackend(), emu_trace)(torch.from_numpy(x))
        backend = BoardBackend(board, exported)
        b = accelerated_model(model, exported, backend, board_trace)(torch.from_numpy(x))
    assert torch.equal(a, b) and len(board_trace) == 3 and backend.loads == 3
    for (na, qa, ya), (nb, qb, yb) in zip(emu_trace, board_trace):
        assert na == nb and np.array_equal(qa, qb) and np.array_equal(ya, yb)


def test_a_board_without_the_engines_is_refused(exported):
    cfgs = engine_configs(exported)
    with pytest.raises(DriverError, match="needs 3 engines, the board has 2"):
        BoardBackend(Board(SimulatedBoard(cfgs[:2], [30, 40])), exported)
    with pytest.raises(DriverError, match="layer mix does not fit engine 1"):
        BoardBackend(Board(SimulatedBoard([cfgs[0], cfgs[0], cfgs[2]], [30, 30, 50])), exported)


def test_export_and_evaluate_from_the_command_line(capsys, tmp_path, user_net):
    spec, weights, calib, test, _ = user_net
    code, out, err = run(capsys, "export", spec, "--weights", weights, "--calib", calib,
                         "-o", tmp_path / "net")
    assert code == 0, err
    assert "on the host after it: the result of reduce (BFTConv2d) is used 2 times" in out
    assert sorted(p.name for p in (tmp_path / "net").iterdir()) == [
        "expand.bfly", "mix.bfly", "network.json", "reduce.bfly"]
    code, out, err = run(capsys, "evaluate", tmp_path / "net", "--data", test, "--limit", "100",
                         "-o", tmp_path / "eval")
    assert code == 0, err
    report = json.loads((tmp_path / "eval" / "evaluate.json").read_text())
    assert report["images"] == 100 and f"golden model {report['emulated_accuracy']:.2%}" in out
    back = load_export(tmp_path / "net")
    assert [l["folded"] for l in back.layers] == list(FOLDED.values())


def test_a_model_that_no_longer_matches_its_export_is_refused(user_net, exported):
    _, _, _, _, model = user_net
    import copy
    changed = copy.deepcopy(model)
    changed.mix_bn = torch.nn.Identity()
    with pytest.raises(ModelError, match="layer mix: the export folded"):
        accelerated_model(changed, exported, EmulatedBackend())


def test_shared_engines_and_repeated_layers(tmp_path):
    torch.manual_seed(1)
    from own_net import Shared
    model = Shared().eval()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.1, 0.1)
    from bfly.sw.export import export_network
    x = np.random.default_rng(0).normal(size=(6, 8, 5, 5)).astype(np.float32)
    export = export_network(model, x)
    layers = {l["name"]: l for l in export.layers}
    # the batch norm without affine parameters is folded; b, called twice, folds nothing
    assert layers["a"]["folded"] == ["bn (BatchNorm2d)", "ReLU"]
    assert layers["b"]["folded"] == [] and "called 2 times" in layers["b"]["on_host_after"]
    assert layers["b"]["pixels_per_input"] == 2 * 25
    cfgs = engine_configs(export)
    assert len(cfgs) == 1 and layers["a"]["engine"] == layers["b"]["engine"] == 0
    emu_trace, board_trace = [], []
    emu = accelerated_model(model, export, EmulatedBackend(), emu_trace)
    backend = BoardBackend(Board(SimulatedBoard(cfgs, [30])), export)
    run = accelerated_model(model, export, backend, board_trace)
    with torch.no_grad():
        for _ in range(2):
            assert torch.equal(emu(torch.from_numpy(x)), run(torch.from_numpy(x)))
    # every call of b ran on the engine: a, b, b per forward; the engine reloaded between a and b
    assert [n for n, _, _ in board_trace] == ["a", "b", "b"] * 2
    assert backend.loads == 4
    assert all(np.array_equal(ya, yb) for (_, _, ya), (_, _, yb) in zip(emu_trace, board_trace))


def test_a_layer_that_cannot_be_quantized_is_named(capsys, tmp_path):
    """NaN weights in one layer: one line naming it, exit 2, nothing written."""
    from own_net import Shared
    model = Shared()
    with torch.no_grad():
        model.b.transform.weights[1][0, 0] = float("nan")
    torch.save(model.state_dict(), tmp_path / "w.pt")
    np.save(tmp_path / "calib.npy", np.ones((2, 8, 3, 3), dtype=np.float32))
    from pathlib import Path
    spec = f"{Path(__file__).with_name('own_net.py')}:Shared"
    code, _, err = run(capsys, "export", spec, "--weights", tmp_path / "w.pt", "--calib",
                       tmp_path / "calib.npy", "-o", tmp_path / "out")
    assert code == 2 and "layer b: its weights" in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()
