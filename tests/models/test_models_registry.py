"""Every registered model: builds from its test kwargs, runs forward/backward at float and W2A2, saves and loads."""

from __future__ import annotations

import pytest
import torch

import lowbit as lb
from lowbit.models import TEST_KWARGS, create_model, model_names
from lowbit.serialize import load_model, save_model

# Inputs of the models that do not take (N, 3, 32, 32) images; a new model of another kind adds its entry here.
INPUTS = {
    "fcdnn": lambda: torch.randn(4, 2),
    "deepspeech": lambda: torch.randn(2, 5, 12),
    "deepspeech_small": lambda: torch.randn(2, 5, 12),
    "deepspeech_gru": lambda: torch.randn(2, 5, 12),
    "fcn_sa": lambda: torch.randn(2, 1, 16, 24),
    "fcn_sa_half": lambda: torch.randn(2, 1, 16, 24),
}


def _input(name: str) -> torch.Tensor:
    return INPUTS.get(name, lambda: torch.randn(2, 3, 32, 32))()


def _w2a2() -> lb.QuantConfig:
    return lb.QuantConfig(
        weight={"name": "uniform", "bits": 2}, act={"name": "pact", "bits": 2}, keep_float=("first", "last")
    )


def test_registry_has_the_cnn_families():
    names = set(model_names())
    assert {"resnet20", "resnet32", "resnet56", "resnet110", "mobilenetv2_cifar", "cifar_resnet"} <= names
    assert {"cifar_resnet_preact", "cifar_resnet_depthwise", "imagenet_resnet50", "imagenet_resnet18x1.4"} <= names


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["float", "W2A2"])
@pytest.mark.parametrize("name", model_names())
def test_forward_backward(name, precision):
    torch.manual_seed(0)
    m = create_model(name, **TEST_KWARGS[name])
    if precision == "W2A2":
        lb.quantize_(m, _w2a2())
        assert any(isinstance(x, lb.nn.QuantMixin) for x in m.modules())
    m.train()
    x = _input(name)
    y = m(x)
    assert y.shape[0] == x.shape[0] and torch.isfinite(y).all()
    y.float().pow(2).mean().backward()
    grads = [p.grad for p in m.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)


@pytest.mark.slow
@pytest.mark.parametrize("name", model_names())
def test_save_load_w2a2(name, tmp_path):
    torch.manual_seed(1)
    kw = TEST_KWARGS[name]
    m = lb.quantize_(create_model(name, **kw), _w2a2())
    x = _input(name)
    m.train()
    m(x)  # data-initialised quantizers (PACT α, LSQ step) take their values
    m.eval()
    with torch.no_grad():
        y = m(x)
    save_model(tmp_path / "m.safetensors", m, name, **kw)
    m2, _ = load_model(tmp_path / "m.safetensors")
    with torch.no_grad():
        assert torch.equal(m2.eval()(x), y)
