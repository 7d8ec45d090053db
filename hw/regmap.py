"""The AXI4-Lite register map: one table that the hardware decodes, ``regmap.json`` and the C
header describe, and the host driver uses.

All registers are 32 bits wide at byte offsets; multi-word entries (``count > 1``) are windows of
consecutive words.
"""

from dataclasses import dataclass

from .config import EngineConfig, Factor, ConfigError

__all__ = ["Register", "register_map", "REGMAP_VERSION", "BFLY_ID", "ROUNDING_CODES",
           "OVERFLOW_CODES", "SHIFT_BITS", "RESIDUAL_SHIFT_MAX", "BIAS_BITS", "epi_ctrl_word", "epi_ctrl_fields",
           "config_words", "config_from_words", "address_bits", "param_window"]

REGMAP_VERSION = 2
BFLY_ID = 0xBF100000 | REGMAP_VERSION   # "BF1" + register-map version in the low 16 bits
SHIFT_BITS = 6
RESIDUAL_SHIFT_MAX = 15                  # EPI_CTRL[11:8]: residual gain 0 or +-2**g, g <= 15
BIAS_BITS = 32                           # EPI_BIAS[c]: one signed word


def epi_ctrl_word(relu, gain):
    """EPI_CTRL: ``[0]`` ReLU, ``[1]`` residual enable, ``[2]`` residual negative, ``[11:8]`` g,
    for a residual gain of 0 or ``+-2**g``. Raises ``ValueError`` for another gain."""
    gain = int(gain)
    mag = abs(gain)
    if gain and (mag & (mag - 1) or mag.bit_length() - 1 > RESIDUAL_SHIFT_MAX):
        raise ValueError(f"residual gain must be 0 or +-2**g with g <= {RESIDUAL_SHIFT_MAX}, not {gain}")
    word = int(bool(relu))
    if gain:
        word |= 1 << 1 | int(gain < 0) << 2 | (mag.bit_length() - 1) << 8
    return word


def epi_ctrl_fields(word):
    """The inverse of :func:`epi_ctrl_word`: ``(relu, gain)``."""
    gain = 0
    if word >> 1 & 1:
        gain = (1 << (word >> 8 & 0xF)) * (-1 if word >> 2 & 1 else 1)
    return bool(word & 1), gain
ROUNDING_CODES = {"floor": 0, "half_up": 1, "half_even": 2}
OVERFLOW_CODES = {"saturate": 0, "wrap": 1}

WEIGHTS_BASE = 0x1000


@dataclass(frozen=True)
class Register:
    name: str
    offset: int        # byte offset of the first word
    access: str        # ro | wo | rw | rw_clear (read; any write clears)
    count: int         # words in the entry
    doc: str

    @property
    def end(self):
        return self.offset + 4 * self.count


def config_words(cfg, latency):
    """The read-only words from which software reconstructs the configuration.

    ``CONFIG0``: ``[7:0]`` data_bits, ``[15:8]`` weight_bits, ``[17:16]`` rounding
    (0 floor, 1 half_up, 2 half_even), ``[18]`` overflow (0 saturate, 1 wrap), ``[19]`` epilogue,
    ``[20]`` residual path.
    ``CONFIG1``: ``[15:0]`` n_in, ``[23:16]`` number of stages. ``CONFIG2``: ``[15:0]`` n_out,
    ``[31:16]`` latency in clocks. ``CONFIG3``: ``[15:0]`` lanes, ``[31:16]`` simd (0: not folded).
    ``FACTOR[l]``: ``[7:0]`` r - 1, ``[15:8]`` s - 1, ``[31:16]`` t
    (``b`` follows from the stage's input count ``q = b*s*t``).
    """
    config0 = (cfg.data_bits | cfg.weight_bits << 8 | ROUNDING_CODES[cfg.rounding] << 16
               | OVERFLOW_CODES[cfg.overflow] << 18 | int(cfg.epilogue) << 19
               | int(cfg.has_residual) << 20)
    config1 = cfg.n_in | cfg.n_stages << 16
    config2 = cfg.n_out | min(latency, 0xFFFF) << 16
    config3 = cfg.lanes | cfg.simd << 16
    factors = [(f.r - 1) | (f.s - 1) << 8 | f.t << 16 for f in cfg.factors]
    return {"CONFIG0": config0, "CONFIG1": config1, "CONFIG2": config2, "CONFIG3": config3,
            "FACTOR": factors}


def config_from_words(config0, config1, config2, factors, name="", config3=0):
    """Reconstruct the :class:`EngineConfig` (and the latency) from the words read from an engine.

    Returns ``(cfg, latency)``; raises :class:`ConfigError` when the words do not describe a
    valid engine.
    """
    rounding = {v: k for k, v in ROUNDING_CODES.items()}.get((config0 >> 16) & 3)
    overflow = {v: k for k, v in OVERFLOW_CODES.items()}[(config0 >> 18) & 1]
    if rounding is None:
        raise ConfigError(f"CONFIG0 0x{config0:08X} has an unknown rounding code")
    n_in, n_stages = config1 & 0xFFFF, (config1 >> 16) & 0xFF
    if n_stages != len(factors):
        raise ConfigError(f"CONFIG1 says {n_stages} stages, but {len(factors)} FACTOR words were given")
    chain, q = [], n_in
    for l, word in enumerate(factors):
        r, s, t = (word & 0xFF) + 1, ((word >> 8) & 0xFF) + 1, word >> 16
        if min(r, s, t) < 1 or q % (s * t):
            raise ConfigError(f"FACTOR[{l}] 0x{word:08X} does not fit {q} input channels")
        f = Factor(b=q // (s * t), r=r, s=s, t=t)
        chain.append(f)
        q = f.p
    cfg = EngineConfig(factors=tuple(chain), data_bits=config0 & 0xFF,
                       weight_bits=(config0 >> 8) & 0xFF, rounding=rounding, overflow=overflow,
                       name=name, epilogue=bool(config0 >> 19 & 1),
                       lanes=config3 & 0xFFFF, simd=config3 >> 16)
    if cfg.has_residual != bool(config0 >> 20 & 1):
        raise ConfigError(f"CONFIG0 0x{config0:08X}: the residual bit contradicts the chain")
    if cfg.n_out != config2 & 0xFFFF:
        raise ConfigError(f"CONFIG2 says {config2 & 0xFFFF} output channels, the chain gives {cfg.n_out}")
    return cfg, config2 >> 16


def register_map(cfg):
    """The register table of an engine built from ``cfg``.

    ``WEIGHTS``, ``EPI_MULT`` and ``EPI_BIAS`` are contiguous: together they are the engine's
    parameter window (:func:`param_window`), one word per parameter.
    """
    L = cfg.n_stages
    sat_doc = "per stage: outputs that saturated (or wrapped) since the last clear, saturating " \
              "at 2**32-1; any write clears"
    if cfg.epilogue:
        sat_doc += f"; SAT_COUNT[{L}] counts the epilogue's outputs"
    regs = [
        Register("ID", 0x000, "ro", 1, f"0x{BFLY_ID:08X}: bfly, register map version {REGMAP_VERSION}"),
        Register("CONFIG0", 0x004, "ro", 1, "[7:0] data_bits, [15:8] weight_bits, "
                 "[17:16] rounding (0 floor, 1 half_up, 2 half_even), [18] overflow (0 saturate, 1 wrap), "
                 "[19] epilogue, [20] residual path"),
        Register("CONFIG1", 0x008, "ro", 1, "[15:0] n_in, [23:16] number of stages"),
        Register("CONFIG2", 0x00C, "ro", 1, "[15:0] n_out, [31:16] latency in clocks"),
        Register("CTRL", 0x010, "wo", 1, "[0] COMMIT: make the shadow bank active "
                 "for every pixel accepted after this write"),
        Register("STATUS", 0x014, "ro", 1, "[0] COMMIT_BUSY: a commit is propagating "
                 "(register writes wait until it is done), [1] pixels in flight"),
    ]
    if cfg.epilogue:
        regs += [
            Register("EPI_CTRL", 0x018, "rw", 1, "[0] ReLU, [1] residual enable, [2] residual "
                     "negative, [11:8] g: residual gain G = +-2**g (shadow bank)"),
            Register("OUT_SHIFT", 0x01C, "rw", 1, f"[{SHIFT_BITS - 1}:0] epilogue output shift (shadow bank)"),
        ]
    regs += [
        Register("CONFIG3", 0x020, "ro", 1, "[15:0] lanes, [31:16] simd: the folding (0: all)"),
        Register("FACTOR", 0x040, "ro", L, "per stage: [7:0] r - 1, [15:8] s - 1, [31:16] t"),
        Register("SHIFT", 0x100, "rw", L, f"per stage: [{SHIFT_BITS - 1}:0] requantization shift "
                 "(shadow bank)"),
        Register("SAT_COUNT", 0x200, "rw_clear", L + int(cfg.epilogue), sat_doc),
        Register("WEIGHTS", WEIGHTS_BASE, "rw", cfg.n_weights, "one weight per word, sign-extended, "
                 "in the order stage, output node o, j (the (p, s) layout); shadow bank"),
    ]
    if cfg.epilogue:
        mult = WEIGHTS_BASE + 4 * cfg.n_weights
        regs += [
            Register("EPI_MULT", mult, "rw", cfg.n_out, "per output channel: multiplier A_c, "
                     "sign-extended (shadow bank)"),
            Register("EPI_BIAS", mult + 4 * cfg.n_out, "rw", cfg.n_out, "per output channel: "
                     "bias Bias_c, a signed 32-bit word (shadow bank)"),
        ]
    return regs


def param_window(cfg):
    """``(first word index, words)`` of the parameter window: weights, then A_c, then Bias_c
    (its blocks: :meth:`EngineConfig.param_blocks`)."""
    return WEIGHTS_BASE // 4, cfg.n_params


def address_bits(cfg):
    """Width of the AXI4-Lite byte address."""
    return (max(r.end for r in register_map(cfg)) - 1).bit_length()
