"""A small real network end to end: scikit-learn's handwritten digits (8x8, 10 classes, shipped
with scikit-learn, no download) classified by a depthwise-separable CNN whose pointwise
convolutions are BFT blocks (``k = 4``), beside the same network with dense 1x1 convolutions.

    stem   3x3 conv 1 -> 16, BN, ReLU                                   8x8
    ds1    3x3 depthwise 16, BN, ReLU; pointwise 16 -> 16, BN, ReLU     8x8
    ds2    3x3 depthwise 16 stride 2, BN, ReLU; pointwise 16 -> 64      4x4
    ds3    3x3 depthwise 64, BN, ReLU; pointwise 64 -> 64, BN, ReLU     4x4
    head   global average pool, linear 64 -> 10

The BFT pointwise layers follow the paper: no batch norm or non-linearity inside the transform,
a first-to-last residual where the widths match, eq. 9 initialization, no weight decay on the
butterfly weights.
"""

import time

import numpy as np
import torch
from torch import nn

from bfly.sw.butterfly import BFTConv2d, parameter_groups

__all__ = ["DigitsNet", "load_digits_split", "train", "evaluate", "pointwise_macs", "bft_blocks",
           "block_inputs", "layer_names", "export_model", "quantize_model", "emulated_model",
           "build_and_train", "train_demo", "quantized_accuracy",
           "save_model", "load_model", "ModelFileError"]

MODEL_FORMAT = "bfly-digits-1"


class ModelFileError(ValueError):
    """A model file that is not a bfly digits model."""


class SeparableBlock(nn.Module):
    def __init__(self, c_in, c_out, stride, pointwise, k):
        super().__init__()
        self.dw = nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in, bias=False)
        self.dw_bn = nn.BatchNorm2d(c_in)
        if pointwise == "bft":
            self.pw = BFTConv2d(c_in, c_out, k=k, residual=c_in == c_out)
        else:
            self.pw = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.pw_bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        x = torch.relu(self.dw_bn(self.dw(x)))
        return torch.relu(self.pw_bn(self.pw(x)))


class DigitsNet(nn.Module):
    def __init__(self, pointwise="bft", k=4, widths=(16, 16, 64, 64)):
        super().__init__()
        if pointwise not in ("bft", "dense"):
            raise ValueError(f"pointwise must be 'bft' or 'dense', not {pointwise!r}")
        self.arch = {"pointwise": pointwise, "k": k, "widths": list(widths)}
        w = widths
        self.stem = nn.Sequential(nn.Conv2d(1, w[0], 3, padding=1, bias=False), nn.BatchNorm2d(w[0]),
                                  nn.ReLU())
        self.blocks = nn.Sequential(SeparableBlock(w[0], w[1], 1, pointwise, k),
                                    SeparableBlock(w[1], w[2], 2, pointwise, k),
                                    SeparableBlock(w[2], w[3], 1, pointwise, k))
        self.head = nn.Linear(w[3], 10)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.head(x.mean(dim=(2, 3)))


def bft_blocks(model):
    """``[(name, SeparableBlock)]`` of the blocks whose pointwise layer is a BFT."""
    return [(f"block{i + 1}", b) for i, b in enumerate(model.blocks) if isinstance(b.pw, BFTConv2d)]


def load_digits_split(seed=0, test_fraction=0.25):
    """Digits as float32 ``(N, 1, 8, 8)`` in [0, 1] and int64 labels: ``(x_train, y_train,
    x_test, y_test)``, a fixed stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=test_fraction, random_state=seed,
                                          stratify=d.target)
    return xtr, ytr.astype(np.int64), xte, yte.astype(np.int64)


def pointwise_macs(model, input_hw=(8, 8)):
    """Multiply-accumulates per image of the pointwise layers."""
    total, hooks = 0, []

    def count(module, inputs, output):
        nonlocal total
        pixels = output.shape[2] * output.shape[3]
        per_pixel = module.macs_per_pixel() if isinstance(module, BFTConv2d) \
            else module.in_channels * module.out_channels
        total += per_pixel * pixels

    for block in model.blocks:
        hooks.append(block.pw.register_forward_hook(count))
    with torch.no_grad():
        model.eval()
        model(torch.zeros(1, 1, *input_hw))
    for h in hooks:
        h.remove()
    return total


def train(model, x, y, epochs=40, batch=64, lr=3e-3, weight_decay=1e-4, seed=0, progress=None):
    """Adam with cosine decay; weight decay only off the butterfly weights. Deterministic for a
    seed on one machine. ``progress(epoch, loss)`` is called after each epoch."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(parameter_groups(model, weight_decay), lr=lr)
    steps = epochs * ((len(x) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if progress:
            progress(epoch, total / len(x))
    model.eval()
    return model


def evaluate(model, x, y):
    """Top-1 accuracy in [0, 1]."""
    model.eval()
    with torch.no_grad():
        return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def save_model(model, path, extra=None):
    torch.save({"format": MODEL_FORMAT, "arch": model.arch, "state_dict": model.state_dict(),
                "extra": extra or {}}, path)


def load_model(path):
    """Rebuild a :class:`DigitsNet` saved by :func:`save_model`."""
    from bfly.sw.network import ModelError, read_torch_file
    try:
        blob = read_torch_file(path)
    except ModelError as e:
        raise ModelFileError(str(e))
    if not isinstance(blob, dict) or blob.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path}: not a bfly digits model (saved by bfly train-demo)")
    arch = blob["arch"]
    model = DigitsNet(arch["pointwise"], arch["k"], tuple(arch["widths"]))
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as e:
        raise ModelFileError(f"{path}: weights do not fit the architecture ({str(e).splitlines()[0]})")
    model.eval()
    return model


def block_inputs(model, images):
    """``{block name: (N*H*W, C) float pixels}``: what each BFT block's pointwise layer sees."""
    from bfly.sw.network import layer_inputs
    return layer_inputs(model, images, [(name, block.pw) for name, block in bft_blocks(model)])


def layer_names(model):
    """``{pointwise layer's module path: block name}``."""
    return {f"blocks.{i}.pw": f"block{i + 1}" for i, b in enumerate(model.blocks)
            if isinstance(b.pw, BFTConv2d)}


def export_model(model, calib_images, **engine):
    """The generic export (:func:`bfly.sw.export.export_network`) of the digits network: each
    block's pointwise layer with its batch norm and ReLU folded. ``engine`` passes
    ``data_bits``, ``weight_bits``, ``rounding``, ``overflow``."""
    from bfly.sw.export import export_network
    return export_network(model, calib_images, names=layer_names(model), **engine)


def quantize_model(model, calib_images, **engine):
    """Every BFT block quantized on calibration images through the generic export:
    ``{block name: WeightImage}``."""
    export = export_model(model, calib_images, **engine)
    return {layer["image"].removesuffix(".bfly"): export.image(layer) for layer in export.layers}


def emulated_model(model, images):
    """``model`` with every BFT block run through the golden model with ``images`` (``{block
    name: WeightImage}``), by the generic runner (:mod:`bfly.sw.infer`)."""
    from bfly.sw.infer import accelerated_model, EmulatedBackend
    from bfly.sw.export import Export, trace_blocks
    names = layer_names(model)
    blocks, _, _ = trace_blocks(model)
    layers = [{"name": b.name, "image": names[b.name], "engine": 0, "folded": b.folded} for b in blocks]
    return accelerated_model(model, Export({"layers": layers, "traced": True}, dict(images)),
                             EmulatedBackend())


def build_and_train(pointwise, epochs=40, seed=0, progress=None):
    """A seeded :class:`DigitsNet` trained on the fixed training split."""
    torch.manual_seed(seed)
    model = DigitsNet(pointwise)
    xtr, ytr, _, _ = load_digits_split()
    return train(model, xtr, ytr, epochs=epochs, seed=seed, progress=progress)


def train_demo(epochs=40, seed=0, calib_count=256, progress=None):
    """Train the BFT network and the dense baseline; return ``(bft, dense, calib, report)``."""
    xtr, ytr, xte, yte = load_digits_split()
    report, models = {"dataset": "sklearn digits 8x8", "train_images": len(xtr),
                      "test_images": len(xte), "epochs": epochs, "seed": seed}, {}
    for pointwise in ("bft", "dense"):
        t0 = time.time()
        models[pointwise] = build_and_train(pointwise, epochs, seed,
                                            (lambda e, l, p=pointwise: progress(p, e, l)) if progress else None)
        report[pointwise] = {"accuracy": evaluate(models[pointwise], xte, yte),
                             "pointwise_macs_per_image": pointwise_macs(models[pointwise]),
                             "train_seconds": time.time() - t0}
    return models["bft"], models["dense"], xtr[:calib_count], report


def quantized_accuracy(model, images):
    """Test accuracy with every BFT block run through the golden model with ``images``."""
    _, _, xte, yte = load_digits_split()
    return evaluate(emulated_model(model, images), xte, yte)
