"""Trainer, checkpoints (atomic, checksummed, never unpickled) and exact resume."""

import json
import math
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
    for field, bad in [("epochs", -1), ("batch_size", 0), ("lr", 0), ("optimizer", "adamw"), ("schedule", "exp")]:
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


# ---------------------------------------------------------------- per-group learning rates (issue 9 item 7)


def _bc_model(lr_scale):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    q = lb.quantizers.get("binary", H=1.0, lr_scale=lr_scale)
    return lb.quantize_(m, lb.QuantConfig(weight=q))


def test_binaryconnect_glorot_lr_scale_gives_per_layer_groups_and_steps():
    """BinaryConnect's W_LR_scale = 1/H, H = sqrt(1.5/(fan_in + fan_out)) (spec §4b): each binarised weight's
    group gets lr·(1/H) and one plain SGD step moves it by exactly -lr·(1/H)·grad (then clipped to [-1, 1])."""
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g)
    model = _bc_model("glorot")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ref = _bc_model("glorot")
    nn.functional.cross_entropy(ref(x), y).backward()
    grads = {n: p.grad.clone() for n, p in ref.named_parameters()}
    seen = {}
    cfg = TrainConfig(epochs=1, batch_size=8, lr=0.05, optimizer="sgd", momentum=0.0, schedule="constant")
    fit(model, TensorDataset(x, y), cfg, on_optimizer=lambda o: seen.setdefault("opt", o), progress=False)
    scale = {"0.weight": 1 / math.sqrt(1.5 / (6 + 5)), "2.weight": 1 / math.sqrt(1.5 / (5 + 3))}
    groups = {id(p): gr for gr in seen["opt"].param_groups for p in gr["params"]}
    for n, p in model.named_parameters():
        s = scale.get(n, 1.0)
        assert groups[id(p)]["lr"] == pytest.approx(0.05 * s, rel=1e-12), n
        want = before[n] - 0.05 * s * grads[n]
        if n in scale:
            want = want.clamp(-1.0, 1.0)  # BinaryConnect's post-step clip (H = 1)
        torch.testing.assert_close(p.detach(), want, rtol=1e-6, atol=1e-7)
    assert len(seen["opt"].param_groups) == 3  # two layer factors + the factor-1 group (biases)


def test_train_config_lr_scale_patterns_and_errors():
    from lowbit.train.param_groups import lr_scales, param_groups

    model = _bc_model(1.0)
    cfg = TrainConfig(lr_scale={"2.*": 0.1, "*.bias": 3.0})
    s = lr_scales(model, cfg)
    assert s == {"0.weight": 1.0, "0.bias": 3.0, "2.weight": 0.1, "2.bias": 0.1}  # first matching pattern applies
    assert sorted(gr["lr_scale"] for gr in param_groups(model, cfg)) == [0.1, 1.0, 3.0]
    assert len(param_groups(model, TrainConfig())) == 1  # no factor: one group, as before
    both = lr_scales(_bc_model(2.0), TrainConfig(lr_scale={"0.weight": 0.5}))
    assert both["0.weight"] == 1.0 and both["2.weight"] == 2.0  # quantizer factor × config factor
    with pytest.raises(ValueError, match=r"lr_scale: pattern\(s\) \['head\.\*'\] match no trainable parameter"):
        lr_scales(model, TrainConfig(lr_scale={"head.*": 2.0}))
    with pytest.raises(ValueError, match="TrainConfig.lr_scale="):
        TrainConfig(lr_scale={"a": -1.0})
    assert TrainConfig.from_dict(TrainConfig(lr_scale={"a*": 2}).to_dict()).lr_scale == {"a*": 2.0}
    with pytest.raises(ValueError, match="lr_scale='fast'"):
        lb.quantizers.get("binary", lr_scale="fast")
