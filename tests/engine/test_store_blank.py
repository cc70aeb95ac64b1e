"""A results.sqlite with no lowbit tables: what a sweep killed while creating its store leaves, or a file whose
results were lost, or another program's database.

The rule (engine/run.py ``_blank_store``): a sweep creates its store after writing spec.toml and before any
job folder, and the report after that. A blank store (0 bytes, or SQLite with no tables) with nothing else but
spec.toml beside it held nothing: it is removed and the run starts. Beside job folders or a report, its results
were lost: the sweep refuses with one line naming the file and what to do, and changes nothing. A database with
other tables is never a lowbit store; ``lowbit results`` says what the file is instead of showing 0 rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from support.specs import FLOAT_W2

from lowbit.cli import main

SPEC = FLOAT_W2.replace('name = "float-w2"', 'name = "blank"')


def _argv(tmp_path: Path, out: Path, *extra: str) -> list[str]:
    spec = tmp_path / "blank.toml"
    spec.write_text(SPEC)
    return ["sweep", str(spec), "--out", str(out), "--workers", "1", "--no-progress", *extra]


def _metrics(out: Path) -> list[tuple]:
    db = sqlite3.connect(out / "results.sqlite")
    try:
        return sorted(db.execute("SELECT job_id, metric, value FROM results"))
    finally:
        db.close()


def _files(out: Path) -> list[tuple]:
    return sorted(
        (p.relative_to(out), p.read_bytes()) for p in out.rglob("*") if p.is_file() and p.name != ".lowbit.lock"
    )


def _no_tables(path: Path) -> None:
    """What a sweep killed right after switching its new store to WAL leaves: a 4096-byte SQLite file."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.close()


@pytest.mark.parametrize("state", ["0 bytes", "no tables"])
@pytest.mark.parametrize("resume", [False, True])
def test_a_blank_store_with_only_a_spec_beside_it_is_a_run_killed_as_it_started(tmp_path, state, resume):
    out = tmp_path / "run"
    out.mkdir()
    (out / "spec.toml").write_text(SPEC.replace('name = "blank"', 'name = "blank"\nscale = "default"'))
    store = out / "results.sqlite"
    store.write_bytes(b"") if state == "0 bytes" else _no_tables(store)
    assert main(_argv(tmp_path, out, *(["--resume"] if resume else []))) == 0
    assert len({r[0] for r in _metrics(out)}) == 2


def test_a_blank_store_beside_job_folders_is_refused_and_nothing_changes(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_argv(tmp_path, out)) == 0
    want = _metrics(out)
    store = out / "results.sqlite"
    store.write_bytes(b"")  # the results are gone (a truncating copy, `> results.sqlite`, ...)
    before = _files(out)
    capsys.readouterr()
    for extra in ([], ["--resume"]):
        assert main(_argv(tmp_path, out, *extra)) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert f"{store} is empty (0 bytes), but {out} holds jobs/, report.md, report.html of a run that " in err
        assert "Restore the file from a backup, or delete it and run with --resume" in err
        assert _files(out) == before
    # what the message offers: delete it and resume; each job continues from its checkpoints to the same result
    store.unlink()
    assert main(_argv(tmp_path, out, "--resume")) == 0
    assert _metrics(out) == want


def test_a_store_with_no_tables_beside_a_report_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_argv(tmp_path, out)) == 0
    (out / "results.sqlite").unlink()
    _no_tables(out / "results.sqlite")
    capsys.readouterr()
    assert main(_argv(tmp_path, out, "--resume")) == 2
    assert "is an SQLite database with no tables, but " in capsys.readouterr().err


def test_another_programs_database_is_never_taken_for_a_store(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    store = out / "results.sqlite"
    db = sqlite3.connect(store)
    db.execute("CREATE TABLE measurements (t REAL)")
    db.commit()
    db.close()
    before = store.read_bytes()
    assert main(_argv(tmp_path, out, "--resume")) == 2
    err = capsys.readouterr().err
    assert "is an SQLite database of another program (tables: measurements), not a lowbit result store" in err
    assert main(["results", str(out)]) == 2 and "another program" in capsys.readouterr().err
    assert store.read_bytes() == before  # no lowbit table was added to it


def test_results_of_a_store_with_no_tables_say_so_and_add_none(tmp_path, capsys):
    _no_tables(tmp_path / "results.sqlite")
    before = (tmp_path / "results.sqlite").read_bytes()
    assert main(["results", str(tmp_path)]) == 2
    assert "is an empty SQLite database (no lowbit tables): it holds no results" in capsys.readouterr().err
    assert (tmp_path / "results.sqlite").read_bytes() == before
    (tmp_path / "results.sqlite").write_bytes(b"")
    assert main(["results", str(tmp_path)]) == 2
    assert "is empty (0 bytes)" in capsys.readouterr().err
