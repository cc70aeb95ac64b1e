"""The result store: one transaction per job, round trip, queries, and `lowbit results`."""

from __future__ import annotations

import json
import sqlite3

import pytest

from lowbit.cli import main
from lowbit.engine.store import Store, code_version


def _fill(tmp_path):
    with Store(tmp_path) as s:
        s.add_job(
            "a1",
            {"accuracy": 91.5, "accuracy_before": 80.0},
            {"model": "m", "method": "W2", "seed": 0},
            {"recipe": {"kind": "qat"}},
            1.25,
            "jobs/a1/model.safetensors",
        )
        s.add_job(
            "b2",
            {"accuracy": 93.0},
            {"model": "m", "method": "INQ", "seed": 1, "bits": 3},
            {"recipe": {"kind": "inq"}},
            2.5,
            "jobs/b2/model.safetensors",
        )


def test_round_trip_and_where(tmp_path):
    _fill(tmp_path)
    with Store(tmp_path, create=False) as s:  # reopened: what was committed is there
        assert s.done() == {"a1", "b2"}
        rows = s.rows()
        assert [(r.job_id, r.metric, r.value) for r in rows] == [
            ("a1", "accuracy", 91.5),
            ("a1", "accuracy_before", 80.0),
            ("b2", "accuracy", 93.0),
        ]
        r = rows[2]
        assert r.axes == {"model": "m", "method": "INQ", "seed": 1, "bits": 3} and r.config["recipe"]["kind"] == "inq"
        assert r.wall_s == 2.5 and r.model_path == "jobs/b2/model.safetensors"
        assert r.code_version == code_version() and r.code_version.startswith("lowbit ")
        assert [x.job_id for x in s.rows({"bits": "3"})] == ["b2"]  # values compare as text
        assert [x.metric for x in s.rows({"method": "W2", "metric": "accuracy_before"})] == ["accuracy_before"]


def test_a_failing_job_write_leaves_no_row(tmp_path):
    with Store(tmp_path) as s:
        with pytest.raises((sqlite3.Error, TypeError)):
            s.add_job("c3", {"accuracy": 1.0, "bad": object()}, {"model": "m"}, {}, 1.0, None)  # type: ignore[dict-item]
        assert s.done() == set()  # the first metric's row was rolled back with the failing one
        with pytest.raises(ValueError, match="at least one metric"):
            s.add_job("c3", {}, {}, {}, 1.0, None)


def test_results_command(tmp_path, capsys):
    _fill(tmp_path)
    assert main(["results", str(tmp_path), "--where", "method=INQ", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1 and rows[0]["job"] == "b2" and rows[0]["bits"] == 3 and rows[0]["value"] == 93.0
    assert main(["results", str(tmp_path), "--csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("job,model,method,seed,metric,value") and len(lines) == 4
    assert main(["results", str(tmp_path)]) == 0 and "3 rows" in capsys.readouterr().out
    assert main(["results", str(tmp_path), "--where", "method"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert main(["results", str(tmp_path / "none")]) == 2
    assert "no results were stored" in capsys.readouterr().err
