"""The training batches of one epoch, where and how ``fit`` wants them: this rank's share, on the device.

The order is always ``epoch_order`` (fixed by (seed, epoch)), whatever else is set, so a resumed run, a run on
more processes and a run with loader workers see the same samples in the same steps:

- one process, ``num_workers = 0``, no pinning: the batches ``loop.epoch_batches`` yields (a TensorDataset is
  indexed in one go);
- several processes: each takes its share of every global batch (``distributed.shard``) with its loss weight;
- ``num_workers > 0`` or ``pin_memory``: a ``torch.utils.data.DataLoader`` over the same index lists
  (``batch_sampler``), so collation runs in worker processes and batches land in pinned memory for an
  asynchronous copy to the GPU.

Each batch is moved to the device (``non_blocking`` after pinning); with ``channels_last`` its 4-d tensors are
made channels-last, the layout the model was put in (``loop.place``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset, default_collate

from . import distributed
from .config import TrainConfig


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> torch.Tensor:
    """The sample order of one epoch, fixed by (seed, epoch)."""
    if not shuffle:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def to_device(batch: Any, device: str, channels_last: bool = False) -> Any:
    if torch.is_tensor(batch):
        if channels_last and batch.dim() == 4 and batch.is_floating_point():
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch if device == "cpu" else batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device, channels_last) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device, channels_last) for k, v in batch.items()}
    return batch


def _index_batches(n: int, cfg: TrainConfig, epoch: int) -> tuple[list[torch.Tensor], list[float]]:
    """This rank's sample indices of every step of ``epoch`` (index tensors: a TensorDataset is indexed with them
    directly; a Python list per step cost a quarter of a small model's step), with their loss weights."""
    order = epoch_order(n, cfg.seed, epoch)
    index, weights = [], []
    for i in range(0, n, cfg.batch_size):
        idx, w = distributed.shard(order[i : i + cfg.batch_size])
        index.append(idx)
        weights.append(w)
    return index, weights


def train_batches(
    data: Dataset, cfg: TrainConfig, epoch: int, device: str, collate: Callable | None = None
) -> Iterator[tuple[Any, float]]:
    """(batch on ``device``, loss weight) for every step of ``epoch`` (module docstring)."""
    index, weights = _index_batches(len(data), cfg, epoch)
    pin = cfg.pin_memory and device.startswith("cuda")  # pinning serves host-to-GPU copies only
    if cfg.num_workers > 0 or pin:
        loader = DataLoader(
            data,
            batch_sampler=[ix.tolist() for ix in index],
            collate_fn=collate or default_collate,
            num_workers=cfg.num_workers,
            pin_memory=pin,
            persistent_workers=False,
        )
        batches: Any = iter(loader)
    elif isinstance(data, TensorDataset) and collate is None:
        batches = (tuple(t[ix] for t in data.tensors) for ix in index)
    elif hasattr(data, "__getitems__"):  # a set that reads a batch at once (lowbit.data.imagenet: on threads)
        batches = ((collate or default_collate)(data.__getitems__(ix.tolist())) for ix in index)
    else:
        batches = ((collate or default_collate)([data[j] for j in ix.tolist()]) for ix in index)
    for batch, w in zip(batches, weights):
        yield to_device(batch, device, cfg.channels_last), w
