"""The local backend: jobs in worker processes on this machine (``--workers N``), one intra-op thread each.

Small models train faster as N single-threaded processes than as one N-threaded one. Workers are started
with ``spawn`` (no fork after torch has started its threads) and die with the sweep (``PR_SET_PDEATHSIG``), so a
killed sweep leaves no worker training on. ``workers = 1`` runs jobs in this process, one
after the other, with no start-up cost.
"""

from __future__ import annotations

import multiprocessing as mp
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from . import Backend, WorkerDied


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _die_with_parent() -> None:
    """A worker whose sweep was killed must not keep training a job that a resumed sweep runs again (Linux)."""
    import ctypes
    import os
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    # The death signal only covers a parent that dies from now on: the initializer runs after the worker's
    # imports, so a sweep killed while this worker was starting has already re-parented it.
    parent = mp.parent_process()
    if parent is not None and os.getppid() != parent.pid:
        os._exit(1)


def _init_process_worker() -> None:
    _die_with_parent()
    _init_worker()


def _died(keys: list[str]) -> str:
    running = ", ".join(keys) or "(none in flight)"
    return (
        f"a worker process died (killed by the OS; out of memory is the usual cause, see `dmesg`) while running "
        f"job(s) {running}; the finished jobs are stored: re-run with --resume, with fewer --workers if memory is short"
    )


class LocalBackend(Backend):
    def __init__(self, workers: int = 2):
        self.workers = workers
        self._queue: deque[tuple[str, Callable, dict]] = deque()  # in-process mode
        self._futures: dict[Future, str] = {}
        self._pool: ProcessPoolExecutor | None = None
        self._threads = None
        if workers > 1:
            self._pool = ProcessPoolExecutor(
                workers, mp_context=mp.get_context("spawn"), initializer=_init_process_worker
            )
        else:
            import torch

            self._threads = torch.get_num_threads()  # restored by close(): the caller's process is not a worker
            _init_worker()

    def submit(self, key: str, fn: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        if self._pool is None:
            self._queue.append((key, fn, kwargs))
        else:
            try:
                self._futures[self._pool.submit(fn, **kwargs)] = key
            except BrokenProcessPool:  # a worker died since the last result: name the jobs it may have been running
                raise WorkerDied(_died(sorted(self._futures.values()))) from None

    @property
    def capacity(self) -> int:
        return self.workers

    @property
    def pending(self) -> int:
        return len(self._queue) + len(self._futures)

    def next_result(self) -> tuple[str, Any]:
        if self._pool is None:
            key, fn, kwargs = self._queue.popleft()
            return key, fn(**kwargs)
        done, _ = wait(list(self._futures), return_when=FIRST_COMPLETED)
        fut = next(iter(done))
        key = self._futures.pop(fut)
        try:
            return key, fut.result()
        except BrokenProcessPool:
            raise WorkerDied(_died([key, *sorted(self._futures.values())])) from None

    def close(self, wait: bool = True) -> None:
        if self._threads is not None:
            import torch

            torch.set_num_threads(self._threads)
            self._threads = None
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None
