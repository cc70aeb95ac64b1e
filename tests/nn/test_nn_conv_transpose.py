"""QuantConvTranspose1d/2d/3d and QuantConv3d: torch's layers without a quantizer (outputs and gradients, with
stride, padding, output_padding, output_size, groups and dilation); per-channel weight quantization is per OUTPUT
channel (checked against explicit loops over the (C_in, C_out/groups, k...) weight); round trips; INQ."""

from __future__ import annotations

import copy

import pytest
import torch
from support.twins import check_round_trips
from torch import nn

import lowbit as lb
from lowbit.nn import QuantConv3d, QuantConvTranspose1d, QuantConvTranspose2d, QuantConvTranspose3d
from lowbit.quantizers import get
from lowbit.quantizers.l2_step import l2_opt_step
from lowbit.quantizers.uniform import uniform_quantize

LAYERS = {
    "t1d": (lambda: nn.ConvTranspose1d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2, dilation=2), 1),
    "t2d": (lambda: nn.ConvTranspose2d(6, 4, (3, 2), stride=(2, 1), padding=1, output_padding=(1, 0), groups=2), 2),
    "t2d_plain": (lambda: nn.ConvTranspose2d(3, 5, 2, stride=2, bias=False), 2),
    "t3d": (lambda: nn.ConvTranspose3d(4, 6, 2, stride=2, groups=2, dilation=1), 3),
    "c3d": (lambda: nn.Conv3d(4, 6, 3, padding=1, groups=2), 3),
}
TWINS = {
    nn.ConvTranspose1d: QuantConvTranspose1d,
    nn.ConvTranspose2d: QuantConvTranspose2d,
    nn.ConvTranspose3d: QuantConvTranspose3d,
    nn.Conv3d: QuantConv3d,
}


def build(name: str) -> nn.Module:
    torch.manual_seed(0)
    return LAYERS[name][0]()


def example(m: nn.Module, dims: int) -> torch.Tensor:
    return torch.randn(2, m.in_channels, *([5] * dims), generator=torch.Generator().manual_seed(1), requires_grad=True)


@pytest.mark.parametrize("name", list(LAYERS))
def test_equals_torch_without_a_quantizer(name):
    m = build(name)
    t = TWINS[type(m)].from_float(copy.deepcopy(m), None, None)
    x = example(m, LAYERS[name][1])
    a, b = m(x), t(x)
    assert torch.equal(a, b)
    (ga,) = torch.autograd.grad(a.square().sum(), x)
    (gb,) = torch.autograd.grad(b.square().sum(), x)
    assert torch.equal(ga, gb)
    if isinstance(m, nn.ConvTranspose2d) and m.stride == (2, 1):  # output_size picks output_padding, as in torch
        size = [9, 4]  # not the 10 that the layer's output_padding=1 gives
        assert torch.equal(m(x, output_size=size), t(x, output_size=size))


def per_output_channel_reference(w: torch.Tensor, groups: int, bits: int) -> torch.Tensor:
    """Quantize each output channel's weights with its own L2-optimal step, by explicit loops over the
    transposed layout: output channel o = g·(C_out/g) + j reads W[g·(C_in/g) + i, j] for every i."""
    c_in, c_out_g = w.shape[0], w.shape[1]
    c_in_g = c_in // groups
    out = torch.empty_like(w)
    for g in range(groups):
        for j in range(c_out_g):
            rows = slice(g * c_in_g, (g + 1) * c_in_g)
            block = w[rows, j]  # every weight that feeds output channel g·(C_out/g) + j
            out[rows, j] = uniform_quantize(block, l2_opt_step(block, bits, True), bits, True)
    return out


@pytest.mark.parametrize("name", ["t1d", "t2d", "t3d"])
def test_per_channel_is_per_output_channel(name):
    m = build(name)
    t = TWINS[type(m)].from_float(copy.deepcopy(m), get("uniform", bits=3, granularity="per_channel"), None)
    x = example(m, LAYERS[name][1])
    y = t(x)
    assert t.weight_quant.step.shape == (m.out_channels,)
    want_w = per_output_channel_reference(m.weight.detach(), m.groups, 3)
    torch.testing.assert_close(t.quantized_weight(), want_w, atol=0, rtol=0)
    with torch.no_grad():  # torch's layer with the expected weight computes the same output
        m.weight.copy_(want_w)
    torch.testing.assert_close(y, m(x), atol=1e-6, rtol=0)


def test_straight_through_gradient_reaches_the_latent_weight():
    m = build("t2d")
    t = TWINS[type(m)].from_float(m, get("uniform", bits=2, granularity="per_channel"), None)
    t(example(m, 2)).sum().backward()
    assert t.weight.grad is not None and t.weight.grad.shape == t.weight.shape
    m2 = build("t2d")
    x = example(m2, 2)
    with torch.no_grad():
        m2.weight.copy_(t.quantized_weight())
    m2(x).sum().backward()
    torch.testing.assert_close(t.weight.grad, m2.weight.grad)  # identity STE: dL/dW = dL/dŴ


class _Up(nn.Module):
    def __init__(self):
        super().__init__()
        self.c3 = nn.Conv3d(1, 4, 3, padding=1)
        self.up = nn.ConvTranspose2d(12, 6, 3, stride=2, padding=1, output_padding=1, groups=3)
        self.up1 = nn.ConvTranspose1d(6, 4, 2, stride=2)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        v = torch.relu(self.c3(x.unsqueeze(1))).flatten(1, 2)
        v = torch.relu(self.up(v)).mean(2)
        return self.head(self.up1(v).mean(2))


@pytest.mark.parametrize("granularity", ["per_tensor", "per_channel"])
def test_round_trips(tmp_path, granularity):
    cfg = lb.QuantConfig(weight=get("uniform", bits=4, granularity=granularity), act=get("uniform", bits=8))
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(2))
    model = check_round_trips(_Up, cfg, (x,), tmp_path)
    assert [type(model.get_submodule(n)).__name__ for n in ("c3", "up", "up1")] == [
        "QuantConv3d",
        "QuantConvTranspose2d",
        "QuantConvTranspose1d",
    ]
    frozen = lb.freeze(copy.deepcopy(model))
    schemes = frozen.up.weight_quant.schemes["weight"]
    assert schemes["shape"] == [6, 4, 3, 3]  # codes stored output-channel first; the layer keeps (12, 2, 3, 3)
    assert tuple(frozen.up.weight.shape) == (12, 2, 3, 3)


def test_xnor_scale_is_per_output_channel():
    """XNOR's α_c (mean |w| of each output channel, dim 0 of the quantizer's layout) for a transposed conv."""
    m = build("t2d")
    t = TWINS[type(m)].from_float(copy.deepcopy(m), get("xnor"), None)
    w = m.weight.detach()
    q = t.quantized_weight().detach()
    g, c_in_g, c_out_g = m.groups, m.in_channels // m.groups, m.out_channels // m.groups
    for gi in range(g):
        for j in range(c_out_g):
            block_w, block_q = w[gi * c_in_g : (gi + 1) * c_in_g, j], q[gi * c_in_g : (gi + 1) * c_in_g, j]
            torch.testing.assert_close(block_q.abs(), block_w.abs().mean().expand_as(block_q))


def test_inq_on_transposed_and_3d_convs():
    m = _Up()
    inq = lb.INQ(m, bits=5, portions=(1.0,))
    for _ in inq:
        pass
    assert inq.check() and isinstance(m.up, QuantConvTranspose2d) and isinstance(m.c3, QuantConv3d)
