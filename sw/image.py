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

from bfly.hw.config import EngineConfig, ConfigError, loads_json
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
        try:
            _check_report(cfg, header["shifts"], epi, json.loads(json.dumps(self.report, allow_nan=False)))
        except (ImageError, ValueError, TypeError) as e:
            raise ImageError(f"the report cannot be saved: {e}")
        try:
            text = json.dumps(header, sort_keys=True, allow_nan=False).encode()
        except ValueError:
            raise ImageError(f"the scales must be finite, not {header['input_scale']}, {header['output_scale']}")
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
            header = _parse_header(data[_HEAD.size:_HEAD.size + hlen])
            n_params = _param_count(header)
        except ImageError as e:
            header, why = None, str(e)
        expected = _HEAD.size + hlen + 4 * n_params + 4 if header is not None else None
        if expected is not None and len(data) < expected:
            fail(f"truncated: {len(data)} bytes, expected {expected}")
        if zlib.crc32(data[:-4]) != crc:
            fail("checksum mismatch: the file is corrupted")
        if header is None:
            fail(f"corrupted header: {why}")
        if len(data) != expected:
            fail(f"{len(data) - expected} unexpected bytes after the parameters")
        try:
            cfg = EngineConfig.from_dict(header["config"])
        except ConfigError as e:
            fail(f"invalid configuration: {e}")
        counts = header["counts"]
        if counts["weights"] != [f.n_weights for f in cfg.factors]:
            fail(f"weight counts {counts['weights']} do not match the chain {cfg.chain_rows()}")
        if counts["epilogue"] != cfg.n_params - cfg.n_weights:
            fail("epilogue parameter count does not match the configuration")
        flat = np.frombuffer(data, dtype="<i4", count=n_params, offset=_HEAD.size + hlen).astype(np.int64)
        weights, mult, bias = split_param_words(cfg, flat)
        epi = None
        try:
            shifts = _int_list("shifts", header["shifts"], cfg.n_stages)
            e = header["epilogue"]
            if not cfg.epilogue and e is not None:
                raise ImageError("an epilogue entry, but the configuration has no epilogue")
            if cfg.epilogue:
                e = _record("epilogue", e, {"gain": _is_int, "out_shift": _is_int, "relu": _is_bool})
            weights = check_weights(cfg, weights)
            shifts = check_shifts(cfg, shifts)
            if cfg.epilogue:
                epi = check_epilogue(cfg, Epilogue(mult=mult, bias=bias, **e))
        except ImageError as e:
            fail(str(e))
        except ValueError as e:
            fail(f"{e} (the configuration says {cfg.weight_bits}-bit weights, {cfg.data_bits}-bit data)")
        scales = (header["input_scale"], header["output_scale"])
        if not all(_is_number(s) and s > 0 for s in scales):
            fail(f"scales must be positive numbers, not {scales}")
        report = header["report"]
        try:
            _check_report(cfg, shifts, epi, report)
        except ImageError as e:
            fail(f"report: {e}")
        return cls(config=cfg, params=BlockParams(weights, shifts, epi), input_scale=float(scales[0]),
                   output_scale=float(scales[1]), report=report)

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


# --- the header's checks: JSON types exactly (an integer is not a float, a bool or a string)

_HEADER_KEYS = {"config", "shifts", "epilogue", "input_scale", "output_scale", "counts", "report"}


def _parse_header(raw):
    try:
        header = loads_json(raw)
    except RecursionError:
        raise ImageError("nested too deeply")
    except ValueError as e:                 # also a UnicodeDecodeError
        raise ImageError(f"not JSON ({e})")
    if not isinstance(header, dict):
        raise ImageError("not a JSON object")
    missing, unknown = _HEADER_KEYS - set(header), set(header) - _HEADER_KEYS
    if missing or unknown:
        raise ImageError(", ".join(([f"no {', '.join(sorted(missing))}"] if missing else []) +
                                   ([f"unknown {', '.join(sorted(unknown))}"] if unknown else [])))
    return header


def _param_count(header):
    counts = _record("counts", header["counts"], {"weights": list, "epilogue": _is_int})
    weights = _int_list("counts.weights", counts["weights"])
    if min(weights + [counts["epilogue"]]) < 0:
        raise ImageError("counts must not be negative")
    return sum(weights) + counts["epilogue"]


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_bool(v):
    return isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int_list(name, v, length=None):
    if not isinstance(v, list) or not all(map(_is_int, v)):
        raise ImageError(f"{name} must be a list of integers, not {v!r:.60}")
    if length is not None and len(v) != length:
        raise ImageError(f"{name}: expected {length} values, not {len(v)}")
    return v


def _record(name, v, fields, optional=False):
    """``v`` as a dict with exactly the keys of ``fields`` (all of them unless ``optional``),
    each value passing its check (a predicate, or a type)."""
    if not isinstance(v, dict):
        raise ImageError(f"{name} must be an object, not {v!r:.60}")
    unknown = sorted(set(v) - set(fields))
    if unknown:
        raise ImageError(f"{name}: unknown entries {', '.join(unknown)}")
    for key, check in fields.items():
        if key not in v:
            if optional:
                continue
            raise ImageError(f"{name}: no {key}")
        ok = isinstance(v[key], check) if isinstance(check, type) else check(v[key])
        if not ok:
            raise ImageError(f"{name}.{key} has the wrong type or value: {v[key]!r:.60}")
    return v


def _rate(v):
    return _is_number(v) and 0 <= v <= 1


def _check_report(cfg, shifts, epi, report):
    """The quantizer's report (``bfly inspect`` prints it): every entry optional, each of the
    quantizer's type, and what it repeats from the header (factors, shifts, epilogue) the same."""
    _record("report", report, {"calibration_pixels": lambda v: _is_int(v) and v >= 0,
                               "stages": list, "epilogue": dict, "final_sqnr_db": _is_number},
            optional=True)
    if "stages" in report:
        if len(report["stages"]) != cfg.n_stages:
            raise ImageError(f"{len(report['stages'])} stages, the chain has {cfg.n_stages}")
        for l, st in enumerate(report["stages"]):
            _record(f"stages[{l}]", st, {"stage": _is_int, "shift": _is_int,
                                         "factor": lambda v: isinstance(v, list) and all(map(_is_int, v)),
                                         "weight_exponent": lambda v: _is_int(v) and abs(v) <= 1024,
                                         "sqnr_db": _is_number, "saturation_rate": _rate})
            if (st["stage"], st["factor"], st["shift"]) != (l, cfg.factors[l].as_row(), shifts[l]):
                raise ImageError(f"stages[{l}] does not describe stage {l} (factor "
                                 f"{cfg.factors[l].as_row()}, shift {shifts[l]})")
    if "epilogue" in report:
        if epi is None:
            raise ImageError("an epilogue entry, but the configuration has no epilogue")
        e = _record("epilogue", report["epilogue"], {"gain": _is_int, "out_shift": _is_int,
                                                     "relu": _is_bool, "saturation_rate": _rate})
        if (e["gain"], e["out_shift"], e["relu"]) != (epi.gain, epi.out_shift, epi.relu):
            raise ImageError("the epilogue entry differs from the image's epilogue")
