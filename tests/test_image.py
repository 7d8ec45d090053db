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
    text = json.dumps(header).encode()
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
