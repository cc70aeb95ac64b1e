"""transformers' Conv1D twin: registered lazily (the core never imports transformers), equal to Conv1D without a
quantizer, per-channel quantization per OUTPUT feature (the weight is stored (in, out)), round trips and INQ."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch
from support.twins import check_round_trips
from torch import nn

import lowbit as lb
from lowbit.quantizers import get
from lowbit.quantizers.l2_step import l2_opt_step
from lowbit.quantizers.uniform import uniform_quantize

transformers = pytest.importorskip(
    "transformers", reason="the Conv1D twin needs transformers (pip install 'lowbit[zoo]')"
)


def conv1d(nf=6, nx=5):
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(0)
    c = Conv1D(nf, nx)
    with torch.no_grad():
        c.weight.mul_(torch.logspace(-1, 1, nf))  # output features of very different ranges
        c.bias.normal_()
    return c


@pytest.mark.slow  # a fresh interpreter imports torch and transformers
def test_core_import_does_not_import_transformers_and_registers_lazily():
    code = (
        "import sys, torch, lowbit as lb\n"
        "assert 'transformers' not in sys.modules, 'the core imported transformers'\n"
        "assert not any(t.__name__ == 'QuantHFConv1D' for t in lb.nn.QUANT_TWINS.values())\n"
        "from transformers.pytorch_utils import Conv1D\n"
        "m = torch.nn.Sequential(Conv1D(4, 3))\n"
        "lb.quantize_(m, lb.QuantConfig(weight=lb.quantizers.get('uniform', bits=4)))\n"
        "assert type(m[0]).__name__ == 'QuantHFConv1D', type(m[0])\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_equals_conv1d_without_a_quantizer():
    c = conv1d()
    t = lb.nn.QuantHFConv1D.from_float(copy.deepcopy(c), None, None)
    x = torch.randn(2, 3, 5, requires_grad=True)
    a, b = c(x), t(x)
    assert torch.equal(a, b)
    (ga,) = torch.autograd.grad(a.square().sum(), x)
    (gb,) = torch.autograd.grad(b.square().sum(), x)
    assert torch.equal(ga, gb)
    assert "QuantHFConv1D" in repr(t) and "nf=6, nx=5" in repr(t)


def test_per_channel_is_per_output_feature():
    c = conv1d()
    t = lb.nn.QuantHFConv1D.from_float(copy.deepcopy(c), get("uniform", bits=3, granularity="per_channel"), None)
    x = torch.randn(2, 3, 5)
    y = t(x)
    w = c.weight.detach()  # (in=5, out=6): column j feeds output feature j
    want_w = torch.stack([uniform_quantize(w[:, j], l2_opt_step(w[:, j], 3, True), 3, True) for j in range(6)], 1)
    assert t.weight_quant.step.shape == (6,)
    torch.testing.assert_close(t.quantized_weight(), want_w, atol=0, rtol=0)
    torch.testing.assert_close(y, x @ want_w + c.bias, atol=1e-6, rtol=0)


def test_input_is_quantized_and_gradients_flow():
    t = lb.nn.QuantHFConv1D.from_float(conv1d(), get("uniform", bits=4), get("uniform", bits=4))
    x = torch.randn(2, 3, 5, requires_grad=True)
    t(x).sum().backward()
    xq = t.act_quant(x.detach())
    torch.testing.assert_close(t(x), xq @ t.quantized_weight() + t.bias)
    assert x.grad is not None and t.weight.grad is not None and t.bias.grad is not None


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_fc = conv1d(8, 5)
        self.c_proj = conv1d(3, 8)

    def forward(self, x):
        return self.c_proj(torch.relu(self.c_fc(x)))


@pytest.mark.parametrize("granularity", ["per_tensor", "per_channel"])
def test_round_trips(tmp_path, granularity):
    cfg = lb.QuantConfig(weight=get("uniform", bits=4, granularity=granularity), act=get("uniform", bits=8))
    x = torch.randn(2, 4, 5, generator=torch.Generator().manual_seed(1))
    model = check_round_trips(_Block, cfg, (x,), tmp_path)
    frozen = lb.freeze(copy.deepcopy(model))
    assert frozen.c_fc.weight_quant.schemes["weight"]["shape"] == [8, 5]  # codes (out, in); the layer keeps (5, 8)
    assert tuple(frozen.c_fc.weight.shape) == (5, 8)


def test_inq():
    m = _Block()
    inq = lb.INQ(m, bits=5, portions=(1.0,))
    for _ in inq:
        pass
    assert inq.check() and type(m.c_fc).__name__ == "QuantHFConv1D"
