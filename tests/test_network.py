"""A user's own network through ``bfly export FILE.py:CLASS`` (bfly.sw.network, bfly.sw.export)."""

import json

import numpy as np
import pytest
import torch

from cliutil import run
from bfly.sw.image import WeightImage
from bfly.sw.export import export_network, NETWORK_FORMAT
from bfly.sw.network import load_user_model, bft_layers, layer_inputs, ModelError
from bfly.sw.quantize import quantize_input, emulate, sqnr_db

NET = '''
import torch
from torch import nn
from bfly.sw.butterfly import BFTConv2d


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.pw1 = BFTConv2d(16, 16, k=4, residual=True, bias=True)
        self.bn1 = nn.BatchNorm2d(16)
        self.body = nn.Sequential(nn.ReLU(), BFTConv2d(16, 32, k=4))
        self.head = nn.Linear(32, 5)

    def forward(self, x):
        x = self.bn1(self.pw1(self.stem(x)))
        return self.head(self.body(x).mean(dim=(2, 3)))


class Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return self.conv(x)
'''


@pytest.fixture
def user_net(tmp_path):
    """``(model spec, weights file, calibration file)`` of a small network in the user's file."""
    (tmp_path / "my_net.py").write_text(NET)
    spec = f"{tmp_path / 'my_net.py'}:Net"
    torch.manual_seed(3)
    model = load_user_model(spec)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    torch.save(model.state_dict(), tmp_path / "w.pt")
    calib = np.random.default_rng(0).normal(size=(12, 3, 6, 6)).astype(np.float32)
    np.save(tmp_path / "calib.npy", calib)
    return spec, tmp_path / "w.pt", tmp_path / "calib.npy"




def test_every_bft_layer_becomes_an_image_that_computes_it(capsys, tmp_path, user_net):
    spec, weights, calib = user_net
    code, out, err = run(capsys, "export", spec, "--weights", weights, "--calib", calib,
                         "-o", tmp_path / "out")
    assert code == 0, err
    model = load_user_model(spec, weights)
    layers = bft_layers(model)
    assert [n for n, _ in layers] == ["pw1", "body.1"]
    manifest = json.loads((tmp_path / "out" / "network.json").read_text())
    assert manifest["format"] == NETWORK_FORMAT and manifest["input_shape"] == [3, 6, 6]
    by_name = {l["name"]: l for l in manifest["layers"]}
    assert {n: l["image"] for n, l in by_name.items()} == {"pw1": "pw1.bfly", "body.1": "body_1.bfly"}
    # pw1 is followed by bn1 and the ReLU of body.0: both folded; body.1 by a mean, on the host
    assert by_name["pw1"]["folded"] == ["bn1 (BatchNorm2d)", "ReLU"]
    assert by_name["body.1"]["folded"] == [] and "mean" in by_name["body.1"]["on_host_after"]
    # a 16 -> 16 engine with a residual and a 16 -> 32 one
    assert [e["layers"] for e in manifest["engines"]] == [["pw1"], ["body.1"]]
    inputs = layer_inputs(model, np.load(calib), layers)
    for name, layer in layers:
        img = WeightImage.from_bytes((tmp_path / "out" / by_name[name]["image"]).read_bytes())
        assert (img.config.n_in, img.config.n_out) == (layer.in_channels, layer.out_channels)
        assert img.config.factors == tuple(layer.transform.factors)
        x = inputs[name]
        with torch.no_grad():       # the block in float: the layer (bias and residual included)
            want = layer(torch.from_numpy(x).float()[:, :, None, None])
            if name == "pw1":       # and what was folded
                want = torch.relu(model.bn1(want))
            want = want[:, :, 0, 0].double().numpy()
        got = emulate(img, quantize_input(x, img.input_scale, img.config)) * img.output_scale
        assert sqnr_db(want, got) > 25, name


def test_the_weights_are_the_users(tmp_path, user_net):
    spec, weights, calib = user_net
    untrained, trained = load_user_model(spec), load_user_model(spec, weights)
    a = export_network(untrained, np.load(calib)).images["pw1.bfly"]
    b = export_network(trained, np.load(calib)).images["pw1.bfly"]
    assert not all(np.array_equal(x, y) for x, y in zip(a.params.weights, b.params.weights))


@pytest.mark.parametrize("edit, message", [
    (lambda spec, w, c, t: [spec.replace(":Net", ":Plain"), "--calib", c], "no BFTConv2d layer"),
    (lambda spec, w, c, t: [spec.replace(":Net", ":Missing"), "--calib", c], "no torch.nn.Module subclass named Missing"),
    (lambda spec, w, c, t: [spec.replace("my_net.py", "nope.py"), "--calib", c], "no such file"),
    (lambda spec, w, c, t: [spec, "--weights", c, "--calib", c], "not a torch weights file"),
    (lambda spec, w, c, t: [spec, "--weights", w, "--calib", t], "cannot run on the calibration inputs"),
])
def test_bad_models_and_inputs_are_one_clear_error(capsys, tmp_path, user_net, edit, message):
    spec, weights, calib = user_net
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.ones((4, 1, 6, 6), dtype=np.float32))     # the model takes 3 channels
    code, out, err = run(capsys, "export", *edit(spec, weights, calib, wrong), "-o", tmp_path / "out")
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_an_unused_layer_is_named(tmp_path, user_net):
    spec, weights, calib = user_net
    model = load_user_model(spec, weights)
    model.spare = type(model.pw1)(16, 16)
    with pytest.raises(ModelError, match="spare"):
        export_network(model, np.load(calib))
