"""Run a study's independent jobs, in parallel worker processes, with job-level resume.

A job is ``Job(id, fn, kwargs)`` where ``fn`` is "package.module:function" and the function is called as
``fn(job_dir=Path, resume=bool, progress=bool, **kwargs) -> dict`` (JSON-able results). When it returns,
``job_dir/result.json`` is written atomically; on ``resume`` a job with a result is not run again, and a job
that was interrupted is called with ``resume=True`` so that it can continue from its own checkpoints.
Each worker process uses one intra-op thread (small models: two processes beat two threads).
"""

from __future__ import annotations

import importlib
import json
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..fileio import atomic_write_text


@dataclass(frozen=True)
class Job:
    id: str  # unique within the study; also the job's folder name under out/jobs/
    fn: str  # "package.module:function"
    kwargs: dict[str, Any] = field(default_factory=dict)


def _resolve(fn: str):
    mod, _, name = fn.partition(":")
    return getattr(importlib.import_module(mod), name)


def _run_one(job: Job, job_dir: str, resume: bool, progress: bool, threads: int) -> tuple[str, dict]:
    import torch

    torch.set_num_threads(threads)
    result = _resolve(job.fn)(job_dir=Path(job_dir), resume=resume, progress=progress, **job.kwargs)
    atomic_write_text(Path(job_dir) / "result.json", json.dumps(result, indent=1, sort_keys=True))
    return job.id, result


def load_result(job_dir: Path) -> dict | None:
    p = job_dir / "result.json"
    return json.loads(p.read_text()) if p.exists() else None


def run_jobs(
    jobs: list[Job], out: Path, workers: int = 2, resume: bool = False, progress: bool = True, desc: str = "jobs"
) -> dict[str, dict]:
    """Run every job not finished yet; return {job id: result} for all jobs."""
    ids = [j.id for j in jobs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"job ids must be unique, got duplicates in {ids}")
    results: dict[str, dict] = {}
    todo = []
    for j in jobs:
        jd = Path(out) / "jobs" / j.id
        r = load_result(jd) if resume else None
        if r is not None:
            results[j.id] = r
        else:
            todo.append((j, jd))
    bar = tqdm(total=len(jobs), initial=len(results), desc=desc, disable=not progress)
    if workers <= 1 or len(todo) <= 1:
        for j, jd in todo:
            _, results[j.id] = _run_one(j, str(jd), resume, progress=False, threads=max(1, workers))
            bar.update(1)
    else:
        ctx = mp.get_context("spawn")  # no fork after torch has started threads
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futs = [pool.submit(_run_one, j, str(jd), resume, False, 1) for j, jd in todo]
            for f in as_completed(futs):
                jid, res = f.result()
                results[jid] = res
                bar.update(1)
    bar.close()
    return {i: results[i] for i in ids}
