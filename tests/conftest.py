"""Shared fixtures: the trained and quantized digits network (trained once per session)."""

import pytest

from bfly.examples.digits import build_and_train, load_digits_split, quantize_model


@pytest.fixture(scope="session")
def trained():
    xtr, ytr, xte, yte = load_digits_split()
    bft = build_and_train("bft", epochs=40, seed=0)
    dense = build_and_train("dense", epochs=40, seed=0)
    images = quantize_model(bft, xtr[:256])
    return bft, dense, images, (xte, yte)
