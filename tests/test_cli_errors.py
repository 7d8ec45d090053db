"""The command line under faulty and hostile input (issue 19, items 9-13, 16, 17): one clear line,
exit 2, nothing written, and no tool started. Nothing here builds or synthesizes."""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bfly.gen.cli import main
from cliutil import run
from bfly.gen.files import write_files
from bfly.hw.config import EngineConfig
from bfly.sim.model import random_params
from bfly.sw.image import WeightImage




def one_line_error(capsys, *argv, code=2):
    got, out, err = run(capsys, *argv)
    assert got == code, (argv, out, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture
def no_tools(monkeypatch):
    """Fail the test if a simulation, synthesis, sweep or board build starts."""
    import bfly.gen.build
    import bfly.gen.dse
    import bfly.gen.synth
    import bfly.sim.api

    def started(*args, **kwargs):
        raise AssertionError("a tool ran before the arguments were checked")
    for module, name in ((bfly.sim.api, "simulate"), (bfly.gen.synth, "synthesize"),
                         (bfly.gen.dse, "run_sweep"), (bfly.gen.build, "build_board")):
        monkeypatch.setattr(module, name, started)


@pytest.fixture
def image_file(tmp_path):
    cfg = EngineConfig.bft(4, 2, epilogue=True)       # small: quick to generate
    img = WeightImage(cfg, random_params(cfg, np.random.default_rng(0)), 0.03, 0.05,
                      report={"final_sqnr_db": 30.0})
    path = tmp_path / "blk.bfly"
    img.save(path)
    return path


def _manifest(tmp_path, edit=None, name="manifest.json"):
    cfg = EngineConfig.bft(16, 4)
    man = {"top": cfg.name, "config": cfg.to_dict()}
    if edit:
        edit(man)
    path = tmp_path / name
    path.write_text(json.dumps(man))
    return path


# --- item 9: bfly inspect of a hand-edited image

def test_inspect_refuses_an_image_with_a_bad_report(capsys, tmp_path, image_file):
    import struct
    import zlib
    data = image_file.read_bytes()
    hlen = struct.unpack_from("<I", data, 12)[0]
    header = json.loads(data[16:16 + hlen])
    header["report"] = {"final_sqnr_db": "30", "stages": "x"}
    text = json.dumps(header).encode()
    body = data[:12] + struct.pack("<I", len(text)) + text + data[16 + hlen:-4]
    bad = tmp_path / "bad.bfly"
    bad.write_bytes(body + struct.pack("<I", zlib.crc32(body)))
    err = one_line_error(capsys, "inspect", bad)
    assert "bad.bfly: report: " in err and "wrong type" in err


def test_inspect_a_report_without_calibration_pixels(capsys, image_file):
    code, out, _ = run(capsys, "inspect", image_file)
    assert code == 0 and out.strip().endswith("final SQNR 30.0 dB")


# --- item 10: --config-from a manifest whose chain is not a list of rows

@pytest.mark.parametrize("chain,message", [
    (5, '"chain" must be a list of [p, q, r, s, t] rows, not 5'),
    ([16, 16, 4, 4, 1], '"chain" must be a list of [p, q, r, s, t] rows'),
    ("abcde", '"chain" must be a list of'),
    ([[16, 16, 4, 4]], "factor 0: expected five integers"),
    ([{"p": 1}], '"chain" must be a list of'),
])
def test_config_from_a_manifest_with_a_bad_chain(capsys, tmp_path, chain, message):
    man = _manifest(tmp_path, lambda m: m["config"].update(chain=chain))
    err = one_line_error(capsys, "gen", "--config-from", man, "-o", tmp_path / "out")
    assert message in err
    assert not (tmp_path / "out").exists()


def test_config_from_a_manifest_that_contradicts_itself(capsys, tmp_path):
    man = _manifest(tmp_path, lambda m: m["config"].update(n_in=64))
    err = one_line_error(capsys, "gen", "--config-from", man, "-o", tmp_path / "out")
    assert '"n_in" is 64, but the chain and options give 16' in err


def test_config_from_with_overrides_is_not_a_contradiction(capsys, tmp_path):
    man = _manifest(tmp_path)
    code, out, _ = run(capsys, "gen", "--config-from", man, "--lanes", "4", "--data-bits", "6",
                       "--name", "folded", "-o", tmp_path / "out")
    assert code == 0, out
    cfg = json.loads((tmp_path / "out" / "manifest.json").read_text())["config"]
    assert (cfg["lanes"], cfg["data_bits"], cfg["interval"], cfg["name"]) == (4, 6, 4, "folded")


# --- item 11: empty values are errors, not "absent"

@pytest.mark.parametrize("argv", [
    ["gen", "--radices", "", "-o", "out"],
    ["gen", "--chain", "", "-o", "out"],
    ["gen", "--config-from", "", "-o", "out"],
    ["gen", "--radices", " ", "-o", "out"],
    ["gen", "--n", "16", "-o", ""],
    ["dse", "--n", "16", "--k", "4", "-o", ""],
    ["synth", "--n", "16", "-o", ""],
    ["train-demo", "-o", ""],
    ["demo", "-o", ""],
    ["build", "--n", "16", "-o", ""],
    ["run", "--port", "socket://127.0.0.1:9", "--input", "x.npy", "-o", ""],
])
def test_empty_values_are_errors(capsys, tmp_path, monkeypatch, no_tools, argv):
    monkeypatch.chdir(tmp_path)
    err = one_line_error(capsys, *argv)
    assert "empty" in err and "argument " in err
    assert list(tmp_path.iterdir()) == []


# --- item 12: a one-factor chain on one line

@pytest.mark.parametrize("text", ["[4, 4, 4, 4, 1]\n", "[4, 4, 4, 4, 1]", '{"chain": [4, 4, 4, 4, 1]}',
                                  "4 4 4 4 1", "[[4, 4, 4, 4, 1]]"])
def test_one_factor_chain_on_one_line(capsys, tmp_path, text):
    chain = tmp_path / "chain.txt"
    chain.write_text(text)
    code, out, err = run(capsys, "gen", "--chain", chain, "-o", tmp_path / "out")
    assert code == 0, err
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["config"]["chain"] == [[4, 4, 4, 4, 1]]


@pytest.mark.parametrize("text,message", [
    ("[16, 16, 4, 3, 1]", "factor 0: [p=16, q=16, r=4, s=3, t=1] is not a butterfly factor"),
    ("[4, 4, 4.5, 4, 1]", "factor 0: expected five integers [p, q, r, s, t], not [4, 4, 4.5, 4, 1]"),
    ("[4, 4, 4, 4]", "factor 0: expected five integers"),
    ('[4, 4, 4, 4, "1"]', "factor 0: expected five integers"),
    ("[[4, 4, 4, 4, 1], 5]", "expected a list of [p, q, r, s, t] rows"),
])
def test_one_line_chain_shows_the_real_error(capsys, tmp_path, text, message):
    chain = tmp_path / "chain.txt"
    chain.write_text(text)
    err = one_line_error(capsys, "gen", "--chain", chain, "-o", tmp_path / "out")
    assert message in err


# --- item 13: partial output

def test_write_files_swaps_an_existing_directory_whole(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("a.v", "manifest.json", "keep.txt"):
        (out / name).write_text("old " + name)
    calls = []
    real_replace = os.replace

    def replace(src, dst):                 # a rename that fails after the first file
        calls.append(dst)
        if len(calls) > 1:
            raise OSError(errno.EIO, "simulated failure", str(dst))
        real_replace(src, dst)
    monkeypatch.setattr(os, "replace", replace)
    write_files(out, {"a.v": "new a", "manifest.json": "new m"})
    assert {p.name: p.read_text() for p in out.iterdir()} == {
        "a.v": "new a", "manifest.json": "new m", "keep.txt": "old keep.txt"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]       # nothing left beside


def test_write_files_failure_leaves_the_old_directory(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.v").write_text("old a")
    (out / "b.v").write_text("old b")

    class Unwritable:
        pass
    with pytest.raises(TypeError):
        write_files(out, {"a.v": "new a", "b.v": Unwritable()})
    assert {p.name: p.read_text() for p in out.iterdir()} == {"a.v": "old a", "b.v": "old b"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_gen_into_a_directory_with_a_name_in_the_way_changes_nothing(capsys, tmp_path):
    out = tmp_path / "out"
    code, _, _ = run(capsys, "gen", "--n", "4", "--k", "2", "-o", out)
    assert code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    top = next(out.glob("*.v"))
    (out / "manifest.json").unlink()
    (out / "manifest.json").mkdir()                 # a directory where a file goes
    top.write_text("old")
    err = one_line_error(capsys, "gen", "--n", "4", "--k", "2", "-o", out, code=1)
    assert "manifest.json" in err and "bfly-tmp" not in err
    assert top.read_text() == "old"                 # not half-written
    assert sorted(p.name for p in out.iterdir()) == sorted(before)


def test_write_files_falls_back_inside_when_the_swap_cannot_rename(tmp_path, monkeypatch):
    """A mount point (or a bind mount ismount does not see): renaming it fails, EBUSY or EXDEV."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("keep")
    real_rename = os.rename

    def rename(src, dst):
        if Path(src) == out:
            raise OSError(errno.EXDEV, "Invalid cross-device link", str(src))
        real_rename(src, dst)
    monkeypatch.setattr(os, "rename", rename)
    write_files(out, {"a.v": "a", "b.v": "b"})
    assert {p.name: p.read_text() for p in out.iterdir()} == {"a.v": "a", "b.v": "b", "keep.txt": "keep"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_write_files_on_a_mount_point_builds_inside(tmp_path, monkeypatch):
    out = tmp_path / "mnt"
    out.mkdir()
    monkeypatch.setattr(os.path, "ismount", lambda p: Path(p) == out)
    parent_writes = []
    real_mkdtemp = __import__("tempfile").mkdtemp

    def mkdtemp(prefix="", dir=None):
        parent_writes.append(Path(dir))
        return real_mkdtemp(prefix=prefix, dir=dir)
    monkeypatch.setattr("tempfile.mkdtemp", mkdtemp)
    write_files(out, {"a.v": "a", "b.v": "b"})
    assert parent_writes == [out]                   # the temporary directory was made inside
    assert sorted(p.name for p in out.iterdir()) == ["a.v", "b.v"]


def test_demo_checks_pixels_before_writing(capsys, tmp_path, no_tools):
    err = one_line_error(capsys, "demo", "-o", tmp_path / "demo", "--pixels", "0")
    assert "--pixels must be at least 1" in err
    assert not (tmp_path / "demo").exists()


# --- item 16: numbers the tools would misread

@pytest.mark.parametrize("argv,message", [
    (["synth", "--n", "16", "--freq", "nan"], "argument --freq: must be a positive number, not nan"),
    (["synth", "--n", "16", "--freq", "inf"], "argument --freq: must be a positive number, not inf"),
    (["synth", "--n", "16", "--freq", "0"], "argument --freq: must be a positive number, not 0"),
    (["synth", "--n", "16", "--freq", "-5"], "argument --freq: must be a positive number"),
    (["synth", "--n", "16", "--time-limit", "nan"], "--time-limit must be positive, not nan"),
    (["dse", "--n", "16", "--k", "4", "--freq", "nan", "-o", "DIR"], "argument --freq: must be a positive"),
    (["sim", "--n", "16", "--seed", "-1"], "argument --seed: must be an integer from 0 to 4294967295, not -1"),
    (["sim", "--n", "16", "--seed", str(2 ** 32)], "argument --seed: must be an integer from 0"),
    (["synth", "--n", "16", "--seed", "-3"], "argument --seed: must be an integer from 0"),
    (["train-demo", "--seed", "x", "-o", "DIR"], "argument --seed: expected an integer"),
    (["build", "--n", "16", "--baud", "-1", "-o", "DIR"], "--baud -1: the ulx3s board's UART runs at 300 to 18,750,000 baud"),
    (["build", "--n", "16", "--baud", "0", "-o", "DIR"], "--baud 0: the ulx3s board's UART runs at 300"),
    (["build", "--n", "16", "--baud", "1", "-o", "DIR"], "--baud 1: "),
    (["build", "--n", "16", "--baud", str(10 ** 8), "-o", "DIR"], "--baud 100000000: "),
    (["build", "--n", "16", "--board", "icebreaker", "--baud", "4000000", "-o", "DIR"],
     "--baud 4000000: the icebreaker board's UART runs at 300 to 3,000,000 baud"),
    (["build", "--n", "16", "--board", "icebreaker", "--baud", "2500000", "-o", "DIR"],
     "2500000 baud cannot be made from a 12 MHz clock"),
    (["build", "--n", "16", "--engine-mhz", "2", "-o", "DIR"],
     "the PLL cannot make an engine clock of at most 2 MHz with a link clock that makes 3,000,000 baud"),
    (["build", "--n", "16", "--engine-mhz", "0", "-o", "DIR"], "argument --engine-mhz: must be a positive number"),
    (["build", "--n", "16", "--board", "icebreaker", "--engine-mhz", "40", "-o", "DIR"],
     "the icebreaker has no PLL here"),
])
def test_numbers_are_checked_before_any_tool_runs(capsys, tmp_path, no_tools, argv, message):
    argv = [str(tmp_path / "out") if a == "DIR" else a for a in argv]
    err = one_line_error(capsys, *argv)
    assert message in err, err
    assert not (tmp_path / "out").exists()


def test_load_and_run_check_the_baud_too(capsys, image_file):
    err = one_line_error(capsys, "load", "--port", "socket://127.0.0.1:9", "--baud", "0", image_file)
    assert "--baud 0: the ulx3s board's UART runs at 300" in err


@pytest.mark.parametrize("option", ["--config-from", "--chain"])
def test_deep_json_is_a_user_error(capsys, tmp_path, option):
    deep = tmp_path / "deep.json"
    deep.write_text('{"chain": ' + "[" * 100_000 + "]" * 100_000 + "}")
    err = one_line_error(capsys, "gen", option, deep, "-o", tmp_path / "out")
    assert "nested too deeply" in err


def test_config_from_refuses_nan(capsys, tmp_path):
    man = tmp_path / "m.json"
    man.write_text('{"config": {"chain": [[4, 4, 4, 4, 1]], "data_bits": NaN}}')
    err = one_line_error(capsys, "gen", "--config-from", man, "-o", tmp_path / "out")
    assert "NaN is not a JSON number" in err


@pytest.fixture
def models(tmp_path):
    import torch
    from bfly.examples.digits import DigitsNet, save_model
    torch.manual_seed(0)
    paths = {}
    for kind in ("bft", "dense"):
        paths[kind] = tmp_path / f"{kind}.pt"
        save_model(DigitsNet(kind).eval(), paths[kind])
    return paths


def test_export_refuses_what_it_cannot_use(capsys, tmp_path, models):
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(0).random((8, 1, 8, 8), dtype=np.float32))
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full((8, 1, 8, 8), np.nan, dtype=np.float32))
    zero = tmp_path / "zero.npy"
    np.save(zero, np.zeros((8, 1, 8, 8), dtype=np.float32))
    text = tmp_path / "text.npy"
    text.write_text("1 2 3\n")
    out = tmp_path / "q"
    for model, data, message in [
        (models["dense"], calib, "the model has no BFT blocks to export"),
        (models["bft"], models["bft"], "a zip archive (.npz or .pt), not a .npy array file"),
        (models["bft"], nan, "hold NaN or infinite values"),
        (models["bft"], zero, "are all zero"),
        (models["bft"], text, "not a .npy array file (calibration inputs)"),
        (models["bft"], tmp_path / "missing.npy", "cannot read calibration inputs"),
    ]:
        err = one_line_error(capsys, "export", model, "--calib", data, "-o", out)
        assert message in err and "unsafely" not in err, err
        assert not out.exists()


# --- item 17: temporary paths, dispatch on content, a closed pipe

@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs /proc")
def test_errors_do_not_name_temporary_paths(capsys):
    err = one_line_error(capsys, "gen", "--n", "4", "--k", "2", "-o", "/proc/bfly_out", code=1)
    assert err.rstrip().endswith(": /proc/bfly_out") and "bfly-tmp" not in err and "/proc/." not in err


def test_config_from_dispatches_on_content(capsys, tmp_path, image_file):
    as_json = tmp_path / "image.json"
    as_json.write_bytes(image_file.read_bytes())
    code, _, err = run(capsys, "gen", "--config-from", as_json, "-o", tmp_path / "a")
    assert code == 0, err
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["config"]["epilogue"] is True
    man = tmp_path / "a" / "manifest.json"
    as_bfly = tmp_path / "manifest.bfly"
    as_bfly.write_text(man.read_text())
    code, _, err = run(capsys, "gen", "--config-from", as_bfly, "-o", tmp_path / "b")
    assert code == 0, err
    assert (tmp_path / "b" / "manifest.json").read_text() == man.read_text()


def test_broken_pipe_is_quiet(capsys, monkeypatch, image_file):
    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    code = main(["inspect", "--json", str(image_file)])
    monkeypatch.undo()
    assert code == 141 and capsys.readouterr().err == ""


def test_broken_pipe_is_quiet_in_a_real_pipe(image_file):
    """As ``bfly inspect --json IMAGE | head -c 0``: the reader has gone before bfly writes."""
    r, w = os.pipe()
    os.close(r)
    res = subprocess.run([sys.executable, "-m", "bfly.gen.cli", "inspect", "--json", str(image_file)],
                         stdout=w, stderr=subprocess.PIPE, text=True)
    os.close(w)
    assert res.returncode == 141 and res.stderr == ""
