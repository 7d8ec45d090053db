"""Post-training quantization of one BFT block for the engine, and its emulation.

A block is ``z = act(a * (B x [+ x]) + b)``: a butterfly chain ``B`` with an optional
first-to-last residual, the following batch norm folded into ``a`` and ``b`` (per channel), and an
optional ReLU (``docs/spec.md`` §3). Given calibration inputs, :func:`quantize_block` picks

- the input scale (one LSB of the input), from the calibration range;
- per stage, integer weights with a power-of-two scale at ``weight_bits``, and the shift that
  keeps saturation rare (at most ``sat_target`` of the outputs) on the calibration data;
- the epilogue: the residual gain ``G`` that brings the input to the chain output's scale (a power
  of two, since every scale in the chain is the input scale times a power of two), the per-channel
  multiplier ``A_c`` and bias, and the output shift;

using the target engine's rounding and overflow modes throughout, and reports SQNR against float
and the saturation rate per stage. All integer arithmetic here is the golden model's
(:mod:`bfly.sim.model`); :func:`emulate` runs a weight image through it.
"""

import math
from dataclasses import dataclass

import numpy as np

from bfly.hw.config import EngineConfig
from bfly.hw.regmap import RESIDUAL_SHIFT_MAX, BIAS_BITS
from bfly.sim.model import (BlockParams, Epilogue, factor_apply, requantize, engine_forward, MAX_SHIFT)
from .image import WeightImage

__all__ = ["FloatBlock", "quantize_block", "emulate", "quantize_input", "sqnr_db", "run_float_block",
           "QuantizeError"]


class QuantizeError(ValueError):
    """A block that cannot be quantized for the requested engine."""


@dataclass
class FloatBlock:
    """A trained block in float: the chain's factors and ``(p, s)`` weights, the residual flag,
    the folded batch norm ``a``, ``b`` (``(n_out,)`` each) and the ReLU flag."""
    factors: tuple
    weights: list
    residual: bool
    scale: np.ndarray
    shift: np.ndarray
    relu: bool

    @classmethod
    def from_torch(cls, conv, bn=None, relu=False):
        """From a :class:`bfly.sw.butterfly.BFTConv2d` (or ``ButterflyTransform``), the ``BatchNorm2d``
        that follows it (optional) and whether a ReLU follows."""
        import torch
        transform = getattr(conv, "transform", conv)
        n_out = transform.n_out
        bias = getattr(conv, "bias", None)
        with torch.no_grad():
            if bn is not None:          # (affine=False: weight 1, bias 0)
                gamma = bn.weight if bn.weight is not None else torch.ones_like(bn.running_var)
                beta = bn.bias if bn.bias is not None else torch.zeros_like(bn.running_var)
                a = (gamma / torch.sqrt(bn.running_var + bn.eps)).double()
                b = (beta - bn.running_mean * a).double()
            else:
                a, b = torch.ones(n_out, dtype=torch.float64), torch.zeros(n_out, dtype=torch.float64)
            if bias is not None:
                b = b + a * bias.double()
            weights = [w.detach().double().cpu().numpy() for w in transform.weights]
        return cls(factors=transform.factors, weights=weights, residual=transform.residual,
                   scale=a.cpu().numpy(), shift=b.cpu().numpy(), relu=bool(relu))


def run_float_block(block, x):
    """Float reference: ``(N, n_in)`` -> (per-stage outputs, chain output, block output)."""
    h, stages = np.asarray(x, dtype=np.float64), []
    for f, w in zip(block.factors, block.weights):
        h = factor_apply(f, w, h)
        stages.append(h)
    y = h + x if block.residual else h
    z = block.scale * y + block.shift
    if block.relu:
        z = np.maximum(z, 0.0)
    return stages, y, z


def quantize_input(x, scale, cfg):
    """Float ``x`` -> signed ``data_bits`` integers at ``scale`` (round half even, saturate)."""
    q = np.rint(np.asarray(x, dtype=np.float64) / scale)
    return np.clip(q, cfg.data_min, cfg.data_max).astype(np.int64)


def sqnr_db(reference, approx):
    """Signal-to-quantization-noise ratio in dB (``inf`` for an exact match)."""
    reference = np.asarray(reference, dtype=np.float64)
    noise = np.sum((reference - approx) ** 2)
    signal = np.sum(reference ** 2)
    if noise == 0:
        return math.inf
    return 10 * math.log10(signal / noise) if signal > 0 else -math.inf


def _pow2_exponent(max_abs, limit):
    """Smallest ``e`` with ``max_abs / 2**e <= limit``."""
    if max_abs == 0:
        return 0
    return math.ceil(math.log2(max_abs / limit))


def _choose_shift(acc, cfg, sat_target):
    """Smallest shift whose requantized output saturates on at most ``sat_target`` of ``acc``."""
    q = np.quantile(np.abs(acc), 1.0 - sat_target) if acc.size else 0
    start = max(0, math.ceil(math.log2((q + 1) / (cfg.data_max + 1)))) - 1 if q > 0 else 0
    for shift in range(max(0, start), MAX_SHIFT + 1):
        _, sat = requantize(acc, shift, cfg.data_bits, cfg.rounding, cfg.overflow)
        if sat.mean() <= sat_target:
            return shift
    return MAX_SHIFT


def quantize_block(block, calib, data_bits=8, weight_bits=8, rounding="half_even",
                   overflow="saturate", sat_target=1e-4, name=""):
    """Quantize ``block`` (:class:`FloatBlock`) on calibration pixels ``calib`` ``(N, n_in)``.

    The input scale is searched over powers of two around the calibration maximum (a finer scale
    clips rare large inputs, a coarser one leaves the residual room); for each candidate the
    weights, shifts and epilogue follow, and the candidate with the best final SQNR on the
    calibration data wins. In ``wrap`` mode, where an overflow is a large error, the saturation
    target is a hundred times stricter.

    Returns a :class:`bfly.sw.image.WeightImage` for an engine with an epilogue; its ``report`` holds
    per-stage and final SQNR (dB) and saturation rates on the calibration data.
    """
    cfg = EngineConfig(factors=tuple(block.factors), data_bits=data_bits, weight_bits=weight_bits,
                       rounding=rounding, overflow=overflow, epilogue=True, name=name)
    x = np.asarray(calib, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != cfg.n_in or len(x) == 0:
        raise QuantizeError(f"calibration pixels must be shaped (N, {cfg.n_in}), not {x.shape}")
    if not block.residual:
        # Without a residual the batch-norm scale folds exactly into the rows of the last factor
        # (row o feeds output o), where it is quantized with that stage's weights, instead of
        # into A_c, whose weight_bits would then have to span the ratio of the largest to the
        # smallest channel scale.
        weights = list(block.weights[:-1]) + [block.weights[-1] * block.scale[:, None]]
        block = FloatBlock(block.factors, weights, False, np.ones_like(block.scale), block.shift,
                           block.relu)
    if overflow == "wrap":
        sat_target /= 100
    reference = run_float_block(block, x)
    base = float(np.abs(x).max()) / cfg.data_max or 1.0
    best, errors = None, []
    for j in (-2, -1, 0, 1, 2):
        try:
            image = _quantize(block, x, cfg, base * 2.0 ** j, sat_target, reference)
        except QuantizeError as e:
            errors.append(str(e))
            continue
        if best is None or image.report["final_sqnr_db"] > best.report["final_sqnr_db"]:
            best = image
    if best is None:
        raise QuantizeError(errors[0])
    return best


def _quantize(block, x, cfg, s_in, sat_target, reference):
    float_stages, _, z_float = reference
    x_int = quantize_input(x, s_in, cfg)

    # --- chain: power-of-two weight scales, shifts chosen on the calibration data
    weights, shifts, exps = [], [], []
    v = x_int
    for f, w in zip(cfg.factors, block.weights):
        e = _pow2_exponent(float(np.abs(w).max()), cfg.weight_max)
        w_int = np.clip(np.rint(w / 2.0 ** e), cfg.weight_min, cfg.weight_max).astype(np.int64)
        acc = factor_apply(f, w_int, v)
        shift = _choose_shift(acc, cfg, sat_target)
        v, _ = requantize(acc, shift, cfg.data_bits, cfg.rounding, cfg.overflow)
        weights.append(w_int)
        shifts.append(shift)
        exps.append(e)

    # --- residual: G = s_in / S_y must be a power of two >= 1 (S_y = s_in * 2**(sum e + sum shift))
    log2_sy = sum(exps) + sum(shifts)               # S_y / s_in = 2**log2_sy
    gain = 0
    if block.residual:
        if log2_sy > 0:                              # y coarser than x: refine the last stage
            if shifts[-1] < log2_sy:
                raise QuantizeError("the residual cannot be aligned: the chain's output scale is "
                                    f"2**{log2_sy} times the input's and the last shift is {shifts[-1]}")
            shifts[-1] -= log2_sy
            log2_sy = 0
        if -log2_sy > RESIDUAL_SHIFT_MAX:          # y much finer than x: coarsen the last stage
            shifts[-1] += -log2_sy - RESIDUAL_SHIFT_MAX
            log2_sy = -RESIDUAL_SHIFT_MAX
        gain = 1 << -log2_sy
    s_y = s_in * 2.0 ** log2_sy

    # --- epilogue: A_c / 2**out_shift = a_c S_y / S_z, Bias_c = b_c 2**out_shift / S_z
    s_z = float(np.abs(z_float).max()) / cfg.data_max or 1.0
    m = block.scale * s_y / s_z
    out_shift = MAX_SHIFT
    if np.abs(m).max() > 0:
        out_shift = min(MAX_SHIFT, max(0, -_pow2_exponent(float(np.abs(m).max()), cfg.weight_max)))
    bias_limit = (1 << (BIAS_BITS - 1)) - 1
    while out_shift > 0 and np.abs(np.rint(block.shift * 2.0 ** out_shift / s_z)).max() > bias_limit:
        out_shift -= 1
    mult = np.clip(np.rint(m * 2.0 ** out_shift), cfg.weight_min, cfg.weight_max).astype(np.int64)
    bias = np.clip(np.rint(block.shift * 2.0 ** out_shift / s_z), -bias_limit - 1, bias_limit).astype(np.int64)
    epi = Epilogue(mult=mult, bias=bias, gain=gain, out_shift=out_shift, relu=block.relu)

    image = WeightImage(config=cfg, params=BlockParams(weights, shifts, epi), input_scale=s_in,
                        output_scale=s_z)
    image.report = _report(image, x_int, float_stages, z_float, exps)
    return image


def _report(image, x_int, float_stages, z_float, exps):
    cfg, p = image.config, image.params
    res = engine_forward(cfg, p, x_int)
    scale = image.input_scale
    stages = []
    for l, (f, out, ref) in enumerate(zip(cfg.factors, res.stages, float_stages)):
        scale *= 2.0 ** (exps[l] + p.shifts[l])
        stages.append({"stage": l, "factor": f.as_row(), "shift": p.shifts[l],
                       "weight_exponent": exps[l],
                       "sqnr_db": _finite(sqnr_db(ref, out * scale)),
                       "saturation_rate": res.sat_counts[l] / out.size})
    z = res.y * image.output_scale
    return {
        "calibration_pixels": int(len(x_int)),
        "stages": stages,
        "epilogue": {"gain": p.epilogue.gain, "out_shift": p.epilogue.out_shift,
                     "relu": p.epilogue.relu,
                     "saturation_rate": res.sat_counts[-1] / res.y.size},
        "final_sqnr_db": _finite(sqnr_db(z_float, z)),
    }


def _finite(v):
    return v if math.isfinite(v) else (999.0 if v > 0 else -999.0)


def emulate(image, x_int):
    """Run integer pixels ``(N, n_in)`` through a weight image with the golden model;
    returns the ``(N, n_out)`` integer outputs."""
    return engine_forward(image.config, image.params, x_int).y
