"""The result store: ``results.sqlite`` in the run folder, one row per (job, metric) (docs/architecture.md).

Each row holds the job id, the metric and its value, the job's axis values (JSON), its resolved config (JSON),
the code version (package version + git commit when there is one), the job's wall time and the path of its
saved model (relative to the run folder). A finished job is written in one transaction, so a kill never leaves
half a job; a job with rows in the store is finished and is not run again (the one resume rule).

Integrity (issue 11): SQLite has no checksums, so each row carries ``digest``, a sha256 over its other fields
and the names of all metrics of its job; a row whose bytes were altered, or a job that lost a row, raises
``StoreError`` (a ValueError naming the file), as does a file that is not an SQLite database.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..fileio import DiskFullError, is_disk_full

STORE_NAME = "results.sqlite"
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


_MAGIC = b"SQLite format 3\x00"


class StoreError(ValueError):
    """results.sqlite is not an SQLite database, is corrupted, or holds rows that were altered."""


def _digest(fields: tuple, names: list[str]) -> str:
    return hashlib.sha256(json.dumps([list(fields), sorted(names)], default=repr).encode()).hexdigest()


@dataclass(frozen=True)
class Row:
    job_id: str
    metric: str
    value: float | None
    axes: dict[str, Any]
    config: dict[str, Any]
    code_version: str
    wall_s: float
    model_path: str | None

    def flat(self) -> dict[str, Any]:
        """A flat dict for CSV/JSON output: job, the axes, metric, value, wall time, model, code version."""
        return {
            "job": self.job_id,
            **self.axes,
            "metric": self.metric,
            "value": self.value,
            "wall_s": round(self.wall_s, 3),
            "model_path": self.model_path,
            "code_version": self.code_version,
        }


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
    """``Store(run_dir)``: open (and create) ``run_dir/results.sqlite``."""

    def __init__(self, run_dir: str | Path, create: bool = True):
        self.path = Path(run_dir) / STORE_NAME
        if not create and not self.path.is_file():
            raise FileNotFoundError(f"{str(self.path)!r} does not exist: no results were stored in this folder")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        size = self.path.stat().st_size if self.path.is_file() else 0
        if (size or not create) and (size < 100 or self.path.read_bytes()[:16] != _MAGIC):  # 100: SQLite's header
            raise StoreError(f"{str(self.path)!r} is not an SQLite database (empty, truncated or another file)")
        try:
            self._db = sqlite3.connect(self.path, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
            self._db.commit()
        except sqlite3.DatabaseError as e:
            if is_disk_full(e):
                raise DiskFullError(self.path) from None
            raise StoreError(f"{str(self.path)!r} cannot be opened as a result store: {e}") from None

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
            rows.append((*fields, _digest(fields, names)))
        self._insert(rows)

    def _insert(self, rows: list[tuple]) -> None:
        try:
            with self._db:  # one transaction: all rows of the job or none
                self._db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        except sqlite3.OperationalError as e:  # the transaction was rolled back: earlier rows are intact
            if is_disk_full(e):
                raise DiskFullError(self.path) from None
            raise

    def copy_job(self, source: Store, job_id: str) -> None:
        """Every row of ``job_id`` from ``source``, byte for byte (its code version, wall time, finish time and
        digest: where a result came from stays on it), in one transaction. Read ``source.rows()`` first: that is
        where the digests are checked."""
        rows = source._db.execute("SELECT * FROM results WHERE job_id = ? ORDER BY rowid", (job_id,)).fetchall()
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
        for key, want in (where or {}).items():
            out = [r for r in out if str(_field(r, key)) == str(want)]
        return out

    def _checked_rows(self) -> list[Row]:
        try:
            raw = self._db.execute(
                "SELECT job_id, metric, value, axes, config, code_version, wall_s, model_path, finished, digest "
                "FROM results ORDER BY rowid"
            ).fetchall()
        except (sqlite3.DatabaseError, UnicodeDecodeError) as e:
            raise StoreError(f"{str(self.path)!r} cannot be read as a result store: {e}") from None
        names: dict[str, list[str]] = {}
        for r in raw:
            names.setdefault(r[0], []).append(r[1])
        out = []
        for r in raw:
            try:
                ok = r[9] == _digest(tuple(r[:9]), names[r[0]])
            except (TypeError, ValueError):  # a field that is no longer text or a number
                ok = False
            if not ok:
                raise StoreError(
                    f"{str(self.path)!r} is corrupted: the row of job {r[0]!r} metric {r[1]!r} fails its checksum "
                    "(altered, or its job lost a row)"
                )
            try:
                out.append(Row(r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4]), r[5], r[6], r[7]))
            except (TypeError, ValueError) as e:
                raise StoreError(f"{str(self.path)!r} is corrupted: job {r[0]!r}: {e}") from None
        return out


def _field(row: Row, key: str) -> Any:
    if key in ("job", "job_id"):
        return row.job_id
    if key == "metric":
        return row.metric
    return row.axes.get(key)
