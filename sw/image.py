"""The weight image (``.bfly``): a quantized block ready to load onto an engine.

Layout (all little-endian):

    offset 0   8 bytes  magic b"BFLYWIMG"
           8   u16      format version (1)
          10   u16      reserved (0)
          12   u32      header length H
          16   H bytes  header: UTF-8 JSON (configuration, shifts, epilogue scalars, scales,
                        parameter counts, quantization report)
      16 + H   4*P      parameters as int32: every stage's (p, s) weights row-major, then (with
                        an epilogue) A_c and Bias_c: the engine's parameter window, in order
           .   u32      CRC-32 of every byte before it

Loading checks, each with its own message: the file's length against its header, the magic, the
version, the checksum, the configuration, the parameter counts against the chain, and every value
against the bit widths. :meth:`WeightImage.check_engine` checks it against an engine's
``manifest.json``.
"""

import json
import math
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bfly.hw.config import EngineConfig, ConfigError
from bfly.sim.model import BlockParams, Epilogue, check_weights, check_shifts, check_epilogue
from bfly.sim.words import param_words, split_param_words

__all__ = ["WeightImage", "ImageError", "FORMAT_VERSION", "MAGIC"]

MAGIC = b"BFLYWIMG"
FORMAT_VERSION = 1
_HEAD = struct.Struct("<8sHHI")


class ImageError(ValueError):
    """A weight image that cannot be used; the message says why."""


@dataclass
class WeightImage:
    """A quantized block: the engine configuration it targets, its parameters and its scales.

    ``input_scale``: the float value of one input LSB; ``output_scale``: of one output LSB.
    """
    config: EngineConfig
    params: BlockParams
    input_scale: float
    output_scale: float
    report: dict = field(default_factory=dict)

    # --- writing

    def to_bytes(self):
        cfg, p = self.config, self.params
        check_weights(cfg, p.weights)
        check_shifts(cfg, p.shifts)
        epi = check_epilogue(cfg, p.epilogue) if cfg.epilogue else None
        # (the int32 of the format: the window's 32-bit words, little-endian)
        flat = np.array(param_words(cfg, BlockParams(p.weights, p.shifts, epi)), dtype="<u4")
        header = {
            "config": cfg.to_dict(),
            "shifts": [int(s) for s in p.shifts],
            "epilogue": None if epi is None else {
                "gain": epi.gain, "out_shift": epi.out_shift, "relu": epi.relu},
            "input_scale": float(self.input_scale),
            "output_scale": float(self.output_scale),
            "counts": {"weights": [f.n_weights for f in cfg.factors],
                       "epilogue": cfg.n_params - cfg.n_weights},
            "report": self.report,
        }
        text = json.dumps(header, sort_keys=True).encode()
        body = _HEAD.pack(MAGIC, FORMAT_VERSION, 0, len(text)) + text + flat.tobytes()
        return body + struct.pack("<I", zlib.crc32(body))

    def save(self, path):
        """Write atomically: a failed save leaves no partial file."""
        path = Path(path)
        data = self.to_bytes()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    # --- reading

    @classmethod
    def load(cls, path):
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ImageError(f"cannot read {path}: {e.strerror or e}")
        return cls.from_bytes(data, source=str(path))

    @classmethod
    def from_bytes(cls, data, source="image"):
        def fail(msg):
            raise ImageError(f"{source}: {msg}")

        if len(data) < _HEAD.size:
            fail(f"truncated: {len(data)} bytes, shorter than the {_HEAD.size}-byte header")
        magic, version, _, hlen = _HEAD.unpack_from(data)
        if magic != MAGIC:
            fail("not a bfly weight image (wrong magic bytes)")
        if version > FORMAT_VERSION:
            fail(f"format version {version} is newer than this bfly reads ({FORMAT_VERSION}); upgrade bfly")
        if version < 1:
            fail(f"unknown format version {version}")
        if len(data) < _HEAD.size + hlen + 4:
            fail(f"truncated: {len(data)} bytes, the header alone needs {_HEAD.size + hlen + 4}")
        (crc,) = struct.unpack_from("<I", data, len(data) - 4)
        try:
            header = json.loads(data[_HEAD.size:_HEAD.size + hlen])
            counts = header["counts"]
            n_params = sum(counts["weights"]) + counts["epilogue"]
        except (ValueError, KeyError, TypeError):
            header = None
        expected = _HEAD.size + hlen + 4 * n_params + 4 if header is not None else None
        if expected is not None and len(data) < expected:
            fail(f"truncated: {len(data)} bytes, expected {expected}")
        if zlib.crc32(data[:-4]) != crc:
            fail("checksum mismatch: the file is corrupted")
        if header is None:
            fail("corrupted header")
        if len(data) != expected:
            fail(f"{len(data) - expected} unexpected bytes after the parameters")
        try:
            cfg = EngineConfig.from_dict(header["config"])
        except (ConfigError, KeyError, TypeError) as e:
            fail(f"invalid configuration: {e}")
        if counts["weights"] != [f.n_weights for f in cfg.factors]:
            fail(f"weight counts {counts['weights']} do not match the chain {cfg.chain_rows()}")
        if counts["epilogue"] != cfg.n_params - cfg.n_weights:
            fail("epilogue parameter count does not match the configuration")
        flat = np.frombuffer(data, dtype="<i4", count=n_params, offset=_HEAD.size + hlen).astype(np.int64)
        weights, mult, bias = split_param_words(cfg, flat)
        epi = None
        try:
            weights = check_weights(cfg, weights)
            shifts = check_shifts(cfg, header["shifts"])
            if cfg.epilogue:
                e = header["epilogue"]
                epi = check_epilogue(cfg, Epilogue(mult=mult, bias=bias, gain=e["gain"],
                                                   out_shift=e["out_shift"], relu=e["relu"]))
        except ValueError as e:
            fail(f"{e} (the configuration says {cfg.weight_bits}-bit weights, {cfg.data_bits}-bit data)")
        except (KeyError, TypeError):
            fail("corrupted header")
        scales = (header.get("input_scale"), header.get("output_scale"))
        if not all(isinstance(s, (int, float)) and math.isfinite(s) and s > 0 for s in scales):
            fail(f"scales must be positive numbers, not {scales}")
        return cls(config=cfg, params=BlockParams(weights, shifts, epi), input_scale=float(scales[0]),
                   output_scale=float(scales[1]), report=header.get("report") or {})

    def check_engine(self, manifest):
        """Raise :class:`ImageError` unless this image runs on the engine of ``manifest`` (a dict
        from ``manifest.json``) exactly as quantized."""
        try:
            engine = EngineConfig.from_dict(manifest["config"])
        except (ConfigError, KeyError, TypeError) as e:
            raise ImageError(f"not a usable engine manifest: {e}")
        mine = self.config
        if engine.chain_rows() != mine.chain_rows():
            raise ImageError(f"the image is for chain {mine.chain_rows()} ({mine.n_in} -> {mine.n_out} "
                             f"channels), the engine has {engine.chain_rows()} ({engine.n_in} -> "
                             f"{engine.n_out} channels)")
        for what, a, b in (("data", mine.data_bits, engine.data_bits),
                           ("weights", mine.weight_bits, engine.weight_bits)):
            if a != b:
                raise ImageError(f"the image has {a}-bit {what}, the engine {b}-bit {what}")
        if mine.rounding != engine.rounding or mine.overflow != engine.overflow:
            raise ImageError(f"the image was quantized for {mine.rounding} rounding and {mine.overflow}, "
                             f"the engine does {engine.rounding} and {engine.overflow}")
        if mine.epilogue and not engine.epilogue:
            raise ImageError("the image has an epilogue, the engine was generated without one "
                             "(bfly gen --epilogue)")
        return engine
