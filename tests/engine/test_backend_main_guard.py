"""A script without the ``if __name__ == "__main__":`` guard that calls ``sweep(..., workers=2)``.

What happens: the 'spawn' start method starts each worker by running the parent's main script again (as
``__mp_main__``), so every worker ran the script's sweep — data loading, model checks — up to the run lock its
parent holds, raised ``RunLocked`` while still starting, and exited 1. The pool saw dead workers and said "killed
by the OS; out of memory is the usual cause". Now the worker notices it is importing its parent's script, says so
and exits with a status of its own, and the sweep stops with ``WorkerStartFailed`` naming the fix."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from lowbit.engine.backends.local import LocalBackend

SCRIPT = '''
import sys
import tomllib

from lowbit.engine.run import sweep
from lowbit.engine.spec import parse_spec

SPEC = """
name = "guard"
task = "classification"
[data]
name = "spirals"
subset = 200
test_resolution = 11
[grid]
model = ["small"]
method = ["float"]
seed = [0, 1]
[models.small]
name = "fcdnn"
width = 8
depth = 2
[train]
epochs = 1
[methods.float]
kind = "float"
"""
spec = parse_spec(tomllib.loads(SPEC), None, "guard.toml")
GUARD
'''


def _run(tmp_path, guarded: bool) -> subprocess.CompletedProcess:
    call = "sweep(spec, sys.argv[1], workers=2, progress=False)\nprint('sweep finished')"
    body = "if __name__ == '__main__':\n    " + call.replace("\n", "\n    ") if guarded else call
    script = tmp_path / ("guarded.py" if guarded else "unguarded.py")
    script.write_text(SCRIPT.replace("GUARD", body))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / ("run_guarded" if guarded else "run")
    return subprocess.run(
        [sys.executable, str(script), str(out)], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path
    )


@pytest.mark.slow
def test_a_script_without_the_main_guard_is_told_so(tmp_path):
    p = _run(tmp_path, guarded=False)
    assert p.returncode == 1 and "sweep finished" not in p.stdout
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("lowbit.engine.backends.WorkerStartFailed: the worker processes could not start"), last
    assert "unguarded.py" in last and "`if __name__ == '__main__':` guard, or workers=1" in last
    assert "out of memory" not in p.stderr and "RunLocked" not in p.stderr
    with_guard = _run(tmp_path, guarded=True)  # the same script with the guard runs
    assert with_guard.returncode == 0 and "sweep finished" in with_guard.stdout, with_guard.stderr


def _add(a: int, b: int) -> int:
    return a + b


@pytest.mark.slow
def test_a_worker_killed_while_starting_is_started_again_and_its_job_still_runs():
    be = LocalBackend(2)
    try:
        be.submit("a", _add, {"a": 7, "b": 2})  # the job is handed to a worker that is still importing
        for w in be._pool:
            os.kill(w.proc.pid, signal.SIGKILL)  # long before it is ready (importing torch takes seconds)
        assert be.next_result() == ("a", 9)
    finally:
        be.close(wait=False)
