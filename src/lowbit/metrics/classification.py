"""Top-1 classification metrics: a prediction is correct when the arg-max class equals the label.

    accuracy = 100 * #{i : argmax_c p[i, c] = y[i]} / N        top1_error = 100 - accuracy   (both in %)

Ties in the arg-max go to the lowest class index (``torch.argmax``'s rule).
"""

from __future__ import annotations

import torch


def _check(scores: torch.Tensor, labels: torch.Tensor) -> None:
    if scores.dim() != 2 or labels.dim() != 1 or scores.shape[0] != labels.shape[0]:
        raise ValueError(
            f"scores must be (N, classes) and labels (N,), got {tuple(scores.shape)} and {tuple(labels.shape)}"
        )
    if scores.shape[0] == 0:
        raise ValueError("accuracy of an empty set is undefined (N = 0)")


def top1_accuracy(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in % of (N, classes) scores (logits or probabilities) against (N,) integer labels."""
    _check(scores, labels)
    return float((scores.argmax(dim=1) == labels).double().mean()) * 100.0


def top1_error(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 error in %: 100 - top1_accuracy."""
    return 100.0 - top1_accuracy(scores, labels)
