"""The local backend: jobs in worker processes on this machine (``--workers N``), one intra-op thread each.

Small models train faster as N single-threaded processes than as one N-threaded one. Workers are started
with ``spawn`` (no fork after torch has started its threads) and die with the sweep (``PR_SET_PDEATHSIG``), so a
killed sweep leaves no worker training on. ``workers = 1`` runs jobs in this process, one after the other, with
no start-up cost.

Each worker is a process of its own with a pipe to the sweep (not a ``ProcessPoolExecutor``, whose one dead
worker breaks the whole pool and fails every job in flight): the backend knows which job each worker runs, so
a worker the OS kills (out of memory) fails that job only, and a new worker takes its place. A worker that
dies idle is replaced and costs nothing. A worker that dies before it is ready ran no job: a new one takes its
job, but after three such deaths in a row (or one from a script that starts a sweep when imported) the sweep stops
with ``WorkerStartFailed`` — most often a script without the ``if __name__ == "__main__":`` guard, which every
spawned worker re-imports (``refuse_in_spawned_import`` makes that case say so).
Workers ignore Ctrl-C: the sweep stops them when it stops.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_any
from typing import Any

from ...fileio import DiskFullError, is_disk_full
from . import Backend, JobFailed, WorkerStartFailed, job_failed

# the exit status of a worker whose re-imported main script started a sweep (see refuse_in_spawned_import)
UNGUARDED_EXIT = 86
GUARD_HINT = "run this from a script with the `if __name__ == '__main__':` guard, or workers=1"


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _die_with_parent() -> None:
    """A worker whose sweep was killed must not keep training a job that a resumed sweep runs again (Linux)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    # The death signal only covers a parent that dies from now on: a sweep killed while this worker was
    # starting has already re-parented it.
    parent = mp.parent_process()
    if parent is not None and os.getppid() != parent.pid:
        os._exit(1)


def _main_script() -> str:
    """The script being run (in a spawned worker still importing it, the module runpy runs as ``__mp_main__``)."""
    for name in ("__mp_main__", "__main__"):
        path = getattr(sys.modules.get(name), "__file__", None)
        if path:
            return str(path)
    return "the main script"


def refuse_in_spawned_import() -> None:
    """End this process if it is a spawned worker still importing its parent's main script.

    ``spawn`` starts a worker by running the parent's main script again (as ``__mp_main__``) before the worker
    gets its task; a script that calls ``sweep`` outside ``if __name__ == "__main__":`` would start a second sweep
    inside every worker. Called first thing in ``sweep`` and ``LocalBackend``: the worker says why on stderr and
    exits with ``UNGUARDED_EXIT``, which the parent's backend turns into ``WorkerStartFailed`` naming the fix.
    ``_inheriting`` is the flag multiprocessing itself checks for this mistake (``spawn._check_not_importing_main``).
    """
    if getattr(mp.current_process(), "_inheriting", False):
        print(
            f"lowbit: this worker process re-imported {_main_script()}, which starts a sweep when imported; "
            f"{GUARD_HINT}",
            file=sys.stderr,
        )
        sys.stderr.flush()
        os._exit(UNGUARDED_EXIT)


def _outcome(key: str, fn: Callable[..., Any], kwargs: dict[str, Any]) -> tuple:
    """Run one job: ("ok", key, result), ("failed", key, type, message, wall_s, traceback) or
    ("disk full", key, path)."""
    t0 = time.perf_counter()
    try:
        return ("ok", key, fn(**kwargs))
    except Exception as e:  # the job's failure, handed to the sweep; Ctrl-C and exits are not caught
        if is_disk_full(e):
            return ("disk full", key, getattr(e, "filename", None) or "a file")
        f = job_failed(key, e, time.perf_counter() - t0)
        return ("failed", key, f.error_type, f.message, f.wall_s, f.detail)


def _serve(conn: Connection) -> None:
    """A worker: say ready, then run the jobs that arrive on ``conn`` until ``None`` (or the pipe closes)."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the sweep's: it stops the workers itself
    _init_worker()
    conn.send(("ready",))
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        out = _outcome(*task)
        try:
            conn.send(out)
        except OSError:  # the sweep is gone
            return
        except Exception as e:  # a result that does not pickle
            conn.send(("failed", task[0], type(e).__name__, f"its result cannot be sent back: {e}", 0.0, ""))


def _how(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        why = "; out of memory is the usual cause, see `dmesg`" if -exitcode == signal.SIGKILL else ""
        return f"was killed by {name}{why}"
    return f"exited with status {exitcode}"


@dataclass
class _Worker:
    proc: Any  # multiprocessing's SpawnProcess
    conn: Connection
    ready: bool = False
    task: tuple | None = None  # (key, fn, kwargs) of the job it runs
    t0: float = 0.0

    @property
    def key(self) -> str | None:
        return None if self.task is None else self.task[0]


class LocalBackend(Backend):
    def __init__(self, workers: int = 2):
        refuse_in_spawned_import()
        self.workers = workers
        self._queue: deque[tuple[str, Callable, dict]] = deque()  # submitted, not yet given to a worker
        self._outcomes: deque[tuple] = deque()  # handed back by workers, not yet by next_result
        self._pool: list[_Worker] = []
        self._start_deaths = 0  # workers that died before they were ready, since one last was
        self._threads = None
        if workers > 1:
            self._ctx = mp.get_context("spawn")
            self._pool = [self._start() for _ in range(workers)]
        else:
            import torch

            self._threads = torch.get_num_threads()  # restored by close(): the caller's process is not a worker
            _init_worker()

    def _start(self) -> _Worker:
        mine, theirs = self._ctx.Pipe()
        proc = self._ctx.Process(target=_serve, args=(theirs,), daemon=True, name="lowbit-worker")
        proc.start()
        theirs.close()  # the worker holds the other end: its death closes the pipe
        return _Worker(proc, mine)

    def submit(self, key: str, fn: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        self._queue.append((key, fn, kwargs))
        self._dispatch()

    def _dispatch(self) -> None:
        for w in self._pool:
            if not self._queue:
                return
            if w.key is None and w.proc.is_alive():
                key, fn, kwargs = self._queue[0]
                try:
                    w.conn.send((key, fn, kwargs))
                except OSError:  # it died idle since the last look: the next wait() replaces it
                    continue
                w.task, w.t0 = self._queue.popleft(), time.perf_counter()

    @property
    def capacity(self) -> int:
        return self.workers

    @property
    def pending(self) -> int:
        return len(self._queue) + len(self._outcomes) + sum(w.key is not None for w in self._pool)

    def next_result(self) -> tuple[str, Any]:
        if not self._pool:
            return self._run_here()
        while not self._outcomes:
            if not self.pending:
                raise RuntimeError("next_result() with no job submitted")
            ready = set(wait_any([w.conn for w in self._pool] + [w.proc.sentinel for w in self._pool]))
            for i, w in enumerate(self._pool):
                if w.conn in ready or w.proc.sentinel in ready:
                    self._read(i, w)
            self._dispatch()
        out = self._outcomes.popleft()
        if out[0] == "ok":
            return out[1], out[2]
        if out[0] == "disk full":
            raise DiskFullError(out[2])
        raise JobFailed(*out[1:])

    def _run_here(self) -> tuple[str, Any]:
        """``workers = 1``: the next job, in this process."""
        key, fn, kwargs = self._queue.popleft()
        t0 = time.perf_counter()
        try:
            return key, fn(**kwargs)
        except Exception as e:  # Ctrl-C is not caught; a full disk is raised as it came
            if is_disk_full(e):
                raise
            raise job_failed(key, e, time.perf_counter() - t0) from e

    def _read(self, i: int, w: _Worker) -> None:
        """Take what worker ``i`` sent; if it died, fail its job and put a new worker in its place."""
        dead = False
        try:
            while w.conn.poll():
                msg = w.conn.recv()
                if msg[0] == "ready":
                    w.ready, self._start_deaths = True, 0
                else:
                    self._outcomes.append(msg)
                    w.task = None
        except (EOFError, OSError):
            dead = True
        if not dead and w.proc.is_alive():
            return
        w.proc.join(5)
        code = w.proc.exitcode
        w.conn.close()
        if not w.ready:  # no job ran in it: its job goes back to the queue, a new worker starts
            self._start_deaths += 1
            if code == UNGUARDED_EXIT or self._start_deaths >= 3:  # it will not go better the next time
                raise WorkerStartFailed(_start_failed(code))
            if w.task is not None:
                self._queue.appendleft(w.task)
        elif w.key is not None:
            wall, detail = time.perf_counter() - w.t0, f"worker pid {w.proc.pid} {_how(code)} while running job {w.key}"
            self._outcomes.append(("failed", w.key, "WorkerDied", f"its worker process {_how(code)}", wall, detail))
        self._pool[i] = self._start()

    def close(self, wait: bool = True) -> None:
        if self._threads is not None:
            import torch

            torch.set_num_threads(self._threads)
            self._threads = None
        pool, self._pool = self._pool, []
        for w in pool:
            try:
                if wait and w.proc.is_alive():
                    w.conn.send(None)  # finish and exit
                else:
                    w.proc.terminate()
            except OSError:
                pass
        for w in pool:
            w.proc.join(10 if wait else 2)
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(2)
            w.conn.close()


def _start_failed(code: int | None) -> str:
    if code == UNGUARDED_EXIT:
        return (
            f"the worker processes could not start: each one re-imports {_main_script()} (the 'spawn' start method), "
            f"and it starts a sweep when imported; {GUARD_HINT}"
        )
    return (
        f"a worker process {_how(code)} while starting, before it ran any job (its error, if any, is printed above); "
        "re-run with --resume, or with --workers 1 to run the jobs in this process"
    )
