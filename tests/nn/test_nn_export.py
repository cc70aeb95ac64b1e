"""torch.export.export works on quantized models in eval mode after calibration, and the exported program computes
exactly what the eager model does: a W2A2 MLP, a model holding every registered quantizer (with the gradient
quantization and XNOR scaling hooks), torchvision resnet18 and lowbit's resnet20 (activation points QA/QRA) at
W2A2. Before, PACT's ``float(alpha)`` made export fail on every W2A2 model (GuardOnDataDependentSymNode).
A quantizer whose state was never set cannot be exported (its step search runs on the host): the error says
to calibrate.
"""

from __future__ import annotations

import pytest
import torch
from support import every_quantizer as eq
from support.zoo import import_torchvision
from torch import nn

import lowbit as lb
from lowbit.quantizers import get


def w2a2(model: nn.Module, **kw) -> nn.Module:
    return lb.quantize_(model, lb.QuantConfig(weight=get("uniform", bits=2), act=get("pact", bits=2), **kw))


def assert_exports_exactly(model: nn.Module, x: torch.Tensor) -> None:
    model.eval()
    program = torch.export.export(model, (x,))
    x2 = torch.randn(x.shape, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        for inp in (x, x2):
            want = model(inp)
            got = program.module()(inp)
            assert torch.equal(got, want), float((got - want).abs().max())
    assert not torch.equal(model(x), model(x2))  # two different outputs: the program is not a constant


def test_w2a2_mlp_exports():
    torch.manual_seed(0)
    model = w2a2(nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)))
    x = torch.randn(5, 6)
    lb.calibrate(model, [x])
    assert_exports_exactly(model, x)


def test_export_of_an_uncalibrated_quantizer_asks_for_calibration():
    torch.manual_seed(0)
    model = w2a2(nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))).eval()
    with pytest.raises(RuntimeError, match="uniform: .*lowbit.calibrate"):
        torch.export.export(model, (torch.randn(5, 6),))


@pytest.mark.slow
def test_every_quantizer_exports():
    model = eq.build()
    assert not eq.missing_quantizers(model)
    assert_exports_exactly(model, eq.example()[0])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["torchvision_resnet18", "resnet20"])
def test_w2a2_resnets_export(name):
    torch.manual_seed(0)
    if name == "resnet20":
        assert name in lb.models.model_names()
        model = lb.models.create_model(name)
        assert any(isinstance(m, lb.nn.QuantActPoint) for m in w2a2(model, keep_float=("first", "last")).modules())
    else:
        model = w2a2(import_torchvision().models.resnet18(num_classes=10), keep_float=("first", "last"))
    x = torch.randn(2, 3, 32, 32)
    lb.calibrate(model, [x])
    assert_exports_exactly(model, x)
