"""The local backend's worker processes: a job that raises, a worker the OS kills mid-job or between jobs, a full disk.

A dead worker fails the job it was running, and only that job (a ProcessPoolExecutor would fail every job in
flight); a new worker takes its place."""

from __future__ import annotations

import errno
import os
import signal
import time

import pytest

from lowbit.engine.backends import JobFailed
from lowbit.engine.backends.local import LocalBackend
from lowbit.fileio import DiskFullError


def _square(x: int) -> int:
    return x * x


def _sleep(s: float) -> str:
    time.sleep(s)
    return "slept"


def _raise(kind: str) -> None:
    if kind == "disk":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/somewhere/last.safetensors")
    raise ValueError("bad value 7\nmore detail on a second line")


def _busy_worker(be: LocalBackend, key: str, timeout: float = 60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        for i, w in enumerate(be._pool):  # white-box: the backend's worker processes
            if w.key == key:
                be._read(i, w)  # takes its "ready"
                if w.ready:
                    time.sleep(0.3)  # it has taken the job from its pipe
                    return w
        time.sleep(0.05)
    raise AssertionError(f"no worker took job {key}")


@pytest.mark.slow
def test_a_worker_killed_mid_job_fails_that_job_only_and_is_replaced():
    be = LocalBackend(2)
    try:
        be.submit("slow", _sleep, {"s": 60})
        be.submit("quick", _sleep, {"s": 1})
        victim = _busy_worker(be, "slow")
        pid = victim.proc.pid
        os.kill(pid, signal.SIGKILL)
        got, failed = {}, {}
        for _ in range(2):
            try:
                k, v = be.next_result()
                got[k] = v
            except JobFailed as f:
                failed[f.key] = f
        assert got == {"quick": "slept"}  # the other job in flight is not lost
        f = failed["slow"]
        assert f.error_type == "WorkerDied" and f.message.startswith("its worker process was killed by SIGKILL")
        assert "out of memory is the usual cause" in f.message and f.wall_s > 0 and str(pid) in f.detail
        assert len(be._pool) == 2 and all(w.proc.pid != pid for w in be._pool)  # replaced
        be.submit("after", _square, {"x": 5})
        assert be.next_result() == ("after", 25) and be.pending == 0
    finally:
        be.close(wait=False)


@pytest.mark.slow
def test_a_worker_killed_between_jobs_costs_nothing():
    be = LocalBackend(2)
    try:
        be.submit("a", _square, {"x": 3})
        assert be.next_result() == ("a", 9)
        w = be._pool[0]
        os.kill(w.proc.pid, signal.SIGKILL)
        w.proc.join(10)
        for i in range(3):  # each job still runs (on the other worker or the new one)
            be.submit(f"b{i}", _square, {"x": i})
        assert sorted(be.next_result() for _ in range(3)) == [("b0", 0), ("b1", 1), ("b2", 4)]
    finally:
        be.close(wait=False)


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_a_job_that_raises_is_handed_back_as_job_failed(workers):
    be = LocalBackend(workers)
    try:
        be.submit("x", _raise, {"kind": "value"})
        with pytest.raises(JobFailed) as e:
            be.next_result()
        f = e.value
        assert (f.key, f.error_type, f.message) == ("x", "ValueError", "bad value 7")
        assert "Traceback" in f.detail and "second line" in f.detail and f.wall_s >= 0
        be.submit("y", _square, {"x": 4})  # the backend goes on
        assert be.next_result() == ("y", 16)
    finally:
        be.close(wait=False)


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_a_full_disk_stops_the_sweep_instead_of_failing_one_job(workers):
    be = LocalBackend(workers)
    try:
        be.submit("x", _raise, {"kind": "disk"})
        with pytest.raises(OSError, match="(?i)no space left on device.*/somewhere/last.safetensors") as e:
            be.next_result()
        assert isinstance(e.value, DiskFullError) or e.value.errno == errno.ENOSPC  # (in-process: as raised)
    finally:
        be.close(wait=False)
