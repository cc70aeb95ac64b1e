"""Ensembles of parallel networks: average the members' class probabilities (seed §2.2, §3).

    p_ens(c | x) = (1 / N) * sum_{k=1..N} p_k(c | x)

Members may be float or quantized (any ``nn.Module`` whose output ``fn`` turns into probabilities); for CTC
models the same average is taken over per-frame posteriors (``average_probs`` on (T, N, classes) tensors).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

MIN_MEMBERS, MAX_MEMBERS = 1, 64


def average_probs(probs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Element-wise mean of the members' probability tensors (all of one shape)."""
    probs = list(probs)
    if not probs:
        raise ValueError("average_probs: no member probabilities given; expected at least 1")
    shape = probs[0].shape
    for i, p in enumerate(probs):
        if p.shape != shape:
            raise ValueError(f"average_probs: member {i} has shape {tuple(p.shape)}, member 0 has {tuple(shape)}")
    return torch.stack([p.float() for p in probs]).mean(dim=0)


def softmax_probs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Default member output: softmax over the last dimension of the model's logits."""
    return torch.softmax(model(x), dim=-1)


def ensemble_predict(
    models: Sequence[nn.Module],
    x: torch.Tensor,
    fn: Callable[[nn.Module, torch.Tensor], torch.Tensor] = softmax_probs,
    batch_size: int = 0,
) -> torch.Tensor:
    """Averaged probabilities of ``models`` on ``x`` (eval mode, no grad); ``batch_size`` > 0 splits x."""
    models = list(models)
    if not MIN_MEMBERS <= len(models) <= MAX_MEMBERS:
        raise ValueError(
            f"ensemble_predict: {len(models)} members is not accepted; expected {MIN_MEMBERS}..{MAX_MEMBERS}"
        )
    outs = []
    with torch.no_grad():
        for m in models:
            was = m.training
            m.eval()
            if batch_size > 0:
                outs.append(torch.cat([fn(m, x[i : i + batch_size]) for i in range(0, len(x), batch_size)]))
            else:
                outs.append(fn(m, x))
            m.train(was)
    return average_probs(outs)


def ensemble_curve(
    member_probs: Sequence[torch.Tensor], labels: torch.Tensor, sizes: Sequence[int]
) -> dict[int, float]:
    """Top-1 accuracy (%) of the ensemble of the first N members, for each N in ``sizes``."""
    from ..metrics.classification import top1_accuracy

    out = {}
    for n in sizes:
        if not 1 <= n <= len(member_probs):
            raise ValueError(f"ensemble size N={n} is not accepted; expected 1..{len(member_probs)} members available")
        out[int(n)] = top1_accuracy(average_probs(member_probs[:n]), labels)
    return out
