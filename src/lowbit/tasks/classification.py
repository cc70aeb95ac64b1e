"""Plain classification: cross-entropy, softmax probabilities, top-1 accuracy (the spirals and digits studies)."""

from __future__ import annotations

from ..metrics.classification import top1_accuracy
from ..train.loop import classification_loss
from . import register_task
from .base import Task, first_inputs, labels, softmax_predict

CLASSIFICATION = register_task(
    Task(
        name="classification",
        loss=classification_loss,
        predict=softmax_predict,
        metrics=lambda probs, data: {"accuracy": top1_accuracy(probs, labels(data))},
        calibration=first_inputs,
        metric_names=("accuracy",),
    )
)
