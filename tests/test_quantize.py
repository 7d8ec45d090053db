"""Post-training quantization of BFT blocks, checked against float through the golden model."""

import numpy as np
import pytest
import torch

from bfly.sw.butterfly import BFTConv2d
from bfly.sw.quantize import FloatBlock, quantize_block, emulate, quantize_input, run_float_block, sqnr_db


def _block(c_in, c_out, residual, seed=0):
    torch.manual_seed(seed)
    conv = BFTConv2d(c_in, c_out, k=4, residual=residual)
    bn = torch.nn.BatchNorm2d(c_out).eval()
    with torch.no_grad():
        bn.running_mean.normal_(0, 0.3)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.2, 2.0)          # a 10x spread of channel scales
        bn.bias.normal_(0, 0.2)
    return FloatBlock.from_torch(conv, bn, relu=True)


@pytest.mark.parametrize("c_in,c_out,residual", [(64, 64, True), (64, 64, False), (16, 64, False),
                                                 (48, 48, True)])
def test_quantized_block_tracks_float(c_in, c_out, residual):
    block = _block(c_in, c_out, residual)
    rng = np.random.default_rng(1)
    calib = rng.standard_normal((3000, c_in))
    image = quantize_block(block, calib)
    r = image.report
    assert r["final_sqnr_db"] > 22, r
    assert all(s["sqnr_db"] > 22 for s in r["stages"]), r
    assert max(s["saturation_rate"] for s in r["stages"][:-1]) <= 1e-4
    assert (image.params.epilogue.gain != 0) == residual
    # held-out data: dequantized engine output stays close to the float block
    x = rng.standard_normal((2000, c_in))
    _, _, z = run_float_block(block, x)
    got = emulate(image, quantize_input(x, image.input_scale, image.config)) * image.output_scale
    assert sqnr_db(z, got) > 20


@pytest.mark.parametrize("rounding,overflow", [("floor", "wrap"), ("half_up", "saturate")])
def test_uses_the_engine_modes(rounding, overflow):
    block = _block(16, 16, True)
    calib = np.random.default_rng(2).standard_normal((2000, 16))
    image = quantize_block(block, calib, rounding=rounding, overflow=overflow, data_bits=6, weight_bits=7)
    cfg = image.config
    assert (cfg.rounding, cfg.overflow, cfg.data_bits, cfg.weight_bits) == (rounding, overflow, 6, 7)
    assert all(np.abs(w).max() <= 63 for w in image.params.weights)
    assert image.report["final_sqnr_db"] > 12


def test_rejects_wrong_calibration_shape():
    with pytest.raises(ValueError, match=r"shaped \(N, 16\)"):
        quantize_block(_block(16, 16, False), np.zeros((10, 8)))
