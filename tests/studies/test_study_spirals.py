"""The spirals study spec at tiny scale end to end (`lowbit reproduce`), and its report rebuilt in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lowbit.cli import main
from lowbit.engine.report.results import RunResults


@pytest.mark.slow
def test_spirals_tiny_end_to_end_and_report_from_the_store_alone(tmp_path, capsys):
    out = tmp_path / "sp"
    assert main(["reproduce", "spirals", "--scale", "tiny", "--dry-run"]) == 0
    # 2 models x 2 seeds x (float, W2, A2, W2A2, INQ x 3 bits)
    assert capsys.readouterr().out.splitlines()[-2] == "28 jobs"
    assert main(["reproduce", "spirals", "--scale", "tiny", "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    res = RunResults(out)
    assert res.spec.scale == "tiny" and len(res.jobs) == 28  # one store row per job, seed siblings trained fused
    assert sorted({j.axes["seed"] for j in res.jobs.values()}) == [0, 1]
    a2 = [j for j in res.jobs.values() if j.axes["method"] == "A2"]
    assert all(j.config["recipe"]["quant"]["act"]["name"] == "pact" for j in a2)  # the paper's PACT (spec §2.3)
    inq = [j for j in res.jobs.values() if j.axes["method"] == "INQ"]
    assert sorted(j.axes["bits"] for j in inq) == [2] * 4 + [3] * 4 + [4] * 4
    assert all(j.metrics["on_codebook"] == 1 for j in inq)
    # the recipes that ran are the spec's: INQ retrains 1 epoch per portion at tiny, from the float parent
    assert all(j.config["recipe"]["train"]["epochs"] == 1 and j.config["recipe"]["portions"][-1] == 1.0 for j in inq)
    floats = [j for j in res.jobs.values() if j.axes["method"] == "float"]
    assert all(j.config["recipe"]["train"]["epochs"] == 2 and j.config["recipe"]["train"]["lr"] == 0.01 for j in floats)
    md = (out / "report.md").read_text()
    assert "| model | float | W2 | A2 | W2A2 | INQ bits=2 | INQ bits=3 | INQ bits=4 |" in md
    assert "| 128-3 |" in md and "| res 128-4 |" in md
    # the observations are seed-paired sentences with a verdict (tiny trains one plain model: one claim)
    assert "Checks of the paper's observations (seed-paired)" in md and "2-bit activations cost more" in md
    assert "2 seeds: the mean difference" in md
    assert "2,000 noisy training samples" in md or "of the 2,000 noisy training samples" in md
    figs = ["decision_maps.png", "decision_maps_2.png", "data.png", "inq_accuracy_vs_bits.png"]
    assert all((out / "figures" / f).is_file() for f in figs)
    assert "seeds 0, 1; 28 runs; scale tiny" in md  # the main table
    assert "method INQ; bits W2 INQ, W3 INQ, W4 INQ; seeds 0, 1; 12 runs" in md  # the INQ figure

    text, html = md, (out / "report.html").read_text()
    for f in figs:
        (out / "figures" / f).unlink()
    (out / "report.md").unlink()
    (out / "report.html").unlink()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "lowbit.cli", "report", str(out)], check=True, env=env, capture_output=True)
    assert (out / "report.md").read_text() == text and (out / "report.html").read_text() == html
    assert all((out / "figures" / f).is_file() for f in figs)
