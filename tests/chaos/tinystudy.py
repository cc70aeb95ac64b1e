"""The tiny study the chaos tests run (float -> QAT W2A2 and INQ-4 of an 8-wide FCDNN on 300 spiral points, a
report with one figure), and what they check in its run folder."""

from __future__ import annotations

import json
import sqlite3
import tomllib
from pathlib import Path

from support.specs import SPIRALS_TINY

from lowbit.fileio import is_stale_temp
from lowbit.runlock import LOCK_NAME
from lowbit.train.checkpoint import load_checkpoint

SPEC = SPIRALS_TINY  # the suite's one tiny study (tests/support/specs.py)


def no_wall(v):
    """``v`` without wall-clock fields (``seconds``), the one thing a resumed run may change."""
    if isinstance(v, dict):
        return {k: no_wall(x) for k, x in v.items() if k != "seconds"}
    if isinstance(v, list):
        return [no_wall(x) for x in v]
    return v


def results(out: Path) -> dict:
    """What must be bitwise equal: every stored metric, every model's tensors and metadata, training curves
    without wall times."""
    with sqlite3.connect(out / "results.sqlite") as db:
        rows = sorted(db.execute("SELECT job_id, metric, value, axes, config, model_path FROM results"))
    models = {}
    for p in sorted(out.glob("jobs/*/model.safetensors")):  # safetensors orders its header keys at random
        tensors, meta = load_checkpoint(p)
        models[str(p.relative_to(out))] = ({k: t.numpy().tobytes() for k, t in tensors.items()}, no_wall(meta))
    curves = {}
    for p in sorted(out.rglob("metrics.jsonl")):
        curves[str(p.relative_to(out))] = [no_wall(json.loads(x)) for x in p.read_text().splitlines()]
    return {"rows": rows, "models": models, "curves": curves, "spec": (out / "spec.toml").read_text()}


def check_folder(out: Path, finished: bool = True) -> None:
    """No temporary file, no empty file, every file whole in its own format (``finished``: and a report)."""
    for p in sorted(out.rglob("*")):
        if not p.is_file():
            continue
        name = str(p.relative_to(out))
        assert not is_stale_temp(p), f"temporary file left: {name}"
        assert p.stat().st_size > 0, f"empty file: {name}"
        if p.suffix == ".safetensors":
            load_checkpoint(p)
        elif p.suffix == ".jsonl":
            assert p.read_bytes().endswith(b"\n") and all(json.loads(x) for x in p.read_text().splitlines()), name
        elif p.suffix == ".toml":
            tomllib.loads(p.read_text())
        elif p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.read_bytes()[-8:-4] == b"IEND", name
        elif p.suffix == ".sqlite":
            with sqlite3.connect(p) as db:
                assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",), name
        elif p.suffix in (".md", ".html"):
            assert p.read_text().strip(), name
        else:
            sqlite_journal = not finished and name.endswith(("results.sqlite-wal", "results.sqlite-shm"))
            assert name == LOCK_NAME or sqlite_journal, f"unexpected file in the run folder: {name}"
    if finished:
        assert (out / "report.md").is_file() and list(out.glob("figures/*.png"))
