"""The store's failure rows, and stores written before they existed (no ``failures`` table)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from support.specs import FLOAT_W2

from lowbit.cli import main
from lowbit.engine.report.results import RunResults
from lowbit.engine.rows import FailedJob
from lowbit.engine.store import Store, StoreError

# results.sqlite as lowbit wrote it before failure rows (commit c57ea62): this one table, nothing else
OLD_SCHEMA = """CREATE TABLE results (
    job_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL,
    axes TEXT NOT NULL,
    config TEXT NOT NULL,
    code_version TEXT NOT NULL,
    wall_s REAL NOT NULL,
    model_path TEXT,
    finished TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (job_id, metric)
)"""

SPEC = FLOAT_W2.replace('name = "float-w2"', 'name = "old"').replace("seed = [0]", "seed = [0, 1]")


def _sql(path: Path, *statements: str) -> list:
    db = sqlite3.connect(path)
    try:
        out = []
        for s in statements:
            out.append(db.execute(s).fetchall())
            db.commit()
        return out
    finally:
        db.close()


def _failed(job_id: str, status: str = "failed") -> FailedJob:
    return FailedJob(job_id, status, {"model": "m", "method": "W2", "seed": 0}, {"recipe": {}}, "ValueError", "x", 1.5)


def test_failure_rows_round_trip_and_a_finished_job_ends_its_failure(tmp_path):
    with Store(tmp_path) as s:
        s.add_failures([_failed("a"), _failed("b", "not run")])
        assert s.done() == set()  # a failure is not a finished job: resume runs it
        got = s.failures()
        assert [(f.job_id, f.status, f.error, f.wall_s) for f in got] == [
            ("a", "failed", "ValueError: x", 1.5),
            ("b", "not run", "ValueError: x", 1.5),
        ]
        assert got[0].code_version.startswith("lowbit ") and got[0].axes["method"] == "W2"
        s.add_failures([_failed("a")])  # failing again replaces the row
        assert len(s.failures()) == 2
        s.add_job("a", {"accuracy": 50.0}, {"model": "m"}, {}, 1.0, None)  # the same transaction ends it
        assert [f.job_id for f in s.failures()] == ["b"] and s.done() == {"a"}
        s.forget_failures({"a"})
        assert s.failures() == []


def test_an_altered_failure_row_fails_its_checksum(tmp_path):
    with Store(tmp_path) as s:
        s.add_failures([_failed("a")])
    _sql(tmp_path / "results.sqlite", "UPDATE failures SET message = 'something else'")
    with Store(tmp_path, create=False) as s, pytest.raises(StoreError, match="failure row of job 'a' fails its"):
        s.failures()


def test_a_store_written_before_failure_rows_opens_reports_and_resumes(tmp_path, capsys):
    spec = tmp_path / "old.toml"
    spec.write_text(SPEC)
    out = tmp_path / "run"
    argv = ["sweep", str(spec), "--out", str(out), "--workers", "1", "--no-progress"]
    assert main(argv) == 0
    store = out / "results.sqlite"
    # make it the file the previous lowbit wrote: its one table, and one job not finished yet (a killed run)
    ((schema,),) = _sql(store, "SELECT sql FROM sqlite_master WHERE name = 'results'")[0]
    assert schema.replace("IF NOT EXISTS ", "").split() == OLD_SCHEMA.split()  # the results table is unchanged
    w2 = RunResults(out).select({"method": "W2", "seed": 1})[0].id
    _sql(store, "DROP TABLE failures", f"DELETE FROM results WHERE job_id = '{w2}'", "VACUUM")
    assert _sql(store, "SELECT name FROM sqlite_master WHERE type = 'table'")[0] == [("results",)]
    capsys.readouterr()

    before = store.read_bytes()
    assert main(["results", str(out), "--where", "method=W2"]) == 0  # opens, reads, and writes nothing to it
    assert "5 rows" in capsys.readouterr().out
    assert store.read_bytes() == before and not store.with_name("results.sqlite-wal").exists()
    assert main(["report", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "3 finished job(s) (1 not run yet)" in md
    assert re.search(r"^\| small \| [\d.]+ ± [\d.]+ \| [\d.]+ \(1\) \[1 pending\] \|$", md, re.M), md
    assert main([*argv, "--resume"]) == 0  # resumes: the missing job runs, nothing else
    assert len(RunResults(out).jobs) == 4
    assert "pending" not in (out / "report.md").read_text()
