"""lowbit.runlock: one writer per run folder; the second is told who holds it; a killed holder leaves no stuck lock."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from lowbit.runlock import LOCK_NAME, RunLock, RunLocked

HOLD = textwrap.dedent(
    """
    import sys, time
    from lowbit.runlock import RunLock
    lock = RunLock(sys.argv[1]).acquire()
    print("held", flush=True)
    time.sleep(120)
    """
)


def test_second_holder_is_refused_and_release_frees_it(tmp_path):
    with RunLock(tmp_path / "run") as lock:
        assert lock.held
        with pytest.raises(RunLocked, match=rf"in use by another lowbit process \(pid {os.getpid()} on "):
            RunLock(tmp_path / "run").acquire()
    assert not lock.held
    with RunLock(tmp_path / "run") as again:
        info = json.loads((tmp_path / "run" / LOCK_NAME).read_text())
        assert again.held and info["pid"] == os.getpid()


@pytest.mark.slow
def test_other_process_is_named_and_its_sigkill_leaves_no_stuck_lock(tmp_path):
    run = tmp_path / "run"
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(RunLocked) as info:
            RunLock(run).acquire()
        msg = str(info.value)
        assert f"pid {child.pid} on " in msg and "--resume" in msg and str(run) in msg
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert (run / LOCK_NAME).exists()  # the file stays behind, the kernel lock does not
    with RunLock(run):
        assert json.loads((run / LOCK_NAME).read_text())["pid"] == os.getpid()
