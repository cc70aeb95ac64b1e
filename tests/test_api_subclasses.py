"""``quantize_`` and subclasses of the layers it knows (lowbit/nn/equivalents.py): a subclass that computes what
its base computes takes the base's twin; one whose forward lowbit cannot honour is an error naming it, raised
before anything is swapped; ``nn.MultiheadAttention``'s ``out_proj`` is not a layer of its own (the attention
reads its weight directly). INQ finds its layers the same way."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from support.zoo import ZOO, available, build
from torch import nn

import lowbit as lb
from lowbit.nn import QuantConv2d, QuantLinear, UnsupportedLayerError, register_equivalent
from lowbit.nn.equivalents import EQUIVALENT
from lowbit.quantizers import get


class Head(nn.Linear):
    """A subclass that only adds an attribute (like NonDynamicallyQuantizableLinear)."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.tag = "head"


class Scaled(nn.Linear):
    """A subclass whose forward computes something else: lowbit's QuantLinear cannot honour it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * super().forward(x)


class PaddedConv(nn.Conv2d):
    """Overrides ``_conv_forward`` (what nn.Conv2d.forward calls), not ``forward``."""

    def _conv_forward(self, x, w, b):
        return F.conv2d(F.pad(x, (1, 1, 1, 1)), w, b, self.stride, 0, self.dilation, self.groups)


class Restated(nn.Linear):
    """Overrides forward with the same arithmetic (what timm.layers.Linear does outside TorchScript)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


def cfg(**kw) -> lb.QuantConfig:
    return lb.QuantConfig(weight=get("uniform", bits=2), act=get("uniform", bits=4), **kw)


def reference(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The same model with every Linear rebuilt as a plain nn.Linear (same parameters), quantized: what a
    subclass that computes nn.Linear's output must give."""
    plain = copy.deepcopy(model)
    for name, m in list(plain.named_modules()):
        if isinstance(m, nn.Linear) and type(m) is not nn.Linear:
            new = nn.Linear(m.in_features, m.out_features)
            new.load_state_dict(m.state_dict())
            parent, _, child = name.rpartition(".")
            setattr(plain.get_submodule(parent) if parent else plain, child, new)
    lb.quantize_(plain, cfg())
    return plain(x)


@pytest.mark.parametrize("cls", [Head, nn.modules.linear.NonDynamicallyQuantizableLinear])
def test_a_subclass_that_keeps_forward_takes_the_linear_twin(cls):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), cls(8, 3))
    x = torch.randn(5, 4)
    want = reference(model, x)
    lb.quantize_(model, cfg())
    assert type(model[2]) is QuantLinear and model[2].weight_quant is not None
    assert torch.equal(model(x), want)
    assert "2" in lb.quantization_map(model)


def test_a_subclass_with_its_own_forward_is_an_error_naming_it_and_nothing_is_swapped():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), Scaled(8, 3))
    before = copy.deepcopy(model)
    with pytest.raises(UnsupportedLayerError) as e:
        lb.quantize_(model, cfg())
    msg = str(e.value)
    assert "layer '2' is a test_api_subclasses.Scaled, a subclass of torch.nn.Linear that overrides forward" in msg
    assert "keep_float=['2']" in msg and "register_equivalent(Scaled, torch.nn.Linear)" in msg
    assert type(model[0]) is nn.Linear  # refused before the first layer was swapped
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), before.state_dict().values()))


def test_keep_float_names_the_unsupported_subclass_and_the_rest_is_quantized():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), Scaled(8, 3))
    x = torch.randn(5, 4)
    lb.quantize_(model, cfg(keep_float=("2",)))
    assert type(model[0]) is QuantLinear and type(model[2]) is Scaled
    assert lb.quantization_map(model)["2"] == {"type": "Scaled", "weight": None, "act": None}
    h = model[1](model[0](x))
    assert torch.allclose(model(x), 2 * F.linear(h, model[2].weight, model[2].bias))  # its own forward still runs


def test_a_conv_subclass_overriding_conv_forward_is_refused():
    model = nn.Sequential(PaddedConv(3, 4, 3))
    with pytest.raises(UnsupportedLayerError, match=r"overrides _conv_forward"):
        lb.quantize_(model, cfg())


def test_a_conv_subclass_keeping_the_arithmetic_takes_the_conv_twin():
    class Tagged(nn.Conv2d):
        pass

    torch.manual_seed(0)
    model = nn.Sequential(Tagged(3, 4, 3, padding=1))
    plain = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1))
    plain.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 6, 6)
    lb.quantize_(model, cfg(quantize_input=True))
    lb.quantize_(plain, cfg(quantize_input=True))
    assert type(model[0]) is QuantConv2d
    assert torch.equal(model(x), plain(x))


def test_register_equivalent_lets_a_restated_forward_through():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), Restated(8, 3))
    x = torch.randn(5, 4)
    with pytest.raises(UnsupportedLayerError):
        lb.quantize_(copy.deepcopy(model), cfg())
    want = reference(model, x)
    register_equivalent(Restated, nn.Linear)
    try:
        lb.quantize_(model, cfg())
        assert type(model[1]) is QuantLinear
        assert torch.equal(model(x), want)
    finally:
        EQUIVALENT.pop(Restated)


def test_register_equivalent_rejects_what_cannot_be_equivalent():
    with pytest.raises(TypeError, match="must be a subclass"):
        register_equivalent(Restated, nn.Conv2d)
    with pytest.raises(ValueError, match="Bilinear has no quantized twin"):
        register_equivalent(type("B", (nn.Bilinear,), {}), nn.Bilinear)


def test_out_proj_stays_float_with_a_float_attention_and_is_quantized_with_its_twin():
    def model() -> nn.Module:
        torch.manual_seed(0)
        m = nn.Sequential(nn.Linear(8, 8))
        m.attn = nn.MultiheadAttention(8, 2)
        return m

    kept = model()
    with pytest.warns(UserWarning, match=r"attn \(MultiheadAttention, kept float: 60%\), attn.out_proj"):
        lb.quantize_(kept, cfg(keep_float=("attn",)))
    # a float MHA reads out_proj.weight in F.multi_head_attention_forward: a twin there would never run
    assert type(kept.attn.out_proj) is nn.modules.linear.NonDynamicallyQuantizableLinear
    assert lb.quantization_map(kept)["attn.out_proj"]["weight"] is None
    assert {"attn", "attn.out_proj"} <= set(lb.float_layers(kept))
    both = model()
    lb.quantize_(both, cfg())
    assert type(both.attn) is lb.nn.QuantMultiheadAttention and type(both.attn.out_proj) is QuantLinear
    assert lb.quantization_map(both)["attn.out_proj"]["weight"] is not None


def test_a_lazy_layer_asks_for_a_forward_first():
    with pytest.raises(UnsupportedLayerError, match="uninitialized .lazy. parameters; run one forward pass"):
        lb.quantize_(nn.Sequential(nn.LazyLinear(3)), cfg())


def test_inq_takes_over_subclasses_and_refuses_what_quantize_refuses():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), Head(8, 3))
    inq = lb.INQ(model, bits=4, portions=(0.5, 1.0))
    assert len(inq.layers) == 2 and type(model[2]) is QuantLinear
    with pytest.raises(UnsupportedLayerError, match="layer '2'"):
        lb.INQ(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), Scaled(8, 3)), bits=4, portions=(0.5, 1.0))
    kept = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), Scaled(8, 3))
    assert len(lb.INQ(kept, bits=4, portions=(0.5, 1.0), keep_float=("2",)).layers) == 1


@pytest.mark.skipif(available(ZOO["timm_mobilenetv3_small_100"]) is not None, reason="needs timm (the zoo extra)")
def test_timm_classifier_head_is_quantized():
    import timm.layers

    model, (x,) = build("timm_mobilenetv3_small_100")
    head = [n for n, m in model.named_modules() if type(m) is timm.layers.Linear]
    assert head, "timm's mobilenetv3 head is a timm.layers.Linear"
    lb.quantize_(model, lb.QuantConfig(weight=get("uniform", bits=4)))
    qmap = lb.quantization_map(model)
    assert all(qmap[n]["type"] == "QuantLinear" and qmap[n]["weight"] is not None for n in head)
    assert not [n for n, e in lb.float_layers(model).items() if e["type"] == "Linear"]
