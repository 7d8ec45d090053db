"""``bfly plan``: the folding (lanes) of every engine of an exported network, chosen so that all
engines fit one device together and the network's throughput (model inputs per second, set by the
engine whose share of the pixels takes longest) is as high as possible, or just meets a target.

Nothing here needs synthesis. The search ranks candidates by DSPs, counted from the
configuration as synthesis maps them (:func:`estimate`); the candidate it settles on is checked by :func:`netlist_estimate`, which
counts the elaborated netlist (``docs/network.md`` gives its error against yosys and nextpnr).
``bfly build --plan`` places and routes the planned board and reports what it used.
"""

import functools
from dataclasses import replace

from bfly.hw.config import ConfigError
from bfly.hw.epilogue import epilogue_input_bits
from bfly.hw.hostlink import MAX_ENGINES
from bfly.hw.mult import ECP5_DSP_WIDTH

__all__ = ["DEVICES", "PlanError", "lanes_options", "estimate", "netlist_estimate", "netlist_counts",
           "plan_network", "plan_implementation", "BOARD_RESERVE", "LUT_MODEL", "FMAX_MHZ"]

#: what the planner may use of each target device
DEVICES = {
    "ecp5-85k": {"dsps": 156, "luts": 83640, "ffs": 83640, "brams": 208, "dsp_width": ECP5_DSP_WIDTH,
                 "hardware": "ecp5-85k"},
}
#: LUTs and flip-flops of the bridge, the UART and the AXI decoder (a board design without its
#: engines), kept free
BOARD_RESERVE = {"luts": 3000, "ffs": 2500}
#: the planner fills at most this fraction of the LUTs and flip-flops (routing needs room)
FILL = 0.8
#: options tried per engine at most (the widest folds first)
MAX_OPTIONS = 8


#: LUTs per bit of the netlist's logic (multiplexers, bitwise and reduction operators, compares,
#: and shifters counted as output bits times shift bits) and per bit written to a memory (LUT RAM
#: and its write logic): least squares over four engines placed and routed on the ECP5-85F
#: (docs/network.md gives the engines and the errors)
LUT_MODEL = {"logic": 0.74, "memory": 4.63}


#: Fmax by the engine's shape, from the measurements in docs/bench.md and docs/network.md: a
#: fully parallel chain, a folded one, and any engine with the epilogue (whose product is its
#: critical path)
FMAX_MHZ = {"parallel": 195.0, "folded": 150.0, "epilogue": 84.0}


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
    """What the search ranks the engine of ``cfg`` on ``target`` by, from its configuration
    alone: ``{"dsps", "epilogue_products", "fmax_mhz", "interval", "pixels_per_s", "model"}``
    (:func:`netlist_estimate` adds LUTs, flip-flops and block RAMs).

    - DSPs: every multiplier of the chain, folded or not, one ``MULT18X18D`` each up to 18-bit
      operands, and the epilogue's ``n_out`` (two each where its product is wider than 18 bits,
      as yosys maps it; none with ``epilogue_products="lut"``);
    - Fmax: :data:`FMAX_MHZ`, measured figures by shape.
    """
    dev = DEVICES[target]
    d, w = cfg.data_bits, cfg.weight_bits
    if max(d, w) > dev["dsp_width"]:
        raise PlanError(f"{cfg.id}: {max(d, w)}-bit operands do not fit a {dev['dsp_width']}-bit DSP")
    lut_epilogue = cfg.epilogue and epilogue_products == "lut"
    chain_dsps = cfg.multipliers - (cfg.n_out if cfg.epilogue else 0)
    # yosys maps an epilogue product wider than a DSP's 18 bits (a residual engine's y + Gx has
    # data_bits + RESIDUAL_SHIFT_MAX + 2 bits) to two MULT18X18D
    epi_bits = epilogue_input_bits(cfg)
    epi_dsps = 0 if not cfg.epilogue or lut_epilogue else cfg.n_out * (1 if epi_bits + w <= dev["dsp_width"] else 2)
    fmax = FMAX_MHZ["epilogue" if cfg.epilogue else "parallel" if cfg.interval == 1 else "folded"]
    return {
        "dsps": chain_dsps + epi_dsps,
        "epilogue_products": epilogue_products if cfg.epilogue else None,
        "fmax_mhz": fmax,
        "interval": cfg.interval,
        "pixels_per_s": fmax * 1e6 / cfg.interval,
        "model": "configuration (no synthesis)",
    }


def plan_network(engines, loads, target="ecp5-85k", target_inputs_per_s=None, progress=None):
    """Choose a folding per engine. ``engines``: the configurations (``network.json``'s);
    ``loads[e]``: pixels engine ``e`` computes per model input (its layers'
    ``pixels_per_input``). Returns the plan dict: per engine its configuration, lanes,
    implementation, estimates and inputs/s; the network's inputs/s and the engine that bounds it.

    For each candidate rate (from the highest an engine can reach down), every engine takes its
    fewest lanes that reach it, with its epilogue in DSPs; while the DSPs do not fit, the
    epilogue that frees most DSPs moves to LUTs. The first candidate whose netlist estimates
    (:func:`netlist_estimate`) fit is the plan; with ``target_inputs_per_s``, the lowest rate
    at or above the target that fits. ``progress(text)`` is told of each elaboration."""
    if target not in DEVICES:
        raise PlanError(f"no resource model for {target!r} yet; plan for {', '.join(DEVICES)}")
    if len(engines) != len(loads) or not engines:
        raise PlanError("one pixel load per engine")
    if len(engines) > MAX_ENGINES:
        raise PlanError(f"{len(engines)} engine configurations; a board holds at most {MAX_ENGINES}")
    dev = DEVICES[target]
    budget = {"dsps": dev["dsps"], "luts": dev["luts"] * FILL - BOARD_RESERVE["luts"],
              "ffs": dev["ffs"] * FILL - BOARD_RESERVE["ffs"], "brams": dev["brams"]}
    options = [lanes_options(cfg) for cfg in engines]
    rate = {c: estimate(c, target)["pixels_per_s"] / load
            for opts, load in zip(options, loads) for c in opts}
    rates = sorted({rate[c] for opts in options for c in opts}, reverse=True)
    if target_inputs_per_s is not None:
        rates = sorted((r for r in rates if r >= target_inputs_per_s)) + \
            [r for r in rates if r < target_inputs_per_s]
    cache = {}

    def refined(c, products):
        if (c, products) not in cache:
            if progress:
                progress(f"elaborating {c.id}" + (" (epilogue in LUTs)" if products == "lut" else ""))
            cache[c, products] = netlist_estimate(c, target, products)
        return cache[c, products]

    smallest = sum(min(estimate(c, target, "lut")["dsps"] for c in opts) for opts in options)
    for want in rates:
        chosen = []
        for opts in options:
            reach = [c for c in opts if rate[c] >= want]
            if not reach:
                break
            chosen.append(min(reach, key=lambda c: (estimate(c, target)["dsps"], c.interval)))
        if len(chosen) < len(engines):
            continue
        products = ["dsp"] * len(chosen)

        def dsps():
            return sum(estimate(c, target, p)["dsps"] for c, p in zip(chosen, products))
        while dsps() > budget["dsps"]:
            saving = [(estimate(c, target, "dsp")["dsps"] - estimate(c, target, "lut")["dsps"], i)
                      for i, (c, p) in enumerate(zip(chosen, products)) if p == "dsp" and c.epilogue]
            if not saving:
                break
            products[max(saving)[1]] = "lut"
        if dsps() > budget["dsps"]:
            continue
        ests = [refined(c, p) for c, p in zip(chosen, products)]
        used = {k: sum(e[k] for e in ests) for k in budget}
        if any(used[k] > budget[k] for k in budget):
            continue
        engine_rates = [rate[c] for c in chosen]
        bound = min(range(len(chosen)), key=engine_rates.__getitem__)
        return {
            "target": target,
            "available": {k: dev[k] for k in ("dsps", "luts", "ffs", "brams")},
            "budget": budget,
            "engines": [{"engine": i, "config": c.to_dict(), "lanes": c.lanes, "interval": c.interval,
                         "implementation": {"family": plan_implementation(target, p).family,
                                            "epilogue_products": p},
                         "pixels_per_input": load, "estimate": e, "inputs_per_s": r}
                        for i, (c, p, e, load, r) in enumerate(zip(chosen, products, ests, loads,
                                                                   engine_rates))],
            "used": used,
            "inputs_per_s": engine_rates[bound],
            "bound_by": bound,
            "target_inputs_per_s": target_inputs_per_s,
            "meets_target": target_inputs_per_s is None or engine_rates[bound] >= target_inputs_per_s,
        }
    raise PlanError(f"the {len(engines)} engines do not fit the {target} together even folded as "
                    f"far as they go ({smallest} DSPs at the least, {dev['dsps']} there; or the "
                    f"LUTs or flip-flops run out)")


#: the block RAM's shapes (depth, width), shallowest first (ECP5 DP16KD); a memory at least
#: BRAM_MIN_DEPTH deep goes to block RAM (a copy per read port), a shallower one to LUT RAM
BRAM_SHAPES = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))
BRAM_MIN_DEPTH = 64

_LOGIC = {"$mux": "WIDTH", "$and": "Y_WIDTH", "$or": "Y_WIDTH", "$xor": "Y_WIDTH", "$xnor": "Y_WIDTH",
          "$not": "Y_WIDTH"}
_REDUCE = ("$reduce_or", "$reduce_and", "$reduce_xor", "$reduce_bool", "$eq", "$ne", "$logic_not",
           "$lt", "$le", "$gt", "$ge")
_SHIFT = ("$shl", "$shr", "$sshr", "$sshl", "$shift", "$shiftx")
_FFS = ("$dff", "$adff", "$sdff", "$dffe", "$sdffe", "$adffe")


def netlist_counts(text, dsp_width=ECP5_DSP_WIDTH):
    """What the RTLIL ``text`` of an engine holds: ``{"ffs", "logic", "memory", "dsps",
    "brams"}`` (flip-flop bits, logic bits as :data:`LUT_MODEL` counts them (adders are left
    out: the fit gave them no weight), memory bits written, DSPs: instances and inferred
    products, two for one wider than ``dsp_width``, and block RAMs)."""
    out = {"ffs": 0, "logic": 0, "memory": 0, "dsps": 0, "brams": 0}
    cell, params = None, {}
    memories, reads = {}, {}        # by (module, memory name): each module is one instance
    module = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("module "):
            module = line.split()[1]
        elif line.startswith("memory "):
            parts = line.split()
            memories[module, parts[-1]] = (int(parts[parts.index("width") + 1]),
                                           int(parts[parts.index("size") + 1]))
        elif line.startswith("cell "):
            cell, params = line.split()[1], {}
        elif cell and line.startswith("parameter "):
            _, name, value = line.split(None, 2)
            if name == "\\MEMID":
                params["MEMID"] = value.strip('"').replace("\\\\", "\\")
            else:
                params[name[1:]] = int(value) if value.lstrip("-").isdigit() else 0
        elif cell and line == "end":
            p = params.get
            if cell in _FFS:
                out["ffs"] += p("WIDTH", 0)
            elif cell == "\\TRELLIS_FF":
                out["ffs"] += 1
            elif cell == "\\MULT18X18D":
                out["dsps"] += 1
            elif cell == "$mul":
                out["dsps"] += 1 if max(p("A_WIDTH", 0), p("B_WIDTH", 0)) <= dsp_width else 2
            elif cell in _LOGIC:
                out["logic"] += p(_LOGIC[cell], 0)
            elif cell in _REDUCE:
                out["logic"] += max(p("A_WIDTH", 0), p("B_WIDTH", 0))
            elif cell in _SHIFT:
                out["logic"] += p("Y_WIDTH", 0) * max(1, p("B_WIDTH", 0))
            elif cell == "$memwr_v2":
                out["memory"] += p("WIDTH", 0)
            elif cell == "$memrd_v2":
                reads[module, p("MEMID")] = reads.get((module, p("MEMID")), 0) + 1
            cell = None
    for name, (width, depth) in memories.items():
        if depth >= BRAM_MIN_DEPTH:        # (shallower ones become LUT RAM)
            per_width = next((w for d, w in BRAM_SHAPES if d >= depth), 1)
            rows = -(-depth // BRAM_SHAPES[-1][0])
            out["brams"] += max(1, reads.get(name, 0)) * -(-width // per_width) * rows
    return out


def plan_implementation(target, epilogue_products="dsp"):
    """The :class:`bfly.hw.impl.Implementation` a planned engine is estimated and built with: the
    target's primitives (on an ECP5, ``MULT18X18D`` instances and kept flip-flop copies), no DSP
    sites (a board's engines would all claim the first ones), the epilogue's products as
    planned."""
    from bfly.hw.targets import HARDWARE_TARGETS
    return replace(HARDWARE_TARGETS[DEVICES[target]["hardware"]].implementation(), dsp_sites=(),
                   epilogue_products=epilogue_products)


@functools.lru_cache(maxsize=64)
def netlist_estimate(cfg, target="ecp5-85k", epilogue_products="dsp"):
    """:func:`estimate` with DSPs, flip-flops and LUTs counted on the engine's netlist (the
    Verilog top elaborated for ``target`` as synthesis gets it, read as RTLIL): flip-flops as
    counted, LUTs by :data:`LUT_MODEL` (docs/network.md compares both with nextpnr). Takes an
    elaboration."""
    from amaranth.back import rtlil
    from bfly.hw.top import BflyTop
    impl = plan_implementation(target, epilogue_products)
    counts = netlist_counts(rtlil.convert(BflyTop(cfg, impl), name="top"), DEVICES[target]["dsp_width"])
    est = dict(estimate(cfg, target, epilogue_products))
    est.update(dsps=counts["dsps"], ffs=counts["ffs"], brams=counts["brams"],
               luts=int(LUT_MODEL["logic"] * counts["logic"] + LUT_MODEL["memory"] * counts["memory"]),
               model="netlist (elaborated, no synthesis)")
    return est
