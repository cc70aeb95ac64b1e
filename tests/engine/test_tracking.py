"""`--tensorboard DIR`: one TensorBoard run per job, named by its axes, whose scalars are the job's metrics.jsonl
epochs and its stored metrics (read back with TensorBoard's own EventAccumulator)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from support.specs import SPIRALS_TINY

from lowbit.cli import main
from lowbit.engine.store import Store
from lowbit.engine.tracking import run_name

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is None, reason="tensorboard is not installed (the tracking extra)"
)


def _scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})  # 0: keep every event
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _f32(x: float) -> float:
    return float(np.float32(x))  # what an event file holds


@pytest.mark.slow
def test_a_sweep_writes_each_jobs_epochs_and_metrics_as_tensorboard_scalars(tmp_path):
    """Also when resumed: the jobs it finished before are written too."""
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPIRALS_TINY)
    out, tb = tmp_path / "run", tmp_path / "tb"
    args = ["sweep", str(spec), "--out", str(out), "--workers", "1", "--no-progress", "--tensorboard"]
    assert main([*args, str(tb)]) == 0
    _check(out, tb)
    # a resumed run writes the jobs it already holds (here: every one) into a fresh folder
    assert main([*args, str(tmp_path / "tb2"), "--resume"]) == 0
    _check(out, tmp_path / "tb2")


def _check(out, tb):
    with Store(out, create=False) as s:
        rows = s.rows()
    jobs = {r.job_id: r for r in rows}
    assert len(jobs) == 3
    runs = {p.parent.relative_to(tb).as_posix() for p in tb.rglob("events.out.tfevents.*")}
    assert runs == {run_name(r.axes) for r in jobs.values()}
    assert "model=small/method=W2/seed=0" in runs
    for job_id, row in jobs.items():
        scalars = _scalars(tb / run_name(row.axes))
        files = sorted((out / "jobs" / job_id / "train").rglob("metrics.jsonl"))
        epochs = [json.loads(line) for f in files for line in f.read_text().splitlines()]
        assert len(epochs) == {"float": 3, "W2": 2, "INQ": 1}[row.axes["method"]]  # INQ: stage 1.0 trains nothing
        for key in ("loss", "lr", "seconds"):
            assert scalars[f"epoch/{key}"] == [(i, _f32(e[key])) for i, e in enumerate(epochs)]
        stored = {r.metric: r.value for r in rows if r.job_id == job_id}
        assert {t[4:] for t in scalars if t.startswith("job/")} == {*stored, "wall_s"}
        for metric, value in stored.items():
            assert scalars[f"job/{metric}"] == [(len(epochs), _f32(value))]
        assert scalars["job/wall_s"] == [(len(epochs), _f32(row.wall_s))]
