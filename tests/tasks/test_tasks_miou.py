"""The ``segmentation_miou`` task (Boo et al. §5.1's metric): confusion counts per image, mIoU over the classes
that occur, 255 ignored, against a slow per-pixel, per-class restatement."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from lowbit.tasks import get_task
from lowbit.tasks.miou import confusion, miou_scores


def slow_miou(preds: list[torch.Tensor], truths: list[torch.Tensor], k: int) -> tuple[float, float]:
    inter, union, right, total = [0] * k, [0] * k, 0, 0
    for p, t in zip(preds, truths):
        for a, b in zip(p.flatten().tolist(), t.flatten().tolist()):
            if b == 255:
                continue
            total += 1
            right += a == b
            for c in range(k):
                inter[c] += a == c and b == c
                union[c] += a == c or b == c
    ious = [i / u for i, u in zip(inter, union) if u > 0]
    return 100 * sum(ious) / len(ious), 100 * right / total


def test_miou_matches_the_slow_restatement():
    g = torch.Generator().manual_seed(0)
    k = 5
    truths = [torch.randint(0, k - 1, (9, 7), generator=g) for _ in range(3)]  # class 4 never in the truth
    for t in truths:
        t[0, :3] = 255
    preds = [torch.randint(0, k, (9, 7), generator=g) for _ in range(3)]
    counts = torch.stack([confusion(p, t, k) for p, t in zip(preds, truths)])
    got = miou_scores(counts)
    want = slow_miou(preds, truths, k)
    assert got["miou"] == pytest.approx(want[0]) and got["pixel_accuracy"] == pytest.approx(want[1])
    assert miou_scores(torch.stack([confusion(t.clamp(max=k - 1), t, k) for t in truths]))["miou"] == 100.0


class Fixed(nn.Module):
    """Logits that make the argmax a given label map (the test's prediction), whatever the input."""

    def __init__(self, labels: torch.Tensor, k: int):
        super().__init__()
        self.register_buffer("logits", nn.functional.one_hot(labels, k).permute(0, 3, 1, 2).float())
        self.p = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return self.logits[x[:, 0, 0, 0].long()] + self.p


def test_task_predicts_counts_and_ignores_255_in_loss_and_score():
    task = get_task("segmentation_miou")
    k, g = 3, torch.Generator().manual_seed(1)
    y = torch.randint(0, k, (4, 6, 6), generator=g)
    y[:, 0] = 255
    pred = torch.randint(0, k, (4, 6, 6), generator=g)
    x = torch.arange(4).float().view(4, 1, 1, 1).expand(4, 3, 6, 6).contiguous()
    data = TensorDataset(x, y)
    counts = task.predict(Fixed(pred, k), data)
    assert counts.shape == (4, k, k) and int(counts.sum()) == int((y != 255).sum())
    assert task.metrics(counts, data) == pytest.approx(
        dict(zip(("miou", "pixel_accuracy"), slow_miou(list(pred), list(y), k)))
    )
    loss = task.loss(Fixed(pred, k), (x, y))
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="ensemble of this task is not supported"):
        task.metrics((counts[:2].float() + counts[2:].float() + 0.5) / 2, data)
