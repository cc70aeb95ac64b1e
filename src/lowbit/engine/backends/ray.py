"""The Ray backend (``--backend ray``): every job is a Ray task, on whichever node has the resources it asks for.

The engine is unchanged: it submits a job when its parents are finished, and it alone writes ``results.sqlite``
(one row per finished job, in this process). What this backend adds is the trip of a job's files, because the
nodes need not share a filesystem with the driver:

- a job's ``kwargs`` name its folder ``job_dir`` and its parents' ``parent_dirs`` in the driver's run folder (the
  contract of ``steps.run_job``). The driver sends the parents' top-level files (their ``model.safetensors`` and
  ``probs.safetensors``: what a child reads) and whatever the job's own folder already holds (checkpoints of an
  interrupted run, so it continues where it stopped) through Ray's object store;
- on the worker the job runs in a folder of its own: a temporary one (removed afterwards), or with ``storage``
  (``--storage DIR``, a path every node sees) ``DIR/jobs/<id>``, so that a retried job continues from the
  checkpoints its killed attempt left there;
- the task returns the job's result and every file of its folder as bytes; the driver writes them into
  ``job_dir`` (atomically, each path checked to stay inside it) before handing the result to the engine, so the
  run folder ends as the local backend leaves it.

A worker process or node that dies mid-job is retried by Ray (``retries`` times, default ``DEFAULT_RETRIES``);
a job that raises is not retried (it would raise again): it comes back as ``JobFailed`` with its id, error and
traceback, as from the local backend. A job's resources (``[resources]``, resources.py) are its Ray task's
``num_cpus`` / ``num_gpus``; it runs ``int(cpus)`` (at least 1) intra-op threads.

``address``: None starts a Ray instance on this machine with ``workers`` CPUs (a laptop); ``"auto"`` or
``HOST:PORT`` joins a running cluster (``ray start --head``). When this process is already connected
(``ray.init`` called by the caller), that connection is used and left open. lowbit, torch and the spec's
plugins must be importable on every node, and the data where the spec says (docs/scaling.md).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from ...extras import require
from ...fileio import DiskFullError, atomic_write_bytes, is_stale_temp
from . import Backend, JobFailed
from .local import _outcome

DEFAULT_RETRIES = 2
_TEMP_PREFIX = "lowbit-job-"


def _read_tree(folder: Path, top_only: bool = False) -> dict[str, bytes]:
    """{relative posix path: bytes} of the files under ``folder`` (left-over temporary files skipped)."""
    if not folder.is_dir():
        return {}
    paths = folder.iterdir() if top_only else folder.rglob("*")
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(paths)
        if p.is_file() and not p.is_symlink() and not is_stale_temp(p)
    }


def _inside(folder: Path, rel: str) -> Path:
    """``folder / rel`` for a relative path that stays inside ``folder`` (a worker's answer is not trusted)."""
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or any(p in ("..", ".", "") for p in parts):
        raise ValueError(f"a Ray worker sent back the file {rel!r}, which is not a path inside the job's folder")
    return folder.joinpath(*parts)


def _write_tree(folder: Path, files: dict[str, bytes], only_new: bool = False) -> None:
    for rel, data in files.items():
        path = _inside(folder, rel)
        if only_new and path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)


def run_remote(
    key: str,
    fn: Callable[..., Any],
    kwargs: dict[str, Any],
    parents: list[dict[str, bytes]],
    own: dict[str, bytes],
    storage: str | None,
    threads: int,
) -> tuple:
    """In a Ray worker: run job ``key`` in a folder of this node; return ``_outcome``'s tuple with, after a
    result, the job folder's files and the node's id: ("ok", key, result, files, node)."""
    import ray
    import torch

    torch.set_num_threads(threads)
    node = ray.get_runtime_context().get_node_id()
    if "job_dir" not in kwargs:  # not a job of the engine (a plain function): nothing to carry
        out = _outcome(key, fn, kwargs)
        return (*out, {}, node) if out[0] == "ok" else out
    _remove_dead_scratch(key)
    scratch = Path(tempfile.mkdtemp(prefix=f"{_TEMP_PREFIX}{key}-{os.getpid()}-"))
    try:
        job_dir = Path(storage) / "jobs" / key if storage else scratch / "job"
        job_dir.mkdir(parents=True, exist_ok=True)
        _write_tree(job_dir, own, only_new=bool(storage))  # the shared copy may be further along: it wins
        parent_dirs = []
        for i, files in enumerate(parents):
            parent_dirs.append(str(scratch / f"parent{i}"))
            _write_tree(Path(parent_dirs[-1]), files)
        kwargs = {**kwargs, "job_dir": str(job_dir), "parent_dirs": parent_dirs, "progress": False}
        out = _outcome(key, fn, kwargs)
        return (*out, _read_tree(job_dir), node) if out[0] == "ok" else out
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class RayBackend(Backend):
    def __init__(
        self,
        workers: int = 2,
        address: str | None = None,
        storage: str | Path | None = None,
        retries: int = DEFAULT_RETRIES,
    ):
        ray = require("ray", "--backend ray")
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise ValueError(f"--retries {retries!r} is not accepted; expected a whole number >= 0")
        self.ray, self.workers, self.retries, self.address = ray, workers, retries, address
        self.storage = str(Path(storage).resolve()) if storage is not None else None
        self._owns = not ray.is_initialized()
        if self._owns:
            import logging

            if address is None:  # a Ray instance of this machine, for this sweep only
                ray.init(num_cpus=workers, include_dashboard=False, logging_level=logging.WARNING)
            else:
                ray.init(address=address, logging_level=logging.WARNING)
        self._task = ray.remote(run_remote)
        self._running: dict[Any, tuple[str, Path | None, float]] = {}  # ObjectRef -> (key, job_dir, t0)
        self._resources: dict[str, dict[str, float]] = {}
        self._capacity: tuple[float, int] = (0.0, 1)  # (when measured, value)
        self.placed: dict[str, str] = {}  # job id -> the id of the Ray node it ran on

    def set_job_resources(self, resources: dict[str, dict[str, float]]) -> None:
        self._resources = dict(resources)
        self._warn_unplaceable()

    def _warn_unplaceable(self) -> None:
        """Ray keeps a task no node can hold waiting (a node may join): say so once, or the sweep looks stuck."""
        nodes = [n.get("Resources", {}) for n in self.ray.nodes() if n.get("Alive")]
        for r in {tuple(sorted(v.items())) for v in self._resources.values()}:
            need = dict(r)
            if not any(n.get("CPU", 0) >= need["cpus"] and n.get("GPU", 0) >= need["gpus"] for n in nodes):
                print(
                    f"lowbit: no node of the Ray cluster has cpus={need['cpus']:g}, gpus={need['gpus']:g} (what some "
                    "jobs ask for in [resources]); they wait until such a node joins",
                    file=sys.stderr,
                )

    def submit(self, key: str, fn: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        r = self._resources.get(key, {"cpus": 1, "gpus": 0})
        job_dir = Path(kwargs["job_dir"]) if "job_dir" in kwargs else None
        parents = [_read_tree(Path(p), top_only=True) for p in kwargs.get("parent_dirs", [])]
        own = _read_tree(job_dir) if job_dir is not None else {}
        task = self._task.options(
            num_cpus=r["cpus"],
            num_gpus=r["gpus"],
            max_retries=self.retries,
            retry_exceptions=False,
            name=f"lowbit-{key}",
        )
        threads = max(1, int(r["cpus"]))
        ref = task.remote(key, fn, kwargs, parents, own, self.storage, threads)
        self._running[ref] = (key, job_dir, time.perf_counter())

    @property
    def pending(self) -> int:
        return len(self._running)

    @property
    def capacity(self) -> int:
        """Jobs the cluster runs at once: its CPUs over the smallest CPU request (GPUs for GPU-only jobs), measured
        again every 10 s (nodes join and leave). Ray queues more, but the engine picks the job to run last."""
        t, value = self._capacity
        if time.monotonic() - t > 10:
            total = self.ray.cluster_resources()
            asks = list(self._resources.values()) or [{"cpus": 1, "gpus": 0}]
            cpu = [a["cpus"] for a in asks if a["cpus"] > 0]
            gpu = [a["gpus"] for a in asks if a["cpus"] == 0]
            n = total.get("CPU", 0) / min(cpu) if cpu else 0
            n += total.get("GPU", 0) / min(gpu) if gpu else 0
            value = max(1, int(n))
            self._capacity = (time.monotonic(), value)
        return value

    def next_result(self) -> tuple[str, Any]:
        if not self._running:
            raise RuntimeError("next_result() with no job submitted")
        ready: list = []
        while not ready:  # short waits: Ctrl-C gets through between them
            ready, _ = self.ray.wait(list(self._running), num_returns=1, timeout=1.0)
        ref = ready[0]
        key, job_dir, t0 = self._running.pop(ref)
        try:
            out = self.ray.get(ref)
        except self.ray.exceptions.RayError as e:  # its worker or node died, retries included; or Ray's own error
            raise self._lost(key, e, time.perf_counter() - t0) from None
        if out[0] == "disk full":
            raise DiskFullError(out[2])
        if out[0] != "ok":
            raise JobFailed(*out[1:])
        _, _, result, files, node = out
        self.placed[key] = node
        if job_dir is not None:
            _write_tree(job_dir, files)  # before the engine stores the row: a stored job has its files
        return key, result

    def _lost(self, key: str, e: BaseException, wall_s: float) -> JobFailed:
        cause = getattr(e, "cause", None)  # a RayTaskError wraps what the task raised (e.g. it could not import)
        err = cause if isinstance(cause, BaseException) else e
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        died = isinstance(e, (self.ray.exceptions.WorkerCrashedError, self.ray.exceptions.NodeDiedError))
        if died:
            msg = f"its Ray worker died, and so did its {self.retries} retries ({type(e).__name__})"
            return JobFailed(key, "WorkerDied", msg, wall_s, str(e))
        return JobFailed(key, type(err).__name__, first, wall_s, str(e))

    def close(self, wait: bool = True) -> None:
        for ref in list(self._running):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # already finished or its worker gone: nothing to stop
                pass
        self._running.clear()
        if self._owns and self.ray.is_initialized():
            self.ray.shutdown()
            self._owns = False


def _remove_dead_scratch(key: str) -> None:
    """The temporary folders of earlier attempts at job ``key`` on this node whose worker was killed (its
    ``finally`` never ran): the folder name holds the worker's pid."""
    root = Path(tempfile.gettempdir())
    for d in root.glob(f"{_TEMP_PREFIX}{key}-*-*"):
        pid = d.name[len(_TEMP_PREFIX) + len(key) + 1 :].split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(d, ignore_errors=True)
