"""The AXI4-Lite register map, declared once: every register with its fields (``hw/csr.py``).
The hardware's decoder, ``regmap.json``, the C header, the README's table, the host driver and the
testbench all derive from it, and so do the configuration's limits (``hw/config.py``).

All registers are 32 bits wide at byte offsets; arrays (``FACTOR[l]``, ``WEIGHTS[i]``...) are
consecutive words.
"""

from enum import IntEnum

from .csr import Field, Register

__all__ = ["Field", "Register", "Rounding", "Overflow", "register_map", "REGMAP_VERSION", "BFLY_ID",
           "ROUNDING_CODES", "OVERFLOW_CODES", "SHIFT_BITS", "MAX_SHIFT", "RESIDUAL_SHIFT_MAX",
           "BIAS_BITS", "MAX_STAGES", "MAX_CHANNELS", "MAX_RADIX", "epi_ctrl_word", "epi_ctrl_fields",
           "config_words", "constant_words", "config_from_words", "address_bits", "param_window", "DECLARED",
           "ID", "CONFIG0", "CONFIG1", "CONFIG2", "CONFIG3", "CTRL", "STATUS", "EPI_CTRL", "OUT_SHIFT",
           "FACTOR", "SHIFT", "SAT_COUNT", "WEIGHTS", "EPI_MULT", "EPI_BIAS"]


class Rounding(IntEnum):
    """CONFIG0.rounding: how a requantization shift rounds (docs/spec.md §2)."""
    floor = 0
    half_up = 1
    half_even = 2


class Overflow(IntEnum):
    """CONFIG0.overflow: what a result outside the data range becomes."""
    saturate = 0
    wrap = 1


ROUNDING_CODES = {m.name: int(m) for m in Rounding}
OVERFLOW_CODES = {m.name: int(m) for m in Overflow}

REGMAP_VERSION = 2
BFLY_MAGIC = 0xBF10                      # "BF1": ID's high half
SHIFT_BITS = 6                           # a requantization shift: SHIFT[l], OUT_SHIFT
BIAS_BITS = 32                           # EPI_BIAS[c]: one signed word
WEIGHTS_BASE = 0x1000


def _shift(doc):
    return Field("shift", SHIFT_BITS, 0, doc=doc)


ID = Register("ID", 0x000, "ro", fields=(
    Field("version", 16, 0, doc="of the register map"),
    Field("magic", 16, 16, doc=f"0x{BFLY_MAGIC:04X}, a bfly engine")),
    doc="identifies a bfly engine and its register map version")
CONFIG0 = Register("CONFIG0", 0x004, "ro", fields=(
    Field("data_bits", 8, 0), Field("weight_bits", 8, 8),
    Field("rounding", 2, 16, enum=Rounding), Field("overflow", 1, 18, enum=Overflow),
    Field("epilogue", 1, 19, doc="the engine has the epilogue"),
    Field("residual", 1, 20, doc="the epilogue has the residual path")),
    doc="widths and modes")
CONFIG1 = Register("CONFIG1", 0x008, "ro", fields=(
    Field("n_in", 16, 0, doc="input channels"), Field("n_stages", 8, 16, doc="number of stages")),
    doc="the chain's input side")
CONFIG2 = Register("CONFIG2", 0x00C, "ro", fields=(
    Field("n_out", 16, 0, doc="output channels"),
    Field("latency", 16, 16, doc="in clocks, saturating")),
    doc="the chain's output side and the latency")
CTRL = Register("CTRL", 0x010, "wo", fields=(
    Field("commit", 1, 0, doc="make the shadow bank active for every pixel accepted after this "
          "write"),),
    doc="control strobes")
STATUS = Register("STATUS", 0x014, "ro", fields=(
    Field("commit_busy", 1, 0, doc="a commit is propagating, register writes and reads wait "
          "until it is done"),
    Field("stream_busy", 1, 1, doc="pixels in flight")),
    doc="what the engine is doing")
EPI_CTRL = Register("EPI_CTRL", 0x018, "rw", fields=(
    Field("relu", 1, 0, doc="ReLU after the requantization"),
    Field("residual", 1, 1, doc="residual enable"),
    Field("negative", 1, 2, doc="residual negative, G = -2**g"),
    Field("g", 4, 8, doc="residual gain G = +-2**g, a shift")),
    doc="with an epilogue: its control word (shadow bank)")
OUT_SHIFT = Register("OUT_SHIFT", 0x01C, "rw", fields=(_shift("epilogue output shift"),),
                     doc="with an epilogue: its output shift (shadow bank)")
CONFIG3 = Register("CONFIG3", 0x020, "ro", fields=(
    Field("lanes", 16, 0, doc="output nodes per clock in the widest stage, 0 for all"),
    Field("simd", 16, 16, doc="inputs per node per clock, 0 for all")),
    doc="the folding")
FACTOR = Register("FACTOR", 0x040, "ro", array=True, fields=(
    Field("r_minus_1", 8, 0, doc="r - 1, so that r = 256 fits"), Field("s_minus_1", 8, 8, doc="s - 1"),
    Field("t", 16, 16)),
    doc="per stage: the factor (r, s, t); b follows from the stage's input count q = b*s*t")
SHIFT = Register("SHIFT", 0x100, "rw", array=True, fields=(_shift("requantization shift"),),
                 doc="per stage: the requantization shift (shadow bank)")
SAT_COUNT = Register("SAT_COUNT", 0x200, "rw_clear", array=True, fields=(
    Field("count", 32, 0, doc="saturating at 2**32-1"),),
    doc="per stage: outputs that saturated (or wrapped) since the last clear; any write clears")
WEIGHTS = Register("WEIGHTS", WEIGHTS_BASE, "rw", array=True, window=True, fields=(
    Field("weight", 32, 0, signed=True, doc="sign-extended"),),
    doc="one weight per word in the order stage, output node o, j (the (p, s) layout); "
        "shadow bank")
EPI_MULT = Register("EPI_MULT", None, "rw", array=True, window=True, fields=(
    Field("mult", 32, 0, signed=True, doc="sign-extended"),),
    doc="with an epilogue, right after WEIGHTS: per output channel, the multiplier A_c "
        "(shadow bank)")
EPI_BIAS = Register("EPI_BIAS", None, "rw", array=True, window=True, fields=(
    Field("bias", BIAS_BITS, 0, signed=True),),
    doc="with an epilogue, right after EPI_MULT: per output channel, the bias Bias_c "
        "(shadow bank)")

DECLARED = (ID, CONFIG0, CONFIG1, CONFIG2, CTRL, STATUS, EPI_CTRL, OUT_SHIFT, CONFIG3, FACTOR,
            SHIFT, SAT_COUNT, WEIGHTS, EPI_MULT, EPI_BIAS)

BFLY_ID = ID.pack(version=REGMAP_VERSION, magic=BFLY_MAGIC)

# the configuration's limits are the room the fields and per-stage arrays have
MAX_SHIFT = SHIFT["shift"].max
RESIDUAL_SHIFT_MAX = EPI_CTRL["g"].max
MAX_CHANNELS = CONFIG1["n_in"].max
MAX_RADIX = FACTOR["r_minus_1"].max + 1
MAX_STAGES = (SHIFT.offset - FACTOR.offset) // 4


def epi_ctrl_word(relu, gain):
    """EPI_CTRL for a residual gain of 0 or ``+-2**g``. Raises ``ValueError`` for another gain."""
    gain = int(gain)
    mag = abs(gain)
    if gain and (mag & (mag - 1) or mag.bit_length() - 1 > RESIDUAL_SHIFT_MAX):
        raise ValueError(f"residual gain must be 0 or +-2**g with g <= {RESIDUAL_SHIFT_MAX}, not {gain}")
    if not gain:
        return EPI_CTRL.pack(relu=bool(relu))
    return EPI_CTRL.pack(relu=bool(relu), residual=1, negative=gain < 0, g=mag.bit_length() - 1)


def epi_ctrl_fields(word):
    """The inverse of :func:`epi_ctrl_word`: ``(relu, gain)``."""
    f = EPI_CTRL.unpack(word)
    gain = (1 << f["g"]) * (-1 if f["negative"] else 1) if f["residual"] else 0
    return bool(f["relu"]), gain


def config_words(cfg, latency):
    """The read-only words from which software reconstructs the configuration:
    ``{"CONFIG0".."CONFIG3": word, "FACTOR": [word per stage]}`` (the latency in clocks saturates
    at the field's maximum)."""
    latency = min(latency, CONFIG2["latency"].max)
    return {
        "CONFIG0": CONFIG0.pack(data_bits=cfg.data_bits, weight_bits=cfg.weight_bits,
                                rounding=cfg.rounding, overflow=cfg.overflow,
                                epilogue=cfg.epilogue, residual=cfg.has_residual),
        "CONFIG1": CONFIG1.pack(n_in=cfg.n_in, n_stages=cfg.n_stages),
        "CONFIG2": CONFIG2.pack(n_out=cfg.n_out, latency=latency),
        "CONFIG3": CONFIG3.pack(lanes=cfg.lanes, simd=cfg.simd),
        "FACTOR": [FACTOR.pack(r_minus_1=f.r - 1, s_minus_1=f.s - 1, t=f.t) for f in cfg.factors],
    }


def constant_words(cfg, latency):
    """``{register name: [word per index]}`` for every read-only register whose words are
    constants of the engine: ``ID``, ``CONFIG0``..``CONFIG3``, ``FACTOR``."""
    words = config_words(cfg, latency)
    return {ID.name: [BFLY_ID], **{k: v if isinstance(v, list) else [v] for k, v in words.items()}}


def config_from_words(config0, config1, config2, factors, name="", config3=0):
    """Reconstruct the :class:`EngineConfig` (and the latency) from the words read from an engine.

    Returns ``(cfg, latency)``; raises :class:`ConfigError` when the words do not describe a
    valid engine.
    """
    # config.py takes its limits from the declarations above, so it is imported here
    from .config import EngineConfig, Factor, ConfigError
    try:
        c0 = CONFIG0.unpack(config0)
    except ValueError as e:
        raise ConfigError(f"CONFIG0 0x{config0:08X} has an unknown code: {e}") from None
    c1, c2, c3 = CONFIG1.unpack(config1), CONFIG2.unpack(config2), CONFIG3.unpack(config3)
    if c1["n_stages"] != len(factors):
        raise ConfigError(f"CONFIG1 says {c1['n_stages']} stages, but {len(factors)} FACTOR words were given")
    chain, q = [], c1["n_in"]
    for l, word in enumerate(factors):
        f = FACTOR.unpack(word)
        r, s, t = f["r_minus_1"] + 1, f["s_minus_1"] + 1, f["t"]
        if min(r, s, t) < 1 or q % (s * t):
            raise ConfigError(f"FACTOR[{l}] 0x{word:08X} does not fit {q} input channels")
        f = Factor(b=q // (s * t), r=r, s=s, t=t)
        chain.append(f)
        q = f.p
    cfg = EngineConfig(factors=tuple(chain), data_bits=c0["data_bits"],
                       weight_bits=c0["weight_bits"], rounding=c0["rounding"].name,
                       overflow=c0["overflow"].name, name=name, epilogue=bool(c0["epilogue"]),
                       lanes=c3["lanes"], simd=c3["simd"])
    if cfg.has_residual != bool(c0["residual"]):
        raise ConfigError(f"CONFIG0 0x{config0:08X}: the residual bit contradicts the chain")
    if cfg.n_out != c2["n_out"]:
        raise ConfigError(f"CONFIG2 says {c2['n_out']} output channels, the chain gives {cfg.n_out}")
    return cfg, c2["latency"]


def register_map(cfg):
    """The registers of an engine built from ``cfg``, in offset order: the declarations with each
    array's count (and the epilogue's windows' offsets) filled in.

    ``WEIGHTS``, ``EPI_MULT`` and ``EPI_BIAS`` are contiguous: together they are the engine's
    parameter window (:func:`param_window`), one word per parameter.
    """
    L = cfg.n_stages
    sat_doc = SAT_COUNT.doc + (f"; SAT_COUNT[{L}] counts the epilogue's outputs" if cfg.epilogue else "")
    regs = [ID, CONFIG0, CONFIG1, CONFIG2, CTRL, STATUS]
    if cfg.epilogue:
        regs += [EPI_CTRL, OUT_SHIFT]
    regs += [CONFIG3, FACTOR.placed(count=L), SHIFT.placed(count=L),
             SAT_COUNT.placed(count=L + int(cfg.epilogue), doc=sat_doc),
             WEIGHTS.placed(count=cfg.n_weights)]
    if cfg.epilogue:
        mult = WEIGHTS.offset + 4 * cfg.n_weights
        regs += [EPI_MULT.placed(offset=mult, count=cfg.n_out),
                 EPI_BIAS.placed(offset=mult + 4 * cfg.n_out, count=cfg.n_out)]
    return regs


def param_window(cfg):
    """``(first word index, words)`` of the parameter window: weights, then A_c, then Bias_c."""
    window = [r for r in register_map(cfg) if r.window]
    assert all(a.end == b.offset for a, b in zip(window, window[1:])), "the window has a gap"
    return window[0].word, sum(r.count for r in window)


def address_bits(cfg):
    """Width of the AXI4-Lite byte address."""
    return (max(r.end for r in register_map(cfg)) - 1).bit_length()
