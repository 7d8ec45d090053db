"""A real network end to end: the digits CNN with BFT pointwise blocks, trained, quantized to
8 bits, run through the golden model, and one block run on the Verilated engine."""

import dataclasses

from bfly.sim.api import SimRequest, simulate
from bfly.examples.digits import build_and_train, evaluate, pointwise_macs, quantized_accuracy, block_inputs
from bfly.sw.quantize import quantize_input


def test_accuracy_macs_and_8bit_within_one_point(trained):
    bft, dense, images, (xte, yte) = trained
    acc_bft, acc_dense = evaluate(bft, xte, yte), evaluate(dense, xte, yte)
    assert acc_bft >= 0.94 and acc_dense >= 0.94, (acc_bft, acc_dense)
    assert pointwise_macs(bft) * 4 <= pointwise_macs(dense), (pointwise_macs(bft), pointwise_macs(dense))
    acc_q = quantized_accuracy(bft, images)
    assert abs(acc_q - acc_bft) <= 0.01, (acc_q, acc_bft)
    assert set(images) == {"block1", "block2", "block3"}


def test_training_is_deterministic(trained):
    bft = trained[0]
    again = build_and_train("bft", epochs=2, seed=0)
    once = build_and_train("bft", epochs=2, seed=0)
    for a, b in zip(again.parameters(), once.parameters()):
        assert (a == b).all()
    assert bft.arch["pointwise"] == "bft"


def test_quantized_block_on_the_verilated_engine(trained, tmp_path):
    """Feature maps of 24 test images through the trained, quantized block1 (BFT(16,4) with
    residual, batch norm and ReLU in the epilogue) on the generated engine: bit-exact."""
    bft, _, images, (xte, _) = trained
    image = images["block1"]
    pixels = block_inputs(bft, xte[:24])["block1"]
    x_int = quantize_input(pixels, image.input_scale, image.config)
    assert len(x_int) == 24 * 8 * 8
    cfg = dataclasses.replace(image.config, name="")         # the default name: a shared build
    request = SimRequest(cfg, tests=("test_image",), inputs=x_int, params=image.params,
                         frames=4, idle_prob=0.1, stall_prob=0.2)
    res = simulate(request, run_dir=tmp_path, log=tmp_path / "sim.log")
    assert (res.tests, res.failures) == (1, 0), f"see {res.log}"
    r = res.summaries["test_image"]
    assert r["pixels"] == 24 * 64 and r["mismatch"] is None
    assert r["outputs_nonzero"] > 0
