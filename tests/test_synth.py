"""bfly synth: the YoWASP flow and its report (slow: marked long, run by make test-long)."""

import pytest

from gen.config import EngineConfig
from gen.synth import synthesize, SynthError


def test_unknown_target_is_refused(tmp_path):
    with pytest.raises(SynthError, match="unknown target 'xc7'"):
        synthesize(EngineConfig.bft(4, 2), target="xc7", root=tmp_path)


@pytest.mark.long
def test_synthesis_report_and_cache(tmp_path):
    cfg = EngineConfig.bft(4, 2)
    steps = []
    report = synthesize(cfg, "ecp5-85k", 50.0, root=tmp_path, progress=lambda s, d, t: steps.append(s))
    assert steps[-1] == "done" and not report["cached"]
    assert report["used"]["dsps"] == cfg.multipliers == 16
    assert 0 < report["used"]["luts"] < report["available"]["luts"]
    assert report["used"]["ffs"] > 0 and report["fmax_mhz"] > 50 and report["meets_timing"]
    again = synthesize(cfg, "ecp5-85k", 50.0, root=tmp_path)
    assert again["cached"] and again["fmax_mhz"] == report["fmax_mhz"]
