"""Top-1 metrics and ensembles (probability averaging) against hand-computed cases."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lowbit.metrics.classification import top1_accuracy, top1_error
from lowbit.train.ensemble import average_probs, ensemble_curve, ensemble_predict


def test_top1_hand_cases():
    scores = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.5, 0.5], [0.3, 0.7]])
    labels = torch.tensor([1, 1, 0, 0])
    # correct: row 0 (1), row 2 (tie -> class 0, argmax's lowest index) -> 2 of 4
    assert top1_accuracy(scores, labels) == 50.0
    assert top1_error(scores, labels) == 50.0
    assert top1_accuracy(torch.eye(3), torch.tensor([0, 1, 2])) == 100.0
    assert top1_error(torch.eye(3), torch.tensor([1, 2, 0])) == 100.0


def test_top1_errors():
    with pytest.raises(ValueError, match="empty"):
        top1_accuracy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        top1_accuracy(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long))


def test_average_probs_hand_case():
    a = torch.tensor([[0.6, 0.4], [0.1, 0.9]])
    b = torch.tensor([[0.2, 0.8], [0.3, 0.7]])
    assert torch.allclose(average_probs([a, b]), torch.tensor([[0.4, 0.6], [0.2, 0.8]]))
    assert torch.equal(average_probs([a]), a)
    with pytest.raises(ValueError, match="no member"):
        average_probs([])
    with pytest.raises(ValueError, match="shape"):
        average_probs([a, torch.zeros(3, 2)])


def test_ensemble_can_beat_every_member():
    # three voters, each wrong on a different sample; the average is right on all three
    labels = torch.tensor([0, 0, 0])
    right, wrong = [0.7, 0.3], [0.4, 0.6]
    members = [
        torch.tensor([wrong, right, right]),
        torch.tensor([right, wrong, right]),
        torch.tensor([right, right, wrong]),
    ]
    assert all(abs(top1_accuracy(p, labels) - 200 / 3) < 1e-9 for p in members)
    curve = ensemble_curve(members, labels, [1, 2, 3])
    assert abs(curve[1] - 200 / 3) < 1e-9
    # N=2: sample 0 averages (0.55, 0.45) -> right; sample 1 -> right; sample 2 -> (0.7, 0.3) right
    assert curve[2] == 100.0 and curve[3] == 100.0
    with pytest.raises(ValueError, match="ensemble size"):
        ensemble_curve(members, labels, [4])


class _Fixed(nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits[: len(x)].clone() + 0 * x.sum()


def test_ensemble_predict_softmax_average_and_batches():
    l1 = torch.tensor([[0.0, 1.0], [2.0, 0.0], [0.0, 0.0]])
    l2 = torch.tensor([[1.0, 0.0], [0.0, 0.0], [3.0, 1.0]])
    ms = [_Fixed(l1), _Fixed(l2)]
    x = torch.zeros(3, 1)
    ref = (torch.softmax(l1, 1) + torch.softmax(l2, 1)) / 2
    assert torch.allclose(ensemble_predict(ms, x), ref)
    with pytest.raises(ValueError, match="members"):
        ensemble_predict([], x)


def test_ensemble_predict_quantized_members_keep_train_mode():
    from lowbit import INQ
    from lowbit.models import TEST_KWARGS, create_model

    torch.manual_seed(0)
    members = [create_model("vgg_small5", **TEST_KWARGS["vgg_small5"]) for _ in range(2)]
    for _ in INQ(members[1], bits=8):
        pass
    x = torch.randn(5, 3, 32, 32)
    p = ensemble_predict(members, x, batch_size=2)
    assert p.shape == (5, 10) and torch.allclose(p.sum(1), torch.ones(5))
    assert all(m.training for m in members)  # mode restored
    with torch.no_grad():
        ref = sum(torch.softmax(m.eval()(x), 1) for m in members) / 2
    assert torch.allclose(p, ref, atol=1e-6)
