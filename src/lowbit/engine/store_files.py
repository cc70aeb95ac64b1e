"""What a ``results.sqlite`` file is before ``Store`` reads it: a lowbit store, another program's SQLite database,
or one of the two blank states a sweep killed while creating its store leaves (``engine/store.py``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

STORE_NAME = "results.sqlite"
MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file


class StoreError(ValueError):
    """results.sqlite is not an SQLite database, is corrupted, or holds rows that were altered."""


def table_names(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def check_tables(path: Path, tables: set[str]) -> None:
    if "results" in tables:
        return
    if tables:
        raise StoreError(
            f"{str(path)!r} is an SQLite database of another program (tables: {', '.join(sorted(tables))}), not a "
            "lowbit result store"
        )
    raise StoreError(f"{str(path)!r} is an empty SQLite database (no lowbit tables): it holds no results")


def blank_store(run_dir: str | Path) -> str | None:
    """What is blank about ``run_dir/results.sqlite`` — ``"empty (0 bytes)"`` or ``"an SQLite database with no
    tables"``: the two states a sweep killed while creating its store leaves (``sqlite3.connect`` makes the
    empty file, the WAL switch writes the first page, the tables come with the first commit) — else None
    (absent, a store, or another file: ``Store`` says which)."""
    path = Path(run_dir) / STORE_NAME
    if not path.is_file():
        return None
    wal = path.with_name(path.name + "-wal")
    if path.stat().st_size == 0 and not (wal.is_file() and wal.stat().st_size):
        return "empty (0 bytes)"
    if path.read_bytes()[:16] != MAGIC:
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            tables = table_names(db)
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return None
    return None if tables else "an SQLite database with no tables"
