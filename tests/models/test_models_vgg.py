"""VGG-16 and the small VGG-16 models: layer counts, shapes, gradients, INQ-quantized forward, save/load."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lowbit import INQ
from lowbit.models import TEST_KWARGS, create_model
from lowbit.serialize import load_model, save_model

VGGS = ("vgg16", "vgg_small8", "vgg_small5")


def _convs(m: nn.Module) -> list[nn.Conv2d]:
    return [x for x in m.modules() if isinstance(x, nn.Conv2d)]


def _linears(m: nn.Module) -> list[nn.Linear]:
    return [x for x in m.modules() if isinstance(x, nn.Linear)]


@pytest.mark.parametrize(
    "name, channels",
    [
        ("vgg16", [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]),
        ("vgg_small8", [64, 64, 128, 128, 128, 256, 256, 256]),  # B2, B5 removed; halved after B1 (seed Fig. 2)
        ("vgg_small5", [64, 64, 128, 128, 128]),  # B2, B4, B5 removed
    ],
)
def test_layer_plan_at_paper_width(name, channels):
    m = create_model(name)  # width 1: the paper's channels (built only, not run)
    assert [c.out_channels for c in _convs(m)] == channels
    assert len(_linears(m)) == 3 and m.conv_layers() == len(channels)
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in _convs(m))


@pytest.mark.slow
def test_vgg16_parameter_count_imagenet():
    # VGG-16 configuration D without BN at 224x224 has 138,357,544 parameters (Simonyan & Zisserman 2014)
    m = create_model("vgg16", num_classes=1000, input_size=224, batch_norm=False)
    assert sum(p.numel() for p in m.parameters()) == 138_357_544


@pytest.mark.parametrize("name", VGGS)
@pytest.mark.parametrize("in_channels, size", [(3, 32), (1, 28)])
def test_forward_backward_shapes(name, in_channels, size):
    torch.manual_seed(0)
    kw = {**TEST_KWARGS[name], "in_channels": in_channels, "input_size": size, "dropout": 0.0}
    m = create_model(name, **kw)  # no dropout: with 4 FC units a dropped layer would zero every gradient
    x = torch.randn(4, in_channels, size, size)
    y = m(x)
    assert y.shape == (4, 10)
    y.logsumexp(1).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    assert any(float(p.grad.abs().sum()) > 0 for p in _convs(m)[0].parameters())


def test_28x28_skips_pool_below_2x2():
    m = create_model("vgg16", width=1 / 16, in_channels=1, input_size=28, fc_hidden=32)
    assert m.out_size == 1  # 28 -> 14 -> 7 -> 3 -> 1, the fifth pool is skipped
    assert sum(isinstance(x, nn.MaxPool2d) for x in m.modules()) == 4
    assert _linears(m)[0].in_features == _convs(m)[-1].out_channels


def test_width_and_bad_args():
    m = create_model("vgg16", width=1 / 8, fc_hidden=512)
    assert [c.out_channels for c in _convs(m)][:3] == [8, 8, 16]
    assert _linears(m)[0].out_features == 64
    with pytest.raises(ValueError, match="width"):
        create_model("vgg16", width=0)
    with pytest.raises(ValueError, match="in_channels"):
        create_model("vgg16", in_channels=0)
    with pytest.raises(ValueError, match="dropout"):
        create_model("vgg16", dropout=1.0)


@pytest.mark.parametrize("name", VGGS)
def test_inq_quantized_forward_and_save_load(name, tmp_path):
    torch.manual_seed(1)
    kw = TEST_KWARGS[name]
    m = create_model(name, **kw).eval()
    x = torch.randn(3, 3, 32, 32)
    inq = INQ(m, bits=4)
    for _ in inq:
        pass
    assert inq.check()  # every weight on its power-of-two codebook
    for layer in inq.layers:
        levels = set(layer.weight_quant.levels().tolist())
        assert set(layer.weight.detach().unique().tolist()) <= levels
        assert len(levels) <= 2 ** (4 - 1) + 1
    assert len(inq.layers) == len(_convs(m)) + 3  # every conv and FC layer
    y = m(x)
    save_model(tmp_path / "m.safetensors", m, name, **kw)
    m2, _ = load_model(tmp_path / "m.safetensors")
    assert torch.equal(m2.eval()(x), y)
