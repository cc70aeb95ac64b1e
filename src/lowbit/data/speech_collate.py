"""Collate variable-length speech utterances into one padded batch for CTC.

Each item is ``(features (T_i, D), targets (L_i,) long)``. The batch is

    x        (B, T_max, D)  zero-padded features
    x_lens   (B,)           true frame counts T_i
    y        (sum L_i,)     all targets concatenated (the 1-D form ``nn.CTCLoss`` accepts)
    y_lens   (B,)           target lengths L_i
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def speech_collate(items: Sequence[tuple[torch.Tensor, torch.Tensor]]):
    """Pad features, concatenate targets; returns (x, x_lens, y, y_lens)."""
    if not items:
        raise ValueError("speech_collate: empty batch")
    dims = {int(f.shape[1]) for f, _ in items}
    if len(dims) != 1:
        raise ValueError(f"speech_collate: items have different feature dimensions {sorted(dims)}")
    x_lens = torch.tensor([f.shape[0] for f, _ in items], dtype=torch.long)
    y_lens = torch.tensor([len(t) for _, t in items], dtype=torch.long)
    x = torch.zeros(len(items), int(x_lens.max()), dims.pop())
    for i, (f, _) in enumerate(items):
        x[i, : f.shape[0]] = f
    y = (
        torch.cat([torch.as_tensor(t, dtype=torch.long) for _, t in items])
        if int(y_lens.sum())
        else torch.zeros(0, dtype=torch.long)
    )
    return x, x_lens, y, y_lens
