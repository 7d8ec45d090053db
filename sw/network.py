"""A user's own torch network: load it from their file, find its BFT layers and collect what each
layer sees on calibration inputs (forward hooks, one pass). :mod:`bfly.sw.export` quantizes them.

A model is named ``path/to/file.py:ClassName``: the class is built with no arguments and, with a
weights file, loaded from a ``state_dict`` (a dict of tensors, or ``{"state_dict": ...}``).
"""

import hashlib
import importlib.util
import re
from pathlib import Path

import numpy as np

from .butterfly import BFTConv2d

__all__ = ["ModelError", "is_model_spec", "load_user_model", "bft_layers", "layer_inputs",
           "image_name", "read_torch_file"]


class ModelError(ValueError):
    """A model that cannot be loaded or used: the message says which and why."""


def is_model_spec(text):
    """Whether ``text`` names a class in a Python file (``file.py:Class``)."""
    path, sep, cls = str(text).rpartition(":")
    return bool(sep) and path.endswith(".py") and cls.isidentifier()


def load_user_model(spec, weights=None):
    """The model ``file.py:Class`` built with no arguments, with ``weights`` loaded if given, in
    eval mode."""
    import torch
    path, _, cls_name = str(spec).rpartition(":")
    if not is_model_spec(spec):
        raise ModelError(f"{spec}: name a model as FILE.py:CLASS")
    file = Path(path)
    if not file.is_file():
        raise ModelError(f"{spec}: no such file {path}")
    name = "bfly_user_model_" + hashlib.sha256(str(file.resolve()).encode()).hexdigest()[:12]
    try:
        module_spec = importlib.util.spec_from_file_location(name, file)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    except (Exception, SystemExit) as e:    # the user's file: any error it raises is theirs to see
        raise ModelError(f"{path}: importing it failed: {type(e).__name__}: {e}")
    cls = getattr(module, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ModelError(f"{spec}: {path} has no torch.nn.Module subclass named {cls_name}")
    try:
        model = cls()
    except (Exception, SystemExit) as e:
        raise ModelError(f"{spec}: {cls_name}() failed: {type(e).__name__}: {e}")
    if weights is not None:
        _load_weights(model, weights)
    return model.eval()


def read_torch_file(path):
    """What ``torch.save`` wrote to ``path``, loaded without code (``weights_only``)."""
    import torch
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"cannot read {path}: no such file")
    except Exception as e:
        raise ModelError(f"{path}: not a torch weights file ({type(e).__name__})")


def _load_weights(model, weights):
    import torch
    blob = read_torch_file(weights)
    state = blob.get("state_dict", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{weights}: expected a state_dict (a dict of tensors)")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ModelError(f"{weights}: the weights do not fit the model ({str(e).splitlines()[0]})")


def bft_layers(model):
    """``[(name, BFTConv2d)]`` of ``model``, in the order of its module tree."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, BFTConv2d)]


def image_name(layer_name):
    """A file and engine name for the layer called ``layer_name`` in the module tree."""
    return re.sub(r"[^A-Za-z0-9_]", "_", layer_name) or "layer"


def layer_inputs(model, inputs, layers):
    """``{name: (N*H*W, C) float64 pixels}``: what each of ``layers`` (``[(name, module)]``, each
    acting on ``(N, C, H, W)``) sees when ``model`` runs on ``inputs``, in one pass."""
    import torch
    seen, hooks = {}, []
    for name, module in layers:
        def hook(mod, args, output, name=name):        # (a layer used twice: both inputs)
            x = args[0]
            seen.setdefault(name, []).append(x.detach().movedim(1, -1).reshape(-1, x.shape[1])
                                             .double().numpy())
        hooks.append(module.register_forward_hook(hook))
    model.eval()
    try:
        with torch.no_grad():
            model(torch.as_tensor(np.asarray(inputs, dtype=np.float32)))
    except (Exception, SystemExit) as e:          # a shape the user's forward does not take, typically
        raise ModelError(f"the model cannot run on the calibration inputs shaped "
                         f"{tuple(np.shape(inputs))}: {type(e).__name__}: {str(e).splitlines()[0]}")
    finally:
        for h in hooks:
            h.remove()
    missing = [name for name, _ in layers if name not in seen]
    if missing:
        raise ModelError(f"layers {', '.join(missing)} were not used by the model's forward")
    return {name: np.concatenate(parts) for name, parts in seen.items()}
