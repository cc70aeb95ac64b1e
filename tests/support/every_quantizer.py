"""A small model that holds every registered quantizer (and the variants with their own forward paths) at once,
calibrated, with DoReFa gradient quantization and XNOR input scaling hooks: what the compile and export tests
trace. ``missing_quantizers()`` names registered quantizers it does not hold, so a new one fails those tests
until it is added here.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

import lowbit as lb
from lowbit.quantizers import Quantizer, get, names

# (name, kwargs) per layer: every forward path (fused per-tensor, per-channel, asymmetric, 1-bit, learned scales)
WEIGHTS = [
    ("uniform", {"bits": 2}),
    ("uniform", {"bits": 1}),
    ("uniform", {"bits": 3, "granularity": "per_channel"}),
    ("uniform", {"bits": 4, "symmetric": False}),
    ("binary", {}),
    ("binary_stochastic", {}),
    ("dorefa_w", {"bits": 2}),
    ("dorefa_w", {"bits": 1}),
    ("lsq", {"bits": 3}),
    ("pot", {"bits": 4}),
    ("ttq", {}),
    ("twn", {}),
    ("xnor", {}),
]
ACTS = [
    ("pact", {"bits": 2}),
    ("uniform", {"bits": 2, "signed": False}),
    ("uniform", {"bits": 3}),
    ("uniform", {"bits": 2, "symmetric": False}),
    ("dorefa_a", {"bits": 2}),
    ("hwgq", {}),
    ("log2", {"bits": 3}),
    ("log2", {"bits": 3, "signed": True, "clip_grad": True}),
    ("lsq", {"bits": 2, "signed": False}),
    ("sign", {}),
    ("pact", {"bits": 32}),
]
LAYERS = max(len(WEIGHTS), len(ACTS))


class Chain(nn.Module):
    """Conv2d + BN, then ``LAYERS`` Linear layers (one weight and one activation quantizer each), then a head."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.layers = nn.ModuleList([nn.Linear(64 if i == 0 else 8, 8) for i in range(LAYERS)])
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x))).flatten(1)  # (B, 64) for 4x4 inputs
        for i, layer in enumerate(self.layers):
            h = torch.relu(layer(h)) if i == 0 else torch.relu(layer(h)) + 0.1 * h
        return self.head(h)


def example(batch: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return torch.randn(batch, 3, 4, 4, generator=g), torch.randint(0, 3, (batch,), generator=g)


def build(hooks: bool = True) -> nn.Module:
    """The chain, quantized (layer i: WEIGHTS[i], ACTS[i], cycling), calibrated on ``example()``."""
    torch.manual_seed(0)
    model = Chain()
    rules = {
        f"layers.{i}": lb.LayerRule(
            weight=get(WEIGHTS[i % len(WEIGHTS)][0], **WEIGHTS[i % len(WEIGHTS)][1]),
            act=get(ACTS[i % len(ACTS)][0], **ACTS[i % len(ACTS)][1]),
        )
        for i in range(LAYERS)
    }
    lb.quantize_(model, lb.QuantConfig(weight=get("uniform", bits=2), rules=rules))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unsigned quantizers after a residual sum see negative values: fine here
        lb.calibrate(model, [example()[0]])
    if hooks:
        lb.nn.add_gradient_quantization(model, 4)
        lb.nn.add_xnor_input_scaling(model)  # the layer whose input quantizer is ``sign``
    return model


def missing_quantizers(model: nn.Module) -> set[str]:
    used = {m.name for m in model.modules() if isinstance(m, Quantizer)}
    return set(names()) - used


def fwd_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(model(x), y)
