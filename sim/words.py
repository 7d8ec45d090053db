"""Word layouts of ``docs/spec.md`` §4: pixels and parameters to bus words and back.

Channel ``c`` of a pixel occupies bits ``[c*data_bits, (c+1)*data_bits)`` of its word, two's
complement, channel 0 in the least significant bits. On AXI4-Stream the word is padded with zero
bits to a whole number of bytes (:func:`stream_bits`).
"""

import numpy as np

from bfly.hw.config import stream_bits
from bfly.hw.csr import WORD_MASK
from bfly.hw.regmap import epi_ctrl_word, epi_ctrl_fields, SHIFT, EPI_CTRL, OUT_SHIFT, WEIGHTS

__all__ = ["stream_bits", "pack_pixels", "unpack_pixels", "pack_u32", "unpack_u32", "to_signed", "param_words",
           "split_param_words", "scalar_registers", "load_plan", "params_from_registers"]


def to_signed(values, bits):
    """Reinterpret the low ``bits`` of integers as two's complement (vectorized)."""
    v = np.asarray(values, dtype=np.int64) & ((1 << bits) - 1)
    return np.where(v >= 1 << (bits - 1), v - (1 << bits), v)


def pack_pixels(pixels, data_bits):
    """``(N, C)`` signed integers -> list of ``N`` Python ints (one bus word per pixel)."""
    pixels = np.asarray(pixels, dtype=np.int64)
    n, c = pixels.shape
    mask = (1 << data_bits) - 1
    # little-endian bit string per pixel, built with numpy then read as one integer per row
    bits = ((pixels[:, :, None] & mask) >> np.arange(data_bits)) & 1           # (N, C, d)
    bits = bits.reshape(n, c * data_bits)
    pad = stream_bits(c, data_bits) - c * data_bits
    bits = np.concatenate([bits, np.zeros((n, pad), dtype=np.int64)], axis=1).astype(np.uint8)
    packed = np.packbits(bits, axis=1, bitorder="little")                      # (N, bytes)
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def unpack_pixels(words, channels, data_bits):
    """List of bus words -> ``(N, channels)`` signed ``int64`` array."""
    nbytes = stream_bits(channels, data_bits) // 8
    raw = np.frombuffer(b"".join(int(w).to_bytes(nbytes, "little") for w in words), dtype=np.uint8)
    bits = np.unpackbits(raw.reshape(len(words), nbytes), axis=1, bitorder="little")
    bits = bits[:, :channels * data_bits].reshape(len(words), channels, data_bits).astype(np.int64)
    values = (bits << np.arange(data_bits)).sum(axis=2)
    return to_signed(values, data_bits)


def _fields(channels, data_bits):
    if not 0 < data_bits <= 32:
        raise ValueError(f"channels of 1 to 32 bits pack into 32-bit words, not {data_bits}")
    for c in range(channels):
        yield c, (c * data_bits) // 32, (c * data_bits) % 32


def pack_u32(pixels, data_bits, nwords):
    """``(N, C)`` signed integers -> ``(N, nwords)`` ``uint32``: each pixel's word (the layout
    above) in 32-bit pieces, least significant first (vectorized: the fast stream path's files)."""
    pixels = np.asarray(pixels, dtype=np.int64)
    n, c = pixels.shape
    acc = np.zeros((n, nwords + 1), dtype=np.uint64)
    u = (pixels & ((1 << data_bits) - 1)).astype(np.uint64)
    for ch, w, lo in _fields(c, data_bits):
        v = u[:, ch] << np.uint64(lo)
        acc[:, w] |= v & np.uint64(0xFFFFFFFF)
        acc[:, w + 1] |= v >> np.uint64(32)
    return acc[:, :nwords].astype(np.uint32)


def unpack_u32(words, channels, data_bits):
    """The inverse of :func:`pack_u32`: ``(N, nwords)`` 32-bit pieces -> ``(N, channels)``
    signed ``int64``."""
    words = np.asarray(words, dtype=np.uint64)
    words = np.concatenate([words, np.zeros((len(words), 1), dtype=np.uint64)], axis=1)
    out = np.empty((len(words), channels), dtype=np.int64)
    mask = np.uint64((1 << data_bits) - 1)
    for ch, w, lo in _fields(channels, data_bits):
        v = ((words[:, w] | (words[:, w + 1] << np.uint64(32))) >> np.uint64(lo)) & mask
        out[:, ch] = v.astype(np.int64)
    return to_signed(out, data_bits)


def param_words(cfg, params):
    """The engine's parameter window (:meth:`EngineConfig.param_blocks`) as ``cfg.n_params``
    32-bit words (two's complement): every stage's ``(p, s)`` weights row-major, then (with an
    epilogue) ``A_c`` and ``Bias_c``. ``params`` is a :class:`BlockParams`."""
    blocks = [np.asarray(w, dtype=np.int64).reshape(-1) for w in params.weights]
    if cfg.epilogue:
        epi = params.epilogue
        blocks.append(np.concatenate([np.asarray(epi.mult, dtype=np.int64).reshape(-1),
                                      np.asarray(epi.bias, dtype=np.int64).reshape(-1)]))
    sizes = [size for _, size in cfg.param_blocks()]
    if [b.size for b in blocks] != sizes:
        raise ValueError(f"the parameters have blocks of {[b.size for b in blocks]} words, "
                         f"the window of {cfg.id} blocks of {sizes}")
    return [int(v) & WORD_MASK for v in np.concatenate(blocks)]


def split_param_words(cfg, words):
    """The inverse of :func:`param_words`: ``cfg.n_params`` words (signed or unsigned 32-bit) ->
    ``(weights, mult, bias)``, the per-stage ``(p, s)`` weights and the epilogue's ``(n_out,)``
    ``A_c`` and ``Bias_c`` (``None`` without an epilogue), as signed ``int64``."""
    words = to_signed(np.asarray(words, dtype=np.int64).reshape(-1), 32)
    if words.size != cfg.n_params:
        raise ValueError(f"the parameter window of {cfg.id} has {cfg.n_params} words, not {words.size}")
    blocks = [words[first:first + size] for first, size in cfg.param_blocks()]
    weights = [b.reshape(f.p, f.s) for f, b in zip(cfg.factors, blocks)]
    if not cfg.epilogue:
        return weights, None, None
    return weights, blocks[-1][:cfg.n_out], blocks[-1][cfg.n_out:]


def scalar_registers(cfg, params):
    """``{register name: [word per index]}`` for the scalar shadow registers of a bank (the
    register bank's, not the parameter window's). Raises ``ValueError`` for a shift that does not
    fit its field."""
    regs = {SHIFT.name: [SHIFT.pack(shift=s) for s in params.shifts]}
    if cfg.epilogue:
        epi = params.epilogue
        regs[EPI_CTRL.name] = [epi_ctrl_word(epi.relu, epi.gain)]
        regs[OUT_SHIFT.name] = [OUT_SHIFT.pack(shift=epi.out_shift)]
    return regs


def load_plan(cfg, params):
    """The register writes that put a bank (:class:`BlockParams`) into an engine's shadow
    registers, in order: ``[(register name, words)]``, each a run of consecutive words from the
    register's first (the parameter window from ``WEIGHTS``, then the scalar registers). The
    testbench and the driver both execute this plan (then read it back, then commit)."""
    return [(WEIGHTS.name, param_words(cfg, params))] + list(scalar_registers(cfg, params).items())


def params_from_registers(cfg, read):
    """The bank held in an engine's shadow registers, as :class:`bfly.sim.model.BlockParams`;
    ``read(register name, words) -> list of words`` reads a run from the register's first word
    (the inverse of :func:`load_plan`)."""
    from .model import BlockParams, Epilogue
    weights, mult, bias = split_param_words(cfg, read(WEIGHTS.name, cfg.n_params))
    shifts = [SHIFT.unpack(w)["shift"] for w in read(SHIFT.name, cfg.n_stages)]
    epi = None
    if cfg.epilogue:
        relu, gain = epi_ctrl_fields(read(EPI_CTRL.name, 1)[0])
        out_shift = OUT_SHIFT.unpack(read(OUT_SHIFT.name, 1)[0])["shift"]
        epi = Epilogue(mult=mult, bias=bias, gain=gain, out_shift=out_shift, relu=relu)
    return BlockParams(weights, shifts, epi)
