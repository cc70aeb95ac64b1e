"""``--reuse DIR``: take finished jobs from another run folder instead of training them again.

A job's id is a hash of everything it does (its resolved config and axes: ``plan.job_id``), so a job of this plan
that is finished in another run folder under the same id would train to the same result (runs are deterministic:
the resume tests hold a killed-and-resumed run to an uninterrupted one bit for bit). The typical use is to extend a
finished study — more seeds, another width — without re-running what is already measured::

    lowbit reproduce cnn_width --scale seeds --out runs/cnn_width_seeds --reuse runs/cnn_width

Rows are copied byte for byte (code version, wall time, finish time, digest), so the store still says which code
produced each result; the job's folder (its model, which a child job may need) is copied with it. A job whose
model file is missing in the source is not taken: it runs here. A source folder holding a symbolic link that leads
out of it is refused (the copy follows links: it would copy what lies outside; ``safepath.py``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .plan import Job
from .safepath import check_run_folder, inside
from .store import STORE_NAME, Store

_TMP = ".reuse-"  # jobs/.reuse-<id>.tmp: a copy under way (removed if a kill left it)


def _same(a: object, b: object) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def check_sources(out: Path, sources: list[Path]) -> None:
    """Raise ValueError for a source that is not a run folder, is ``out`` itself or holds a link that leads out of
    it (before anything is written)."""
    for src in sources:
        if not (Path(src) / STORE_NAME).is_file():
            raise ValueError(f"--reuse {str(src)!r}: not a run folder (no {STORE_NAME} in it)")
        if Path(src).resolve() == Path(out).resolve():
            raise ValueError(f"--reuse {str(src)!r} is the run folder itself; name another run folder")
        check_run_folder(src, "--reuse")  # its links are followed when its jobs are copied: none may lead out


def reusable(jobs: list[Job], src: Path, source: Store) -> list[Job]:
    """The jobs of ``jobs`` finished in ``source`` (the store of run folder ``src``) under the same id, with the
    same config and axes, and with their model file there (a child here may need it)."""
    rows = {}
    for r in source.rows():  # checks every row's digest
        rows.setdefault(r.job_id, r)
    out = []
    for j in jobs:
        r = rows.get(j.id)
        if r is None or not (_same(r.config, j.config) and _same(r.axes, j.axes)):
            continue
        if r.model_path is not None and not inside(src, r.model_path, "--reuse").is_file():
            continue  # train it again rather than take a result without its model
        out.append(j)
    return out


def reuse_finished(jobs: list[Job], out: Path, store: Store, sources: list[Path]) -> dict[str, int]:
    """Copy the jobs of ``jobs`` not finished in ``store`` but finished in a source run folder; return
    {source: number of jobs taken}. Call it holding ``out``'s run lock, after ``check_sources``."""
    out = Path(out)
    for d in (out / "jobs").glob(f"{_TMP}*"):
        shutil.rmtree(d, ignore_errors=True)
    taken: dict[str, int] = {}
    for src in map(Path, sources):
        n = 0
        with Store(src, create=False) as source:
            done = store.done()
            for j in reusable([j for j in jobs if j.id not in done], src, source):
                job_dir = inside(src, Path("jobs") / j.id, "--reuse")  # checked again where it is read
                if job_dir.is_dir():
                    tmp = out / "jobs" / f"{_TMP}{j.id}.tmp"
                    shutil.copytree(job_dir, tmp)
                    dest = out / "jobs" / j.id
                    if dest.exists():  # what a killed run here left of this job: the finished one replaces it
                        shutil.rmtree(dest)
                    tmp.rename(dest)
                store.copy_job(source, j.id)  # the rows last: a job counts as finished once its folder is whole
                n += 1
        taken[str(src)] = n
    return taken
