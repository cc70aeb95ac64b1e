"""Kill -9 mid-run (the workers, then the whole sweep), --resume: the results are bitwise an uninterrupted run's."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file
from support.specs import SPIRALS_TINY

from lowbit.cli import main
from lowbit.engine.run import sweep
from lowbit.engine.spec import parse_spec

HEAVIER = SPIRALS_TINY.replace("subset = 300", "subset = 3000").replace("epochs = 3\n", "epochs = 8\n")
SMALL = SPIRALS_TINY.replace('method = ["float", "W2", "INQ"]', 'method = ["float"]')  # float only


def _snapshot(out: Path) -> tuple[list, dict]:
    with sqlite3.connect(out / "results.sqlite") as db:
        rows = sorted(db.execute("SELECT job_id, metric, value, axes, config, model_path FROM results"))
    models = {p.parent.name: load_file(p) for p in sorted(out.glob("jobs/*/model.safetensors"))}
    return rows, models


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                cmd = (d / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in cmd:
                out.append(int(d.name))
    return out


def _start(spec: Path, out: Path, workers: int, resume: bool) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "lowbit.cli",
        "sweep",
        str(spec),
        "--out",
        str(out),
        "--workers",
        str(workers),
        "--no-progress",
    ] + (["--resume"] if resume else [])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)


def _wait_for_training(out: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.time()
    while not list(out.glob("jobs/*/train/**/last.safetensors")):
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout
        time.sleep(0.05)


@pytest.mark.slow
def test_kill_a_worker_then_the_sweep_and_resume_bitwise(tmp_path):
    rng = random.Random(7)
    spec = tmp_path / "s.toml"
    spec.write_text(HEAVIER)
    ref = tmp_path / "ref"
    assert main(["sweep", str(spec), "--out", str(ref), "--workers", "1", "--no-progress"]) == 0
    out = tmp_path / "run"

    # 1. SIGKILL the worker processes mid-job: the job being trained fails (and what needs it is not run), the
    # rest finish; the sweep ends with one summary line and status 1, nothing half-written
    proc = _start(spec, out, workers=2, resume=False)
    _wait_for_training(out, proc)
    time.sleep(rng.uniform(0.0, 0.6))
    workers = _children(proc.pid)
    assert workers, "no worker process found"
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1 and b"jobs failed" in err and b"WorkerDied: its worker process was killed" in err, err
    with sqlite3.connect(out / "results.sqlite") as db:
        assert db.execute("SELECT count(*) FROM failures WHERE error_type = 'WorkerDied'").fetchone()[0] >= 1

    # 2. SIGKILL the whole resumed sweep (main process and workers) at a random moment of its work
    proc = _start(spec, out, workers=2, resume=True)
    time.sleep(rng.uniform(1.0, 4.0))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)

    # 3. resume to the end (in this process): exactly the uninterrupted run's rows and model tensors
    assert main(["sweep", str(spec), "--out", str(out), "--resume", "--workers", "1", "--no-progress"]) == 0
    rows, models = _snapshot(out)
    ref_rows, ref_models = _snapshot(ref)
    assert [r[:3] for r in rows] == [r[:3] for r in ref_rows] and rows == ref_rows
    assert models.keys() == ref_models.keys() and len(models) == 3
    for k in models:
        assert models[k].keys() == ref_models[k].keys()
        assert all(models[k][t].equal(ref_models[k][t]) for t in models[k]), k
    assert not [p for p in out.rglob(".*") if p.is_file() and p.name != ".lowbit.lock"]  # no stale temp file
    with sqlite3.connect(out / "results.sqlite") as db:
        assert db.execute("SELECT count(*) FROM failures").fetchone()[0] == 0  # retried and finished


def _spec(extra: str = "", text: str = SMALL):
    import tomllib

    return parse_spec(tomllib.loads(text + extra), None, "edges.toml")


def test_resume_accepts_a_changed_report_section_but_not_a_changed_recipe(tmp_path):
    sweep(_spec(), tmp_path / "run", workers=1, progress=False)
    extra = '[[report.tables]]\nrows = "model"\ncolumns = "method"\nvalue = "accuracy"\n'
    assert sweep(_spec(extra), tmp_path / "run", resume=True, workers=1, progress=False).is_file()
    with pytest.raises(ValueError, match="first difference: train.epochs"):
        sweep(_spec(text=SMALL.replace("epochs = 3\n", "epochs = 4\n")), tmp_path / "run", resume=True, workers=1)
