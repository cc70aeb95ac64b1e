"""The suggestive-annotation FCN (spec §6.4): layout, shapes, descriptor, gradient, INQ-quantized forward."""

import pytest
import torch
from torch import nn

import lowbit as lb
from lowbit.models import TEST_KWARGS, create_model
from lowbit.models.fcn import SA_CHANNELS, Up2, scaled_channels
from lowbit.serialize import load_model, save_model


@pytest.mark.parametrize("name", ["fcn_sa", "fcn_sa_half"])
def test_shapes_descriptor_and_gradient(name):
    m = create_model(name, **TEST_KWARGS[name])
    x = torch.randn(2, 1, 16, 24)  # depth 3: multiples of 8, rectangular on purpose
    y = m(x)
    assert y.shape == (2, 2, 16, 24)
    d = m.descriptor(x)
    assert d.shape == (2, m.channels[-1])
    # descriptor = per-channel spatial mean of the last encoder output (spec §6.3), not a channel mean
    assert torch.allclose(d, m.encode(x)[-1].mean(dim=(2, 3)))
    y.square().mean().backward()
    grads = [p.grad for p in m.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)


def test_default_layout_matches_spec():
    m = create_model("fcn_sa")
    assert m.channels == SA_CHANNELS == (256, 256, 512, 1024, 1024, 1024)
    assert m.multiple == 64
    # decoder i: i+1 upsamplings, channels c_i/4, c_{i-1}/4, ..., c_0/4
    for i, dec in enumerate(m.decoder):
        assert len(dec) == i + 1
        assert [u.bias.numel() for u in dec] == [SA_CHANNELS[j] // 4 for j in range(i, -1, -1)]
    assert m.head[0][0].in_channels == 6 * 64 and m.head[-1].out_channels == 2
    m.eval()
    with torch.no_grad():
        assert m.descriptor(torch.zeros(1, 1, 64, 64)).shape == (1, 1024)


def test_half_model_has_half_the_filters():
    full, half = create_model("fcn_sa", width=0.25), create_model("fcn_sa_half", width=0.25)
    assert half.channels == tuple(c // 2 for c in full.channels)
    assert scaled_channels(1 / 32) == (8, 8, 16, 32, 32, 32)
    assert scaled_channels(1e-3) == (4,) * 6  # never below 4 (c/4 >= 1)


def test_up2_equals_conv_transpose():
    torch.manual_seed(0)
    up, ref = Up2(3, 5), nn.ConvTranspose2d(3, 5, kernel_size=2, stride=2)
    with torch.no_grad():
        # ConvTranspose2d weight (C_in, C_out, 2, 2) -> 1x1 conv weight (C_out*4, C_in): channel c*4 + 2a + b
        up.conv.weight.copy_(ref.weight.permute(1, 2, 3, 0).reshape(20, 3, 1, 1))
        up.bias.copy_(ref.bias)
    x = torch.randn(2, 3, 4, 6)
    assert torch.allclose(up(x), ref(x), atol=1e-6)


def test_bad_inputs_are_rejected():
    m = create_model("fcn_sa", width=1 / 32, depth=3)
    with pytest.raises(ValueError, match="multiples of 8"):
        m(torch.zeros(1, 1, 12, 16))
    with pytest.raises(ValueError, match="width"):
        create_model("fcn_sa", width=0)
    with pytest.raises(ValueError, match="depth"):
        create_model("fcn_sa", depth=7)


def test_inq_quantizes_every_conv_and_forward_runs(tmp_path):
    m = create_model("fcn_sa", width=1 / 32, depth=3)
    n_conv = sum(isinstance(x, nn.Conv2d) for x in m.modules())
    inq = lb.INQ(m, bits=4)
    assert len(inq.layers) == n_conv  # the decoder's upsampling convs included
    for _ in inq:
        pass
    assert inq.check()
    for layer in inq.layers:
        assert torch.isin(layer.weight.detach(), layer.weight_quant.levels()).all()
    x = torch.randn(1, 1, 16, 16)
    m.eval()
    y = m(x)
    assert y.shape == (1, 2, 16, 16) and torch.isfinite(y).all()
    save_model(tmp_path / "m.safetensors", m, "fcn_sa", width=1 / 32, depth=3)
    m2, _ = load_model(tmp_path / "m.safetensors")
    m2.eval()
    assert torch.equal(m2(x), y)
