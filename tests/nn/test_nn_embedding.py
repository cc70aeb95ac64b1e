"""QuantEmbedding: torch's nn.Embedding without a quantizer; a looked-up row is the quantized row of the table
(per tensor, or one step per row); padding_idx keeps its zero gradient; max_norm and sparse are refused by name;
round trips and INQ; the default config quantizes embeddings."""

from __future__ import annotations

import copy

import pytest
import torch
from support.twins import check_round_trips
from torch import nn

import lowbit as lb
from lowbit.nn import QuantEmbedding
from lowbit.quantizers import get
from lowbit.quantizers.l2_step import l2_opt_step
from lowbit.quantizers.uniform import uniform_quantize

V, D = 20, 6
IDS = torch.tensor([[0, 3, 3, 19], [7, 0, 1, 2]])


def table(padding_idx=None, **kw) -> nn.Embedding:
    torch.manual_seed(0)
    e = nn.Embedding(V, D, padding_idx=padding_idx, **kw)
    with torch.no_grad():
        e.weight.mul_(torch.logspace(-2, 1, V).unsqueeze(1))  # rows of very different norms
    return e


@pytest.mark.parametrize("kw", [{}, {"padding_idx": 0}, {"scale_grad_by_freq": True}])
def test_equals_torch_without_a_quantizer(kw):
    e = table(**kw)
    t = QuantEmbedding.from_float(copy.deepcopy(e), None, get("uniform", bits=4))
    assert t.act_quant is None  # indices: nothing to quantize
    a, b = e(IDS), t(IDS)
    assert torch.equal(a, b)
    a.square().sum().backward()
    b.square().sum().backward()
    assert torch.equal(t.weight.grad, e.weight.grad)


@pytest.mark.parametrize("granularity", ["per_tensor", "per_channel"])
def test_rows_are_the_quantized_table_rows(granularity):
    e = table()
    t = QuantEmbedding.from_float(e, get("uniform", bits=3, granularity=granularity), None)
    out = t(IDS)
    w = e.weight.detach()
    if granularity == "per_tensor":  # one L2-optimal step for the table (spec §2.2), computed independently
        want = uniform_quantize(w, l2_opt_step(w, 3, True), 3, True)
        assert t.weight_quant.step.numel() == 1
    else:  # the per-row option: one step per token, each from its own row
        want = torch.stack([uniform_quantize(r, l2_opt_step(r, 3, True), 3, True) for r in w])
        assert t.weight_quant.step.shape == (V,)
        assert len(set(t.weight_quant.step.tolist())) == V
    torch.testing.assert_close(out, want[IDS], atol=0, rtol=0)


def test_per_row_steps_fit_small_rows_that_a_table_step_zeroes():
    e = table()
    per_tensor = QuantEmbedding.from_float(copy.deepcopy(e), get("uniform", bits=3), None)
    per_row = QuantEmbedding.from_float(copy.deepcopy(e), get("uniform", bits=3, granularity="per_channel"), None)
    small = torch.tensor([0, 1])  # the rows scaled by 1e-2: below half the table's step
    assert torch.count_nonzero(per_tensor(small)) == 0
    assert torch.count_nonzero(per_row(small)) > 0


def test_gradient_is_straight_through_and_padding_row_gets_none():
    e = table(padding_idx=0)
    t = QuantEmbedding.from_float(e, get("uniform", bits=2), None)
    t(IDS).sum().backward()
    g = t.weight.grad
    counts = torch.bincount(IDS.reshape(-1), minlength=V).float()
    counts[0] = 0  # padding_idx: no gradient, as torch gives it
    torch.testing.assert_close(g, counts[:, None].expand(V, D))


def test_max_norm_and_sparse_are_refused_by_name():
    with pytest.raises(ValueError, match="max_norm=1.0"):
        lb.quantize_(nn.Sequential(nn.Embedding(V, D, max_norm=1.0)), lb.QuantConfig(weight=get("uniform", bits=4)))
    with pytest.raises(ValueError, match="sparse=True"):
        lb.quantize_(nn.Sequential(nn.Embedding(V, D, sparse=True)), lb.QuantConfig(weight=get("uniform", bits=4)))


class _Bag(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = table(padding_idx=0)
        self.head = nn.Linear(D, 3)

    def forward(self, ids):
        return self.head(self.embed(ids).mean(1))


@pytest.mark.parametrize("granularity", ["per_tensor", "per_channel"])
def test_round_trips(tmp_path, granularity):
    cfg = lb.QuantConfig(weight=get("uniform", bits=4, granularity=granularity), act=get("uniform", bits=8))
    model = check_round_trips(_Bag, cfg, (IDS,), tmp_path)
    assert isinstance(model.embed, QuantEmbedding)
    qmap = lb.quantization_map(model)
    assert qmap["embed"]["weight"]["bits"] == 4 and qmap["embed"]["act"] is None
    assert qmap["head"]["act"]["bits"] == 8  # the embedding was first: the next layer's input is quantized


def test_default_config_quantizes_embeddings_and_first_keeps_them_float():
    m = _Bag()
    lb.quantize_(m, lb.QuantConfig(weight=get("uniform", bits=4)))
    assert isinstance(m.embed, QuantEmbedding)
    m = _Bag()
    lb.quantize_(m, lb.QuantConfig(weight=get("uniform", bits=4), keep_float=("first",)))
    assert type(m.embed) is nn.Embedding


def test_inq_quantizes_the_table_to_powers_of_two():
    m = _Bag()
    inq = lb.INQ(m, bits=5, portions=(0.5, 1.0))
    for _ in inq:
        pass
    assert isinstance(m.embed, QuantEmbedding) and inq.check()
    w = m.embed.weight.detach()
    nz = w[w != 0].abs()
    assert torch.equal(torch.log2(nz), torch.log2(nz).round())
