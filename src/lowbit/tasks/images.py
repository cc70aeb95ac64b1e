"""Image classification tasks of the classification study (seed §3.2): top-1 accuracy and error on the test set,
the same on the training set (``train_accuracy``: the train-test gap measures overfitting), and optional
per-batch augmentation (random crop of the zero-padded image, shift up to 4 pixels, and horizontal flip).

- ``image_classification``: no augmentation;
- ``image_classification_crop_flip``: crop + flip on every training batch (``lowbit.data.transforms.augment``,
  drawn from the global torch generator that ``fit`` seeds);
- ``image_classification_crop_flip_smooth``: crop + flip, and cross-entropy against labels smoothed by 0.1
  (Szegedy et al. 2016, §7: the target puts 1 - 0.1 on the true class and 0.1 / K on every class).

A method of a study can pick its own task (``[methods.X] task = ...``), so plain, augmented and smoothed training
can be compared on paired seeds within one spec.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data import transforms as T
from ..metrics.classification import top1_accuracy
from . import register_task
from .base import Task, first_inputs, labels, softmax_predict


def _metrics(probs: torch.Tensor, data) -> dict[str, float]:
    acc = top1_accuracy(probs, labels(data))
    return {"accuracy": acc, "error": 100.0 - acc}


def _crop_flip_loss(model: torch.nn.Module, batch) -> torch.Tensor:
    return F.cross_entropy(model(T.augment(batch[0])), batch[1])


LABEL_SMOOTHING = 0.1  # Szegedy et al. 2016 (Inception-v3) use 0.1 on ImageNet; the usual CIFAR choice too


def _crop_flip_smooth_loss(model: torch.nn.Module, batch) -> torch.Tensor:
    return F.cross_entropy(model(T.augment(batch[0])), batch[1], label_smoothing=LABEL_SMOOTHING)


def _plain_loss(model: torch.nn.Module, batch) -> torch.Tensor:
    return F.cross_entropy(model(batch[0]), batch[1])


for _name, _loss in (
    ("image_classification", _plain_loss),
    ("image_classification_crop_flip", _crop_flip_loss),
    ("image_classification_crop_flip_smooth", _crop_flip_smooth_loss),
):
    register_task(
        Task(
            name=_name,
            loss=_loss,
            predict=softmax_predict,
            metrics=_metrics,
            calibration=first_inputs,
            metric_names=("accuracy", "error"),
            train_metrics=True,
        )
    )
