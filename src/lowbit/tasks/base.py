"""The task protocol: what a study's jobs optimise and measure (``task = "classification"`` in a spec).

A ``Task`` supplies everything task-specific the steps need, so that steps.py never switches on the task:
``loss(model, batch)`` and ``collate`` for ``fit``; ``predict(model, data)`` -> the probabilities an ensemble
averages; ``metrics(probs, data)`` -> {name: value}; ``calibration(data, n)`` -> the batches that calibrate
activation quantizers (spec §2.3). Segmentation (Dice, object F1) and CTC speech (WER/PER) live beside it in this
package; every metric a task can report is listed in ``metric_names`` (the report checks against it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from ..train.loop import epoch_batches


@dataclass(frozen=True)
class Task:
    name: str
    loss: Callable[[nn.Module, Any], torch.Tensor]
    predict: Callable[[nn.Module, Dataset], torch.Tensor]  # probabilities, in the data's order
    metrics: Callable[[torch.Tensor, Dataset], dict[str, float]]
    calibration: Callable[[Dataset, int], list]
    metric_names: tuple[str, ...]
    collate: Callable | None = None
    train_metrics: bool = False  # also score the training set: metrics prefixed "train_" (e.g. train_accuracy)
    # an ensemble's metrics from its members' ``predict`` outputs; None: ``metrics`` of their average (CTC adds
    # rules that survive spikes in different frames: tasks/ctc_decode.py)
    ensemble_metrics: Callable[[list[torch.Tensor], Dataset], dict[str, float]] | None = None


EVAL_INPUT_ELEMENTS = 2**20  # input numbers per evaluation batch: 4,096 spirals points or 341 CIFAR images


def eval_batch_size(data: Dataset, most: int = 4096) -> int:
    """Evaluation batch: at most ``most`` samples and ``EVAL_INPUT_ELEMENTS`` input numbers. A conv net's
    activations grow with the batch's pixels (an inverted-residual net at 32×32 with 4,096 images holds ~13 GB,
    measured: the OS killed a worker of cnn_blocks), so image batches stay small; tabular ones keep 4,096."""
    if len(data) == 0:
        return most
    per_sample = max(1, data[0][0].numel())
    return max(1, min(most, EVAL_INPUT_ELEMENTS // per_sample))


def softmax_predict(model: nn.Module, data: Dataset, batch_size: int | None = None) -> torch.Tensor:
    """Softmax probabilities of the model on every item of ``data``, in order (eval mode, no autograd)."""
    model.eval()
    device = next(iter(model.parameters()), torch.empty(0)).device
    batch_size = batch_size or eval_batch_size(data)
    with torch.no_grad():
        out = [
            torch.softmax(model(b[0].to(device)), dim=-1).cpu()
            for b in epoch_batches(data, batch_size, seed=0, epoch=0, shuffle=False)
        ]
    return torch.cat(out)


def labels(data: Dataset) -> torch.Tensor:
    """The class labels of a classification set, in order."""
    if isinstance(data, TensorDataset):
        return data.tensors[1]
    if isinstance(getattr(data, "targets", None), torch.Tensor):  # a set read image by image knows its labels
        return data.targets
    return torch.tensor([int(data[i][1]) for i in range(len(data))])


def first_inputs(data: Dataset, n: int) -> list:
    """The first ``n`` training inputs, as one batch (spirals and the studies calibrate on a prefix)."""
    if isinstance(data, TensorDataset):
        return [data.tensors[0][:n]]
    return [torch.stack([data[i][0] for i in range(min(n, len(data)))])]
