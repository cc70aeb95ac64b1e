"""Shift-based batch normalization (Courbariaux/Hubara et al. 2016, BinaryNet Algorithm 3).

Every multiplication of batch norm becomes a multiplication by a power of two (a bit shift), with
    AP2(x) = sgn(x)·2^round(log2|x|)      (the power-of-two approximation; AP2(0) = 0)
    μ = mean(x);  C = x - μ;  σ² = mean(C ⋄ AP2(C));  x̂ = C ⋄ AP2(1/sqrt(σ² + ε));  y = AP2(γ) ⋄ x̂ + β
(⋄ = multiplication by a power of two). Means are over the batch (and the spatial positions for 2-D).
AP2 is used with a straight-through gradient (its value forward, identity backward), which is how a
float simulation of the shift network trains. round is half-up in the log domain (floor(log2|x| + 0.5)).
Eval mode uses the running mean and running σ², updated with ``momentum`` exactly as nn.BatchNorm does: the
batch normalises with the biased σ², the running estimate stores the unbiased one, σ²·n/(n - 1) with n the
number of values per channel (batch × spatial positions). So on data where AP2(C) = C (C on powers of two) the
running_var equals nn.BatchNorm's. The inference path is shifts only: x̂ = (x - μ_run) ⋄ AP2(1/sqrt(σ²_run + ε)).
"""

from __future__ import annotations

import torch
from torch import nn


def ap2(x: torch.Tensor) -> torch.Tensor:
    """sgn(x)·2^round(log2|x|) with a straight-through gradient; 0 stays 0."""
    a = x.detach().abs()
    safe = torch.where(a > 0, a, torch.ones_like(a))
    p = torch.sign(x.detach()) * torch.exp2(torch.floor(torch.log2(safe) + 0.5))
    return x + (p - x).detach()


class _ShiftBatchNorm(nn.modules.batchnorm._BatchNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        dims = [0] + list(range(2, x.dim()))
        shape = (1, -1) + (1,) * (x.dim() - 2)
        use_batch = self.training or not self.track_running_stats
        if use_batch:
            n = x.numel() // x.shape[1] if x.shape[1] else 0
            if self.training and n <= 1:
                raise ValueError(
                    f"{type(self).__name__}: expected more than 1 value per channel when training, "
                    f"got input of shape {tuple(x.shape)}"
                )
            mu = x.mean(dim=dims)
            c = x - mu.reshape(shape)
            var = (c * ap2(c)).mean(dim=dims)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked += 1
                    m = self.momentum if self.momentum is not None else self._cumulative_factor()
                    self.running_mean.mul_(1 - m).add_(m * mu.detach())
                    self.running_var.mul_(1 - m).add_(m * var.detach() * (n / (n - 1)))  # unbiased, as nn.BatchNorm
        else:
            mu, var = self.running_mean, self.running_var
            c = x - mu.reshape(shape)
        xhat = c * ap2(torch.rsqrt(var + self.eps)).reshape(shape)
        if not self.affine:
            return xhat
        return xhat * ap2(self.weight).reshape(shape) + self.bias.reshape(shape)

    def _cumulative_factor(self) -> torch.Tensor:
        """momentum=None: 1/num_batches_tracked (a cumulative average), as a 0-dim tensor, not a Python float
        (``float(num_batches_tracked)`` would be a host sync in ``forward``). Computed in float64 as the Python
        float was (``1 - m`` rounded once), except on MPS, which has no float64."""
        dt = torch.float32 if self.num_batches_tracked.device.type == "mps" else torch.float64
        return 1.0 / self.num_batches_tracked.to(dt)


class ShiftBatchNorm1d(_ShiftBatchNorm):
    """Shift-based batch norm for (N, C) or (N, C, L) inputs."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() not in (2, 3):
            raise ValueError(f"ShiftBatchNorm1d expects a 2-D or 3-D input, got shape {tuple(x.shape)}")


class ShiftBatchNorm2d(_ShiftBatchNorm):
    """Shift-based batch norm for (N, C, H, W) inputs."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f"ShiftBatchNorm2d expects a 4-D input, got shape {tuple(x.shape)}")
