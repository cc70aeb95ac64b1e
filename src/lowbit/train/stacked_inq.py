"""``fit_inq`` for K same-shape models trained stacked (``fit_stacked``): the same stages, files and resume.

Each model has its own INQ driver (its own codebook, masks and frozen portions); each stage retrains the free
weights of every model with ``fit_stacked``, each model's optimizer carrying its own INQ step hooks. A model
whose checkpoints are further along (a run killed between two models' writes) rejoins at its own stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from ..inq import INQ
from .config import TrainConfig
from .inq_fit import _ckpt
from .loop import load_model_state
from .stacked import fit_stacked


def fit_inq_stacked(
    models: Sequence[nn.Module],
    data: Dataset,
    cfgs: Sequence[TrainConfig],
    bits: int,
    portions: Sequence[float] = (0.5, 0.75, 0.875, 1.0),
    strategy: str = "magnitude",
    run_dirs: Sequence[str | Path | None] | None = None,
    resume: bool = False,
    **fit_kwargs: Any,
) -> list[INQ]:
    """``fit_inq(models[k], data, cfgs[k], bits, portions, strategy, run_dir=run_dirs[k], resume=resume)`` for
    every k (no retraining after the last portion, as ``fit_inq``'s default); returns the INQ drivers."""
    inqs = [INQ(m, bits, portions, strategy) for m in models]
    dirs = [Path(d) if d is not None else None for d in (run_dirs or [None] * len(models))]
    starts = []
    for m, d in zip(models, dirs):
        start = 0
        if resume and d is not None:
            done = [k for k in range(len(portions)) if _ckpt(d, k).exists()]
            if done:
                start = max(done)
                load_model_state(_ckpt(d, start), m)
        starts.append(start)
    for k in range(min(starts), len(portions)):
        active = [i for i in range(len(models)) if starts[i] <= k]
        for i in active:
            if inqs[i].stage < k:
                inqs[i].step()
        if portions[k] < 1.0:
            fit_stacked(
                [models[i] for i in active],
                data,
                [cfgs[i] for i in active],
                run_dirs=[dirs[i] / f"stage{k}" if dirs[i] is not None else None for i in active],
                resume=resume,
                on_optimizer=[inqs[i].attach for i in active],
                **fit_kwargs,
            )
            for i in active:
                inqs[i].detach()
    return inqs
