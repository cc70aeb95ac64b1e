"""One run on several processes: ``lowbit run CONFIG --nproc N`` or ``torchrun --nproc-per-node N -m lowbit run``.

Every process runs the CLI. Rank 0 runs the engine as always (plan, store, report: the only writer) on the
``ddp`` backend below, which runs each job in this process, one after the other, after handing it to the other
ranks; those ranks (``follow``) run the same job, so every ``fit`` in it is one data-parallel training
(``train/distributed.py``). A follower writes nothing into the run folder: the job's files it would write go to
a scratch folder of its own, and what it must read (a parent's model) rank 0 wrote before it handed the job on.

``launch`` is ``--nproc``: N copies of this command with torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE,
MASTER_ADDR = 127.0.0.1, a free MASTER_PORT), which die with it. When one of them dies, the others stop with one
line (``PeerLost``) and so does the launcher, naming the rank and how it ended; ``--resume`` continues.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ...train import distributed
from ...train.distributed import PeerLost
from . import BACKENDS, Backend, job_failed

_DONE = None  # what rank 0 hands the followers when the run has no more jobs


class DistributedBackend(Backend):
    """Rank 0's side: each job in this process, after broadcasting it to the other ranks."""

    def __init__(self) -> None:
        self._results: list[tuple[str, Any]] = []
        self._closed = False

    def submit(self, key: str, fn: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        with distributed.lost_peer(f"the hand-over of job {key}"):
            distributed.from_rank0((key, fn, kwargs))
        t0 = time.perf_counter()
        try:
            self._results.append((key, fn(**kwargs)))
        except PeerLost:
            raise  # the run cannot go on: not a failure of this job (--resume runs it again)
        except Exception as e:
            self._results.append((key, job_failed(key, e, time.perf_counter() - t0)))

    def next_result(self) -> tuple[str, Any]:
        key, res = self._results.pop(0)
        if isinstance(res, BaseException):
            raise res
        return key, res

    @property
    def pending(self) -> int:
        return len(self._results)

    def close(self, wait: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            distributed.from_rank0(_DONE)
        except RuntimeError:  # a follower is gone already: nothing waits for the word
            pass


def _ddp(workers: int) -> Backend:
    return DistributedBackend()


def register() -> str:
    """Register the ``ddp`` backend (in a rank of a distributed run only: it is no choice for ``--backend``, so
    it is not listed in other processes) and return its name."""
    if "ddp" not in BACKENDS:
        BACKENDS.register("ddp", _ddp, listed=False)
    return "ddp"


def follow() -> None:
    """A rank > 0: run each job rank 0 hands over, writing into a scratch folder, until it says done."""
    scratch = Path(tempfile.mkdtemp(prefix=f"lowbit-rank{distributed.rank()}-"))
    try:
        while True:
            with distributed.lost_peer("the wait for the next job"):
                task = distributed.from_rank0(None)
            if task is _DONE:
                return
            key, fn, kwargs = task
            try:
                fn(**{**kwargs, "job_dir": str(scratch / key), "progress": False})
            except PeerLost:
                raise
            except Exception:  # rank 0 records the job's failure; the same error happened here
                pass
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _how(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def _die_with_parent() -> None:  # runs in the child between fork and exec (Linux): no rank outlives the launcher
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def launch(argv: Sequence[str], nproc: int, grace_s: float = 60.0) -> int:
    """Run ``python -m lowbit <argv>`` as ``nproc`` ranks on this machine; return 0 when all succeed, else the
    status of the first rank that failed, after saying on stderr which rank and how."""
    env = {
        **os.environ,
        "WORLD_SIZE": str(nproc),
        "LOCAL_WORLD_SIZE": str(nproc),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
    }
    env.setdefault("OMP_NUM_THREADS", "1")  # as torchrun: N processes, one thread each unless told otherwise
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "lowbit", *argv],
            env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
            preexec_fn=_die_with_parent,
        )
        for r in range(nproc)
    ]
    try:
        first: tuple[int, int] | None = None
        deadline = None
        while any(p.poll() is None for p in procs):
            if first is None:
                bad = [(r, p.returncode) for r, p in enumerate(procs) if p.returncode not in (None, 0)]
                if bad:
                    killed = [b for b in bad if b[1] < 0]
                    first = (killed or bad)[0]
                    deadline = time.monotonic() + grace_s
            if deadline is not None and time.monotonic() > deadline:
                break  # the others had their chance to stop by themselves
            time.sleep(0.05)
    except KeyboardInterrupt:
        for p in procs:
            p.wait()
        raise
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            p.wait()
    codes = [p.returncode for p in procs]
    if all(c == 0 for c in codes):
        return 0
    if first is None:
        killed = [(r, c) for r, c in enumerate(codes) if c < 0]
        first = (killed or [(r, c) for r, c in enumerate(codes) if c != 0])[0]
    r, code = first
    print(
        f"lowbit run: rank {r} of {nproc} {_how(code)}; the run stopped: rerun with --resume to continue",
        file=sys.stderr,
    )
    return code if code > 0 else 1
