"""PACT: parameterised clipping activation (Choi et al. 2018, arXiv 1805.06085), spec §3.

    y   = clip(x, 0, α)                                   (Eq. 1)
    y_q = round(y·(2^k - 1)/α)·α/(2^k - 1)                (Eq. 2, torch.round = half-even as the reference)
    ∂y_q/∂x = 1_{0 <= x < α},  ∂y_q/∂α = 1_{x >= α}      (Eq. 3, the paper's half-open intervals)
    L_total = L_task + λ_α·α²                              (``regularizer()``; the trainer adds it)
α is one learnable scalar, initialised to 10, λ_α = 2e-4 (reference code, spec §11.11). α is used as
max(α, 1e-3) so that it can never divide by zero or flip sign (spec §3 edge cases).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .base import Quantizer
from .registry import register

ALPHA_MIN = 1e-3


class _PactFn(torch.autograd.Function):
    """One fused-ish pass: the forward works in place on a single buffer, the backward on two masks.

    Same arithmetic as ``pact_reference`` (so the values are identical), about half the memory passes.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: torch.Tensor, bits: int) -> torch.Tensor:
        a = max(float(alpha), ALPHA_MIN)
        n = 2**bits - 1
        ctx.save_for_backward(x)
        ctx.a, ctx.alpha_shape = a, alpha.shape
        return x.clamp(0.0, a).mul_(n / a).round_().mul_(a / n)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (x,) = ctx.saved_tensors
        above = x >= ctx.a
        galpha = torch.where(above, g, 0.0).sum().reshape(ctx.alpha_shape)  # ∂y_q/∂α = 1_{x >= α}
        gx = g.masked_fill(above, 0.0)  # ∂y_q/∂x = 1_{0 <= x < α}
        if bool((x < 0).any()):
            gx.masked_fill_(x < 0, 0.0)
        return gx, galpha, None


def pact_reference(x: torch.Tensor, alpha: torch.Tensor, bits: int) -> torch.Tensor:
    """The straightforward autograd composition of Eqs. 1-3 (tests compare the fast path with it)."""
    a = max(float(alpha), ALPHA_MIN)
    n = 2**bits - 1
    y = x.clamp(0.0, a)
    q = torch.round(y * (n / a)) * (a / n)
    inside = ((x >= 0) & (x < a)).to(x.dtype)
    above = (x >= a).to(x.dtype)
    # value q; gradient 1_{0<=x<α} to x and 1_{x>=α} to α (the "+ α·above - (α·above).detach()" term)
    return (x * inside + alpha * above - (x * inside + alpha * above).detach()) + q


def pact_quantize(x: torch.Tensor, alpha: torch.Tensor, bits: int) -> torch.Tensor:
    """Fake-quantized PACT activation with the spec §3 gradients for x and α."""
    return _PactFn.apply(x, alpha, bits)


@register("pact")
class PACTQuantizer(Quantizer):
    """PACT activation quantizer with a learnable clipping level α (spec §3)."""

    kind = "act"
    reference = "Choi et al. 2018, PACT (arXiv 1805.06085); spec §3"

    def __init__(self, bits: int, alpha: float = 10.0, reg: float = 2e-4):
        super().__init__(bits)
        if not alpha > 0:
            raise ValueError(f"pact: alpha={alpha!r} is not accepted; expected a positive number")
        if reg < 0:
            raise ValueError(f"pact: reg={reg!r} is not accepted; expected a number >= 0")
        self.alpha_init, self.reg = float(alpha), float(reg)
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))

    def config(self) -> dict[str, Any]:
        return {"bits": self.bits, "alpha": self.alpha_init, "reg": self.reg}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits >= 32:
            return torch.minimum(torch.clamp_min(x, 0.0), self.alpha)
        return pact_quantize(x, self.alpha, self.bits)

    def regularizer(self) -> torch.Tensor:
        """λ_α·α², added to the task loss by the trainer (spec §3)."""
        return self.reg * self.alpha**2

    def levels(self, x: torch.Tensor) -> torch.Tensor:
        a = float(self.alpha.detach().clamp_min(ALPHA_MIN))
        n = 2**self.bits - 1
        return torch.arange(n + 1, dtype=torch.float64).mul(a / n).to(x.dtype)
