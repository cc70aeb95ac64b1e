"""INQ retraining with ``fit``: one training stage per accumulated portion, resumable at any point.

Stage k quantizes and freezes the next portion (``inq.step()``) and retrains the free weights with a fresh
optimizer and a restarted learning-rate schedule (spec §1.3). After the last portion (σ = 1) there is
nothing left to train in the quantized layers, so by default no retraining happens (spec §1.3).
Each stage checkpoints in ``run_dir/stage<k>``; the checkpoint holds the INQ masks (they are model buffers),
so resuming loads the latest stage reached and continues from there.

In a process group (torchrun, ``lowbit run --nproc``) rank 0 decides: it finds the stage to resume from and
broadcasts it with its model state, and after each ``inq.step()`` its partition (frozen masks, codebooks and the
weights put on them) is broadcast, so every rank trains the same free weights (train/distributed.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from ..inq import INQ
from . import distributed
from .config import TrainConfig
from .loop import fit, load_model_state


def _ckpt(run_dir: Path, k: int) -> Path:
    return run_dir / f"stage{k}" / "checkpoints" / "last.safetensors"


def fit_inq(
    model: nn.Module,
    data: Dataset,
    cfg: TrainConfig,
    bits: int,
    portions: Sequence[float] = (0.5, 0.75, 0.875, 1.0),
    strategy: str = "magnitude",
    run_dir: str | Path | None = None,
    resume: bool = False,
    retrain_last: bool = False,
    max_value: float | None = None,
    **fit_kwargs: Any,
) -> tuple[INQ, list[dict]]:
    """Run INQ on ``model`` (float or quantized) and return (the INQ driver, the concatenated history).
    ``max_value``: a fixed top level 2^n1 for every layer (``lowbit.INQ``; spec §1.1), None for Eq. 3."""
    inq = INQ(model, bits, portions, strategy, max_value=max_value)
    run_dir = Path(run_dir) if run_dir is not None else None
    start = 0
    if distributed.from_rank0(resume and run_dir is not None):
        done = [k for k in range(len(portions)) if run_dir is not None and _ckpt(run_dir, k).exists()]
        found = distributed.from_rank0(max(done) if done and distributed.is_writer() else -1)
        if found >= 0:
            start = found
            if distributed.is_writer():
                load_model_state(_ckpt(run_dir, start), model)  # INQ masks and stage come with the model state
            if distributed.active():
                state = distributed.from_rank0(model.state_dict() if distributed.is_writer() else None)
                model.load_state_dict(state)
    history: list[dict] = []
    for k in range(start, len(portions)):
        if inq.stage < k:
            inq.step()
            distributed.sync_module(model)  # rank 0's partition on every rank
        if portions[k] < 1.0 or retrain_last:
            stage_dir = run_dir / f"stage{k}" if run_dir is not None else None
            h = fit(
                model,
                data,
                cfg,
                run_dir=stage_dir,
                resume=resume,
                on_optimizer=inq.attach,
                desc=f"INQ{bits} {portions[k]:.3g}",
                **fit_kwargs,
            )
            inq.detach()
            history += [{**row, "inq_stage": k, "portion": portions[k]} for row in h]
    return inq, history
