"""Seed siblings trained as one task (engine/fused.py): the same rows as separate jobs, one per job, and a
partly finished group resumes exactly, rerunning only its missing jobs."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from safetensors.torch import load_file

from lowbit.engine import fused
from lowbit.engine.plan import plan
from lowbit.engine.report.results import RunResults
from lowbit.engine.run import sweep
from lowbit.engine.spec import load_spec

SPEC = """
name = "fused"
task = "classification"
[data]
name = "spirals"
subset = 640
test_resolution = 31
[grid]
model = ["m"]
method = ["float", "W2A2", "INQ"]
seed = [0, 1, 2]
bits = [3]
[models.m]
name = "fcdnn"
width = 16
depth = 3
first_bias = 1.0
[train]
epochs = 1
batch_size = 64
lr = 0.01
schedule = "onecycle"
[methods.float]
kind = "float"
train = { epochs = 2 }
[methods.W2A2]
kind = "qat"
parent = "float"
calibrate = 256
quant = { weight = { name = "uniform", bits = 2 }, act = { name = "pact", bits = 2 } }
[methods.INQ]
kind = "inq"
parent = "float"
bits = "${bits}"
portions = [0.5, 1.0]
"""


@pytest.fixture
def spec(tmp_path):
    p = tmp_path / "fused.toml"
    p.write_text(SPEC)
    return load_spec(p)


@pytest.fixture
def groups(monkeypatch):
    """The job lists of every run_group call."""
    calls: list[list[str]] = []
    real = fused.run_group

    def spy(jobs):
        calls.append([j["job_dir"].rsplit("/", 1)[-1] for j in jobs])
        return real(jobs)

    monkeypatch.setattr(fused, "run_group", spy)
    return calls


def _weights(out, job_id):
    return load_file(out / "jobs" / job_id / "model.safetensors")


def _same_runs(a, b, ids) -> None:
    ra, rb = RunResults(a), RunResults(b)
    for i in ids:
        assert ra.jobs[i].metrics == rb.jobs[i].metrics, i
        wa, wb = _weights(a, i), _weights(b, i)
        assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa), i


@pytest.mark.slow
def test_fused_sweep_equals_separate_jobs_one_row_per_job(spec, tmp_path, groups, monkeypatch):
    jobs = plan(spec)
    sweep(spec, tmp_path / "fused", workers=1, progress=False)
    assert len(groups) == 3 and all(len(g) == 3 for g in groups)  # float, W2A2, INQ: one task of three seeds each
    db = sqlite3.connect(tmp_path / "fused" / "results.sqlite")
    per_job = dict(db.execute("SELECT job_id, COUNT(DISTINCT metric) FROM results GROUP BY job_id"))
    db.close()
    assert sorted(per_job) == sorted(j.id for j in jobs)  # a row set for every job, under its own id
    monkeypatch.setattr(fused, "stackable", lambda config: False)  # every job on its own
    sweep(spec, tmp_path / "separate", workers=1, progress=False)
    assert len(groups) == 3
    _same_runs(tmp_path / "fused", tmp_path / "separate", [j.id for j in jobs])  # bitwise: metrics and weights


@pytest.mark.slow
def test_a_partly_finished_group_reruns_only_its_missing_jobs_exactly(spec, tmp_path, groups):
    out, ref = tmp_path / "run", tmp_path / "ref"
    sweep(spec, ref, workers=1, progress=False)
    shutil.copytree(ref, out)
    w2a2 = {j.axes["seed"]: j.id for j in plan(spec) if j.axes["method"] == "W2A2"}
    db = sqlite3.connect(out / "results.sqlite")
    with db:
        db.executemany("DELETE FROM results WHERE job_id = ?", [(w2a2[1],), (w2a2[2],)])
    db.close()
    # seed 1 was killed after its last checkpoint and before its row; seed 2 before its training started
    (out / "jobs" / w2a2[1] / "model.safetensors").unlink()
    shutil.rmtree(out / "jobs" / w2a2[2])
    groups.clear()
    sweep(spec, out, resume=True, workers=1, progress=False)
    assert groups == [[w2a2[1], w2a2[2]]]  # only the missing two, still trained as one task
    _same_runs(out, ref, [j.id for j in plan(spec)])
