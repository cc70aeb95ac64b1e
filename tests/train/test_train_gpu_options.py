"""GPU-ready training options of ``TrainConfig`` (device "auto", amp, channels_last, num_workers, pin_memory).

What this CPU can check is checked here: "auto" resolves to this machine's device; bf16 autocast trains and the
fake quantizers still compute in float32 and put values on their grid (an independent float64 restatement of
PACT); fp16 trains with a gradient scaler whose state the checkpoint keeps (resume exact); channels-last and
DataLoader workers give the results of the default layout and loader. Tests marked ``cuda`` need a GPU and are
skipped, saying so, where there is none (tests/conftest.py).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import lowbit as lb
from lowbit.quantizers import get
from lowbit.train import TrainConfig, fit, load_checkpoint
from lowbit.train.distributed import resolve_device


def images(n: int = 96) -> TensorDataset:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(n, 2, 8, 8, generator=g)
    return TensorDataset(x, (x[:, 0].mean((1, 2)) > 0).long() + (x[:, 1, :4].mean((1, 2)) > 0).long())


def cnn() -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(2, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 3),
    )
    return lb.quantize_(m, lb.QuantConfig(weight=get("uniform", bits=4), act=get("pact", bits=4), keep_float=["0"]))


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 3, "batch_size": 32, "lr": 0.01, "calibrate_batches": 1, **kw})


def _state(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def test_device_auto_is_this_machines_device_and_bad_values_are_one_line():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match=r"TrainConfig.device='tpu' is not accepted; expected 'auto', 'cpu'"):
        TrainConfig(device="tpu")
    with pytest.raises(ValueError, match=r"TrainConfig.amp='fp8' is not accepted; expected one of \('off', 'bf16'"):
        TrainConfig(amp="fp8")
    with pytest.raises(ValueError, match="TrainConfig.num_workers=-1"):
        TrainConfig(num_workers=-1)
    m = cnn()
    fit(m, images(), _cfg(device="auto", epochs=1), progress=False)
    assert next(m.parameters()).device.type == resolve_device("auto").split(":")[0]


def test_new_fields_stay_out_of_to_dict_at_their_defaults():
    """Job ids hash ``to_dict``: a config that does not set the new fields keeps the id it had before them."""
    d = TrainConfig().to_dict()
    assert not {"amp", "channels_last", "num_workers", "pin_memory"} & d.keys()
    set_ = TrainConfig(amp="bf16", channels_last=True, num_workers=2, pin_memory=True).to_dict()
    assert (set_["amp"], set_["channels_last"], set_["num_workers"], set_["pin_memory"]) == ("bf16", True, 2, True)
    assert TrainConfig.from_dict(set_) == TrainConfig(amp="bf16", channels_last=True, num_workers=2, pin_memory=True)


def test_bf16_autocast_trains_with_fake_quantization_in_float32_on_the_grid():
    m = cnn()
    pacts = [q for q in m.modules() if isinstance(q, lb.quantizers.Quantizer) and q.name == "pact"]
    assert len(pacts) == 2  # the inputs of the second conv and of the linear layer
    seen: list[tuple] = []
    hooks = [
        q.register_forward_hook(lambda q, a, y: seen.append((q, q.alpha.detach().double(), a[0], y))) for q in pacts
    ]
    history = fit(m, images(), _cfg(amp="bf16"), progress=False)
    for h in hooks:
        h.remove()
    assert history[-1]["loss"] < history[0]["loss"], history  # it trains
    assert all(p.dtype == torch.float32 for p in m.parameters())
    # under autocast the convolutions ran in bf16, so the quantizers' inputs came in as bf16 values ...
    train_calls = [(q, a, x.detach(), y.detach()) for q, a, x, y in seen if torch.equal(x, x.bfloat16().float())]
    assert len(train_calls) >= 6
    for q, a, x, y in train_calls:
        assert x.dtype == torch.float32 and y.dtype == torch.float32  # ... and were computed in float32
        n = 2**q.bits - 1
        want = (x.double().clamp(0, float(a)) * n / a).round() * a / n  # PACT (spec §3), in float64
        torch.testing.assert_close(y.double(), want, rtol=1e-6, atol=1e-7)
        codes = y.double() * n / a
        assert (codes - codes.round()).abs().max() < 1e-4  # on the grid
    # what the cast avoids: the same quantizer computing in bf16 leaves values off its float32 grid
    q, _, x, _ = train_calls[-1]
    y16 = q(x.bfloat16())  # outside autocast: no cast, bf16 arithmetic
    codes = y16.double() * (2**q.bits - 1) / q.alpha.detach().double()
    assert y16.dtype == torch.bfloat16 and (codes - codes.round()).abs().max() > 1e-3


def test_fp16_trains_with_a_grad_scaler_and_resumes_exactly(tmp_path):
    """fp16 autocast runs on this CPU (torch 2.x); the scaler's state is checkpointed, so a resume is exact
    (a constant schedule: 2 epochs are then the first 2 of 3)."""
    m = cnn()
    history = fit(m, images(), _cfg(amp="fp16", schedule="constant"), run_dir=tmp_path / "a", progress=False)
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in history)
    _, meta = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.safetensors")
    assert meta["scaler"]["scale"] > 0 and "_growth_tracker" in meta["scaler"]
    first = cnn()
    fit(first, images(), _cfg(amp="fp16", schedule="constant", epochs=2), run_dir=tmp_path / "b", progress=False)
    resumed = cnn()
    fit(resumed, images(), _cfg(amp="fp16", schedule="constant"), run_dir=tmp_path / "b", resume=True, progress=False)
    for k, v in _state(m).items():
        assert torch.equal(v, resumed.state_dict()[k]), k


def test_channels_last_trains_like_the_default_layout():
    plain, last = cnn(), cnn()
    fit(plain, images(), _cfg(), progress=False)
    fit(last, images(), _cfg(channels_last=True), progress=False)
    assert last[0].weight.is_contiguous(memory_format=torch.channels_last)
    for k, v in _state(plain).items():  # convolution kernels differ in summation order only
        torch.testing.assert_close(last.state_dict()[k], v, rtol=1e-4, atol=1e-5, msg=k)


def test_loader_workers_feed_the_same_batches():
    plain, workers = cnn(), cnn()
    fit(plain, images(), _cfg(epochs=2), progress=False)
    fit(workers, images(), _cfg(epochs=2, num_workers=1, pin_memory=True), progress=False)  # pinning: CUDA only
    for k, v in _state(plain).items():
        assert torch.equal(workers.state_dict()[k], v), k


@pytest.mark.cuda
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_cuda_amp_channels_last_pinned_loader_trains(amp):
    m = cnn()
    cfg = _cfg(device="auto", amp=amp, channels_last=True, num_workers=1, pin_memory=True, epochs=4)
    history = fit(m, images(), cfg, progress=False)
    assert next(m.parameters()).device.type == "cuda"
    assert history[-1]["loss"] < history[0]["loss"], history
    cpu = cnn()
    fit(cpu, images(), _cfg(epochs=4), progress=False)
    for k, v in cpu.state_dict().items():  # low precision: close to the float32 CPU run, not equal
        torch.testing.assert_close(m.state_dict()[k].cpu().float(), v.float(), rtol=0.1, atol=0.05, msg=k)
