"""Data-parallel training across processes (``torch.distributed``): what ``fit`` does when a process group is up.

``fit`` stays one function: with no process group (or one process) none of this runs. Under ``torchrun`` or
``lowbit run --nproc N`` every process runs the same ``fit`` and this module makes them one training:

- **one global batch**: ``TrainConfig.batch_size`` is the global batch. Every rank draws the same batch order
  from (seed, epoch) (``loop.epoch_indices``) and takes every ``world``-th sample of each batch (``shard``), so
  the order, and with it an exact resume, does not depend on the number of processes.
- **the gradient of the global mean**: DDP averages the ranks' gradients; rank r's mean loss is scaled by
  ``world * n_r / n`` so the average equals the gradient of the mean over the whole batch even when the last
  batch does not split evenly. A rank left with no sample of a short last batch runs one sample with weight 0
  (DDP needs every rank in every step). Result: the same weights as one process with the same batch, up to
  float summation order (tests/train/test_train_distributed.py).
- **one quantizer state**: calibration runs on the same global batches everywhere, and before training rank 0's
  parameters and buffers are broadcast (``sync_module``): calibrated ranges, PACT α, LSQ steps, L2-optimal
  steps, INQ's codebooks, frozen masks and stage (all module state) are rank 0's on every rank. DDP's forward
  broadcasts the buffers again at every step (``broadcast_buffers``), so running statistics stay rank 0's.
  BatchNorm normalises over each rank's share of the batch (standard DDP; ``SyncBatchNorm`` is CUDA-only).
- **rank 0 writes**: checkpoints and metrics.jsonl are written by rank 0 only (atomically, as always); a resume
  reads them on rank 0 and broadcasts the state (``from_rank0``), so other nodes need no shared folder. Each
  rank's RNG state (dropout) is gathered into the checkpoint so a resume is exact on every rank.
- **a lost process is one line**: when another rank dies, gloo/NCCL raise a long RuntimeError from inside the
  step; ``lost_peer`` turns it into ``PeerLost`` ("... rerun with --resume"). ``LOWBIT_DIST_TIMEOUT`` (seconds,
  default 1800) bounds how long a rank waits for a peer that hangs instead of dying.
"""

from __future__ import annotations

import datetime
import os
from contextlib import contextmanager
from itertools import chain
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

DEFAULT_TIMEOUT_S = 1800


class PeerLost(RuntimeError):
    """Another process of a distributed run stopped (killed, crashed): this one cannot go on."""


def active() -> bool:
    """A process group with more than one process is up."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_writer() -> bool:
    """Whether this process writes files (checkpoints, metrics, models): rank 0, or the only process."""
    return rank() == 0


def env_world_size() -> int:
    """WORLD_SIZE as torchrun / ``lowbit run --nproc`` set it (1 when unset)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ValueError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not accepted; expected a whole number") from None


def timeout_s() -> float:
    raw = os.environ.get("LOWBIT_DIST_TIMEOUT", str(DEFAULT_TIMEOUT_S))
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"LOWBIT_DIST_TIMEOUT={raw!r} is not accepted; expected a number of seconds > 0")
    return value


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when CUDA is available, else ``"cpu"``; in a process group, ``"cuda"`` is this
    process's own GPU (``cuda:LOCAL_RANK``, as torchrun numbers them)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and active():
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return device


def init_from_env(device: str = "auto") -> bool:
    """Join the process group that torchrun / ``lowbit run --nproc`` describe in the environment (MASTER_ADDR,
    MASTER_PORT, RANK, WORLD_SIZE): NCCL when this process trains on CUDA, gloo otherwise. Returns whether
    a group of more than one process is up; with WORLD_SIZE unset or 1 nothing happens."""
    if env_world_size() <= 1 or dist.is_initialized():
        return active()
    cuda = device in ("auto", "cuda") and torch.cuda.is_available() or device.startswith("cuda:")
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=timeout_s()))
    return True


def shard(indices: torch.Tensor) -> tuple[torch.Tensor, float]:
    """This rank's samples of one global batch and the factor on its mean loss (module docstring)."""
    r, w, n = rank(), world_size(), len(indices)
    local = indices[r::w]
    if len(local) == 0:  # a short last batch: run one sample that contributes nothing
        return indices[:1], 0.0
    return local, w * len(local) / n


def from_rank0(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (pickled; tensors included)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sync_module(model: nn.Module) -> None:
    """Make every parameter and buffer rank 0's (the quantizer state decided once, on rank 0)."""
    if not active():
        return
    with torch.no_grad():
        for t in chain(model.parameters(), model.buffers()):
            dist.broadcast(t.data, 0)


def all_sum(value: float) -> float:
    """The sum of ``value`` over the ranks (one small all-reduce)."""
    if not active():
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t[0])


def gather_rng() -> list[torch.Tensor]:
    """Every rank's CPU RNG state, in rank order (collective: every rank calls it)."""
    state = torch.get_rng_state()
    if not active():
        return [state]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, state)
    return out


def wrap(model: nn.Module) -> nn.Module:
    """``model`` under DistributedDataParallel, or ``model`` itself without a process group.

    Without ``find_unused_parameters`` (which walks the graph every step): every quantized twin gives each of
    its parameters a gradient in every step (tests/nn/test_nn_ddp.py); a model of one's own with a parameter
    its forward does not use stops at the second step with DDP's "Expected to have finished reduction".
    """
    if not active():
        return model
    device = next(iter(model.parameters()), torch.empty(0)).device
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def _peers_alive() -> bool:
    """A barrier: fails at once when a peer's connection is gone (or after the timeout when it hangs)."""
    try:
        dist.barrier()
        return True
    except RuntimeError:
        return False


@contextmanager
def lost_peer(what: str = "training"):
    """Turn a collective's failure caused by another rank's death into one ``PeerLost`` line.

    An error every rank raised alike (a model bug) passes the barrier probe and is re-raised as it is.
    """
    if not active():
        yield
        return
    try:
        yield
    except PeerLost:
        raise
    except RuntimeError as e:
        if _peers_alive():
            raise
        raise PeerLost(
            f"rank {rank()} of {world_size()}: another process of this run stopped during {what}; "
            "rerun with --resume to continue from the last checkpoint"
        ) from e
