"""What ``lowbit.calibrate`` checks around the quantizers' own ``calibrate``: the statistics it feeds them are
those training will see, and a degenerate tensor is named instead of silently giving a meaningless range.

Untrained BatchNorm. ``calibrate`` runs the model in eval mode (no dropout, no running-statistics update). A
BatchNorm whose running statistics are still their initial values (mean 0, variance 1: it has never seen a batch,
as in any randomly initialised torchvision/timm model) does not normalise in eval mode; a deep network's eval
activations then shrink (or grow) layer after layer, by 1e-10 after a dozen blocks of mobilenet_v3_small, while
training (batch statistics) keeps them O(1). Steps calibrated on them are 1e-10 of the training activations:
every activation is clipped to about zero, the BatchNorm after each such layer amplifies the gradient by
1/sqrt(eps), and training is NaN within two steps. Such a BatchNorm is therefore run with its batch statistics
while calibrating (what the first training step will do; a call with one value per channel, a batch of one
after global pooling, keeps the running ones, as training mode would refuse it), and its running buffers are
restored afterwards, so calibration still leaves the model's state unchanged. A BatchNorm that has seen data (a
pretrained or trained model) stays in eval mode.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def untrained_batch_norms(model: nn.Module) -> list[_BatchNorm]:
    """BatchNorm layers whose running statistics are still exactly their initial mean 0 / variance 1."""
    out = []
    for m in model.modules():
        if isinstance(m, _BatchNorm) and m.running_mean is not None and m.running_var is not None:
            if not bool(m.running_mean.any()) and bool((m.running_var == 1).all()):
                out.append(m)
    return out


@contextlib.contextmanager
def batch_statistics_for_untrained_norms(model: nn.Module) -> Iterator[list[_BatchNorm]]:
    """Within the block, untrained BatchNorms (above) normalise with the batch statistics; their buffers
    (running mean/var, batch count) are put back on exit. Call it after ``model.eval()``."""
    norms = untrained_batch_norms(model)
    saved = [{k: b.detach().clone() for k, b in m.named_buffers(recurse=False) if b is not None} for m in norms]
    modes = [m.training for m in norms]
    hooks = [m.register_forward_pre_hook(_batch_statistics_when_possible) for m in norms]
    try:
        yield norms
    finally:
        for h in hooks:
            h.remove()
        with torch.no_grad():
            for m, bufs, mode in zip(norms, saved, modes):
                for k, v in bufs.items():
                    getattr(m, k).copy_(v)
                m.training = mode


def _batch_statistics_when_possible(m: _BatchNorm, args: tuple) -> None:
    """Batch statistics for this call, unless it has one value per channel (a batch of one after pooling: training
    mode would raise; the placeholder statistics are all there is). Sets this module's flag only: a BatchNorm with
    children (timm's BatchNormAct2d: its activation and dropout) keeps them in eval mode."""
    x = args[0] if args else None
    per_channel = x.numel() // x.shape[1] if isinstance(x, torch.Tensor) and x.dim() > 1 and x.shape[1] else 0
    m.training = per_channel > 1


def degenerate(x: torch.Tensor) -> str | None:
    """Why ``x`` gives a quantizer no range to calibrate (empty, all zero, constant), or None when it has one."""
    if x.numel() == 0:
        return "no values"
    lo, hi = float(x.min()), float(x.max())
    if lo == hi == 0.0:
        return "all zero"
    if lo == hi:
        return f"constant {lo:.4g}"
    return None
