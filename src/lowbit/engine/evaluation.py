"""What a trained job records at its end, beyond the task's test metrics (docs/architecture.md; issue 10).

- ``probs.safetensors`` in the job folder: the test-set output of ``task.predict`` (float32), written
  atomically, so that an ensemble averages its members' saved outputs instead of running every member again
  (``member_probs`` falls back to predicting when a member has no such file);
- ``train_<metric>`` for a task with ``train_metrics`` (the training set scored in eval mode, no augmentation);
- the memory columns (``lowbit.deploy.summary.memory_metrics``, counted as ``lb.summary`` counts them):
  parameters, KiB of the tensors as stored, reduction vs 32-bit.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..deploy.summary import memory_metrics
from ..serialize import load_model
from ..train.checkpoint import load_checkpoint, save_checkpoint

PROBS_FILE = "probs.safetensors"
MODEL_FILE = "model.safetensors"


def final_metrics(task, data, model: torch.nn.Module, job_dir: Path) -> dict[str, float]:
    """Test metrics (and train metrics, memory) of a finished model; saves its test probabilities."""
    probs = task.predict(model, data.test).float().cpu().contiguous()
    save_checkpoint(Path(job_dir) / PROBS_FILE, {"probs": probs}, {"kind": "probs"})  # atomic, checksummed
    out = dict(task.metrics(probs, data.test))
    if task.train_metrics:
        out |= {f"train_{k}": v for k, v in task.metrics(task.predict(model, data.train), data.train).items()}
    return out | memory_metrics(model)


def member_probs(task, data, job_dir: Path, builder=None) -> torch.Tensor:
    """A finished member's test probabilities: its saved file, else predicted from its saved model (``builder``:
    the model's builder when it is a user's ``target``, see ``serialize.load_model``)."""
    path = Path(job_dir) / PROBS_FILE
    if path.is_file():
        return load_checkpoint(path)[0]["probs"]
    return task.predict(load_model(Path(job_dir) / MODEL_FILE, builder)[0], data.test)


def added_metric_names(task) -> list[str]:
    """The metrics ``final_metrics`` adds to a task's own (what a report may name besides ``task.metric_names``)."""
    train = [f"train_{m}" for m in task.metric_names] if task.train_metrics else []
    return [*train, "params", "weight_kib", "memory_reduction"]
