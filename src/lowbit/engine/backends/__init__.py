"""Backends run jobs; the engine decides which jobs are ready. One small interface (docs/architecture.md).

A backend is given work as ``submit(key, fn, kwargs)`` — ``fn`` an importable module-level function, the
kwargs plain data — and hands finished work back one at a time from ``next_result() -> (key, result)``. A job
that raises, or whose worker dies (killed, out of memory), is handed back as ``JobFailed`` raised from
``next_result`` (its key, the error's type and one-line message, its wall time): the engine records it and goes on
with the jobs that do not need it. Anything else ``next_result`` raises stops the sweep: a full disk
(``DiskFullError``: every later job would fail the same way), Ctrl-C, workers that cannot start
(``WorkerStartFailed``). ``pending`` says how many submitted jobs have not been handed back;
``capacity`` how many it runs at once (the engine submits no more, so it picks the longest ready job late). The engine
submits a job when its parents are finished and writes each result to the store itself, so the resume rule
is the same for every backend. The local backend runs worker processes; the Ray one (``ray.py``: ``submit`` ->
a Ray task, ``next_result`` -> ``ray.wait``) runs them on a cluster, each with the resources the spec declares
(``set_job_resources``). Another plugs in by registering a factory in ``BACKENDS`` (``BACKENDS.register(name)``, or
an installed package's ``lowbit.backends`` entry point): ``factory(workers, **options)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from ...extras import require
from ...registry import Registry


class JobFailed(Exception):
    """Job ``key`` ended without a result: ``error_type`` and ``message`` (one line) say why, ``wall_s`` how long it
    ran, ``detail`` holds the traceback (or what is known of a worker that died)."""

    def __init__(self, key: str, error_type: str, message: str, wall_s: float, detail: str = ""):
        super().__init__(f"job {key}: {error_type}: {message}")
        self.key, self.error_type, self.message, self.wall_s, self.detail = key, error_type, message, wall_s, detail


class WorkerStartFailed(RuntimeError):
    """A worker process ended before it could take a job (nothing ran in it): the sweep cannot go on."""


def one_line(e: BaseException, limit: int = 300) -> str:
    """The first line of an error's message (its type name when it has none), at most ``limit`` characters."""
    text = (str(e).strip().splitlines() or [""])[0] or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def job_failed(key: str, e: BaseException, wall_s: float) -> JobFailed:
    """``JobFailed`` for job ``key`` that raised ``e`` (call it in the ``except`` block: it keeps the traceback)."""
    import traceback

    return JobFailed(key, type(e).__name__, one_line(e), wall_s, traceback.format_exc())


class Backend(ABC):
    @abstractmethod
    def submit(self, key: str, fn: Callable[..., Any], kwargs: dict[str, Any]) -> None: ...

    @abstractmethod
    def next_result(self) -> tuple[str, Any]: ...

    @property
    @abstractmethod
    def pending(self) -> int: ...

    @property
    def capacity(self) -> int:
        """How many jobs it runs at once (the engine keeps no more than this many submitted)."""
        return 1

    def set_job_resources(self, resources: dict[str, dict[str, float]]) -> None:  # noqa: B027  (optional)
        """What each job asks for (job id -> {"cpus": n, "gpus": n}, the spec's ``[resources]``), given before the
        first ``submit``. A backend that places jobs on machines reserves it; the local one runs every job in one
        single-threaded worker process and ignores it."""

    def close(self, wait: bool = True) -> None:  # noqa: B027  (optional)
        """Release the workers; ``wait=False`` (after an error or Ctrl-C) does not wait for running jobs."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(wait=exc_type is None)


# a factory takes the worker count and the backend's own options (``--address`` ... for ray), by keyword
BACKENDS: Registry[Callable[..., Backend]] = Registry("backend", entry_points="lowbit.backends")


@BACKENDS.register("local")
def _local(workers: int) -> Backend:
    from .local import LocalBackend

    return LocalBackend(workers)


@BACKENDS.register("ray")
def _ray(workers: int, address: str | None = None, storage: str | None = None, retries: int | None = None) -> Backend:
    from .ray import DEFAULT_RETRIES, RayBackend  # imports ray (the cluster extra) only now

    return RayBackend(workers, address, storage, DEFAULT_RETRIES if retries is None else retries)


_ray.requires = ("ray",)  # type: ignore[attr-defined]


def backend_names() -> list[str]:
    return BACKENDS.names()


def check_backend(name: str, workers: int, options: dict[str, Any] | None = None) -> None:
    """A known backend, a worker count, and only options (``--address`` ...) the backend takes (set ones)."""
    import inspect

    if name not in BACKENDS:
        raise ValueError(f"--backend {name!r} is not accepted; expected one of {', '.join(backend_names())}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"--workers {workers!r} is not accepted; expected a whole number >= 1")
    factory = BACKENDS.get(name)
    for module in getattr(factory, "requires", ()):  # its optional packages: one line naming the extra, now
        require(module, f"--backend {name}")
    params = inspect.signature(factory).parameters
    for k, v in (options or {}).items():
        if v is not None and k not in params:
            flag = "--" + k.replace("_", "-")
            raise ValueError(f"{flag} {v!r} is not accepted with --backend {name}; it is an option of another backend")


def make_backend(name: str, workers: int, options: dict[str, Any] | None = None) -> Backend:
    check_backend(name, workers, options)
    return BACKENDS.get(name)(workers, **{k: v for k, v in (options or {}).items() if v is not None})
