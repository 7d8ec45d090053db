"""The weight image format: round trip, and one clear message per kind of damage."""

import json
import struct
import zlib

import numpy as np
import pytest

from bfly.hw.config import EngineConfig
from bfly.sim.model import random_params, engine_forward
from bfly.sw.image import WeightImage, ImageError


@pytest.fixture
def image():
    cfg = EngineConfig.bft(16, 4, epilogue=True, name="blk")
    params = random_params(cfg, np.random.default_rng(0))
    return WeightImage(cfg, params, input_scale=0.03, output_scale=0.05, report={"final_sqnr_db": 30.0})


def _reseal(body):
    """Recompute the checksum of a modified image (to reach the checks behind it)."""
    return body[:-4] + struct.pack("<I", zlib.crc32(body[:-4]))


def _edit_header(data, edit):
    hlen = struct.unpack_from("<I", data, 12)[0]
    header = json.loads(data[16:16 + hlen])
    edit(header)
    return _with_header_text(data, json.dumps(header).encode())


def _with_header_text(data, text):
    """``data`` with the header JSON ``text`` (bytes) and a valid checksum."""
    hlen = struct.unpack_from("<I", data, 12)[0]
    body = data[:12] + struct.pack("<I", len(text)) + text + data[16 + hlen:-4]
    return _reseal(body + b"\0\0\0\0")


def test_round_trip(image, tmp_path):
    path = tmp_path / "b.bfly"
    image.save(path)
    again = WeightImage.load(path)
    assert again.config == image.config and again.report == image.report
    assert (again.input_scale, again.output_scale) == (0.03, 0.05)
    x = np.random.default_rng(1).integers(-128, 128, size=(30, 16))
    assert np.array_equal(engine_forward(again.config, again.params, x).y,
                          engine_forward(image.config, image.params, x).y)
    assert path.read_bytes() == image.to_bytes()          # deterministic


@pytest.mark.parametrize("damage,message", [
    (lambda d: d[:10], "truncated: 10 bytes, shorter than the 16-byte header"),
    (lambda d: d[:-100], "truncated"),
    (lambda d: b"NOTANIMG" + d[8:], "not a bfly weight image"),
    (lambda d: d[:8] + struct.pack("<H", 9) + d[10:], "format version 9 is newer than this bfly reads (1)"),
    (lambda d: d[:-40] + bytes([d[-40] ^ 0x10]) + d[-39:], "checksum mismatch: the file is corrupted"),
    (lambda d: d[:200] + bytes([d[200] ^ 0x01]) + d[201:], "checksum mismatch"),
    (lambda d: _reseal(d[:-4] + b"\0\0\0\0" + d[-4:]), "unexpected bytes"),
])
def test_damaged_files_are_refused(image, damage, message):
    with pytest.raises(ImageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        WeightImage.from_bytes(damage(image.to_bytes()))


def test_values_out_of_range_for_the_widths(image):
    def six_bit(h):
        h["config"]["weight_bits"] = 6        # the stored 8-bit weights no longer fit
        del h["config"]["id"]                 # (derived: optional, but it would contradict)
    with pytest.raises(ImageError, match=r"weights must lie in \[-32, 31\].*6-bit weights"):
        WeightImage.from_bytes(_edit_header(image.to_bytes(), six_bit))

    def other_chain(h):
        h["counts"]["weights"] = [32, 96]     # same total (128), split differently
    with pytest.raises(ImageError, match="do not match the chain"):
        WeightImage.from_bytes(_edit_header(image.to_bytes(), other_chain))


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="cannot read"):
        WeightImage.load(tmp_path / "nope.bfly")


def _manifest(cfg):
    return {"config": cfg.to_dict(), "top": cfg.name}


def test_check_against_engine(image):
    assert image.check_engine(_manifest(EngineConfig.bft(16, 4, epilogue=True))).n_in == 16
    for engine, message in [
        (EngineConfig.bft(64, 4, epilogue=True), r"for chain .* \(16 -> 16 channels\), the engine has .* \(64 -> 64"),
        (EngineConfig.bft(16, 4, epilogue=True, weight_bits=6), "8-bit weights, the engine 6-bit"),
        (EngineConfig.bft(16, 4, epilogue=True, data_bits=6), "8-bit data, the engine 6-bit"),
        (EngineConfig.bft(16, 4, epilogue=True, rounding="floor"), "half_even rounding"),
        (EngineConfig.bft(16, 4), "without one"),
    ]:
        with pytest.raises(ImageError, match=message):
            image.check_engine(_manifest(engine))


def _set(path, value):
    """An edit of the header that sets ``header[path[0]][path[1]]... = value``."""
    def edit(h):
        for key in path[:-1]:
            h = h[key]
        h[path[-1]] = value
    return edit


def _delete(path):
    def edit(h):
        for key in path[:-1]:
            h = h[key]
        del h[path[-1]]
    return edit


INF = float("inf")


@pytest.mark.parametrize("edit,message", [
    # non-finite numbers (json.loads accepts Infinity and NaN; the format does not)
    (_set(["shifts", 0], INF), "Infinity is not a JSON number"),
    (_set(["epilogue", "out_shift"], INF), "Infinity is not a JSON number"),
    (_set(["epilogue", "gain"], float("nan")), "NaN is not a JSON number"),
    # types exactly: no float, bool or string for an integer, no int or string for a bool
    (_set(["counts", "weights"], [64.0, 64.0]), "counts.weights must be a list of integers"),
    (_set(["counts", "epilogue"], 32.0), "counts.epilogue has the wrong type"),
    (_set(["counts", "epilogue"], -1), "counts must not be negative"),
    (_set(["shifts", 0], 2.7), "shifts must be a list of integers"),
    (_set(["shifts", 0], "7"), "shifts must be a list of integers"),
    (_set(["shifts", 0], True), "shifts must be a list of integers"),
    (_set(["shifts"], [3]), "shifts: expected 2 values, not 1"),
    (_set(["epilogue", "relu"], "no"), "epilogue.relu has the wrong type"),
    (_set(["epilogue", "relu"], 1), "epilogue.relu has the wrong type"),
    (_set(["epilogue", "out_shift"], 3.0), "epilogue.out_shift has the wrong type"),
    (_set(["epilogue", "extra"], 1), "epilogue: unknown entries extra"),
    (_delete(["epilogue", "gain"]), "epilogue: no gain"),
    (_set(["epilogue"], None), "epilogue must be an object"),
    (_set(["config", "data_bits"], 8.0), "--data-bits must be an integer"),
    (_set(["config", "epilogue"], "yes"), "epilogue must be true or false"),
    (_set(["config", "chain", 0, 2], 4.0), "factor 0: expected five integers"),
    (_set(["config", "chain"], 5), "\"chain\" must be a list of"),
    (_set(["input_scale"], True), "scales must be positive numbers"),
    (_set(["input_scale"], "0.03"), "scales must be positive numbers"),
    # derived entries that contradict the chain
    (_set(["config", "n_in"], 64), "\"n_in\" is 64, but the chain and options give 16"),
    (_set(["config", "n_in"], 16.0), "\"n_in\" is 16.0"),
    (_set(["config", "multipliers"], 1), "\"multipliers\" is 1"),
    (_set(["config", "interval"], 4), "\"interval\" is 4"),
    (_set(["config", "bogus"], 4), "unknown configuration entries: bogus"),
    (_set(["surprise"], 1), "corrupted header: unknown surprise"),
    (_delete(["shifts"]), "corrupted header: no shifts"),
    # the report: bfly inspect prints it
    (_set(["report"], None), "report must be an object"),
    (_set(["report"], {"final_sqnr_db": "30"}), "report.final_sqnr_db has the wrong type"),
    (_set(["report"], {"calibration_pixels": 1.5}), "report.calibration_pixels has the wrong type"),
    (_set(["report"], {"stages": [1, 2]}), "stages\\[0\\] must be an object"),
    (_set(["report"], {"stages": []}), "0 stages, the chain has 2"),
    (_set(["report"], {"epilogue": {"gain": 0, "out_shift": 0, "relu": True,
                                    "saturation_rate": 2.0}}), "epilogue.saturation_rate has the wrong"),
    (_set(["report"], {"whatever": [[[]]]}), "report: unknown entries whatever"),
])
def test_hand_edited_headers_with_a_valid_checksum_are_refused(image, edit, message):
    with pytest.raises(ImageError, match=message):
        WeightImage.from_bytes(_edit_header(image.to_bytes(), edit))


def test_report_that_contradicts_the_image_is_refused(image):
    cfg = image.config
    good = image.report = {"final_sqnr_db": 30.0, "calibration_pixels": 10, "stages": [
        {"stage": l, "factor": f.as_row(), "shift": image.params.shifts[l], "weight_exponent": -3,
         "sqnr_db": 20.0, "saturation_rate": 0.0} for l, f in enumerate(cfg.factors)],
        "epilogue": {"gain": image.params.epilogue.gain, "out_shift": image.params.epilogue.out_shift,
                     "relu": image.params.epilogue.relu, "saturation_rate": 0.01}}
    assert WeightImage.from_bytes(image.to_bytes()).report == good
    for edit, message in [
        (_set(["report", "stages", 1, "shift"], image.params.shifts[1] + 1), "stages\\[1\\] does not describe stage 1"),
        (_set(["report", "stages", 0, "stage"], 1), "stages\\[0\\] does not describe"),
        (_set(["report", "stages", 0, "sqnr_db"], None), "stages\\[0\\].sqnr_db has the wrong type"),
        (_set(["report", "stages", 0, "factor"], [16, 16, 4, 4, True]), "stages\\[0\\].factor"),
        (_set(["report", "epilogue", "relu"], not image.params.epilogue.relu), "differs from the image"),
    ]:
        with pytest.raises(ImageError, match=message):
            WeightImage.from_bytes(_edit_header(image.to_bytes(), edit))


def test_a_number_too_large_for_a_float_is_not_a_scale(image):
    data = image.to_bytes()
    hlen = struct.unpack_from("<I", data, 12)[0]
    text = data[16:16 + hlen].replace(b'"input_scale": 0.03', b'"input_scale": 1e400')   # parses to inf
    assert text != data[16:16 + hlen]
    with pytest.raises(ImageError, match="scales must be positive numbers"):
        WeightImage.from_bytes(_with_header_text(data, text))


def test_deep_nesting_is_a_corrupted_header(image):
    data = image.to_bytes()
    hlen = struct.unpack_from("<I", data, 12)[0]
    text = data[16:16 + hlen].replace(b'"report": {', b'"report": {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b", ")
    assert text != data[16:16 + hlen]
    with pytest.raises(ImageError, match="corrupted header: nested too deeply"):
        WeightImage.from_bytes(_with_header_text(data, text))


def test_an_image_bfly_cannot_read_back_is_not_written(image):
    image.report = {"final_sqnr_db": float("nan")}
    with pytest.raises(ImageError, match="the report cannot be saved"):
        image.to_bytes()
    image.report = {"final_sqnr_db": "high"}
    with pytest.raises(ImageError, match="the report cannot be saved"):
        image.to_bytes()
