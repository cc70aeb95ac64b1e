"""Trainer, checkpoints (atomic, checksummed, never unpickled) and exact resume."""

import json
import os

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import lowbit as lb
from lowbit.serialize import load_model, save_model
from lowbit.train import CheckpointError, TrainConfig, fit, fit_inq, load_checkpoint, save_checkpoint
from lowbit.train.schedules import CYCLE, lr_factor


def data(n=256):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g)
    return TensorDataset(x, (x[:, 0] * x[:, 1] > 0).long())


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.drop, self.b = nn.Linear(2, 16), nn.Dropout(0.2), nn.Linear(16, 2)

    def forward(self, x):
        return self.b(self.drop(torch.relu(self.a(x))))


def test_checkpoint_round_trip_and_metadata(tmp_path):
    t = {"a": torch.randn(3, 4), "b": torch.tensor(3), "c": torch.zeros(0), "d": torch.ones(2, dtype=torch.bool)}
    save_checkpoint(tmp_path / "x.safetensors", t, {"epoch": 3, "note": "hi"})
    back, meta = load_checkpoint(tmp_path / "x.safetensors")
    assert meta == {"epoch": 3, "note": "hi"} and all(torch.equal(t[k], back[k]) for k in t)


def test_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")
    p = tmp_path / "x.safetensors"
    save_checkpoint(p, {"a": torch.arange(100.0)}, {})
    raw = bytearray(p.read_bytes())
    raw[-5] ^= 0xFF  # flip a byte in the tensor data
    p.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(p)
    p.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupted or not a safetensors"):
        load_checkpoint(p)
    p.write_bytes(bytes(raw[: len(raw) // 2]))  # truncated
    with pytest.raises(CheckpointError):
        load_checkpoint(p)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    p = tmp_path / "x.safetensors"
    save_checkpoint(p, {"a": torch.ones(3)}, {"v": 1})
    import lowbit.train.checkpoint as ck

    def boom(tensors, filename, metadata=None):
        open(filename, "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ck, "save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(p, {"a": torch.zeros(3)}, {"v": 2})
    tensors, meta = load_checkpoint(p)  # the old checkpoint is intact
    assert meta == {"v": 1} and torch.equal(tensors["a"], torch.ones(3))
    assert os.listdir(tmp_path) == ["x.safetensors"]  # no temp file left behind


def _train(tmp_path, epochs, resume=False, run="run"):
    torch.manual_seed(0)
    m = Net()
    lb.quantize_(
        m,
        lb.QuantConfig(
            weight=lb.quantizers.get("uniform", bits=2), act=lb.quantizers.get("pact", bits=2), keep_float=("first",)
        ),
    )
    cfg = TrainConfig(epochs=epochs, batch_size=32, lr=1e-2, optimizer="sgd", weight_decay=1e-4, seed=3)
    h = fit(m, data(), cfg, run_dir=tmp_path / run, resume=resume, progress=False)
    return m, h


def test_resume_after_kill_ends_where_uninterrupted_run_ends(tmp_path):
    full, hist_full = _train(tmp_path, 4, run="full")

    # the same run killed during epoch 3: simulate by stopping after 2 epochs with a 4-epoch config
    class Kill(Exception):
        pass

    torch.manual_seed(0)
    m = Net()
    lb.quantize_(
        m,
        lb.QuantConfig(
            weight=lb.quantizers.get("uniform", bits=2), act=lb.quantizers.get("pact", bits=2), keep_float=("first",)
        ),
    )
    cfg = TrainConfig(epochs=4, batch_size=32, lr=1e-2, optimizer="sgd", weight_decay=1e-4, seed=3)
    calls = {"n": 0}

    def after_step(model):
        calls["n"] += 1
        if calls["n"] == 2 * 8 + 3:  # 8 steps per epoch: dies in the third epoch
            raise Kill

    with pytest.raises(Kill):
        fit(m, data(), cfg, run_dir=tmp_path / "killed", after_step=after_step, progress=False)
    resumed, hist = _train(tmp_path, 4, resume=True, run="killed")
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    assert [h["loss"] for h in hist] == [h["loss"] for h in hist_full]
    lines = (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [0, 1, 2, 3]


def test_fit_inq_resumes_between_stages(tmp_path):
    def run(resume, stop_after=None):
        torch.manual_seed(0)
        m = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
        cfg = TrainConfig(epochs=2, batch_size=64, lr=1e-2, seed=1)
        calls = {"n": 0}

        def after_step(model):
            calls["n"] += 1
            if stop_after and calls["n"] == stop_after:
                raise KeyboardInterrupt

        inq, _ = fit_inq(
            m, data(), cfg, bits=3, run_dir=tmp_path / "inq", resume=resume, after_step=after_step, progress=False
        )
        return m, inq

    with pytest.raises(KeyboardInterrupt):
        run(False, stop_after=4 * 2 + 4 * 2 + 3)  # dies in the third stage
    m, inq = run(True)
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    fit_inq(ref, data(), TrainConfig(epochs=2, batch_size=64, lr=1e-2, seed=1), bits=3, progress=False)
    assert inq.check() and inq.stage == 3
    for a, b in zip(ref.state_dict().values(), m.state_dict().values()):
        assert torch.equal(a, b)


def test_save_and_load_model_rebuilds_quantized_model(tmp_path):
    m = lb.models.create_model("fcdnn", width=8, depth=3)
    lb.quantize_(
        m,
        lb.QuantConfig(
            weight=lb.quantizers.get("uniform", bits=3),
            act=lb.quantizers.get("uniform", bits=2, signed=False),
            keep_float=("first",),
        ),
    )
    x = torch.randn(10, 2)
    want = m(x)
    save_model(tmp_path / "m.safetensors", m, "fcdnn", width=8, depth=3)
    back, meta = load_model(tmp_path / "m.safetensors")
    assert torch.equal(back(x), want) and meta["model"]["name"] == "fcdnn"
    assert lb.quantization_map(back) == lb.quantization_map(m)


def test_train_config_validation_and_schedules():
    for field, bad in [("epochs", -1), ("batch_size", 0), ("lr", 0), ("optimizer", "adamw"), ("schedule", "poly")]:
        with pytest.raises(ValueError, match=f"TrainConfig.{field}="):
            TrainConfig(**{field: bad})
    with pytest.raises(ValueError, match="unknown field"):
        TrainConfig.from_dict({"epoch": 3})
    assert [lr_factor("cyclical", t, 16) for t in range(9)] == [*CYCLE, CYCLE[0]]
    assert CYCLE[4] == pytest.approx(0.01) and CYCLE[1] == pytest.approx(0.1**0.5)
    assert lr_factor("step", 5, 10, milestones=(2, 4)) == pytest.approx(0.01)


def test_lipschitz_regularizer_matches_formula():
    from lowbit.train import lipschitz

    m = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(12, 4))
    want = 0.0
    W = m[0].weight.reshape(3, -1).T  # (k*k*C_in, C_out)
    want += 0.5 * ((W.T @ W - torch.eye(3)) ** 2).sum()
    W = m[2].weight.T
    want += 0.5 * ((W.T @ W - torch.eye(4)) ** 2).sum()
    assert float(lipschitz(m)) == pytest.approx(float(want), rel=1e-5)
