"""bfly dse: the configurations of a sweep, the Pareto front, the outputs and the command line,
with synthesis replaced by a fake (one real synthesis is marked long)."""

import csv
import json
import threading

import pytest

import bfly.gen.dse as dse
from cliutil import run
from bfly.hw.config import EngineConfig
from bfly.gen.dse import sweep_configs, dense_match, run_sweep, pareto_front, pareto_fronts, write_outputs, FIELDS
from bfly.gen.synth import SynthError, synthesize as real_synthesize

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fake_report(cfg):
    return {"fmax_mhz": 200.0 - cfg.multipliers / 10,
            "used": {"luts": 50 * cfg.multipliers + 100, "ffs": 20 * cfg.multipliers,
                     "dsps": cfg.multipliers, "brams": 1, "lutram": 0},
            "available": {"luts": 83640, "ffs": 83640, "dsps": 156, "brams": 208, "lutram": 0},
            "multipliers": cfg.multipliers, "latency_cycles": 3 * cfg.n_stages, "cached": False}


@pytest.fixture
def fake_synth(monkeypatch):
    """Synthesis that fits below 200 multipliers and 'does not fit' above; records its calls."""
    calls = []
    lock = threading.Lock()

    def synthesize(cfg, target, freq_mhz, root=None, **kwargs):
        with lock:
            calls.append((cfg.id, target, freq_mhz))
        if cfg.multipliers > 200:
            raise SynthError("place and route (nextpnr) failed: ERROR: design does not fit")
        return fake_report(cfg)
    monkeypatch.setattr(dse, "synthesize", synthesize)
    return calls


def ids(configs):
    return [c.id for c in configs]


# --- the configurations -----------------------------------------------------------------------

def test_sweep_makes_butterflies_and_matched_dense_baselines():
    configs, skipped = sweep_configs([16], [2, 4], [0, 4])
    assert ids(configs) == [
        "n16_k2_d8w8", "dense16_d8w8_s8",             # 128 multipliers each: 16 PE x 8 SIMD
        "n16_k2_d8w8_l4", "dense16_d8w8_l4_s8",       # 32 multipliers each
        "n16_k4_d8w8", "n16_k4_d8w8_l4",              # their baselines are the same engines: once
    ]
    for cfg in configs:
        if not cfg.is_dense:
            base = next(c for c in configs if c.is_dense and c.multipliers == cfg.multipliers)
            assert base.interval > cfg.interval       # equal multipliers: the dense engine is slower
    assert skipped == []


def test_sweep_skips_and_reports_impossible_combinations():
    configs, skipped = sweep_configs([8, 48, 512], [2, 8], ["all", 3, 16], data_bits=6, weight_bits=5,
                                     dense=False)
    assert ids(configs) == ["n8_k2_d6w5", "n512_k2_d6w5", "n512_k2_d6w5_l16", "n512_k8_d6w5",
                            "n512_k8_d6w5_l16"]
    assert all(not c.is_dense for c in configs)
    text = "\n".join(skipped)
    assert "butterfly n=8 k=2 lanes 3: --lanes 3 must divide the widest stage's 8 outputs" in text
    assert "butterfly n=8 k=2 lanes 16: the same engine as butterfly n=8 k=2 lanes all" in text
    assert "butterfly n=8 k=8: one stage of radix n is the dense layer" in text
    assert "butterfly n=48 k=2: 48 is not a power of 2" in text
    assert "butterfly n=48 k=8: 48 is not a power of 8" in text
    assert len(skipped) == 7                         # and lanes 3 for both n=512 radices
    _, skipped = sweep_configs([512], [8], ["all"])
    assert skipped == ["dense n=512: --n must be an integer from 1 to 256, not 512"]


def test_dense_match_prefers_the_closest_then_larger_budget_then_the_lanes():
    assert dense_match(64, 768) == (64, 16)           # 512 and 1024 are equally close: 1024
    assert dense_match(64, 96, lanes=8) == (8, 16)    # 64 and 128: 128, PE 8 as the butterfly
    assert dense_match(16, 128) == (16, 8)
    assert dense_match(4, 16) == (4, 4)


# --- the sweep --------------------------------------------------------------------------------

def test_run_sweep_records_failures_and_goes_on(fake_synth):
    configs, _ = sweep_configs([16, 64], [4], [0, 4])
    seen = []
    rows = run_sweep(configs, "ecp5-85k", 125.0, jobs=3, progress=lambda d, t, r: seen.append((d, t)))
    assert [r["id"] for r in rows] == ids(configs)
    assert sorted(c[0] for c in fake_synth) == sorted(ids(configs))
    assert {c[1:] for c in fake_synth} == {("ecp5-85k", 125.0)}
    assert seen == [(i, len(configs)) for i in range(1, len(configs) + 1)]
    by_id = {r["id"]: r for r in rows}
    big = by_id["n64_k4_d8w8"]                        # 768 multipliers: "does not fit"
    assert big["status"] == "place and route (nextpnr) failed: ERROR: design does not fit"
    assert big["luts"] is None and big["pixels_per_s"] is None and big["multipliers"] == 768
    ok = by_id["n64_k4_d8w8_l4"]
    assert ok["status"] == "ok" and set(ok) == set(FIELDS)
    assert (ok["kind"], ok["n"], ok["k"], ok["lanes"], ok["simd"]) == ("butterfly", 64, 4, 4, 0)
    assert ok["interval"] == 16 and ok["pixels_per_clock"] == 1 / 16
    assert ok["multipliers"] == 48 and ok["dsps"] == 48 and ok["luts"] == 2500
    assert ok["fmax_mhz"] == pytest.approx(195.2)
    assert ok["pixels_per_s"] == pytest.approx(195.2e6 / 16)
    assert ok["latency_cycles"] == 9
    dense_row = by_id["dense64_d8w8_l4_s16"]
    assert dense_row["kind"] == "dense" and dense_row["k"] is None and dense_row["simd"] == 16


def test_run_sweep_survives_unexpected_errors(monkeypatch):
    def synthesize(cfg, target, freq_mhz, root=None, **kwargs):
        if cfg.n_in == 4:
            raise ValueError("two\nlines")
        return fake_report(cfg)
    monkeypatch.setattr(dse, "synthesize", synthesize)
    rows = run_sweep([EngineConfig.bft(4, 2), EngineConfig.bft(16, 4)], "ecp5-85k", jobs=2)
    assert rows[0]["status"] == "ValueError: two lines" and rows[1]["status"] == "ok"


# --- the Pareto front -------------------------------------------------------------------------

def row(id, n, dsps, luts, pps, kind="butterfly", status="ok"):
    return {"kind": kind, "id": id, "n": n, "dsps": dsps, "luts": luts, "pixels_per_s": pps,
            "status": status}


def test_pareto_front():
    rows = [row("a", 64, 10, 500, 1e6), row("b", 64, 20, 400, 4e6), row("c", 64, 20, 900, 3e6),
            row("d", 64, 40, 800, 4e6), row("e", 64, 80, 2000, 9e6), row("f", 64, 5, 100, 9e9, status="x"),
            row("g", 64, None, None, None, status="does not fit"), row("h", 64, 80, 2000, 9e6)]
    assert [r["id"] for r in pareto_front(rows, "dsps")] == ["a", "b", "e", "h"]   # ties both stay
    assert [r["id"] for r in pareto_front(rows, "luts")] == ["b", "e", "h"]
    assert pareto_front([], "dsps") == [] and pareto_front(rows[5:7], "dsps") == []


def test_pareto_fronts_are_per_n():
    rows = [row("small", 16, 10, 100, 9e6), row("big", 64, 50, 500, 1e6), row("big2", 64, 60, 600, 2e6),
            row("d", 64, 50, 500, 3e6, kind="dense")]
    assert {n: [r["id"] for r in f] for n, f in pareto_fronts(rows, "dsps").items()} == \
        {16: ["small"], 64: ["d"]}
    assert {n: [r["id"] for r in f] for n, f in pareto_fronts(rows, "dsps", "butterfly").items()} == \
        {16: ["small"], 64: ["big", "big2"]}


# --- the outputs ------------------------------------------------------------------------------

def test_write_outputs_round_trip(fake_synth, tmp_path):
    configs, skipped = sweep_configs([16, 64], [2, 4], ["all", 8])
    rows = run_sweep(configs, "ecp5-85k", jobs=2)
    out = tmp_path / "dse"
    names = write_outputs(rows, out, "ecp5-85k", skipped)
    assert names == ["dse.csv", "dse.json", "pareto.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    with open(out / "dse.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == FIELDS
        back = list(reader)
    assert [r["id"] for r in back] == [r["id"] for r in rows]
    for got, want in zip(back, rows):
        for key in FIELDS:
            assert got[key] == ("" if want[key] is None else str(want[key])), (want["id"], key)
    data = json.loads((out / "dse.json").read_text())
    assert data["target"] == "ecp5-85k" and data["rows"] == rows and data["skipped"] == skipped
    front64 = data["pareto"]["dsps"]["64"]
    assert front64["butterfly"] == [r["id"] for r in pareto_front(
        [r for r in rows if r["n"] == 64 and r["kind"] == "butterfly"], "dsps")]
    assert front64["butterfly"] and set(front64["all"]) <= {r["id"] for r in rows if r["n"] == 64}
    assert (out / "pareto.png").read_bytes().startswith(PNG_MAGIC)


def test_write_outputs_with_nothing_synthesized(tmp_path):
    rows = [dse._row(EngineConfig.bft(16, 4), status="yosys failed")]
    write_outputs(rows, tmp_path / "o", "ecp5-85k")
    assert (tmp_path / "o" / "pareto.png").read_bytes().startswith(PNG_MAGIC)
    assert json.loads((tmp_path / "o" / "dse.json").read_text())["pareto"] == {"dsps": {}, "luts": {}}


# --- the command line -------------------------------------------------------------------------

@pytest.mark.parametrize("argv,message", [
    (["--n", "64,x", "--k", "4"], "--n must be integers separated by commas, not '64,x'"),
    (["--n", "64", "--k", "4.5"], "--k must be integers separated by commas, not '4.5'"),
    (["--n", "", "--k", "4"], "--n needs at least one value"),
    (["--n", "64", "--k", " , "], "--k needs at least one value"),
    (["--n", "64", "--k", "4", "--lanes", "all,x"], "--lanes must be integers separated by commas (or all)"),
    (["--n", "64", "--k", "4", "--lanes", "-2"], "--lanes values must be at least 0, not -2"),
    (["--n", "64", "--k", "1"], "--k values must be at least 2, not 1"),
    (["--n", "64", "--k", "4", "--target", "xc7"], "unknown target 'xc7'; choose from ecp5-85k"),
    (["--n", "64", "--k", "4", "--jobs", "0"], "--jobs must be at least 1, not 0"),
    (["--n", "64", "--k", "4", "--freq", "0"], "--freq: must be a positive number, not 0"),
    (["--n", "64", "--k", "4", "--data-bits", "30"], "--data-bits must be an integer from 2 to 18, not 30"),
    (["--n", "48", "--k", "4"], "no configuration to synthesize: butterfly n=48 k=4: 48 is not a power of 4"),
])
def test_dse_user_errors_are_one_line(capsys, tmp_path, fake_synth, argv, message):
    code, _, err = run(capsys, "dse", *argv, "-o", str(tmp_path / "out"))
    assert code == 2
    assert err.startswith("bfly dse: error: ") and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists() and fake_synth == []


def test_dse_command(capsys, tmp_path, fake_synth):
    out = tmp_path / "out"
    code, text, err = run(capsys, "dse", "--n", "16,64", "--k", "4", "--lanes", "all,8,32",
                          "--jobs", "2", "--freq", "150", "-o", str(out))
    assert code == 0, err
    assert "skipped butterfly n=16 k=4 lanes 32: the same engine as" in text
    made = {c[0] for c in fake_synth}
    assert "n64_k4_d8w8_l32" in made and "dense16_d8w8_s8" in made and len(made) == len(fake_synth)
    assert {c[2] for c in fake_synth} == {150.0}
    assert "does not fit" in text                     # n64_k4 fully parallel: 768 multipliers
    assert "* n16_k4_d8w8 " in text
    for name in ("dse.csv", "dse.json", "pareto.png"):
        assert f"wrote {out / name}" in text
    rows = json.loads((out / "dse.json").read_text())["rows"]
    assert {r["id"] for r in rows} == made


def test_dse_no_dense_and_all_failing(capsys, tmp_path, fake_synth):
    code, _, err = run(capsys, "dse", "--n", "64", "--k", "2,8", "--no-dense", "-o", str(tmp_path / "o"))
    assert code == 1
    assert err.count("\n") == 1 and "none of the 2 configurations was synthesized" in err
    assert all(not c[0].startswith("dense") for c in fake_synth)
    with open(tmp_path / "o" / "dse.csv", newline="") as f:      # the statuses are still written
        assert [r["status"] for r in csv.DictReader(f)] == [
            "place and route (nextpnr) failed: ERROR: design does not fit"] * 2


@pytest.mark.long
def test_dse_real_synthesis(capsys, tmp_path, monkeypatch):
    def synthesize_in_tmp(cfg, target, freq_mhz, root=None, **kwargs):
        return real_synthesize(cfg, target, freq_mhz, root=tmp_path / "synth", **kwargs)
    monkeypatch.setattr(dse, "synthesize", synthesize_in_tmp)
    out = tmp_path / "dse"
    code, text, err = run(capsys, "dse", "--n", "4", "--k", "2", "--lanes", "all", "--no-dense",
                          "--freq", "50", "-o", str(out))
    assert code == 0, err
    (r,) = json.loads((out / "dse.json").read_text())["rows"]
    assert r["id"] == "n4_k2_d8w8" and r["status"] == "ok"
    assert r["dsps"] == r["multipliers"] == 16 and r["luts"] > 0 and r["fmax_mhz"] > 50
    assert r["pixels_per_s"] == pytest.approx(r["fmax_mhz"] * 1e6)
    assert (out / "pareto.png").read_bytes().startswith(PNG_MAGIC)


# --- make bench's table -----------------------------------------------------------------------

def test_bench_table_from_a_saved_run(tmp_path, capsys):
    from bfly.gen import fpga_bench
    bft, dense = fpga_bench.PAIRS[0]
    rows = [dse._row(bft, fake_report(bft)),
            dse._row(dense, status="place and route (nextpnr) did not finish within 40 minutes; "
                                   "see /somewhere/tools.log")]
    saved = tmp_path / "fpga.json"
    saved.write_text(json.dumps({"target": "ecp5-85k", "requested_mhz": 200.0, "rows": rows}))
    assert fpga_bench.main(["--from-json", str(saved), "--no-readme"]) == 0
    out = capsys.readouterr().out
    assert f"| `{dense.id}` | 128 | place and route (nextpnr) did not finish within 40 minutes |" in out
    assert "/somewhere" not in out                       # the log's path stays in the JSON
    assert f"| 16 | `{bft.id}` | `{dense.id}` | n/a | 2.00x | n/a |" in out
    assert "fallback script" not in out


def test_bench_table_names_the_fallback_script(tmp_path, capsys):
    from bfly.gen import fpga_bench
    bft, dense = fpga_bench.PAIRS[0]
    rows = [dse._row(bft, dict(fake_report(bft), fallback_script=True)),
            dse._row(dense, fake_report(dense))]
    assert rows[0]["yosys_fallback"] and rows[1]["yosys_fallback"] is False
    saved = tmp_path / "fpga.json"
    saved.write_text(json.dumps({"target": "ecp5-85k", "requested_mhz": 200.0, "rows": rows}))
    assert fpga_bench.main(["--from-json", str(saved), "--no-readme"]) == 0
    out = capsys.readouterr().out
    assert "Synthesized with the fallback script" in out
    assert out.split("fallback script")[1].split("\n")[0].endswith(f"`{bft.id}`.")


def test_bench_table_names_the_router(tmp_path, capsys):
    """The table's header names the nextpnr router its run used (a saved run from before the
    field names none)."""
    from bfly.gen import fpga_bench
    assert fpga_bench._router("ecp5-85k") == "router1" and fpga_bench._router("ice40-up5k") is None
    bft, dense = fpga_bench.PAIRS[0]
    rows = [dse._row(bft, fake_report(bft)), dse._row(dense, fake_report(dense))]
    for extra, header in (({"router": "router1"}, "nextpnr (router1), seed 1"),
                          ({}, "nextpnr, seed 1")):
        saved = tmp_path / "fpga.json"
        saved.write_text(json.dumps({"target": "ecp5-85k", "requested_mhz": 200.0, "rows": rows,
                                     **extra}))
        assert fpga_bench.main(["--from-json", str(saved), "--no-readme"]) == 0
        assert header in capsys.readouterr().out
