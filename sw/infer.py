"""Whole-network inference: the user's model with every exported BFT block (the layer and what
was folded into it) computed by an engine, and everything else by torch on the host.

A backend computes a layer on integers: :class:`EmulatedBackend` with the golden model
(``sim/model.py``), :class:`BoardBackend` on a board through the driver (one engine per entry
of the manifest's ``engines``; layers that share an engine have their image loaded in turn). The
runner quantizes each block's input with its image's input scale, has the backend compute it and
scales the result back, so the board and the emulation see the same integers and give the same
outputs, bit for bit.
"""

import numpy as np
import torch

from .export import trace_blocks
from .network import ModelError
from .quantize import quantize_input

__all__ = ["EmulatedBackend", "BoardBackend", "AcceleratedBlock", "accelerated_model", "evaluate",
           "predict"]


class EmulatedBackend:
    """The golden model: what a board computes, without one."""

    name = "golden model"

    def run(self, layer, image, pixels):
        from .quantize import emulate
        return emulate(image, pixels)


class BoardBackend:
    """A board with an engine for each entry of the export's ``engines``: ``board`` is a
    :class:`bfly.sw.driver.Board`. Checks at once that every engine is there and that every
    image fits its engine (before anything is written); loads each layer's image when that layer
    runs, unless it is loaded already."""

    name = "board"

    def __init__(self, board, export):
        from .driver import DriverError
        from .image import ImageError
        self.board, self.export = board, export
        self.loads = 0
        wanted = len(export.manifest["engines"])
        if len(board.engines) < wanted:
            raise DriverError(f"the network needs {wanted} engines, the board has "
                              f"{len(board.engines)} (bfly build --network makes one with all)")
        for layer in export.layers:
            acc = board.engines[layer["engine"]]
            try:
                export.image(layer).check_engine({"config": acc.config.to_dict()})
            except ImageError as e:
                raise DriverError(f"layer {layer['name']} does not fit engine {layer['engine']} of "
                                  f"the board: {e}")
        self._loaded = {}                    # engine -> layer name

    def run(self, layer, image, pixels):
        acc = self.board.engines[layer["engine"]]
        if self._loaded.get(layer["engine"]) != layer["name"]:
            acc.load(image)
            self._loaded[layer["engine"]] = layer["name"]
            self.loads += 1
        cfg = image.config
        out = acc.run(pixels.T.reshape(cfg.n_in, len(pixels), 1))
        return out.reshape(cfg.n_out, -1).T


class AcceleratedBlock(torch.nn.Module):
    """Stands in for an exported block: ``(N, C, H, W)`` floats in, the block's output out,
    computed on integers by ``backend``. ``trace`` (a list or None) collects each call's layer
    name, integer input and integer output."""

    def __init__(self, layer, image, backend, trace=None):
        super().__init__()
        self.layer, self.image, self.backend, self.trace = layer, image, backend, trace

    def forward(self, x):
        n, c, h, w = x.shape
        cfg = self.image.config
        pixels = x.detach().movedim(1, -1).reshape(-1, c).double().cpu().numpy()
        q = quantize_input(pixels, self.image.input_scale, cfg)
        y = np.asarray(self.backend.run(self.layer, self.image, q))
        if self.trace is not None:
            self.trace.append((self.layer["name"], q, y))
        out = torch.from_numpy(y * self.image.output_scale).to(x.dtype)
        return out.reshape(n, h, w, cfg.n_out).movedim(-1, 1)

    def extra_repr(self):
        return f"{self.layer['name']}, on the {self.backend.name}"


def accelerated_model(model, export, backend, trace=None):
    """A copy of ``model`` in which each block of ``export`` runs on ``backend``: the traced graph
    with each block's layer call and folded ops replaced by one :class:`AcceleratedBlock`, or,
    where the model was exported without a trace, the layer modules replaced."""
    import copy
    model = copy.deepcopy(model).eval()
    blocks, gm, _ = trace_blocks(model)
    by_name = {l["name"]: l for l in export.layers}
    missing = [b.name for b in blocks if b.name not in by_name]
    extra = [n for n in by_name if not any(b.name == n for b in blocks)]
    if missing or extra:
        problems = ([f"layers not exported: {', '.join(missing)}"] if missing else []) + \
            ([f"exported layers not in the model: {', '.join(extra)}"] if extra else [])
        raise ModelError("the model does not match the export: " + "; ".join(problems))
    for b in blocks:
        layer = by_name[b.name]
        if b.folded != layer["folded"]:
            raise ModelError(f"layer {b.name}: the export folded {layer['folded'] or 'nothing'}, "
                             f"the model now gives {b.folded or 'nothing'}")
    if gm is None or not export.manifest.get("traced", True):
        for b in blocks:
            parent, _, attr = b.name.rpartition(".")
            owner = model.get_submodule(parent) if parent else model
            layer = by_name[b.name]
            setattr(owner, attr, AcceleratedBlock(layer, export.image(layer), backend, trace))
        return model
    graph = gm.graph
    for i, b in enumerate(blocks):
        layer = by_name[b.name]
        target = f"bfly_block_{i}"
        gm.add_submodule(target, AcceleratedBlock(layer, export.image(layer), backend, trace))
        # the layer call and what was folded after it; a layer called more than once (nothing
        # folded) has each call replaced
        chains = [b.nodes] if len(b.calls) <= 1 else [[c] for c in b.calls]
        for nodes in chains:
            call, end = nodes[0], nodes[-1]
            with graph.inserting_after(end):
                new = graph.call_module(target, (call.args[0],))
            end.replace_all_uses_with(new)
            for node in reversed(nodes):
                graph.erase_node(node)
    graph.lint()
    gm.recompile()
    return gm.eval()


def predict(model, x, batch=64, progress=None):
    """``model`` on float inputs ``x`` in batches: the stacked outputs as a NumPy array."""
    outs = []
    with torch.no_grad():
        for start in range(0, len(x), batch):
            outs.append(model(torch.as_tensor(np.asarray(x[start:start + batch], dtype=np.float32))).numpy())
            if progress:
                progress(min(batch, len(x) - start))
    return np.concatenate(outs)


def evaluate(model, x, y, batch=64, progress=None):
    """Top-1 accuracy of ``model`` on ``(x, y)`` and the predicted classes."""
    scores = predict(model, x, batch, progress)
    pred = scores.argmax(axis=1)
    return float((pred == np.asarray(y)).mean()), pred
