"""The segmentation task (seed §3.1, spec §6.4): pixel-wise cross-entropy, foreground probabilities, Dice + F1.

``predict`` gives the foreground probability (class 1) of every test pixel, (N, H, W); an ensemble averages
these and thresholds at 0.5 like a single model. ``metrics``: Dice of the foreground mask (mean over images) and
the object F1 of the connected components of the data's object class (the ISBI cells, the GlaS glands; GlaS
>50% rule, pooled over the test set), in %, and their mean ``score``, the seed's "averaged Dice and F1"
(``lowbit.metrics.segmentation``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..metrics.segmentation import SegmentationScores, label_objects
from . import register_task
from .base import Task, first_inputs


def _loss(model: torch.nn.Module, batch) -> torch.Tensor:
    return F.cross_entropy(model(batch[0]), batch[1])


@torch.no_grad()
def foreground_probs(model: torch.nn.Module, data: Dataset, batch: int = 2) -> torch.Tensor:
    model.eval()
    dev = next(model.parameters()).device
    images = data.tensors[0]
    return torch.cat(
        [torch.softmax(model(images[i : i + batch].to(dev)), 1)[:, 1].cpu() for i in range(0, len(images), batch)]
    )


def score(probs: torch.Tensor, masks: torch.Tensor, objects_of: int = 0) -> dict[str, float]:
    """Dice of the foreground (class 1) and object F1 of the components of class ``objects_of``, in %."""
    if objects_of not in (0, 1):
        raise ValueError(f"score: objects_of={objects_of!r} is not accepted; expected 0 or 1")
    s = SegmentationScores()
    for p, g in zip(probs, masks):
        pred = (p > 0.5).numpy().astype("uint8")
        gt = g.numpy().astype("uint8")
        s.add(pred, gt, label_objects(pred if objects_of else 1 - pred), label_objects(gt if objects_of else 1 - gt))
    return {k: float(v) for k, v in s.summary().items()}


def _metrics(probs: torch.Tensor, data: Dataset) -> dict[str, float]:
    from ..data.sets.segmentation import SegmentationSet

    if not isinstance(data, SegmentationSet):
        got = type(data).__name__
        raise ValueError(
            f"task 'segmentation' needs a segmentation data set (isbi2012, glas, segmentation_folder); got {got}"
        )
    return score(probs, data.tensors[1], data.objects_of)


SEGMENTATION = register_task(
    Task(
        name="segmentation",
        loss=_loss,
        predict=foreground_probs,
        metrics=_metrics,
        calibration=first_inputs,
        metric_names=("dice", "f1", "score", "tp", "fp", "fn"),
    )
)
