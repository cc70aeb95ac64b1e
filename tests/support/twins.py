"""Shared checks for the quantized twins: every twin must survive calibrate, summary, freeze, the packed file
and the model file, computing the same outputs after each."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

import lowbit as lb
from lowbit.deploy import load_packed, save_packed
from lowbit.models import registry
from lowbit.serialize import load_model, save_model


@contextmanager
def registered_model(name: str, build: Callable[[], nn.Module]) -> Iterator[str]:
    """Register ``build`` in the model registry for the duration (``load_model`` rebuilds models by name)."""
    registry.register_model(name)(build)
    try:
        yield name
    finally:
        registry.MODELS.unregister(name)


def run(model: nn.Module, inputs: tuple) -> torch.Tensor:
    with torch.no_grad():
        out = model(*inputs)
    return out[0] if isinstance(out, tuple) else out


def check_round_trips(
    build: Callable[[], nn.Module], cfg: lb.QuantConfig, inputs: tuple, tmp_path, atol: float = 1e-6
) -> nn.Module:
    """quantize_ + calibrate a fresh ``build()``, then: summary lists every twin; freeze, save_packed/load_packed
    and save_model/load_model reproduce the eval output. Returns the calibrated model (eval mode)."""
    model = build()
    lb.quantize_(model, cfg)
    lb.calibrate(model, [inputs], forward=lambda m, b: m(*b))
    model.eval()
    ref = run(model, inputs)
    assert torch.isfinite(ref).all()

    twins = [n for n, m in model.named_modules() if isinstance(m, lb.nn.QuantMixin)]
    rows = {r["name"] for r in lb.summary(model).rows}
    assert set(twins) <= rows, f"summary misses {set(twins) - rows}"

    frozen = lb.freeze(copy.deepcopy(model))
    torch.testing.assert_close(run(frozen, inputs), ref, atol=atol, rtol=0)

    save_packed(model, tmp_path / "m.lowbit")
    packed = load_packed(tmp_path / "m.lowbit", model=build())
    torch.testing.assert_close(run(packed, inputs), ref, atol=atol, rtol=0)

    with registered_model("_twin_round_trip", build) as name:
        save_model(tmp_path / "m.safetensors", model, name)
        loaded, _ = load_model(tmp_path / "m.safetensors")
    loaded.eval()
    torch.testing.assert_close(run(loaded, inputs), ref, atol=0, rtol=0)
    assert lb.quantization_map(loaded) == lb.quantization_map(model)
    return model


def quantized_share(model: nn.Module) -> float:
    """Fraction of the model's parameter values that a weight quantizer acts on (shared tensors once; the
    quantizers' own parameters, PACT α or LSQ steps, are not the model's)."""
    own = {id(p) for p in lb.quantizer_parameters(model)}
    total = {id(p): p.numel() for p in model.parameters() if id(p) not in own}
    quantized: dict[int, int] = {}
    for m in model.modules():
        if isinstance(m, lb.nn.QuantMixin) and m.weight_quant is not None:
            for n in m.quant_weight_names:
                p = getattr(m, n)
                quantized[id(p)] = p.numel()
    return sum(quantized.values()) / sum(total.values())
