"""Backends run jobs; the engine decides which jobs are ready. One small interface (docs/architecture.md).

A backend is given work as ``submit(key, fn, kwargs)`` — ``fn`` an importable module-level function, the
kwargs plain data — and hands finished work back one at a time from ``next_result() -> (key, result)``,
re-raising a job's exception. ``pending`` says how many submitted jobs have not been handed back;
``capacity`` how many it runs at once (the engine submits no more, so it picks the longest ready job late). The engine
submits a job when its parents are finished and writes each result to the store itself, so the resume rule
is the same for every backend. The local backend runs worker processes; a distributed one (Ray: ``submit`` ->
``fn.remote``, ``next_result`` -> ``ray.wait``) plugs in by registering a factory in ``BACKENDS``
(``BACKENDS.register(name)``, or an installed package's ``lowbit.backends`` entry point).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from ...registry import Registry


class WorkerDied(RuntimeError):
    """A worker process ended without a result (killed, out of memory)."""


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

    def close(self, wait: bool = True) -> None:  # noqa: B027  (optional)
        """Release the workers; ``wait=False`` (after an error or Ctrl-C) does not wait for running jobs."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(wait=exc_type is None)


BACKENDS: Registry[Callable[[int], Backend]] = Registry("backend", entry_points="lowbit.backends")


@BACKENDS.register("local")
def _local(workers: int) -> Backend:
    from .local import LocalBackend

    return LocalBackend(workers)


def backend_names() -> list[str]:
    return BACKENDS.names()


def check_backend(name: str, workers: int) -> None:
    if name not in BACKENDS:
        raise ValueError(f"--backend {name!r} is not accepted; expected one of {', '.join(backend_names())}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"--workers {workers!r} is not accepted; expected a whole number >= 1")


def make_backend(name: str, workers: int) -> Backend:
    check_backend(name, workers)
    return BACKENDS.get(name)(workers)
