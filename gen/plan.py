"""``bfly plan``: the folding (lanes) of every engine of an exported network, chosen so that all
engines fit one device together and the network's throughput (model inputs per second, set by the
engine whose share of the pixels takes longest) is as high as possible, or just meets a target.

The search needs no synthesis: each candidate engine is estimated from its configuration
(:func:`estimate`). DSPs are counted as synthesis maps them; LUTs, flip-flops and Fmax come
from a coarse model of the blocks, not fitted to measurements (``docs/network.md`` gives how far
it is from yosys and nextpnr where that was measured). ``bfly build --plan`` places and routes
the planned board and prints the real figures.
"""

import itertools
from dataclasses import replace

from bfly.hw.config import ConfigError
from bfly.hw.regmap import BIAS_BITS, RESIDUAL_SHIFT_MAX

__all__ = ["DEVICES", "PlanError", "lanes_options", "estimate", "plan_network", "BOARD_RESERVE"]

#: what the planner may use of each target device
DEVICES = {
    "ecp5-85k": {"dsps": 156, "luts": 83640, "ffs": 83640, "brams": 208, "dsp_width": 18},
}
#: LUTs and flip-flops of the bridge, the UART and the AXI decoder (a board design without its
#: engines), kept free
BOARD_RESERVE = {"luts": 3000, "ffs": 2500}
#: the planner fills at most this fraction of the LUTs and flip-flops (routing needs room)
FILL = 0.8
#: options tried per engine at most (the widest folds first)
MAX_OPTIONS = 8


class PlanError(ValueError):
    """No plan fits, or the request cannot be planned; the message says why."""


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def lanes_options(cfg):
    """The foldings of ``cfg`` that exist: ``[EngineConfig]``, fully parallel first, then
    fewer and fewer lanes (``simd`` as in ``cfg``)."""
    widest = max(f.p for f in cfg.factors)
    options = []
    for lanes in [0] + sorted((d for d in _divisors(widest) if d < widest), reverse=True):
        try:
            options.append(replace(cfg, lanes=lanes))
        except ConfigError:
            continue
    return options[:MAX_OPTIONS]


def estimate(cfg, target="ecp5-85k", epilogue_products="dsp"):
    """Resources and Fmax of the engine of ``cfg`` on ``target``, without synthesis:
    ``{"dsps", "luts", "ffs", "fmax_mhz", "interval", "pixels_per_s", "model"}``.

    - DSPs: every multiplier of the chain, folded or not, one ``MULT18X18D`` each up to 18-bit
      operands, and the epilogue's ``n_out`` (two each where its product is wider than 18 bits,
      as yosys maps it; none with ``epilogue_products="lut"``);
    - flip-flops: the pipeline registers of each multiplier's path (input copy, operands,
      product, adder tree, requantization) and, fully parallel, two registers per weight (shadow
      and active); folded, the weights sit in LUT RAM and cost LUTs instead;
    - LUTs: the adder trees and requantizers, per output bit, plus the weight storage of a
      folded engine and its operand multiplexers;
    - Fmax: the bench's figures by shape (fully parallel about 195 MHz; folded 150 MHz).
    """
    dev = DEVICES[target]
    d, w = cfg.data_bits, cfg.weight_bits
    if max(d, w) > dev["dsp_width"]:
        raise PlanError(f"{cfg.id}: {max(d, w)}-bit operands do not fit a {dev['dsp_width']}-bit DSP")
    mults = cfg.multipliers
    lut_epilogue = cfg.epilogue and epilogue_products == "lut"
    chain_dsps = mults - (cfg.n_out if cfg.epilogue else 0)
    # yosys maps an epilogue product wider than a DSP's 18 bits (a residual engine's y + Gx has
    # data_bits + RESIDUAL_SHIFT_MAX + 2 bits) to two MULT18X18D
    epi_bits = d + RESIDUAL_SHIFT_MAX + 2 if cfg.has_residual else d
    epi_dsps = 0 if not cfg.epilogue or lut_epilogue else cfg.n_out * (1 if epi_bits + w <= dev["dsp_width"] else 2)
    dsps = chain_dsps + epi_dsps
    lanes_frac = 1 / cfg.interval
    acc = sum(cfg.acc_bits(l) for l in range(cfg.n_stages)) / cfg.n_stages
    outputs = sum(f.p for f in cfg.factors) * lanes_frac + (cfg.n_out if cfg.epilogue else 0)
    # per multiplier: input copy, two operand registers, the product, its fabric copy
    path_ffs = mults * (d + w + 2 * (d + w) + d)
    # per output: the adder tree's levels and the requantizer's six steps
    out_ffs = outputs * acc * 6
    weight_ffs = 2 * cfg.n_weights * w if cfg.interval == 1 else 0
    epi_ffs = cfg.n_out * (w + BIAS_BITS) * 2 if cfg.epilogue else 0
    ffs = path_ffs + out_ffs + weight_ffs + epi_ffs
    luts = outputs * acc * 3 + mults * (d + w)
    if lut_epilogue:        # a shift-and-add product per output channel: w rows of e_bits
        luts += cfg.n_out * w * (d + 8)
    if cfg.interval > 1:
        luts += cfg.n_weights * w // 4 + mults * d * 2     # LUT RAM weights, operand choice
    return {
        "dsps": dsps,
        "epilogue_products": epilogue_products if cfg.epilogue else None,
        "luts": int(luts),
        "ffs": int(ffs),
        "fmax_mhz": 195.0 if cfg.interval == 1 else 150.0,
        "interval": cfg.interval,
        "pixels_per_s": (195.0 if cfg.interval == 1 else 150.0) * 1e6 / cfg.interval,
        "model": "estimate (no synthesis)",
    }


def plan_network(engines, loads, target="ecp5-85k", target_inputs_per_s=None):
    """Choose a folding per engine. ``engines``: the configurations (``network.json``'s);
    ``loads[e]``: pixels engine ``e`` computes per model input (its layers'
    ``pixels_per_input``). Returns the plan dict: per engine its configuration, lanes,
    estimates and inputs/s; the network's inputs/s and the engine that bounds it."""
    if target not in DEVICES:
        raise PlanError(f"no resource model for {target!r} yet; plan for {', '.join(DEVICES)}")
    if len(engines) != len(loads) or not engines:
        raise PlanError("one pixel load per engine")
    dev = DEVICES[target]
    budget = {"dsps": dev["dsps"], "luts": dev["luts"] * FILL - BOARD_RESERVE["luts"],
              "ffs": dev["ffs"] * FILL - BOARD_RESERVE["ffs"]}
    options = [[(c, estimate(c, target, products)) for c in lanes_options(cfg)
                for products in (("dsp", "lut") if cfg.epilogue else ("dsp",))] for cfg in engines]
    best = None
    for combo in itertools.product(*options):
        used = {k: sum(e[k] for _, e in combo) for k in budget}
        if any(used[k] > budget[k] for k in budget):
            continue
        rates = [e["pixels_per_s"] / load for (_, e), load in zip(combo, loads)]
        rate = min(rates)
        if target_inputs_per_s is not None:
            met = rate >= target_inputs_per_s
            key = (met, -used["dsps"] if met else rate, -used["luts"])
        else:
            key = (True, rate, -used["dsps"], -used["luts"])
        if best is None or key > best[0]:
            best = (key, combo, rates, used)
    if best is None:
        smallest = sum(min(e["dsps"] for _, e in opts) for opts in options)
        raise PlanError(f"the {len(engines)} engines do not fit the {target} together even folded "
                        f"as far as they go ({smallest} DSPs at the least, {dev['dsps']} there)")
    _, combo, rates, used = best
    bound = min(range(len(rates)), key=rates.__getitem__)
    plan = {
        "target": target,
        "available": {k: dev[k] for k in ("dsps", "luts", "ffs")},
        "budget": budget,
        "engines": [{"engine": i, "config": c.to_dict(), "lanes": c.lanes, "interval": c.interval,
                     "implementation": {"epilogue_products": e["epilogue_products"] or "dsp"},
                     "pixels_per_input": load, "estimate": e, "inputs_per_s": r}
                    for i, ((c, e), load, r) in enumerate(zip(combo, loads, rates))],
        "used": used,
        "inputs_per_s": rates[bound],
        "bound_by": bound,
        "target_inputs_per_s": target_inputs_per_s,
        "meets_target": target_inputs_per_s is None or rates[bound] >= target_inputs_per_s,
    }
    return plan
