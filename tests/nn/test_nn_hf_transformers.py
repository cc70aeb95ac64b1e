"""BERT- and GPT-2-style models built from transformers configs (tests/support/zoo.py) quantize end to end: every
weight of their Linear, Embedding and Conv1D layers is quantized (what stays float: LayerNorm and biases, plus
what keep_float names), a few Adam steps stay finite, identity quantizers change nothing, and the packed file
reproduces the model."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from support.twins import quantized_share, run
from support.zoo import ZOO, available, build

import lowbit as lb
from lowbit.quantizers import get

CONFIGS = {
    "W8A8": lambda: lb.QuantConfig(weight=get("uniform", bits=8), act=get("uniform", bits=8)),
    "W4": lambda: lb.QuantConfig(weight=get("uniform", bits=4)),
    "W2A2": lambda: lb.QuantConfig(
        weight=get("uniform", bits=2), act=get("pact", bits=2), keep_float=("first", "last")
    ),
}
# Quantized share of the parameters, measured on these configs (docs table): LayerNorm and biases stay float;
# W2A2 also keeps the token embedding ("first") and the classifier ("last").
SHARE = {
    ("hf_bert_tiny", "W8A8"): 0.9645,
    ("hf_bert_tiny", "W4"): 0.9645,
    ("hf_bert_tiny", "W2A2"): 0.8103,
    ("hf_gpt2_tiny", "W8A8"): 0.9701,
    ("hf_gpt2_tiny", "W4"): 0.9701,
    ("hf_gpt2_tiny", "W2A2"): 0.8529,
}
MODELS = ["hf_bert_tiny", "hf_gpt2_tiny"]


def skip_if_missing(name: str) -> None:
    reason = available(ZOO[name])
    if reason:
        pytest.skip(reason)


def weight_bearing_share(model: torch.nn.Module, kept: set[str]) -> float:
    """Independent of the twins: the weights of every Linear / Embedding / Conv1D module of the float model."""
    from transformers.pytorch_utils import Conv1D

    kinds = (torch.nn.Linear, torch.nn.Embedding, Conv1D)
    weights = {
        id(m.weight): m.weight.numel() for n, m in model.named_modules() if isinstance(m, kinds) and n not in kept
    }
    return sum(weights.values()) / sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("cfg", list(CONFIGS))
@pytest.mark.parametrize("name", MODELS)
def test_quantizes_end_to_end_and_trains_finite(name, cfg):
    skip_if_missing(name)
    model, (x,) = build(name)
    names = [n for n, _ in lb.quantizable_layers(model)]
    kept = {names[0], names[-1]} if cfg == "W2A2" else set()
    want_share = weight_bearing_share(model, kept)
    lb.quantize_(model, CONFIGS[cfg]())
    assert quantized_share(model) == pytest.approx(want_share, abs=1e-12)
    assert quantized_share(model) == pytest.approx(SHARE[(name, cfg)], abs=1e-4)
    left = [type(m).__name__ for n, m in model.named_modules() if type(m).__name__ in ("Conv1D", "Linear", "Embedding")]
    assert len(left) == len(kept), left  # only what keep_float names is still a float layer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PACT on LayerNorm outputs: warned about, and expected here
        lb.calibrate(model, [x])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    y = torch.arange(x.shape[0]) % 10
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        a = model(x)
    torch.testing.assert_close(a, model(x).detach(), atol=1e-5, rtol=0)  # no fast path skips a quantizer


@pytest.mark.parametrize("name", MODELS)
def test_identity_quantizers_change_nothing(name):
    skip_if_missing(name)
    model, (x,) = build(name)
    model.eval()
    want = run(model, (x,))
    lb.quantize_(model, lb.QuantConfig(weight=get("uniform", bits=32), act=get("uniform", bits=32)))
    torch.testing.assert_close(run(model, (x,)), want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", MODELS)
def test_packed_round_trip(name, tmp_path):
    skip_if_missing(name)
    from lowbit.deploy import load_packed, save_packed

    model, (x,) = build(name)
    lb.quantize_(model, CONFIGS["W8A8"]())
    lb.calibrate(model, [x])
    model.eval()
    ref = run(model, (x,))
    torch.testing.assert_close(run(lb.freeze(copy.deepcopy(model)), (x,)), ref, atol=1e-6, rtol=0)
    save_packed(model, tmp_path / "m.lowbit")
    fresh, _ = build(name)
    torch.testing.assert_close(run(load_packed(tmp_path / "m.lowbit", model=fresh), (x,)), ref, atol=1e-6, rtol=0)
