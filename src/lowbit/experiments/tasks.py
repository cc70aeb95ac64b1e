"""Tasks: what a study's jobs optimise and measure (``task = "classification"`` in a spec).

A ``Task`` supplies everything task-specific the steps need, so that steps.py never switches on the task:
``loss(model, batch)`` and ``collate`` for ``fit``; ``predict(model, data)`` -> the probabilities an ensemble
averages; ``metrics(probs, data)`` -> {name: value}; ``calibration(data, n)`` -> the batches that calibrate
activation quantizers (spec §2.3). Segmentation (Dice, object F1) and CTC speech (WER/PER) register here with
their data sets; every metric a task can report is listed in ``metric_names`` (the report checks against it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from ..metrics.classification import top1_accuracy
from ..train.loop import classification_loss, epoch_batches


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


_TASKS: dict[str, Task] = {}
# Modules that register more tasks when imported (loaded on first lookup, in every worker process too).
BUILTIN_TASK_MODULES: list[str] = []


def _load_builtin() -> None:
    import importlib

    for mod in BUILTIN_TASK_MODULES:
        importlib.import_module(mod)


def register_task(task: Task) -> Task:
    if task.name in _TASKS and _TASKS[task.name] is not task:
        raise ValueError(f"task {task.name!r} is already registered")
    _TASKS[task.name] = task
    return task


def task_names() -> list[str]:
    _load_builtin()
    return sorted(_TASKS)


def get_task(name: str) -> Task:
    _load_builtin()
    if name not in _TASKS:
        raise ValueError(f"unknown task {name!r}; registered tasks: {', '.join(task_names())}")
    return _TASKS[name]


EVAL_INPUT_ELEMENTS = 2**20  # input numbers per evaluation batch: 4,096 spirals points or 341 CIFAR images


def eval_batch_size(data: Dataset, most: int = 4096) -> int:
    """Evaluation batch: at most ``most`` samples and ``EVAL_INPUT_ELEMENTS`` input numbers. A conv net's
    activations grow with the batch's pixels (an inverted-residual net at 32×32 with 4,096 images holds ~13 GB,
    measured: the OS killed a worker of cnn_blocks), so image batches stay small; tabular ones keep 4,096."""
    if len(data) == 0:
        return most
    per_sample = max(1, data[0][0].numel())
    return max(1, min(most, EVAL_INPUT_ELEMENTS // per_sample))


def _softmax_predict(model: nn.Module, data: Dataset, batch_size: int | None = None) -> torch.Tensor:
    model.eval()
    device = next(iter(model.parameters()), torch.empty(0)).device
    batch_size = batch_size or eval_batch_size(data)
    with torch.no_grad():
        out = [
            torch.softmax(model(b[0].to(device)), dim=-1).cpu()
            for b in epoch_batches(data, batch_size, seed=0, epoch=0, shuffle=False)
        ]
    return torch.cat(out)


def _labels(data: Dataset) -> torch.Tensor:
    if isinstance(data, TensorDataset):
        return data.tensors[1]
    return torch.tensor([int(data[i][1]) for i in range(len(data))])


def _first_inputs(data: Dataset, n: int) -> list:
    """The first ``n`` training inputs, as one batch (spirals and the studies calibrate on a prefix)."""
    if isinstance(data, TensorDataset):
        return [data.tensors[0][:n]]
    return [torch.stack([data[i][0] for i in range(min(n, len(data)))])]


CLASSIFICATION = register_task(
    Task(
        name="classification",
        loss=classification_loss,
        predict=_softmax_predict,
        metrics=lambda probs, data: {"accuracy": top1_accuracy(probs, _labels(data))},
        calibration=_first_inputs,
        metric_names=("accuracy",),
    )
)

# The application studies' tasks register themselves (segmentation, CTC speech, image classification).
from . import tasks_ctc, tasks_images, tasks_segmentation  # noqa: E402, F401
