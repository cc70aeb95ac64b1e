"""How often a training loop checkpoints (``CheckpointClock``, ``$LOWBIT_CHECKPOINT_SECONDS``) changes no result:
a run killed between two written epochs resumes from the last one written and ends bitwise where an uninterrupted
run ends, with the same ``metrics.jsonl`` (but for measured seconds)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from lowbit.train import TrainConfig, fit
from lowbit.train.checkpoint import CHECKPOINT_SECONDS_ENV, CheckpointClock


def _data(n=200):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g)
    return TensorDataset(x, (x[:, 0] * x[:, 1] > 0).long())


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))


CFG = TrainConfig(epochs=8, batch_size=32, lr=0.01, seed=3, schedule="cosine")


class Stop(Exception):
    pass


def _train(run_dir, stop_after=None):
    def evaluate(model):
        if stop_after is not None and len(seen) == stop_after:
            raise Stop  # a crash at the end of epoch `stop_after` (after its training, before its checkpoint)
        seen.append(1)
        return {}

    seen: list = []
    model = _net()
    fit(model, _data(), CFG, run_dir=run_dir, resume=True, evaluate=evaluate, progress=False)
    return model


def _lines(run_dir):
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_clock_rules(monkeypatch):
    assert all(CheckpointClock(0).due(False) for _ in range(3))
    slow = CheckpointClock(1e9)
    assert not slow.due(False) and slow.due(True)  # the last epoch is always written
    monkeypatch.setenv(CHECKPOINT_SECONDS_ENV, "soon")
    with pytest.raises(ValueError, match="LOWBIT_CHECKPOINT_SECONDS='soon'"):
        CheckpointClock()
    with pytest.raises(ValueError, match="-1"):
        CheckpointClock(-1)


@pytest.mark.parametrize("interval", ["0", "1e9"])
def test_a_crash_between_written_epochs_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch, interval):
    monkeypatch.setenv(CHECKPOINT_SECONDS_ENV, "0")
    ref = _train(tmp_path / "ref")
    # the crashed run: every epoch written (interval 0) or none before the last (1e9: it restarts from scratch)
    monkeypatch.setenv(CHECKPOINT_SECONDS_ENV, interval)
    with pytest.raises(Stop):
        _train(tmp_path / "run", stop_after=5)
    ckpt = tmp_path / "run" / "checkpoints" / "last.safetensors"
    assert ckpt.exists() == (interval == "0")
    monkeypatch.setenv(CHECKPOINT_SECONDS_ENV, "1e9")  # the resumed run writes only its last epoch
    got = _train(tmp_path / "run")
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), got.state_dict().values()))
    assert _lines(tmp_path / "run") == _lines(tmp_path / "ref") and len(_lines(tmp_path / "ref")) == CFG.epochs
