"""Chaos: SIGKILL a tiny study at seeded random moments, then --resume: the results are bitwise those of an
uninterrupted run, no temporary file is left, and no file in the run folder is empty or partial. Two processes
on one run folder: the second is refused naming the holder; the lock of a SIGKILLed holder blocks nothing.

The study (float -> QAT W2A2 and INQ-4 of a tiny FCDNN on 300 spiral points, a report with a figure) runs in a
``fork`` of this test process (lowbit and torch already imported: no start-up cost), so kill moments spread over
the work itself. Two kinds of kill points, >= 20 in all:
- at a random time (uniform over 2-70 % of an uninterrupted run's duration), chained: killed again while
  resuming, up to four times, then resumed to the end;
- exactly before the n-th atomic rename (n random over all of the run's writes), which leaves a temporary file
  behind: the moment a checkpoint, model file, metrics.jsonl, spec.toml, report or figure is being written.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
import traceback
from pathlib import Path

import pytest
from tinystudy import SPEC, check_folder, results  # noqa: E402

from lowbit.cli import main  # noqa: E402
from lowbit.engine import run as engine  # noqa: E402
from lowbit.engine.spec import load_spec  # noqa: E402
from lowbit.fileio import is_stale_temp
from lowbit.runlock import LOCK_NAME, RunLocked  # noqa: E402

pytestmark = pytest.mark.slow  # the chaos suite: `make test` runs it, `make test-fast` does not

SEED = 11
RANDOM_KILLS = 14
WRITE_KILLS = 6
HANG_S = 300  # a run that takes longer than this is stuck


def _child(spec_path: Path, out: Path, resume: bool, kill_at_write: int, log: Path, hang_at_write: int = 0) -> None:
    """In the forked child: run the study; SIGKILL itself right before the ``kill_at_write``-th rename (or hang
    there, holding the run folder, with ``hang_at_write``)."""
    try:
        import lowbit.fileio as fileio

        real, count = os.replace, [0]

        def replace(src, dst):
            count[0] += 1
            if count[0] == kill_at_write:
                os.kill(os.getpid(), signal.SIGKILL)
            if count[0] == hang_at_write:
                time.sleep(120)
            return real(src, dst)

        fileio.os.replace = replace  # the child is ours alone: patching the os module is fine here
        engine.sweep(load_spec(spec_path), out, resume=resume, workers=1, progress=False)
        log.write_text(json.dumps({"writes": count[0]}))
        os._exit(0)
    except BaseException:
        log.write_text(traceback.format_exc())
        os._exit(1)


def _run(spec_path, out, resume, log, kill_after=None, kill_at_write=0) -> bool:
    """Run the study in a fork; return True if it was killed (SIGKILL after ``kill_after`` s, or by itself before
    its ``kill_at_write``-th rename) before it finished."""
    log.unlink(missing_ok=True)
    pid = os.fork()
    if pid == 0:
        _child(spec_path, out, resume, kill_at_write, log)
    start = time.monotonic()
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        elapsed = time.monotonic() - start
        if (kill_after is not None and elapsed >= kill_after) or elapsed > HANG_S:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            assert elapsed <= HANG_S, f"the study did not finish within {HANG_S} s"
            return True
        time.sleep(0.005)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL and kill_at_write, status
        return True
    assert os.WEXITSTATUS(status) == 0, log.read_text() if log.is_file() else "the child died without a log"
    return False


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("chaos")
    spec_path = d / "spec.toml"
    spec_path.write_text(SPEC)
    t0 = time.monotonic()
    assert not _run(spec_path, d / "ref", False, d / "ref.log")
    seconds = time.monotonic() - t0
    writes = json.loads((d / "ref.log").read_text())["writes"]
    check_folder(d / "ref")
    return {"dir": d, "spec": spec_path, "seconds": seconds, "writes": writes, "results": results(d / "ref")}


def test_kill_anywhere_then_resume_gives_the_uninterrupted_results(reference):
    d, spec_path, want = reference["dir"], reference["spec"], reference["results"]
    rng = random.Random(SEED)
    kills = {"random time": 0, "before a rename": 0}
    chain = 0
    while kills["random time"] < RANDOM_KILLS:  # chains: kill, kill again while resuming, ..., then finish
        assert chain < 4 * RANDOM_KILLS, f"runs keep finishing before their kill moment: {kills}"
        out = d / f"time{chain}"
        for step in range(4):
            delay = rng.uniform(0.02, 0.7) * reference["seconds"]  # a resume redoes its start-up, then goes on
            if not _run(spec_path, out, step > 0, d / "c.log", kill_after=delay):
                break
            kills["random time"] += 1
        _run(spec_path, out, True, d / "c.log")
        check_folder(out)
        assert results(out) == want, f"chain {chain} differs from the uninterrupted run"
        chain += 1
    points = rng.sample(range(1, reference["writes"] + 1), min(WRITE_KILLS, reference["writes"]))
    for n in points:
        out = d / f"write{n}"
        assert _run(spec_path, out, False, d / "w.log", kill_at_write=n)
        kills["before a rename"] += 1
        assert any(is_stale_temp(p) for p in out.rglob("*")), "the kill left no temporary file to clean"
        _run(spec_path, out, True, d / "w.log")
        check_folder(out)
        assert results(out) == want, f"killed before write {n}: differs from the uninterrupted run"
    assert sum(kills.values()) >= 20, kills
    print(f"kill points: {kills} over {chain} chains; {reference['writes']} atomic writes per run")


def test_second_writer_is_refused_and_a_killed_holder_does_not_block_resume(reference, capsys):
    d, spec_path = reference["dir"], reference["spec"]
    out = d / "two"
    pid = os.fork()
    if pid == 0:
        _child(spec_path, out, False, 0, d / "two.log", hang_at_write=2)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until the first process holds the folder
            try:
                if json.loads((out / LOCK_NAME).read_text()).get("pid") == pid:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.01)
        with pytest.raises(RunLocked, match=f"in use by another lowbit process \\(pid {pid} on "):
            engine.sweep(load_spec(spec_path), out, resume=True, workers=1, progress=False)
        argv = ["sweep", str(spec_path), "--out", str(out), "--resume", "--workers", "1", "--no-progress"]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"(pid {pid} on " in err and "--resume" in err, err
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    _run(spec_path, out, True, d / "two.log")  # the dead holder's lock file is still there and blocks nothing
    check_folder(out)
    assert results(out) == reference["results"]
