"""The records of the result store (``store.py``): a metric row of a finished job, and a job that did not finish.

Both carry ``digest``, a sha256 over their fields (and, for metric rows, the names of all metrics of their job), so
the store can tell a row whose bytes were altered (issue 11: SQLite has no checksums of its own).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

FAILED, NOT_RUN = "failed", "not run"  # the two statuses of a job without a result


def digest(fields: tuple, names: list[str]) -> str:
    return hashlib.sha256(json.dumps([list(fields), sorted(names)], default=repr).encode()).hexdigest()


@dataclass(frozen=True, slots=True)  # slots: a report may hold 10⁶ of them (docs/reliability.md, Bounded resources)
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


@dataclass(frozen=True)
class FailedJob:
    """A job of the last sweep that did not finish: ``status`` is ``failed`` or ``not run`` (a job it needs
    failed); ``error_type`` and ``message`` say why in one line, ``detail`` holds the traceback."""

    job_id: str
    status: str
    axes: dict[str, Any]
    config: dict[str, Any]
    error_type: str
    message: str
    wall_s: float = 0.0
    detail: str = ""
    code_version: str = ""  # filled in by Store.add_failures

    @property
    def error(self) -> str:
        return f"{self.error_type}: {self.message}"

    def flat(self) -> dict[str, Any]:
        """A flat dict for CSV/JSON output, like ``Row.flat`` with status and error in place of metric and value."""
        return {
            "job": self.job_id,
            **self.axes,
            "status": self.status,
            "error": self.error,
            "wall_s": round(self.wall_s, 3),
            "code_version": self.code_version,
        }
