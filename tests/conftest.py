"""Shared fixtures: the trained and quantized digits network, trained once for the whole run (the
first pytest-xdist worker trains and saves it, the other loads it)."""

import fcntl
import hashlib
import os
from pathlib import Path

import pytest
import torch

import bfly.examples.digits as digits
import bfly.sw.butterfly as butterfly
from bfly.examples.digits import build_and_train, load_digits_split, quantize_model, save_model, load_model
from bfly.sim.runner import work_dir

# under pytest-xdist the other worker is building or running a simulator on the second core:
# torch trains on one thread instead of fighting it for both
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


def _trained(arch, epochs=40, seed=0):
    """``build_and_train(arch, epochs, seed)``, cached under ``build/test-cache`` by the source of
    the code that trains (so a change to it trains again), the torch version and its threads
    (whose float sums differ)."""
    key = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (digits, butterfly))
                         + f"{arch} {epochs} {seed} {torch.__version__} {torch.get_num_threads()}".encode()
                         ).hexdigest()[:16]
    path = work_dir("test-cache", f"digits_{arch}_{key}.pt")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            return load_model(path)
        model = build_and_train(arch, epochs=epochs, seed=seed)
        save_model(model, path)
        return model


@pytest.fixture(scope="session")
def trained():
    xtr, ytr, xte, yte = load_digits_split()
    bft = _trained("bft")
    dense = _trained("dense")
    images = quantize_model(bft, xtr[:256])
    return bft, dense, images, (xte, yte)


@pytest.fixture(scope="session")
def own_net(tmp_path_factory):
    """``(spec, weights, calib, test set, model, export)``: ``tests/own_net.py:Net``, trained 10
    epochs on the digits (a few seconds on one thread), saved as a user would, and
    exported on 128 training images."""
    import numpy as np
    from bfly.examples.digits import train
    from bfly.sw.export import export_network
    from bfly.sw.network import load_user_model
    d = tmp_path_factory.mktemp("own_net")
    spec = f"{Path(__file__).with_name('own_net.py')}:Net"
    torch.manual_seed(0)
    model = load_user_model(spec)
    xtr, ytr, xte, yte = load_digits_split()
    train(model, xtr, ytr, epochs=10, lr=1e-2, seed=0)
    model.eval()
    torch.save(model.state_dict(), d / "w.pt")
    np.save(d / "calib.npy", xtr[:128])
    np.savez(d / "test.npz", x=xte, y=yte)
    export = export_network(model, xtr[:128], model_spec=spec, weights=d / "w.pt")
    return spec, d / "w.pt", d / "calib.npy", d / "test.npz", model, export
