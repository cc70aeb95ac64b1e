"""A worker process the OS kills between jobs is reported as a clear error, not a traceback."""

from __future__ import annotations

import pytest


def _square(x: int) -> int:
    return x * x


@pytest.mark.slow
def test_a_worker_killed_between_jobs_is_reported_at_the_next_submit():
    """The pool may notice a dead worker when the next job is handed to it, not when a result is read: that path
    gives the same one-line error as the other, naming the jobs in flight."""
    import os
    import signal
    import time

    import pytest

    from lowbit.engine.backends import WorkerDied
    from lowbit.engine.backends.local import LocalBackend

    be = LocalBackend(2)
    try:
        be.submit("a", _square, {"x": 3})
        assert be.next_result() == ("a", 9)
        for pid in list(be._pool._processes):  # white-box: the executor's worker processes
            os.kill(pid, signal.SIGKILL)
        t0 = time.time()
        while not be._pool._broken and time.time() - t0 < 30:  # the executor's manager thread marks it broken
            time.sleep(0.05)
        with pytest.raises(WorkerDied, match=r"worker process died .*out of memory.*--resume"):
            be.submit("b", _square, {"x": 4})
    finally:
        be.close(wait=False)
