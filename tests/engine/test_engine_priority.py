"""The engine starts the job with the most work behind it first, and work is a measured training step x epochs:
a depthwise net with as many weights (and about as many multiply-accumulates) as a basic one takes several times
longer per step, so parameter counts would start it last."""

from __future__ import annotations

import pytest
import torch
from support.app_studies import write_cifar_jpeg
from torch import nn

from lowbit.engine.plan import plan
from lowbit.engine.run import _priorities, preflight, step_seconds
from lowbit.engine.spec import load_spec
from lowbit.studies import study_path


def test_step_seconds_times_forward_and_backward():
    calls = {"forward": 0, "backward": 0}

    class Counted(nn.Linear):
        def forward(self, x):
            calls["forward"] += 1
            out = super().forward(x)
            out.register_hook(lambda g: calls.__setitem__("backward", calls["backward"] + 1))
            return out

    model = Counted(3, 2)
    t = step_seconds(model, torch.randn(2, 3), repeats=2)
    assert t > 0 and calls == {"forward": 3, "backward": 3}  # one warm-up + two timed
    assert model.weight.grad is None  # no gradient left behind


def test_preflight_costs_are_step_times_and_the_longest_chain_goes_first(tmp_path, monkeypatch):
    import lowbit.engine.run as engine

    data = tmp_path / "data"
    data.mkdir()
    write_cifar_jpeg(data, classes=3, n_train=4, n_test=2)
    monkeypatch.setenv("LOWBIT_DATA", str(data))
    monkeypatch.setenv("LOWBIT_CACHE", str(tmp_path / "cache"))
    spec = load_spec(study_path("cnn_blocks"), "tiny")  # basic-8 and dw-29, float -> W2A2
    jobs = plan(spec)
    timed = []

    def fake_step_seconds(model, x):  # what a CPU measures for Table 5's nets: the depthwise step ~3x slower
        timed.append(tuple(x.shape))
        return 0.3 if any(m.groups > 1 for m in model.modules() if isinstance(m, nn.Conv2d)) else 0.1

    monkeypatch.setattr(engine, "step_seconds", fake_step_seconds)
    costs = preflight(spec, jobs)
    assert costs == {"basic-8": 0.1, "dw-29": 0.3} and timed == [(2, 3, 32, 32)] * 2
    level = _priorities(jobs, costs)
    for j in jobs:  # each chain: its own work plus the longest chain of its children
        child = [c for c in jobs if j.id in c.parents]
        own = costs[j.axes["model"]] * j.config["recipe"]["train"]["epochs"]
        assert level[j.id] == pytest.approx(own + max((level[c.id] for c in child), default=0.0))
    first = max(jobs, key=lambda j: level[j.id])
    assert (first.axes["model"], first.kind) == ("dw-29", "float")
