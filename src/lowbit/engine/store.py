"""The result store: ``results.sqlite`` in the run folder, one row per (job, metric) (docs/architecture.md).

Each row holds the job id, the metric and its value, the job's axis values (JSON), its resolved config (JSON),
the code version (package version + git commit when there is one), the job's wall time and the path of its
saved model (relative to the run folder). A finished job is written in one transaction, so a kill never leaves
half a job; a job with rows in the store is finished and is not run again (the one resume rule).

Jobs that did not finish in the last sweep are rows of a second table, ``failures`` (one per job): status
``failed`` (the job raised, or its worker died: the error's type and one-line message, its wall time and
traceback) or ``not run`` (a job it needs failed). They are not finished, so ``--resume`` runs them again; a
job's failure row goes in the same transaction as its results. The table was added after the first stores
were written: a sweep opening a store without it adds it; reading one (``lowbit results``, ``lowbit report``,
``--reuse``) changes nothing and finds no failure. An older lowbit reads a store with the table as before and
runs the failed jobs again on resume, as it does any unfinished job.

Integrity (issue 11): SQLite has no checksums, so each row carries ``digest``, a sha256 over its other fields
and the names of all metrics of its job; a row whose bytes were altered, or a job that lost a row, raises
``StoreError`` (a ValueError naming the file), as does a file that is not an SQLite database.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..fileio import DiskFullError, is_disk_full
from ..limits import LimitExceeded
from .bounds import StoreBudget, check_store
from .rows import FailedJob, Row, digest
from .safepath import model_path_problem, shown
from .store_files import MAGIC, STORE_NAME, StoreError, check_tables, table_names

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
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
)
"""
_FAILURES = """
CREATE TABLE IF NOT EXISTS failures (
    job_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    axes TEXT NOT NULL,
    config TEXT NOT NULL,
    error_type TEXT NOT NULL,
    message TEXT NOT NULL,
    wall_s REAL NOT NULL,
    detail TEXT NOT NULL,
    code_version TEXT NOT NULL,
    finished TEXT NOT NULL,
    digest TEXT NOT NULL
)
"""


@lru_cache(maxsize=1)
def code_version() -> str:
    """``lowbit <version>`` plus `` git <commit>`` (``+dirty`` with local changes) when run from a checkout."""
    from .. import __version__

    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    return f"lowbit {__version__}" + (f" git {commit}{'+dirty' if dirty else ''}" if commit else "")


class Store:
    """``Store(run_dir)``: open (and create) ``run_dir/results.sqlite``; ``create=False`` opens an existing store
    to read and writes nothing to it."""

    def __init__(self, run_dir: str | Path, create: bool = True):
        self.path = Path(run_dir) / STORE_NAME
        if not create and not self.path.is_file():
            raise FileNotFoundError(f"{str(self.path)!r} does not exist: no results were stored in this folder")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        size = self.path.stat().st_size if self.path.is_file() else 0
        if self.path.is_file() and size == 0:  # never taken for a new store: whose results were lost? (run.py)
            raise StoreError(f"{str(self.path)!r} is empty (0 bytes): it holds no results")
        if size and (size < 100 or self.path.read_bytes()[:16] != MAGIC):  # 100: SQLite's header
            raise StoreError(f"{str(self.path)!r} is not an SQLite database (truncated or another file)")
        try:
            self._db = sqlite3.connect(self.path, timeout=30)
            tables = table_names(self._db) if size else set()
            if size:
                check_tables(self.path, tables)
                check_store(self.path, self._db, tables)  # reading holds every row: within the limits (bounds.py)
            if create:  # a store opened to read (create=False) is not written, not even its schema
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute(_SCHEMA)
                self._db.execute(_FAILURES)  # a store of an older lowbit gets the table here
                self._db.commit()
                tables |= {"results", "failures"}
            self._has_failures = "failures" in tables
        except sqlite3.DatabaseError as e:
            self._db.close()
            if is_disk_full(e):
                raise DiskFullError(self.path) from None
            raise StoreError(f"{str(self.path)!r} cannot be opened as a result store: {e}") from None
        except (StoreError, LimitExceeded):
            self._db.close()
            raise

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def add_job(
        self,
        job_id: str,
        metrics: dict[str, float | None],
        axes: dict,
        config: dict,
        wall_s: float,
        model_path: str | None,
    ) -> None:
        """All metrics of one finished job, in one transaction."""
        if not metrics:
            raise ValueError(f"job {job_id}: a finished job must report at least one metric")
        version, now = code_version(), time.strftime("%Y-%m-%dT%H:%M:%S")
        a, c = json.dumps(axes), json.dumps(config, sort_keys=True)  # axes keep the grid order
        names = list(metrics)
        rows = []
        for k, v in metrics.items():
            if isinstance(v, (int, float)):  # as SQLite gives it back: REAL, and NaN as NULL
                v = None if v != v else float(v)
            fields = (job_id, k, v, a, c, version, float(wall_s), model_path, now)
            rows.append((*fields, digest(fields, names)))
        self._insert(rows)

    def _insert(self, rows: list[tuple]) -> None:
        """The rows of one finished job, and the end of its failure row, in one transaction."""
        with self._write():  # all rows of the job or none
            self._db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            self._db.execute("DELETE FROM failures WHERE job_id = ?", (rows[0][0],))

    @contextmanager
    def _write(self) -> Iterator[None]:
        try:
            with self._db:  # one transaction
                yield
        except sqlite3.OperationalError as e:  # the transaction was rolled back: earlier rows are intact
            if is_disk_full(e):
                raise DiskFullError(self.path) from None
            raise

    def add_failures(self, jobs: list[FailedJob]) -> None:
        """Record jobs that did not finish (a failed job and the jobs that needed it), in one transaction."""
        version, now = code_version(), time.strftime("%Y-%m-%dT%H:%M:%S")
        rows = []
        for j in jobs:
            a, c = json.dumps(j.axes), json.dumps(j.config, sort_keys=True)
            fields = (j.job_id, j.status, a, c, j.error_type, j.message, float(j.wall_s), j.detail, version, now)
            rows.append((*fields, digest(fields, [])))
        with self._write():
            self._db.executemany("INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def forget_failures(self, keep: set[str]) -> None:
        """Drop the failure rows of jobs not in ``keep`` (jobs of a spec that no longer applies to this folder)."""
        ids = [r[0] for r in self._db.execute("SELECT job_id FROM failures").fetchall() if r[0] not in keep]
        if ids:
            with self._write():
                self._db.executemany("DELETE FROM failures WHERE job_id = ?", [(i,) for i in ids])

    def failures(self) -> list[FailedJob]:
        """The jobs of the last sweep that did not finish, in the order they were recorded (checksums checked)."""
        if not self._has_failures:  # a store of an older lowbit, opened to read
            return []
        try:
            raw = self._db.execute(
                "SELECT job_id, status, axes, config, error_type, message, wall_s, detail, code_version, finished, "
                "digest FROM failures ORDER BY rowid"
            ).fetchall()
        except (sqlite3.DatabaseError, UnicodeDecodeError) as e:
            raise StoreError(f"{str(self.path)!r} cannot be read as a result store: {e}") from None
        out = []
        budget = StoreBudget(self.path)  # what the rows hold, within the local limit (bounds.py)
        for r in raw:
            budget.add((r[0], r[1], r[4], r[5], r[7], r[8]), (r[2], r[3]))
            try:
                ok = r[10] == digest(tuple(r[:10]), [])
                job = FailedJob(r[0], r[1], json.loads(r[2]), json.loads(r[3]), r[4], r[5], r[6], r[7], r[8])
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise StoreError(f"{str(self.path)!r} is corrupted: the failure row of job {r[0]!r} fails its checksum")
            out.append(job)
        return out

    def copy_job(self, source: Store, job_id: str) -> None:
        """Every row of ``job_id`` from ``source``, byte for byte (its code version, wall time, finish time and
        digest: where a result came from stays on it), in one transaction. Read ``source.rows()`` first: that is
        where the digests are checked."""
        rows = source._db.execute(
            "SELECT job_id, metric, value, axes, config, code_version, wall_s, model_path, finished, digest "
            "FROM results WHERE job_id = ? ORDER BY rowid",
            (job_id,),
        ).fetchall()
        if not rows:
            raise ValueError(f"job {job_id!r} is not in {str(source.path)!r}")
        self._insert(rows)

    def done(self) -> set[str]:
        return {r.job_id for r in self.rows()}

    def rows(self, where: dict[str, Any] | None = None) -> list[Row]:
        """Every row, in insertion order; ``where`` keeps rows whose axis (or ``job``/``metric``) equals the value.

        Values compare as text, so ``--where bits=2`` matches the number 2.
        """
        out = self._checked_rows()
        _check_model_paths(self.path, out)
        for key, want in (where or {}).items():
            out = [r for r in out if str(_field(r, key)) == str(want)]
        return out

    def _checked_rows(self) -> list[Row]:
        """Every row, checksums checked. Memory (docs/reliability.md, Bounded resources): the rows are streamed
        from SQLite, not fetched at once, and the rows of one job (written together, so read one after another)
        share one parsed axes and config object and one copy of their strings: a job's config JSON is parsed once,
        not once per metric. Measured by benchmarks/store_memory.py."""
        seen: dict[str, str] = {}  # one copy of each metric name
        try:
            names: dict[str, list[str]] = {}  # a checksum covers the names of every metric of its job
            for job_id, metric in self._db.execute("SELECT job_id, metric FROM results ORDER BY rowid"):
                names.setdefault(job_id, []).append(seen.setdefault(metric, metric))
            out: list[Row] = []
            last: tuple = ()  # the previous row, raw and read: the next row of its job shares what they have alike
            budget = StoreBudget(self.path)  # what the rows hold, within the local limit (bounds.py)
            cursor = self._db.execute(
                "SELECT job_id, metric, value, axes, config, code_version, wall_s, model_path, finished, digest "
                "FROM results ORDER BY rowid"
            )
            for r in cursor:
                out.append(self._checked_row(r, names, last, seen))
                shared = last and out[-1].config is last[1].config
                budget.add(() if shared else (r[0], r[5], r[7]), () if shared else (r[3], r[4]))
                last = (r, out[-1])
        except (sqlite3.DatabaseError, UnicodeDecodeError) as e:
            raise StoreError(f"{str(self.path)!r} cannot be read as a result store: {e}") from None
        return out

    def _checked_row(self, r: tuple, names: dict[str, list[str]], last: tuple, seen: dict[str, str]) -> Row:
        """One raw row -> a ``Row``, its checksum checked; ``last``: (raw, Row) of the row read before it; ``seen``:
        the metric names read so far (one copy of each)."""
        try:
            ok = r[9] == digest(tuple(r[:9]), names[r[0]])
        except (TypeError, ValueError):  # a field that is no longer text or a number
            ok = False
        if not ok:
            raise StoreError(
                f"{str(self.path)!r} is corrupted: the row of job {r[0]!r} metric {r[1]!r} fails its checksum "
                "(altered, or its job lost a row)"
            )
        if last and last[0][0] == r[0] and last[0][3:6] == r[3:6] and last[0][7] == r[7]:
            p = last[1]  # same job, same axes, config, code version and model: share them (no Row is mutated)
            return Row(
                p.job_id, seen.setdefault(r[1], r[1]), r[2], p.axes, p.config, p.code_version, r[6], p.model_path
            )
        try:
            return Row(r[0], seen.setdefault(r[1], r[1]), r[2], json.loads(r[3]), json.loads(r[4]), r[5], r[6], r[7])
        except (TypeError, ValueError) as e:
            raise StoreError(f"{str(self.path)!r} is corrupted: job {r[0]!r}: {e}") from None


def _check_model_paths(path: Path, rows: list[Row]) -> None:
    """A row's ``model_path`` is read relative to the run folder: one that leads out of it (absolute, ``..``) is
    refused even under a valid checksum (anyone can compute one: it guards against damage, not intent)."""
    for r in rows:
        problem = model_path_problem(r.model_path)
        if problem:
            raise StoreError(f"{str(path)!r}: job {r.job_id!r} model_path = {shown(r.model_path)}: {problem}")


def _field(row: Row, key: str) -> Any:
    if key in ("job", "job_id"):
        return row.job_id
    if key == "metric":
        return row.metric
    return row.axes.get(key)
