"""The bfly command line: outputs, the one-line errors a user sees, and the simulation check."""

import json
import re
import subprocess
import sys

import pytest

from bfly.gen.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv,message", [
    (["gen", "--n", "48", "--k", "4"], "48 is not a power of 4; use --radices, e.g. 4,4,3"),
    (["gen", "--n", "64", "--data-bits", "20"], "--data-bits must be an integer from 2 to 18, not 20"),
    (["gen", "--radices", "4,a"], "--radices must be integers separated by commas"),
    (["gen", "--chain", "/nonexistent/chain.txt"], "cannot read /nonexistent/chain.txt"),
    (["gen", "--n", "16", "--radices", "4,4"], "choose one of --n, --radices"),
    (["sim", "--n", "16", "--k", "4", "--stall-prob", "1.5"], "--stall-prob must be in [0, 1)"),
    (["sim", "--n", "16", "--k", "4", "--pixels", "0"], "--pixels must be at least 1"),
    (["gen", "--n", "16", "--k", "4", "--lanes", "3"], "--lanes 3 must divide the widest stage's 16 outputs"),
    (["gen", "--dense", "--n", "16", "--k", "4"], "--dense takes --n only"),
    (["gen", "--dense", "--radices", "4,4"], "--dense takes --n only"),
    (["synth", "--n", "4", "--k", "2", "--time-limit", "0"], "--time-limit must be positive, not 0"),
    (["dse", "--n", "4", "--k", "2", "--time-limit", "-1", "-o", "/nonexistent/dse"],
     "--time-limit must be positive, not -1"),
])
def test_user_errors_are_one_line(capsys, tmp_path, argv, message):
    if argv[0] == "gen":
        argv = argv + ["-o", str(tmp_path / "out")]
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_bad_chain_file_names_the_factor(capsys, tmp_path):
    chain = tmp_path / "chain.txt"
    chain.write_text("[16, 16, 4, 4, 1]\n[16, 8, 2, 1, 8]\n")
    code, _, err = run(capsys, "gen", "--chain", str(chain), "-o", str(tmp_path / "out"))
    assert code == 2
    assert "factor 0 writes 16 channels but factor 1 reads 8" in err


def test_gen_chain_radices_and_config_from(capsys, tmp_path):
    chain = tmp_path / "debut.json"
    chain.write_text('{"chain": [[32, 64, 2, 4, 4], [16, 32, 1, 2, 8]]}')
    code, out, _ = run(capsys, "gen", "--chain", str(chain), "--data-bits", "6", "-o", str(tmp_path / "a"))
    assert code == 0 and "wrote" in out
    top = next((tmp_path / "a").glob("*.v"))
    code, _, _ = run(capsys, "gen", "--config-from", str(tmp_path / "a" / "manifest.json"),
                     "-o", str(tmp_path / "b"))
    assert code == 0
    assert (tmp_path / "b" / top.name).read_bytes() == top.read_bytes()
    code, out, _ = run(capsys, "gen", "--radices", "4,4,3", "--name", "pw48", "-o", str(tmp_path / "c"))
    assert code == 0 and (tmp_path / "c" / "pw48.v").exists()
    assert "528 multipliers (a dense 48x48 layer needs 2304 fully parallel)" in out


def test_console_script_errors_without_traceback(tmp_path):
    bfly = [sys.executable, "-m", "bfly.gen.cli"]
    res = subprocess.run(bfly + ["gen", "--n", "48", "--k", "4", "-o", str(tmp_path / "x")],
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.strip() == "bfly gen: error: 48 is not a power of 4; use --radices, e.g. 4,4,3"
    res = subprocess.run(bfly + ["gen", "--rounding", "up", "-o", str(tmp_path / "x")],
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.startswith("bfly gen: error: argument --rounding") and res.stderr.count("\n") == 1


def test_sim_prints_pass_line(capsys):
    code, out, _ = run(capsys, "sim", "--n", "16", "--k", "4", "--pixels", "400", "--seed", "3",
                       "--stall-prob", "0.3", "--commits", "1")
    assert code == 0, out
    last = out.strip().splitlines()[-1]
    m = re.fullmatch(r"PASS 400 pixels bit-exact in (\d+) cycles, [\d,]+ pixels/s checked", last)
    assert m and int(m.group(1)) > 400 + 14      # stalls cost cycles beyond N + latency - 1


def test_sim_without_stalls_takes_n_plus_latency_minus_one(capsys):
    from bfly.hw.config import EngineConfig
    from bfly.gen.emit import elaborate
    latency = elaborate(EngineConfig.bft(16, 4))[1].latency
    code, out, _ = run(capsys, "sim", "--n", "16", "--k", "4", "--pixels", "500", "--frames", "1")
    assert code == 0
    assert out.strip().splitlines()[-1].startswith(
        f"PASS 500 pixels bit-exact in {500 + latency - 1} cycles, ")


def test_train_export_inspect(capsys, tmp_path):
    out = tmp_path / "digits"
    code, text, _ = run(capsys, "train-demo", "-o", str(out), "--epochs", "2")
    assert code == 0 and "BFT (k=4)" in text
    assert {p.name for p in out.iterdir()} == {"model.pt", "dense.pt", "calib.npy", "test.npz",
                                               "train_report.json"}
    code, text, _ = run(capsys, "export", str(out / "model.pt"), "--calib", str(out / "calib.npy"),
                        "-o", str(out / "image"))
    assert code == 0 and "golden model" in text
    assert sorted(p.name for p in (out / "image").iterdir()) == [
        "block1.bfly", "block2.bfly", "block3.bfly", "network.json"]
    code, text, _ = run(capsys, "inspect", str(out / "image" / "block3.bfly"))
    assert code == 0 and "stage 2: [p,q,r,s,t] = [64, 64, 4, 4, 1]" in text and "SQNR" in text
    code, text, _ = run(capsys, "inspect", "--json", str(out / "image" / "block2.bfly"))
    info = json.loads(text)
    assert info["chain"] == [[16, 16, 4, 4, 4], [16, 16, 4, 4, 1], [64, 16, 4, 1, 1]]
    assert len(info["shifts"]) == 3 and "final_sqnr_db" in info["report"]


def test_sw_command_errors_are_one_line(capsys, tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    bad = tmp_path / "bad.bfly"
    bad.write_bytes(b"BFLYWIMG" + bytes(40))
    calib = tmp_path / "calib.npy"
    import numpy as np
    np.save(calib, np.zeros((4, 3, 8, 8), dtype=np.float32))
    for argv, message in [
        (["export", str(junk), "--calib", str(calib), "-o", str(tmp_path / "o")], "not a torch weights file"),
        (["inspect", str(bad)], "bad.bfly: "),
        (["inspect", str(tmp_path / "missing.bfly")], "cannot read"),
        (["train-demo", "-o", str(tmp_path / "t"), "--epochs", "0"], "--epochs must be at least 1"),
    ]:
        code, _, err = run(capsys, *argv)
        assert code == 2 and message in err and err.count("\n") == 1, (argv, err)
    assert not (tmp_path / "o").exists() and not (tmp_path / "t").exists()


def test_gen_dense_folded(capsys, tmp_path):
    code, out, _ = run(capsys, "gen", "--dense", "--n", "16", "--lanes", "4", "--simd", "8",
                       "-o", str(tmp_path / "d"))
    assert code == 0
    assert "32 multipliers (a dense 16x16 layer needs 256 fully parallel)" in out
    assert "1 pixel every 8 clocks" in out
    man = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert man["config"]["chain"] == [[16, 16, 16, 16, 1]]
    assert (man["config"]["lanes"], man["config"]["simd"], man["config"]["interval"]) == (4, 8, 8)


def _subcommands(group):
    """The subcommand names ``group`` registers, on a parser of its own."""
    import argparse
    sub = argparse.ArgumentParser().add_subparsers()
    group.register(sub)
    return list(sub.choices)


def test_every_group_subcommand_is_in_help_and_has_help(capsys):
    import importlib
    import pkgutil
    import bfly.gen.cli as cli
    modules = [importlib.import_module(f"bfly.gen.cli.{m.name}")
               for m in pkgutil.iter_modules(cli.__path__) if m.name != "__main__"]
    groups = [m for m in modules if hasattr(m, "register")]
    assert len(groups) >= 5 and set(groups) == set(cli.GROUPS)
    names = [name for group in cli.GROUPS for name in _subcommands(group)]
    assert len(names) == len(set(names))
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    listed = re.findall(r"^    (\S+)", capsys.readouterr().out, re.M)
    assert e.value.code == 0 and listed == names
    for name in names:
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        out = capsys.readouterr().out
        assert e.value.code == 0 and out.startswith(f"usage: bfly {name} "), name


def test_choices_come_from_the_tables():
    from bfly.gen.cli import build_parser
    from bfly.gen.synth import TARGETS
    from bfly.hw.boards import BOARDS
    from bfly.hw.config import ROUNDING_MODES, OVERFLOW_MODES
    from bfly.hw.hostlink import MAX_ENGINES
    subs = next(a for a in build_parser()._actions if a.dest == "command").choices
    choices = {(cmd, a.dest): list(a.choices) for cmd, p in subs.items() for a in p._actions if a.choices}
    assert choices == {
        **{(cmd, "rounding"): list(ROUNDING_MODES) for cmd in ("gen", "sim", "synth", "build", "sim-board",
                                                              "export")},
        **{(cmd, "overflow"): list(OVERFLOW_MODES) for cmd in ("gen", "sim", "synth", "build", "sim-board",
                                                              "export")},
        **{(cmd, "target"): list(TARGETS) for cmd in ("gen", "synth")},
        **{(cmd, "board"): list(BOARDS) for cmd in ("build", "load", "run", "selftest", "evaluate")},
        **{(cmd, "engine"): list(range(MAX_ENGINES)) for cmd in ("load", "run", "selftest")},
    }


@pytest.mark.parametrize("command", ["load", "run"])
def test_load_and_run_talk_at_the_built_boards_uart_rate(capsys, monkeypatch, tmp_path, command):
    """The baud rate load/run open the port at, by default and with --board, is the rate of the
    UART that bfly build puts on that board (its clock over the divisor the board top derives)."""
    import inspect
    import numpy as np
    import bfly.sw.driver as driver
    import bfly.sw.image as image
    from bfly.gen.build import board_design
    from bfly.gen.cli import build_parser
    from bfly.hw.boards import BOARDS
    from bfly.hw.config import EngineConfig
    transport, opened = driver.SerialTransport, []

    class NoBoard:
        def __init__(self, url, baud, timeout):
            opened.append(baud)
            raise driver.LinkError("no board here")
    monkeypatch.setattr(driver, "SerialTransport", NoBoard)
    monkeypatch.setattr(image.WeightImage, "load", staticmethod(lambda path: None))
    np.save(tmp_path / "fmap.npy", np.zeros((4, 1, 1), dtype=np.int64))
    tail = (["w.bfly"] if command == "load" else
            ["--input", str(tmp_path / "fmap.npy"), "-o", str(tmp_path / "out.npy")])
    cfg = EngineConfig.bft(4, 2)
    built = build_parser().parse_args(["build", "-o", str(tmp_path)]).board
    cases = [(built, [])] + [(name, ["--board", name]) for name in BOARDS]
    for board, argv in cases:
        code, _, err = run(capsys, command, "--port", "/dev/ttyUSB9", *argv, *tail)
        assert code == 2 and err == f"bfly {command}: error: /dev/ttyUSB9: no board here\n"
        design = board_design(cfg, board)
        link_hz = design.pll.link_hz if design.pll else BOARDS[board].clk_hz
        assert opened[-1] == pytest.approx(link_hz / design.board.divisor, rel=0.02)
        assert opened[-1] == BOARDS[board].baud
    assert len(opened) == len(cases)
    run(capsys, command, "--port", "/dev/ttyUSB9", "--board", "icebreaker", "--baud", "115200", *tail)
    assert opened[-1] == 115200
    assert inspect.signature(transport).parameters["baud"].default == BOARDS[built].baud   # the driver's own
