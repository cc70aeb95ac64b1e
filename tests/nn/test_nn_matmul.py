"""Matmul / ScaledDotProductAttention activation points: exactly torch's call in float; after quantize_ both
operands (Q, K, V and the probabilities) are quantized, each with its own calibrated copy, equal to an explicit
restatement; the SDPA restatement equals F.scaled_dot_product_attention with identity quantizers for every mask
form; gradients; rules select the points by name; round trips."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from support.twins import check_round_trips
from torch import nn

import lowbit as lb
from lowbit.nn import Matmul, QuantMatmul, QuantScaledDotProductAttention, ScaledDotProductAttention
from lowbit.quantizers import get

G = torch.Generator().manual_seed(0)
Q = torch.randn(2, 4, 5, 8, generator=G)  # (N, heads, L, d)
K = torch.randn(2, 4, 6, 8, generator=G)
V = torch.randn(2, 4, 6, 8, generator=G)


def test_float_points_are_exactly_torch():
    a, b = torch.randn(3, 4, 5), torch.randn(5, 2)
    assert torch.equal(Matmul()(a, b), a @ b)
    assert torch.equal(ScaledDotProductAttention()(Q, K, V), F.scaled_dot_product_attention(Q, K, V))


def test_quantized_matmul_quantizes_each_operand_with_its_own_step():
    m = nn.Sequential()
    m.mm = Matmul()
    lb.quantize_(m, lb.QuantConfig(act=get("uniform", bits=3), quantize_input=True))
    assert isinstance(m.mm, QuantMatmul) and m.mm.weight_quant is None
    a = torch.randn(3, 4, 5, generator=G)
    b = 10 * torch.randn(5, 2, generator=G)
    lb.calibrate(m, [(a, b)], forward=lambda mod, batch: mod.mm(*batch))
    sa, sb = float(m.mm.act_quant.step), float(m.mm.act_quants["b"].step)
    assert sb > 5 * sa  # b is ten times wider: a shared step would zero a
    a_hat = sa * torch.clamp(torch.floor(a / sa + 0.5), -3, 3)  # spec §2.1 (ties half-up), 3-bit signed
    b_hat = sb * torch.clamp(torch.floor(b / sb + 0.5), -3, 3)
    torch.testing.assert_close(m.mm(a, b), a_hat @ b_hat, atol=1e-6, rtol=0)


def test_quantized_matmul_gradients_are_straight_through():
    mm = QuantMatmul.from_float(Matmul(), None, get("uniform", bits=8))
    a = torch.randn(3, 5, requires_grad=True)
    b = torch.randn(5, 2, requires_grad=True)
    mm(a, b).sum().backward()
    a_hat, b_hat = mm.act_quant(a.detach()), mm.act_quants["b"](b.detach())
    torch.testing.assert_close(a.grad, torch.ones(3, 2) @ b_hat.T)  # inside the range: identity STE
    torch.testing.assert_close(b.grad, a_hat.T @ torch.ones(3, 2))


MASKS = {
    "none": {},
    "bool": {"attn_mask": torch.rand(5, 6, generator=G) > 0.3},  # SDPA: True = attend
    "float": {"attn_mask": torch.randn(2, 1, 5, 6, generator=G)},
    "causal": {"is_causal": True},
    "scale": {"scale": 0.3},
}


@pytest.mark.parametrize("mask,gqa", list(itertools.product(MASKS, [False, True])))
def test_sdpa_restatement_equals_torch_with_identity_quantizers(mask, gqa):
    t = QuantScaledDotProductAttention.from_float(ScaledDotProductAttention(), None, get("uniform", bits=32))
    kw = dict(MASKS[mask])
    if mask == "bool":
        kw["attn_mask"] = kw["attn_mask"].clone()
        kw["attn_mask"][:, 0] = True
    k, v = (K[:, :2], V[:, :2]) if gqa else (K, V)
    q = Q.clone().requires_grad_()
    want = F.scaled_dot_product_attention(q, k, v, enable_gqa=gqa, **kw)
    (gw,) = torch.autograd.grad(want.square().sum(), q)
    got = t(q, k, v, enable_gqa=gqa, **kw)
    (gg,) = torch.autograd.grad(got.square().sum(), q)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    torch.testing.assert_close(gg, gw, atol=1e-5, rtol=0)


def test_sdpa_dropout_and_refusal():
    t = QuantScaledDotProductAttention.from_float(ScaledDotProductAttention(), None, get("uniform", bits=32))
    torch.manual_seed(3)
    out = t(Q, K, V, dropout_p=0.5)
    assert not torch.allclose(out, F.scaled_dot_product_attention(Q, K, V))
    with pytest.raises(ValueError, match="not both"):
        t(Q, K, V, attn_mask=torch.ones(5, 6, dtype=torch.bool), is_causal=True)


def sdpa_reference(t: QuantScaledDotProductAttention, q, k, v) -> torch.Tensor:
    """Quantized Q, K, V and P, one (example, head) at a time."""
    out = torch.empty_like(q)
    for n, h in itertools.product(range(q.shape[0]), range(q.shape[1])):
        qh, kh, vh = t.act_quant(q[n, h]), t.act_quants["k"](k[n, h]), t.act_quants["v"](v[n, h])
        p = torch.softmax(qh @ kh.T / qh.shape[-1] ** 0.5, dim=-1)
        out[n, h] = t.act_quants["attn"](p) @ vh
    return out


class _Attn(nn.Module):
    """Hand-written attention with the two points in place of the function calls."""

    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(8, 24)
        self.scores = Matmul()
        self.attend = ScaledDotProductAttention()
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        q, k, v = self.qkv(x).unflatten(-1, (3, 2, 4)).permute(2, 0, 3, 1, 4)  # 3 x (N, heads, L, d)
        by_hand = torch.softmax(self.scores(q, k.transpose(-2, -1)) / 2.0, dim=-1) @ v
        return self.out((by_hand + self.attend(q, k, v)).transpose(1, 2).flatten(2))


def test_sdpa_quantized_equals_the_restatement_and_points_are_selected_by_name():
    m = _Attn()
    cfg = lb.QuantConfig(weight=get("uniform", bits=4), rules={"attend": lb.LayerRule(act=get("uniform", bits=3))})
    lb.quantize_(m, cfg)
    assert isinstance(m.attend, QuantScaledDotProductAttention) and isinstance(m.scores, QuantMatmul)
    assert m.scores.act_quant is None and m.attend.act_quant.bits == 3  # only the rule's point got 3 bits
    x = torch.randn(2, 5, 8, generator=G)
    lb.calibrate(m, [x])
    q, k, v = (t.detach() for t in m.qkv(x).unflatten(-1, (3, 2, 4)).permute(2, 0, 3, 1, 4))
    got = m.attend(q, k, v)
    torch.testing.assert_close(got, sdpa_reference(m.attend, q, k, v), atol=1e-6, rtol=0)
    assert (got - F.scaled_dot_product_attention(q, k, v)).abs().max() > 1e-2  # 3 bits matter here
    m(x).sum().backward()
    assert m.qkv.weight.grad is not None and m.qkv.weight.grad.abs().sum() > 0


def test_round_trips(tmp_path):
    cfg = lb.QuantConfig(weight=get("uniform", bits=4), act=get("uniform", bits=8), quantize_input=True)
    x = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(4))
    model = check_round_trips(_Attn, cfg, (x,), tmp_path)
    assert set(model.attend.act_quants) == {"k", "v", "attn"} and set(model.scores.act_quants) == {"b"}


def test_every_quantizer_parameter_gets_a_gradient():
    """No unused parameters (DDP's find_unused_parameters=False): each role's LSQ step trains."""
    m = _Attn()
    lb.quantize_(m, lb.QuantConfig(weight=get("lsq", bits=4), act=get("lsq", bits=4), quantize_input=True))
    m(torch.randn(2, 5, 8)).sum().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None]
    assert not missing, missing
