"""A small, seedable CPU training loop with progress bar, metrics.jsonl and exact resume.

Resume is exact: shuffling uses a generator seeded by (seed, epoch), the global RNG state (dropout) and
the optimizer state are checkpointed after every epoch, and the learning rate is a pure function of the
epoch. A run killed at any point and resumed ends where an uninterrupted run ends.

Under torchrun / ``lowbit run --nproc`` the same loop trains data-parallel (``distributed.py``: one global
batch split over the processes, rank 0's quantizer state, rank 0 writes); ``batches.py`` feeds it, and
``precision.py`` is its mixed precision.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, TensorDataset, default_collate

from ..fileio import atomic_append_lines, atomic_write_text
from ..progress import progress_bar
from . import distributed
from .batches import epoch_order, train_batches
from .checkpoint import CheckpointClock, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .param_groups import param_groups
from .precision import autocast, make_scaler
from .regularizers import lipschitz, step_terms
from .schedules import PER_STEP, lr_factor

LossFn = Callable[[nn.Module, Any], torch.Tensor]


def classification_loss(model: nn.Module, batch: Sequence[torch.Tensor]) -> torch.Tensor:
    x, y = batch[0], batch[1]
    return F.cross_entropy(model(x), y)


def make_optimizer(params: Iterable[nn.Parameter] | Iterable[dict], cfg: TrainConfig) -> torch.optim.Optimizer:
    """``params``: parameters, or groups from ``param_groups.param_groups`` (each with its ``"lr_scale"``)."""
    params = list(params)
    if params and isinstance(params[0], dict):
        params = [{**g, "params": [p for p in g["params"] if p.requires_grad]} for g in params]
        params = [g for g in params if g["params"]]
    else:
        params = [p for p in params if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.optimizer == "nesterov"
    )


def epoch_batches(
    data: Dataset, batch_size: int, seed: int, epoch: int, collate: Callable | None = None, shuffle: bool = True
):
    """Yield the batches of one epoch in the order fixed by (seed, epoch)."""
    n = len(data)
    order = epoch_order(n, seed, epoch, shuffle)
    for i in range(0, n, batch_size):
        idx = order[i : i + batch_size]
        if isinstance(data, TensorDataset) and collate is None:
            yield tuple(t[idx] for t in data.tensors)
        elif hasattr(data, "__getitems__"):  # a set that reads a batch at once (lowbit.data.imagenet: on threads)
            yield (collate or default_collate)(data.__getitems__([int(j) for j in idx]))
        else:
            yield (collate or default_collate)([data[int(j)] for j in idx])


def place(model: nn.Module, device: str, channels_last: bool = False) -> nn.Module:
    """Move ``model`` to ``device`` ("auto": CUDA when present); a CUDA device on a machine without one is one
    clear line, not a traceback. ``channels_last``: 4-d parameters and buffers in channels-last layout."""
    device = distributed.resolve_device(device)
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f'device {device!r}: CUDA is not available on this machine; use device = "cpu" or "auto"')
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def _to(batch: Any, device: str) -> Any:
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    return batch


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, plain = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{pid}.{k}"] = v
            else:
                plain[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "plain": plain}


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, pid, k = key.split(".", 2)
            state.setdefault(int(pid), {})[k] = v
    for key, v in meta["plain"].items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_train_state(
    path: Path,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    epoch: int,
    history: list[dict],
    rngs: list[torch.Tensor] | None = None,
    scaler: dict | None = None,
) -> None:
    """``rngs``: every rank's RNG state (rank r > 0 as ``rng.torch.<r>``); ``scaler``: fp16's GradScaler state."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    otensors, ometa = _optimizer_tensors(opt)
    tensors.update(otensors)
    rngs = rngs or [torch.get_rng_state()]
    tensors["rng.torch"] = rngs[0]
    tensors.update({f"rng.torch.{r}": s for r, s in enumerate(rngs) if r > 0})
    meta = {"kind": "train-state", "epoch": epoch, "optimizer": ometa, "history": history}
    save_checkpoint(path, tensors, {**meta, "scaler": scaler} if scaler else meta)


def load_model_state(path: Path, model: nn.Module) -> dict:
    tensors, meta = load_checkpoint(path)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    return meta


def calibrate_before_training(
    model: nn.Module, data: Dataset, cfg: TrainConfig, loss_fn: LossFn, collate: Callable | None = None
) -> None:
    """Calibrate the model's uncalibrated quantizers on the first ``cfg.calibrate_batches`` batches of epoch 0.

    Uses no global random state (the batch order is fixed by (seed, 0)), so resumed runs stay exact.
    """
    from ..api import calibrate

    device = distributed.resolve_device(cfg.device)

    def batches():
        for i, batch in enumerate(epoch_batches(data, cfg.batch_size, cfg.seed, 0, collate)):
            if i >= cfg.calibrate_batches:
                return
            yield _to(batch, device) if device != "cpu" else batch

    calibrate(model, batches(), forward=loss_fn, only_uncalibrated=True)


def fit(
    model: nn.Module,
    train_data: Dataset,
    cfg: TrainConfig,
    *,
    loss_fn: LossFn = classification_loss,
    collate: Callable | None = None,
    evaluate: Callable[[nn.Module], dict] | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    on_optimizer: Callable[[torch.optim.Optimizer], None] | None = None,
    after_step: Callable[[nn.Module], None] | None = None,
    progress: bool = True,
    desc: str = "train",
) -> list[dict]:
    """Train ``model`` on ``train_data`` as ``cfg`` says; return the per-epoch history.

    run_dir: where ``checkpoints/last.safetensors`` and ``metrics.jsonl`` go (None: keep nothing).
    resume: continue from ``run_dir``'s last checkpoint (a fresh start if there is none).
    on_optimizer: called once with the optimizer (INQ attaches its step hooks here).
    after_step: called after every optimizer step (e.g. BinaryConnect's weight clipping).
    Before the first epoch of a fresh run, the quantizers whose ranges are still unset (PACT α, LSQ steps, ...)
    are calibrated on the first ``cfg.calibrate_batches`` batches of epoch 0 (``lowbit.calibrate`` with
    ``only_uncalibrated=True``; ``loss_fn`` runs the forward); 0 turns it off.
    In a process group (torchrun, ``lowbit run --nproc``) it trains data-parallel: see ``distributed.py``.
    """
    device = distributed.resolve_device(cfg.device)
    place(model, device, cfg.channels_last)
    dd, writer = distributed.active(), distributed.is_writer()
    opt = make_optimizer(param_groups(model, cfg), cfg)  # one group per lr factor (train/param_groups.py)
    if on_optimizer is not None:
        on_optimizer(opt)
    keep = distributed.from_rank0(run_dir is not None)  # rank 0 decides (other ranks may pass a scratch dir)
    ckpt = Path(run_dir) / "checkpoints" / "last.safetensors" if keep and run_dir else None
    metrics = Path(run_dir) / "metrics.jsonl" if keep and run_dir and writer else None
    scaler = make_scaler(cfg.amp, device)
    history: list[dict] = []
    start = 0
    torch.manual_seed(cfg.seed)
    state = load_checkpoint(ckpt) if resume and writer and ckpt is not None and ckpt.exists() else None
    with distributed.lost_peer("the resume"):
        state = distributed.from_rank0(state)  # rank 0 read the checkpoint; every rank resumes from it
    if state is not None:
        tensors, meta = state
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        _load_optimizer(opt, tensors, meta["optimizer"])
        rank = distributed.rank()
        torch.set_rng_state(tensors.get(f"rng.torch.{rank}", tensors["rng.torch"]) if rank else tensors["rng.torch"])
        if scaler is not None and meta.get("scaler"):
            scaler.load_state_dict(meta["scaler"])
        start, history = meta["epoch"] + 1, meta["history"]
    if start == 0 and cfg.calibrate_batches > 0:
        calibrate_before_training(model, train_data, cfg, loss_fn, collate)
    with distributed.lost_peer("the start"):
        distributed.sync_module(model)  # rank 0's calibrated ranges, INQ masks, ... on every rank
        net = distributed.wrap(model)
    if metrics is not None and history:  # metrics.jsonl always agrees with the checkpoint it was resumed from
        atomic_write_text(metrics, "".join(json.dumps(h) + "\n" for h in history))
    elif metrics is not None:  # no epoch finished: no file (never an empty one)
        metrics.unlink(missing_ok=True)
    epochs = range(start, cfg.epochs)
    bar = progress_bar(epochs, enabled=progress, desc=desc, leave=False, initial=start, total=cfg.epochs)
    per_epoch = math.ceil(len(train_data) / cfg.batch_size)  # global batches per epoch (the last may be short)
    regularizers, post_step = step_terms(model)  # the quantizers' loss terms and weight constraints
    clock, unwritten = CheckpointClock(), []  # rows of epochs since the last checkpoint (written with the next one)

    def set_lr(epoch: int, step: int) -> float:
        f = lr_factor(cfg.schedule, epoch, cfg.epochs, cfg.milestones, cfg.gamma, cfg.cycle_stage, step, per_epoch)
        for g in opt.param_groups:
            g["lr"] = cfg.lr * f * g.get("lr_scale", 1.0)
        return cfg.lr * f

    for epoch in bar:
        lr = set_lr(epoch, 0)
        model.train()
        t0, total, count = time.perf_counter(), 0.0, 0
        with distributed.lost_peer(f"epoch {epoch}"):
            for step, (batch, weight) in enumerate(train_batches(train_data, cfg, epoch, device, collate)):
                if step > 0 and cfg.schedule in PER_STEP:
                    set_lr(epoch, step)
                with autocast(cfg.amp, device):
                    loss = loss_fn(net, batch)
                reg = regularizers()
                full = loss * weight if dd else loss  # this rank's share of the global batch's mean
                full = full if reg is None else full + reg
                if cfg.lipschitz > 0:
                    full = full + cfg.lipschitz * lipschitz(model)
                opt.zero_grad(set_to_none=True)
                (full if scaler is None else scaler.scale(full)).backward()
                if cfg.grad_clip > 0:
                    if scaler is not None:
                        scaler.unscale_(opt)
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                if scaler is None:
                    opt.step()
                else:
                    scaler.step(opt)
                    scaler.update()
                post_step()
                if after_step is not None:
                    after_step(model)
                share = weight / distributed.world_size()  # 1.0 in one process
                total, count = total + float(loss.detach()) * share, count + 1
            total = distributed.all_sum(total)  # the mean loss of every global batch, as one process logs it
        row = {"epoch": epoch, "lr": lr, "loss": total / max(1, count), "seconds": time.perf_counter() - t0}
        if evaluate is not None:
            model.eval()
            with torch.no_grad():
                row.update(evaluate(model))
        history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.4f}")
        with distributed.lost_peer(f"the checkpoint of epoch {epoch}"):
            rngs = distributed.gather_rng() if ckpt is not None else None  # every rank's (dropout): exact resume
        unwritten.append(row)
        if ckpt is not None and writer and clock.due(epoch == cfg.epochs - 1):  # rank 0 writes (atomically)
            save_train_state(ckpt, model, opt, epoch, history, rngs, scaler.state_dict() if scaler else None)
            atomic_append_lines(metrics, [json.dumps(r) for r in unwritten])
            unwritten.clear()
    with distributed.lost_peer("the end"):
        distributed.sync_module(model)  # buffers a rank updated in its last forward (BN statistics): rank 0's
    model.eval()
    return history
