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
