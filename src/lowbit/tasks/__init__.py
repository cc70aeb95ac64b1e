"""Tasks: what a study's jobs optimise and measure (``task = "classification"`` in a spec).

``TASKS`` maps a name to a ``Task`` (``base.py``: loss, collate, predict, metrics, calibration batches). The
built-in tasks live in this package, one module per family, and register when ``TASKS`` first looks a name up:
``classification`` (spirals, digits), ``image_classification*`` (accuracy, error, train accuracy; plain, crop +
flip, + label smoothing), ``segmentation`` (Dice, object F1) and ``ctc`` (WER/PER). A user's own task registers
with ``register_task`` from a module a spec lists in ``plugins``.
"""

from __future__ import annotations

from ..registry import Registry
from .base import EVAL_INPUT_ELEMENTS, Task, eval_batch_size, first_inputs, labels, softmax_predict

TASKS: Registry[Task] = Registry(
    "task",
    modules=[f"lowbit.tasks.{m}" for m in ("classification", "images", "segmentation", "miou", "ctc")],
    entry_points="lowbit.tasks",
)


def register_task(task: Task) -> Task:
    """Register ``task`` under ``task.name``; returns it."""
    return TASKS.register(task.name, task)


def get_task(name: str) -> Task:
    return TASKS.get(name)


def task_names() -> list[str]:
    return TASKS.names()


__all__ = [
    "EVAL_INPUT_ELEMENTS",
    "TASKS",
    "Task",
    "eval_batch_size",
    "first_inputs",
    "get_task",
    "labels",
    "register_task",
    "softmax_predict",
    "task_names",
]
