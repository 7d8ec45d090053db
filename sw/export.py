"""Export a user's trained network for the accelerator: every BFT layer quantized into a weight
image, with what follows it folded into the engine's epilogue where the graph allows it, and a
``network.json`` manifest that says what runs where (``docs/network.md``).

How a layer is found and folded:

1. The model's forward is traced with ``torch.fx`` (a :class:`BFTConv2d` is a leaf: its call is
   one node). A trace that fails (control flow that depends on values) is not an error: every
   layer is then exported alone and all that follows it stays on the host; the manifest says so.
2. From each BFT layer's call the export follows its single user, as far as the epilogue
   (``docs/spec.md`` §3) can compute it: an ``add`` of the layer's own input (the first-to-last
   residual, where the layer keeps the width and has no residual of its own), then a
   ``BatchNorm2d`` in eval mode, then a ReLU (module, function or method). It stops at the first
   node that is not one of these in this order, or whose result is used twice: that node and
   what follows stay on the host, and the manifest names it.
3. The calibration inputs of every layer are collected in one forward pass (hooks), and each
   block (layer plus what was folded) is quantized with :func:`bfly.sw.quantize.quantize_block`.

Layers with the same engine configuration share an engine (``engines`` in the manifest); a board
built for the network holds one engine per entry.
"""

import json
import operator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from bfly.hw.config import ConfigError, EngineConfig
from .butterfly import BFTConv2d
from .image import WeightImage, ImageError
from .network import ModelError, image_name, layer_inputs
from .quantize import FloatBlock, QuantizeError, quantize_block

__all__ = ["NETWORK_FORMAT", "MANIFEST_NAME", "Block", "trace_blocks", "Export", "export_network",
           "load_export", "engine_key", "engine_configs"]

NETWORK_FORMAT = "bfly-network-1"
MANIFEST_NAME = "network.json"

_RELU_FUNCTIONS = {"relu", "relu_"}       # torch.relu, torch.relu_, F.relu and the methods
_ADD_FUNCTIONS = {operator.add, operator.iadd}


@dataclass
class Block:
    """One BFT layer as the export sees it: ``name`` (its path in the module tree), the layer,
    and what is folded into its epilogue: ``residual`` (a graph-level add of the layer's input),
    ``bn`` (``(name, BatchNorm2d)``), ``relu``; ``host`` says why folding stopped where it did
    (or None when it reached the end of what an epilogue holds). ``nodes`` are the fx nodes of the
    layer call and of each folded op, in order (empty without a trace); ``calls``, every fx node
    that calls the layer (more than one: nothing is folded, and each call runs on the engine)."""
    name: str
    layer: BFTConv2d
    residual: bool = False
    bn: tuple = None
    relu: bool = False
    host: str = None
    nodes: list = field(default_factory=list)
    calls: list = field(default_factory=list)

    @property
    def folded(self):
        """The folded ops as text, in order."""
        ops = []
        if self.residual:
            ops.append("residual add of the layer's input")
        if self.bn:
            ops.append(f"{self.bn[0]} (BatchNorm2d)")
        if self.relu:
            ops.append("ReLU")
        return ops

    def float_block(self):
        """The block in float, for :func:`quantize_block`."""
        fb = FloatBlock.from_torch(self.layer, self.bn[1] if self.bn else None, relu=self.relu)
        if self.residual:
            fb.residual = True
        return fb


def _tracer():
    import torch.fx

    class Tracer(torch.fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return isinstance(m, BFTConv2d) or super().is_leaf_module(m, qualname)
    return Tracer()


def _describe(node, modules):
    if node.op == "call_module":
        return f"{node.target} ({type(modules[node.target]).__name__})"
    if node.op in ("call_function", "call_method"):
        return f"{getattr(node.target, '__name__', node.target)} ({node.name})"
    return node.name


def _is_relu(node, modules):
    import torch
    if node.op == "call_module":
        return isinstance(modules[node.target], torch.nn.ReLU)
    if node.op == "call_function":
        return getattr(node.target, "__name__", None) in _RELU_FUNCTIONS and len(node.args) == 1
    return node.op == "call_method" and node.target in _RELU_FUNCTIONS and len(node.args) == 1


def _is_add_of(node, a, b):
    """``node`` is ``a + b`` (either order, no ``alpha``)."""
    import torch
    adds = node.op == "call_function" and (node.target in _ADD_FUNCTIONS or node.target is torch.add) \
        or node.op == "call_method" and node.target in ("add", "add_")
    return adds and not node.kwargs and len(node.args) == 2 and set(node.args) == {a, b}


def _follow(block, node, modules):
    """Fold what follows ``node`` (the layer's call) into ``block`` as far as the epilogue
    allows."""
    import torch
    x = node.args[0] if node.args else None
    layer = block.layer
    steps = ["residual", "bn", "relu"]
    cur = node
    while steps:
        users = list(cur.users)
        if len(users) != 1:
            block.host = (f"the result of {_describe(cur, modules)} is used {len(users)} times"
                          if users else None)
            return
        nxt = users[0]
        if "residual" in steps and _is_add_of(nxt, cur, x) and cur is node \
                and layer.in_channels == layer.out_channels and not layer.transform.residual:
            block.residual = True
            steps = steps[1:]
        elif "bn" in steps and nxt.op == "call_module" and isinstance(modules[nxt.target], torch.nn.BatchNorm2d):
            bn = modules[nxt.target]
            if not bn.track_running_stats or bn.running_var is None:
                block.host = f"{nxt.target} (BatchNorm2d) has no running statistics to fold"
                return
            block.bn = (nxt.target, bn)
            steps = steps[steps.index("bn") + 1:]
        elif _is_relu(nxt, modules):
            block.relu = True
            steps = []
        else:
            block.host = f"{_describe(nxt, modules)} follows and the epilogue cannot compute it"
            return
        block.nodes.append(nxt)
        cur = nxt


def trace_blocks(model):
    """``(blocks, graph_module, trace_error)``: every BFT layer of ``model`` as a :class:`Block`
    in the order the forward calls them. ``graph_module`` is the traced model (None, with
    ``trace_error`` the reason, when it cannot be traced: then nothing is folded)."""
    import torch
    named = [(n, m) for n, m in model.named_modules() if isinstance(m, BFTConv2d)]
    if not named:
        raise ModelError("the model has no BFTConv2d layer to export")
    try:
        tracer = _tracer()
        graph = tracer.trace(model)
        gm = torch.fx.GraphModule(tracer.root, graph)
    except Exception as e:              # the user's forward: any error it raises is theirs
        blocks = [Block(n, m, host="the model could not be traced, so nothing after the layer "
                                   "is folded") for n, m in named]
        return blocks, None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    modules = dict(gm.named_modules())
    calls = [n for n in gm.graph.nodes if n.op == "call_module" and isinstance(modules[n.target], BFTConv2d)]
    blocks = []
    for n in calls:
        if any(b.name == n.target for b in blocks):
            continue
        block = Block(n.target, modules[n.target], nodes=[n],
                      calls=[c for c in calls if c.target == n.target])
        if len(block.calls) > 1:
            block.host = f"the layer is called {len(block.calls)} times, so nothing after it is folded"
        else:
            _follow(block, n, modules)
        blocks.append(block)
    unused = [n for n, _ in named if not any(b.name == n for b in blocks)]
    if unused:
        raise ModelError(f"layers {', '.join(unused)} are not used by the model's forward")
    return blocks, gm, None


def engine_key(cfg):
    """What makes two layers' engines the same hardware: the configuration without its name."""
    return replace(cfg, name="")


@dataclass
class Export:
    """An exported network: ``manifest`` (the ``network.json`` dict) and ``images`` (``{file
    name: WeightImage}``)."""
    manifest: dict
    images: dict

    def files(self):
        """``{file name: bytes or text}`` of the export directory."""
        try:
            files = {name: img.to_bytes() for name, img in self.images.items()}
        except ImageError as e:
            raise ModelError(f"cannot write the weight images: {e}")
        files[MANIFEST_NAME] = json.dumps(self.manifest, indent=2) + "\n"
        return files

    @property
    def layers(self):
        return self.manifest["layers"]

    def image(self, layer):
        """The weight image of ``layer`` (an entry of :attr:`layers`)."""
        return self.images[layer["image"]]


def export_network(model, calib, model_spec=None, weights=None, names=None, **engine):
    """Export every BFT layer of ``model`` (in eval mode) on calibration inputs ``calib`` (a batch
    of what its forward takes). ``engine`` passes ``data_bits``, ``weight_bits``, ``rounding`` and
    ``overflow``; ``model_spec`` and ``weights`` are recorded so the runner can rebuild the model;
    ``names`` maps layer paths to file names (default: the path, ``.`` as ``_``).
    Returns an :class:`Export`; raises :class:`ModelError` naming the layer that cannot be used."""
    model.eval()
    blocks, _, trace_error = trace_blocks(model)
    inputs = layer_inputs(model, calib, [(b.name, b.layer) for b in blocks])
    images, layers, engines = {}, [], []
    for b in blocks:
        key = (names or {}).get(b.name) or image_name(b.name)
        file = f"{key}.bfly"
        if file in images:
            raise ModelError(f"layers {b.name} and another are both named {key} in files")
        fb = b.float_block()
        if not all(np.isfinite(a).all() for a in [*fb.weights, fb.scale, fb.shift]):
            raise ModelError(f"layer {b.name}: its weights (or the batch norm folded into it) hold "
                             f"NaN or infinite values")
        if not np.isfinite(inputs[b.name]).all():
            raise ModelError(f"layer {b.name}: its calibration inputs hold NaN or infinite values "
                             f"(the layers before it make them)")
        try:
            image = quantize_block(fb, inputs[b.name], name=f"bfly_{key}", **engine)
        except (QuantizeError, ConfigError) as e:
            raise ModelError(f"layer {b.name}: {e}")
        images[file] = image
        hw = engine_key(image.config)
        index = next((i for i, e in enumerate(engines) if e == hw), None)
        if index is None:
            engines.append(hw)
            index = len(engines) - 1
        layers.append({
            "name": b.name,
            "image": file,
            "engine": index,
            "c_in": b.layer.in_channels,
            "c_out": b.layer.out_channels,
            "pixels_per_input": len(inputs[b.name]) // len(calib),
            "chain": image.config.chain_rows(),
            "input_scale": image.input_scale,
            "output_scale": image.output_scale,
            "folded": b.folded,
            "on_host_after": b.host,
            "final_sqnr_db": image.report["final_sqnr_db"],
        })
    manifest = {
        "format": NETWORK_FORMAT,
        "model": None if model_spec is None else str(model_spec),
        "weights": None if weights is None else str(weights),
        "input_shape": list(np.shape(calib)[1:]),
        "calibration_inputs": int(len(calib)),
        "engine": dict(engine),
        "traced": trace_error is None,
        "trace_error": trace_error,
        "layers": layers,
        "engines": [{"config": replace(e, name=f"bfly_net_e{i}").to_dict(),
                     "layers": [l["name"] for l in layers if l["engine"] == i]}
                    for i, e in enumerate(engines)],
        "on_host": "every op that is not a BFT layer or folded into one",
    }
    return Export(manifest, images)


def load_export(directory):
    """The :class:`Export` written in ``directory`` (its ``network.json`` and images), checked:
    a :class:`ModelError` says what is missing or inconsistent."""
    directory = Path(directory)
    path = directory / MANIFEST_NAME if directory.is_dir() else directory
    directory = path.parent
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{path}: no such file (bfly export writes it)")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{path}: not a network manifest ({e})")
    if not isinstance(manifest, dict) or manifest.get("format") != NETWORK_FORMAT:
        raise ModelError(f"{path}: not a bfly network manifest (format {NETWORK_FORMAT})")
    try:
        engines = [EngineConfig.from_dict(e["config"]) for e in manifest["engines"]]
        layers = manifest["layers"]
        images = {}
        for layer in layers:
            file = layer["image"]
            try:
                image = WeightImage.from_bytes((directory / file).read_bytes())
            except OSError as e:
                raise ModelError(f"layer {layer['name']}: cannot read {directory / file}: {e.strerror}")
            except ImageError as e:
                raise ModelError(f"layer {layer['name']}: {directory / file}: {e}")
            cfg = engines[layer["engine"]]
            try:
                image.check_engine({"config": cfg.to_dict()})
            except ImageError as e:
                raise ModelError(f"layer {layer['name']}: {file} does not fit engine {layer['engine']}: {e}")
            images[file] = image
    except (KeyError, TypeError, IndexError, ConfigError) as e:
        raise ModelError(f"{path}: the manifest is incomplete or inconsistent ({type(e).__name__}: {e})")
    return Export(manifest, images)


def engine_configs(export):
    """The engine configurations of an export, in engine order."""
    return [EngineConfig.from_dict(e["config"]) for e in export.manifest["engines"]]
