"""Multi-class semantic segmentation scored by mean intersection over union (task ``segmentation_miou``; Boo et
al. §5.1: "mean intersection over union (mIOU) without multi-scaling and flipping input images").

- loss: pixel-wise cross-entropy over the classes, pixels labelled 255 ignored (VOC's object borders, padding);
- predict: each test image's confusion matrix (K x K, rows = truth, columns = the argmax class; ignored pixels
  left out), in the data's order. Whole-image class probabilities of 1,449 VOC images at 513 x 513 would be
  32 GB per job (labels 381 MB), so the per-image counts are what a job keeps (stored as float32: exact up to 2^24
  pixels per cell); an ensemble of this task, which would need probabilities, is not supported (averaged counts
  that are not whole numbers are refused; the mean of whole counts would still not be an ensemble's mIoU);
- metrics: IoU_c = TP_c / (TP_c + FP_c + FN_c) from the counts summed over the test set, ``miou`` the mean over
  the classes that occur (in truth or prediction), and ``pixel_accuracy``, both in %.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..train.loop import epoch_batches
from . import register_task
from .base import Task, first_inputs

IGNORE = 255


def _loss(model: torch.nn.Module, batch) -> torch.Tensor:
    return F.cross_entropy(model(batch[0]), batch[1], ignore_index=IGNORE)


def confusion(pred: torch.Tensor, truth: torch.Tensor, k: int) -> torch.Tensor:
    """(k, k) int64 counts of (truth, pred) pairs over the pixels whose truth is not 255."""
    keep = truth != IGNORE
    idx = truth[keep] * k + pred[keep]
    return torch.bincount(idx, minlength=k * k).view(k, k)


@torch.no_grad()
def confusion_predict(model: torch.nn.Module, data: Dataset, batch: int = 4) -> torch.Tensor:
    """(N, K, K) per-image confusion matrices of the model's argmax on ``data`` (module docstring)."""
    model.eval()
    dev = next(model.parameters()).device
    out = []
    for x, y in epoch_batches(data, batch, seed=0, epoch=0, shuffle=False):
        logits = model(x.to(dev))
        k = logits.shape[1]
        pred = logits.argmax(1).cpu()
        out += [confusion(p, t, k) for p, t in zip(pred, y)]
    return torch.stack(out)


def miou_scores(counts: torch.Tensor) -> dict[str, float]:
    """``miou`` and ``pixel_accuracy`` (%) of summed (K, K) confusion counts."""
    if counts.dim() == 3:
        counts = counts.sum(0)
    if not torch.equal(counts, counts.round()):  # averaged counts (an ensemble's) are not an ensemble's mIoU
        raise ValueError(
            "segmentation_miou: expected whole-number confusion counts; an ensemble of this task is not supported"
        )
    c = counts.double()
    tp = c.diag()
    union = c.sum(0) + c.sum(1) - tp
    present = union > 0
    iou = tp[present] / union[present]
    total = c.sum()
    return {
        "miou": float(iou.mean() * 100) if present.any() else 0.0,
        "pixel_accuracy": float(tp.sum() / total * 100) if total > 0 else 0.0,
    }


def _metrics(counts: torch.Tensor, data: Dataset) -> dict[str, float]:
    return miou_scores(counts)


SEGMENTATION_MIOU = register_task(
    Task(
        name="segmentation_miou",
        loss=_loss,
        predict=confusion_predict,
        metrics=_metrics,
        calibration=first_inputs,
        metric_names=("miou", "pixel_accuracy"),
    )
)
