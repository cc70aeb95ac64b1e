"""A failing job is a row, not the end: the sweep records it, finishes what does not need it, lists it in the
report, exits 1, and --resume runs it (and what needs it) again once the cause is gone."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from lowbit.cli import main
from lowbit.engine.report.results import RunResults
from lowbit.engine.run import JobsFailed, sweep
from lowbit.engine.spec import load_spec
from lowbit.engine.store import Store

# A model plugin whose forward raises on training batches (more than 2 samples: the spec check and the step
# timing before training run 2) while its flag file exists: a job that fails at run time, for this model only.
PLUGIN = """
import os

import torch
from torch import nn

from lowbit.models import register_model


class Flaky(nn.Module):
    def __init__(self, in_features: int, num_classes: int, flag: str):
        super().__init__()
        self.flag = flag
        self.fc1, self.fc2 = nn.Linear(in_features, 8), nn.Linear(8, num_classes)

    def forward(self, x):
        if x.shape[0] > 2 and os.path.exists(self.flag):
            raise RuntimeError("flaky_mlp: injected failure\\nsecond line of the message")
        return self.fc2(torch.relu(self.fc1(x)))


@register_model("flaky_mlp")
def flaky_mlp(in_features: int = 2, num_classes: int = 2, flag: str = "") -> Flaky:
    return Flaky(in_features, num_classes, flag)
"""

SPEC = """
name = "flaky"
task = "classification"
[data]
name = "spirals"
subset = 300
test_resolution = 11
[grid]
model = ["good", "bad"]
method = ["float", "W2"]
seed = [0]
[models.good]
name = "fcdnn"
width = 8
depth = 2
[models.bad]
name = "flaky_mlp"
flag = "FLAG"
[train]
epochs = 1
batch_size = 64
[methods.float]
kind = "float"
[methods.W2]
kind = "qat"
parent = "float"
calibrate = 64
quant = { weight = { name = "uniform", bits = 2 } }
"""


def _plugin_dir(tmp_path: Path) -> Path:
    """The plugin as an installed package would be: a module and a dist-info with a lowbit.models entry point."""
    d = tmp_path / "site"
    d.mkdir()
    (d / "flaky_plugin.py").write_text(PLUGIN)
    dist = d / "flaky_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: flaky-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[lowbit.models]\nflaky = flaky_plugin\n")
    return d


@pytest.fixture
def flaky(tmp_path, monkeypatch):
    """(spec path, flag path) with the plugin registered in this process (workers = 1 runs jobs here)."""
    from lowbit.models import MODELS

    monkeypatch.syspath_prepend(str(_plugin_dir(tmp_path)))
    import flaky_plugin  # noqa: F401  (registers flaky_mlp)

    flag = tmp_path / "FLAG"
    flag.write_text("fail")
    spec = tmp_path / "flaky.toml"
    spec.write_text(SPEC.replace('"FLAG"', json.dumps(str(flag))))
    yield spec, flag
    MODELS._entries.pop("flaky_mlp", None)
    sys.modules.pop("flaky_plugin", None)


def _rows(out: Path, table: str) -> list[tuple]:
    db = sqlite3.connect(out / "results.sqlite")
    try:
        return sorted(db.execute(f"SELECT * FROM {table}"))
    finally:
        db.close()


def test_a_failed_job_is_recorded_the_rest_finish_the_report_lists_it_and_resume_retries(flaky, tmp_path, capsys):
    spec, flag = flaky
    out = tmp_path / "run"
    argv = ["sweep", str(spec), "--out", str(out), "--workers", "1", "--no-progress"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("lowbit sweep: 1 of 4 jobs failed, 1 more not run because a job they need failed: ")
    assert "(bad float seed 0): RuntimeError: flaky_mlp: injected failure; see " in err and "second line" not in err
    assert "report.md" in err and "--resume" in err

    res = RunResults(out)
    assert {j.axes["model"] for j in res.jobs.values()} == {"good"} and len(res.jobs) == 2  # the good ones finished
    with Store(out, create=False) as s:
        fails = {(f.axes["model"], f.axes["method"]): f for f in s.failures()}
    assert set(fails) == {("bad", "float"), ("bad", "W2")}
    f, nr = fails["bad", "float"], fails["bad", "W2"]
    assert (f.status, f.error_type, f.message) == ("failed", "RuntimeError", "flaky_mlp: injected failure")
    assert f.wall_s > 0 and "Traceback" in f.detail and "forward" in f.detail and f.code_version.startswith("lowbit")
    assert nr.status == "not run" and nr.message == f"needs job {f.job_id} (bad float seed 0), which failed"
    assert f.config["model"]["name"] == "flaky_mlp" and f.axes == {"model": "bad", "method": "float", "seed": 0}

    md = (out / "report.md").read_text()
    assert "2 finished job(s) (1 failed, 1 not run)" in md
    assert "## Failed jobs" in md
    line = next(x for x in md.splitlines() if x.startswith(f"| {f.job_id} "))
    assert line == f"| {f.job_id} | bad | float | 0 | failed | RuntimeError: flaky_mlp: injected failure |"
    assert f"| {nr.job_id} | bad | W2 | 0 | not run | NotRun: needs job {f.job_id}" in md
    bad_row = next(x for x in md.splitlines() if x.startswith("| bad "))  # the cells are there, marked
    assert bad_row == "| bad | missing [1 failed] | missing [1 not run] |", bad_row
    assert "<h2>Failed jobs</h2>" in (out / "report.html").read_text()

    # `lowbit results` keeps failures apart from result rows; --failed lists them
    assert main(["results", str(out)]) == 0
    captured = capsys.readouterr()
    assert "9 rows; " in captured.out and " bad " not in captured.out
    assert "1 job failed and 1 was not run" in captured.out and "--failed" in captured.out
    assert main(["results", str(out), "--failed", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["method"], r["status"]) for r in listed] == [("float", "failed"), ("W2", "not run")]
    assert "Traceback" in listed[0]["traceback"]
    assert main(["results", str(out), "--json"]) == 0  # machine-readable rows stay result rows only
    captured = capsys.readouterr()
    assert {r["model"] for r in json.loads(captured.out)} == {"good"} and "--failed" in captured.err

    # lowbit report rebuilds the same listing from the store alone
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0 and "## Failed jobs" in (out / "report.md").read_text()

    # the cause removed, --resume runs the failed job and the one that needed it, and leaves the good ones alone
    good_rows = _rows(out, "results")
    flag.unlink()
    assert main([*argv, "--resume"]) == 0
    assert "failed" not in capsys.readouterr().err
    assert set(good_rows) < set(_rows(out, "results"))  # byte for byte, finish times included: not run again
    assert len(RunResults(out).jobs) == 4 and _rows(out, "failures") == []
    md = (out / "report.md").read_text()
    assert "Failed jobs" not in md and "missing" not in md and "4 finished job(s)," in md


def test_a_failure_raises_jobs_failed_from_python_after_the_report(flaky, tmp_path):
    spec, _ = flaky
    with pytest.raises(JobsFailed, match=r"^1 of 4 jobs failed") as e:
        sweep(load_spec(spec), tmp_path / "run", workers=1, progress=False)
    assert e.value.report == tmp_path / "run" / "report.md" and e.value.report.is_file()
    assert e.value.total == 4 and [f.status for f in e.value.failures] == ["failed", "not run"]


def test_reuse_never_takes_a_failed_job(flaky, tmp_path, capsys):
    spec, flag = flaky
    src = tmp_path / "src"
    assert main(["sweep", str(spec), "--out", str(src), "--workers", "1", "--no-progress"]) == 1
    flag.unlink()
    out = tmp_path / "run"
    capsys.readouterr()
    argv = ["sweep", str(spec), "--out", str(out), "--workers", "1", "--no-progress", "--reuse", str(src)]
    assert main(argv) == 0
    assert "reused 2 finished jobs" in capsys.readouterr().out  # the good ones; the failed two trained here
    assert len(RunResults(out).jobs) == 4 and _rows(out, "failures") == []


def test_a_failure_of_another_spec_is_forgotten_when_the_folder_is_reused(flaky, tmp_path):
    """A folder where every job failed holds no result: a changed spec may start there, and the report must not
    list the old spec's failures as its own."""
    spec, flag = flaky
    text = spec.read_text()
    spec.write_text(text.replace('model = ["good", "bad"]', 'model = ["bad"]'))
    out = tmp_path / "run"
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "1", "--no-progress"]) == 1
    spec.write_text(text.replace('model = ["good", "bad"]', 'model = ["good"]'))
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    assert _rows(out, "failures") == [] and "Failed jobs" not in (out / "report.md").read_text()


@pytest.mark.slow
def test_in_worker_processes_a_failure_is_a_row_too(tmp_path):
    """--workers 2 in a subprocess, the plugin found through its entry point by the sweep and by each worker."""
    site = _plugin_dir(tmp_path)
    flag = tmp_path / "FLAG"
    flag.write_text("fail")
    spec = tmp_path / "flaky.toml"
    spec.write_text(SPEC.replace('"FLAG"', json.dumps(str(flag))))
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "lowbit.cli", "sweep", str(spec), "--out", str(out), "--workers", "2"]
    p = subprocess.run([*cmd, "--no-progress"], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 1, p.stderr
    assert "1 of 4 jobs failed" in p.stderr and "RuntimeError: flaky_mlp: injected failure" in p.stderr
    with Store(out, create=False) as s:  # (RunResults would need the plugin in this process)
        assert len(s.done()) == 2 and [f.error_type for f in s.failures()] == ["RuntimeError", "NotRun"]
    flag.unlink()
    p = subprocess.run([*cmd, "--no-progress", "--resume"], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    with Store(out, create=False) as s:
        assert len(s.done()) == 4 and s.failures() == []


def test_ctrl_c_still_stops_the_sweep_and_is_no_failure(flaky, tmp_path, monkeypatch, capsys):
    from lowbit.engine import run

    spec, flag = flaky
    flag.unlink()
    calls = []

    def interrupted(**kwargs):
        calls.append(kwargs["job_dir"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(**kwargs)

    real = run.run_job
    monkeypatch.setattr(run, "run_job", interrupted)
    out = tmp_path / "run"
    argv = ["sweep", str(spec), "--out", str(out), "--workers", "1", "--no-progress"]
    assert main(argv) == 130
    assert "interrupted; re-run with --resume" in capsys.readouterr().err
    assert len(_rows(out, "results")) > 0 and _rows(out, "failures") == []  # one job stored, nothing failed
    monkeypatch.setattr(run, "run_job", real)
    assert main([*argv, "--resume"]) == 0 and len(RunResults(out).jobs) == 4


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, ValueError, IndexError):
                continue
    return out


@pytest.mark.slow
def test_ctrl_c_stops_a_sweep_with_worker_processes_and_leaves_none_behind(tmp_path):
    import signal
    import time

    spec = tmp_path / "s.toml"
    spec.write_text(
        SPEC.replace('"flaky_mlp"\nflag = "FLAG"', '"fcdnn"\nwidth = 16\ndepth = 3').replace(
            "epochs = 1", "epochs = 20"
        )
    )
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "lowbit.cli", "sweep", str(spec), "--out", str(out), "--workers", "2", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # a test runner started in the background (`cmd &`, nohup) passes SIGINT on ignored, and Python then never
    # raises KeyboardInterrupt: give the sweep the default disposition a terminal's foreground job has
    proc = subprocess.Popen(
        cmd,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    t0 = time.time()
    while not list(out.glob("jobs/*/train/**/last.safetensors")):
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < 240
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert len(workers) >= 2
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and b"interrupted; re-run with --resume" in err, err
    time.sleep(0.5)
    assert not [w for w in workers if Path(f"/proc/{w}").exists() and "Z" not in _state(w)]  # no worker trains on
    assert _rows(out, "failures") == []
    p = subprocess.run([*cmd, "--resume"], capture_output=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr
    assert len({r[0] for r in _rows(out, "results")}) == 4


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
