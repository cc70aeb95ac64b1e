"""``--tensorboard DIR``: every finished job's scalars as TensorBoard event files, one run per job (docs/scaling.md).

The driver writes them, for every backend alike: when a job is stored, its ``metrics.jsonl`` files (one per
training, ``train/metrics.jsonl``; INQ has one per stage, ``train/stage<k>/metrics.jsonl``) are in its folder of
the run (the Ray backend has brought them back), and each line becomes the scalars ``epoch/<key>`` (loss, lr,
seconds, ...) at step = the epoch's index counted over the job's trainings; the job's final metrics become
``job/<metric>`` and its wall time ``job/wall_s``. The run of a job is named by its axes, ``model=128-4/method=W2/
seed=0[/bits=2]``, so TensorBoard's run filter groups a sweep by any axis. Open ``tensorboard --logdir DIR`` while
the sweep runs: each job appears as it finishes. The result store stays the source of truth; these files are a
view of it. Needs the ``tracking`` extra (tensorboard).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..extras import require

METRICS_FILE = "metrics.jsonl"


def run_name(axes: dict[str, Any]) -> str:
    """``model=small/method=W2/seed=0/bits=2``: the job's axes in the plan's order, each a path component."""
    return "/".join(f"{k}={_safe(v)}" for k, v in axes.items())


def _safe(v: Any) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", str(v)) or "_"


def _stage(p: Path) -> tuple:
    """metrics.jsonl files in training order: train/ before train/stage0 < stage1 < ... < stage10."""
    return tuple(int(s[5:]) if s.startswith("stage") and s[5:].isdigit() else -1 for s in p.parent.parts)


def epoch_rows(job_dir: Path) -> list[dict]:
    """Every epoch of a job's trainings, in order (each ``metrics.jsonl`` of its ``train/`` folder)."""
    files = sorted((Path(job_dir) / "train").rglob(METRICS_FILE), key=_stage)
    return [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]


class Tracker:
    def __init__(self, log_dir: str | Path, out: str | Path):
        require("tensorboard", "--tensorboard")  # the one-line error naming the extra, before any job runs
        from torch.utils.tensorboard import SummaryWriter

        self.writer_class, self.log_dir, self.out = SummaryWriter, Path(log_dir), Path(out)
        self.log_dir.mkdir(parents=True, exist_ok=True)

    def catch_up(self, jobs: list, rows: list) -> None:
        """Write the jobs ``rows`` (the store's) hold that have no run here yet: finished by an earlier run of a
        resumed sweep, or copied in by ``--reuse``."""
        by_id = {j.id: j for j in jobs}
        results: dict[str, dict] = {}
        for r in rows:
            res = results.setdefault(r.job_id, {"metrics": {}, "wall_s": r.wall_s})
            res["metrics"][r.metric] = r.value
        for job_id, res in results.items():
            job = by_id.get(job_id)
            if job is not None and not (self.log_dir / run_name(job.axes)).is_dir():
                self.job_done(job, res)

    def job_done(self, job: Any, result: dict) -> None:
        """Write job ``job``'s epochs and final metrics (``result`` as ``steps.run_job`` returns it)."""
        w = self.writer_class(log_dir=str(self.log_dir / run_name(job.axes)))
        try:
            step = 0
            for row in epoch_rows(self.out / "jobs" / job.id):
                for k, v in row.items():
                    if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool):
                        w.add_scalar(f"epoch/{k}", v, step)
                step += 1
            for k, v in {**result["metrics"], "wall_s": result["wall_s"]}.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    w.add_scalar(f"job/{k}", v, step)
        finally:
            w.close()
