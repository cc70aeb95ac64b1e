"""Every row's memory columns are what ``lowbit summary`` says of the job's saved model (issue 30, item 5): a W2A2
QAT row, an INQ-4 row and a float row of the suite's tiny study, each against the summary of its own
``jobs/<id>/model.safetensors`` read back from disk in the CLI's JSON form."""

from __future__ import annotations

import json

import pytest

from lowbit.cli import main
from lowbit.engine.report.results import RunResults


@pytest.mark.slow
def test_memory_rows_equal_lowbit_summary_of_the_saved_model(tiny_spec, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["sweep", str(tiny_spec), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    jobs = {j.axes["method"]: j for j in RunResults(out).jobs.values()}
    assert set(jobs) == {"float", "W2", "INQ"}
    seen = {}
    for method, job in jobs.items():
        capsys.readouterr()
        assert main(["summary", str(out / job.model_path), "--json"]) == 0
        totals = json.loads(capsys.readouterr().out)["totals"]
        assert job.metrics["weight_kib"] == pytest.approx(totals["model_bytes"] / 1024, rel=1e-12)
        assert job.metrics["memory_reduction"] == pytest.approx(totals["compression_ratio"], rel=1e-12)
        assert job.metrics["params"] == totals["params"]
        seen[method] = job.metrics
    # and they say different things: float is 1x; W2A2 (first layer kept float) and INQ-4 well below float
    assert seen["float"]["memory_reduction"] == 1.0
    assert seen["W2"]["memory_reduction"] > 2.0 and seen["INQ"]["memory_reduction"] > 2.0
    assert max(seen["W2"]["weight_kib"], seen["INQ"]["weight_kib"]) < seen["float"]["weight_kib"] / 2
