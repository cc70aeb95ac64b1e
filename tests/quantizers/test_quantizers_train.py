"""Every registered quantizer trains a small model through ``lowbit.quantize_`` (registry-driven).

Conv2d, depthwise Conv2d (groups = channels) and Linear layers are quantized; a quantizer goes on the weights,
the activations (layer inputs) or both, as its ``kind`` says. A few optimizer steps must keep every gradient
finite and lower the training loss. Recurrent layers are tested when ``lowbit.nn`` has a twin for nn.LSTM.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lowbit as lb
from lowbit.quantizers import Quantizer
from lowbit.quantizers.catalogue import default_bits
from lowbit.train.regularizers import apply_post_step, quantizer_regularizers

NAMES = lb.quantizers.names()
STEPS = 25


def make_model() -> nn.Sequential:
    # BN before each quantized layer: binary/HWGQ/log activations expect normalised, signed inputs (spec §4c, §4f)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),  # depthwise
        nn.BatchNorm2d(8),
        nn.Flatten(),
        nn.Linear(8 * 6 * 6, 4),
    )


def config_for(name: str) -> lb.QuantConfig:
    kind = lb.quantizers.get_class(name).kind
    bits = default_bits(name)
    wq = lb.quantizers.get(name, bits=bits) if kind in ("weight", "both") else None
    aq = lb.quantizers.get(name, bits=bits) if kind in ("act", "both") else None
    return lb.QuantConfig(weight=wq, act=aq, quantize_input=True)  # every layer's input quantized too


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = STEPS) -> list[float]:
    model(x)  # first call: quantizers calibrate / initialise their parameters (LSQ s, TTQ scales)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        reg = quantizer_regularizers(model)
        (loss if reg is None else loss + reg).backward()
        for n, p in model.named_parameters():
            assert p.grad is None or torch.isfinite(p.grad).all(), f"non-finite gradient in {n}"
        opt.step()
        apply_post_step(model)
        losses.append(float(loss.detach()))
    return losses


@pytest.mark.parametrize("name", NAMES)
def test_quantizer_trains_conv_depthwise_linear(name):
    torch.manual_seed(0)
    model = lb.quantize_(make_model(), config_for(name))
    qmap = lb.quantization_map(model)
    assert set(qmap) == {"0", "2", "5"}
    kind = lb.quantizers.get_class(name).kind
    for entry in qmap.values():
        assert (entry["weight"] is not None) == (kind in ("weight", "both"))
        assert (entry["act"] is not None) == (kind in ("act", "both"))
        assert (entry["weight"] or entry["act"])["name"] == name
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 3, 6, 6, generator=g)
    y = torch.randint(0, 4, (32,), generator=g)
    losses = train(model, x, y)
    assert all(torch.isfinite(torch.tensor(losses)))
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < first, f"{name}: loss did not decrease ({first:.3f} -> {last:.3f})"
    wq0 = model[0].weight_quant
    if wq0 is not None and type(wq0).post_step is not Quantizer.post_step:  # BinaryConnect: w stays in [-H, H]
        assert float(model[0].weight.detach().abs().max()) <= 1.0 + 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_quantizer_trains_recurrent(name):
    if nn.LSTM not in lb.nn.QUANT_TWINS:
        pytest.skip("lowbit.nn has no quantized twin of nn.LSTM yet")
    torch.manual_seed(0)
    model = nn.ModuleDict({"rnn": nn.LSTM(5, 8, batch_first=True), "head": nn.Linear(8, 3)})
    model = lb.quantize_(model, config_for(name))
    g = torch.Generator().manual_seed(2)
    x = torch.randn(6, 7, 5, generator=g)
    y = torch.randint(0, 3, (6,), generator=g)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        out, _ = model["rnn"](x)
        loss = nn.functional.cross_entropy(model["head"](out[:, -1]), y)
        loss.backward()
        for n, p in model.named_parameters():
            assert p.grad is None or torch.isfinite(p.grad).all(), f"non-finite gradient in {n}"
        opt.step()
        apply_post_step(model)
    assert torch.isfinite(loss)


@pytest.mark.parametrize("name", NAMES)
def test_trained_quantized_model_saves_and_loads(name, tmp_path):
    """Learned scales (TTQ, LSQ), calibrated statistics (steps, FSR) and configs survive save_model/load_model."""
    from lowbit.models import create_model
    from lowbit.serialize import load_model, save_model

    torch.manual_seed(0)
    model = lb.quantize_(create_model("fcdnn", width=16, depth=3), config_for(name))
    g = torch.Generator().manual_seed(3)
    x = torch.randn(16, 2, generator=g)
    train(model, x, torch.randint(0, 2, (16,), generator=g), steps=3)
    model.eval()
    path = tmp_path / "m.safetensors"
    save_model(path, model, "fcdnn", width=16, depth=3)
    back, _ = load_model(path)
    back.eval()
    assert lb.quantization_map(back) == lb.quantization_map(model)
    with torch.no_grad():
        torch.testing.assert_close(back(x), model(x))
