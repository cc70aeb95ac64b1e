"""The suggestive-annotation loop (spec §6 with quantization, issue 30 item 4) on a tiny pool: selection sizes per
round, nothing selected twice, the same seed gives the same picks, QSA members end on the INQ codebook, and the
member diversity by hand. (Uncertainty and max-cover against hand-computed cases: tests/active/test_active.py.)"""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from lowbit.active.loop import AnnotationPlan, diversity, select, train_nt_qnt
from lowbit.models import create_model
from lowbit.tasks.segmentation import SEGMENTATION
from lowbit.train import TrainConfig


def _pool(n: int = 14, side: int = 16) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    masks = (torch.rand(n, side, side, generator=g) > 0.7).long()
    images = masks[:, None].float() + 0.3 * torch.randn(n, 1, side, side, generator=g)
    return TensorDataset(images, masks)


def _build():
    return create_model("fcn_sa", in_channels=1, n_classes=2, width=0.03125, depth=3)


KW = {"loss_fn": SEGMENTATION.loss}
ONE = TrainConfig(epochs=1, batch_size=4, lr=0.01)


@pytest.mark.parametrize("selector", ["sa", "qsa", "random"])
def test_rounds_pick_k_new_tiles_until_the_budget(selector):
    plan = AnnotationPlan(
        selector,
        initial=3,
        budget=10,
        candidates=4,
        pick=3,
        members=2,
        bits=4,
        member_train=ONE,
        inq_train=ONE,
        portions=(0.5, 1.0),
    )
    annotated, rounds, members = select(_pool(), _build, plan, seed=1, fit_kwargs=KW)
    assert len(annotated) == 10 and len(set(annotated)) == 10  # nothing selected twice
    assert [len(r["picked"]) for r in rounds] == [3, 3, 1]  # k per round, the last round up to the budget
    assert [r["annotated"] for r in rounds] == [6, 9, 10]
    assert all(0 <= i < 14 for i in annotated)
    picked = [i for r in rounds for i in r["picked"]]
    assert annotated[3:] == picked and not set(picked) & set(annotated[:3])
    if selector == "random":
        assert members == []
    else:
        assert len(members) == 2 and all(r["picked_uncertainty"] >= 0 for r in rounds)
        # the picks are among the K = 4 most uncertain unannotated tiles of their round
        assert all(len(r["candidates"]) == 4 and set(r["picked"]) <= set(r["candidates"]) for r in rounds)
    if selector == "qsa":  # members INQ-quantized: every weight of every conv on the codebook
        from lowbit.inq import INQWeight

        qs = [m for m in members[0].modules() if isinstance(getattr(m, "weight_quant", None), INQWeight)]
        assert qs
    again, _, _ = select(_pool(), _build, plan, seed=1, fit_kwargs=KW)
    assert again == annotated  # deterministic per seed


def test_plan_rejects_bad_values():
    with pytest.raises(ValueError, match="selector='al'"):
        AnnotationPlan("al")
    with pytest.raises(ValueError, match="initial=9"):
        AnnotationPlan("sa", initial=9, budget=8)
    with pytest.raises(ValueError, match="budget=40"):
        select(_pool(), _build, AnnotationPlan("random", budget=40), seed=0, fit_kwargs=KW)


class _Const(torch.nn.Module):
    """Logits that put the foreground where ``mask`` is 1."""

    def __init__(self, mask):
        super().__init__()
        self.mask, self.w = mask, torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        fg = self.mask.float().expand(x.shape[0], -1, -1)
        return torch.stack([1 - fg, fg], 1)


def test_diversity_by_hand():
    a = torch.tensor([[1, 1], [0, 0]])
    b = torch.tensor([[1, 0], [0, 0]])  # differs from a in 1 of 4 pixels
    c = torch.tensor([[0, 0], [1, 1]])  # differs from a in 4, from b in 3
    x = torch.zeros(3, 1, 2, 2)
    assert diversity([_Const(a), _Const(b)], x) == pytest.approx(0.25)
    assert diversity([_Const(a), _Const(b), _Const(c)], x) == pytest.approx((0.25 + 1.0 + 0.75) / 3)
    with pytest.raises(ValueError, match="1 member"):
        diversity([_Const(a)], x)


def test_nt_and_qnt():
    nt, qnt = train_nt_qnt(_build, _pool(), ONE, ONE, bits=4, portions=(0.5, 1.0), seed=0, fit_kwargs=KW)
    assert not any("weight_quant" in n for n, _ in nt.named_modules())
    w = [m.quantized_weight("weight") for m in qnt.modules() if hasattr(m, "quantized_weight")]
    assert w  # QNT's convolutions carry INQ weights: zero or ± powers of two
    v = torch.cat([t.flatten() for t in w])
    nz = v[v != 0].abs()
    assert torch.allclose(torch.log2(nz), torch.log2(nz).round(), atol=1e-5)
