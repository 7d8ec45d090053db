"""Word layouts of ``shared/SPEC.md`` §4: pixels to bus words and back.

Channel ``c`` of a pixel occupies bits ``[c*data_bits, (c+1)*data_bits)`` of its word, two's
complement, channel 0 in the least significant bits. On AXI4-Stream the word is padded with zero
bits to a whole number of bytes (:func:`stream_bits`).
"""

import numpy as np

from gen.config import stream_bits

__all__ = ["stream_bits", "pack_pixels", "unpack_pixels", "to_signed"]


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
