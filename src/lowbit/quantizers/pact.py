"""PACT: parameterised clipping activation (Choi et al. 2018, arXiv 1805.06085), spec §3.

    y   = clip(x, 0, α)                                   (Eq. 1)
    y_q = round(y·(2^k - 1)/α)·α/(2^k - 1)                (Eq. 2, torch.round = half-even as the reference)
    ∂y_q/∂x = 1_{0 <= x < α},  ∂y_q/∂α = 1_{x >= α}      (Eq. 3, the paper's half-open intervals)
    L_total = L_task + λ_α·α²                              (``regularizer()``; the trainer adds it)
α is one learnable scalar, λ_α = 2e-4 (reference code, spec §11.11). α is used as max(α, 1e-3) so that it can
never divide by zero or flip sign (spec §3 edge cases).

Initial α (a deviation from the reference code's fixed 10, issue 9 item 9): ``alpha=None`` (the default) sets α
from data through ``calibrate(x)`` (``lowbit.calibrate``; ``fit`` does it before training) as the ``percentile``-th
percentile (nearest rank: the ceil(p/100·n)-th smallest value) of the layer's inputs, default 99.99. A high
percentile rather than the max: one outlier in 10^4 no longer sets the grid, and the clipped tail is what α's
gradient (1_{x >= α}) then learns from; Brevitas' default activation scale starts the same way (99.999th
percentile of runtime statistics), and on the issue 9 recipe α from the 99.99th percentile took W2A2 from 80.97 %
(α = 10) to 86.29 %. A quantizer never calibrated uses the reference code's α = 10; ``alpha=...`` fixes the
initial value (calibration then leaves it alone).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .base import ActivationGrid, Quantizer, opmath
from .registry import register

ALPHA_MIN = 1e-3
ALPHA_DEFAULT = 10.0  # the reference code's initial α (spec §3), used until calibration


def percentile_nearest_rank(x: torch.Tensor, p: float) -> float:
    """The ceil(p/100·n)-th smallest value of ``x`` (nearest-rank percentile; p = 100 is the max)."""
    v = x.reshape(-1).float()
    n = v.numel()
    rank = min(n, max(1, math.ceil(round(p * n / 100.0, 6))))  # round: 99.99·10^4/100 is not exactly 9999
    if n - rank < 4096:  # the top few values: topk is much cheaper than a selection over all n
        return float(torch.topk(v, n - rank + 1).values[-1])
    return float(torch.kthvalue(v, rank).values)


def pact_scalars(alpha: torch.Tensor, n: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(a, n/a, a/n) with a = max(α, 1e-3), as 0-dim tensors (no host sync), equal to the Python-float values.

    The reference computes a = max(float(α), 1e-3) and n/a, a/n in double precision; torch then rounds them to
    the tensor's dtype. Here they are computed in the tensor's arithmetic dtype: α is a float32 value, and a
    correctly rounded float32 quotient equals the double quotient rounded to float32 (double rounding is
    innocuous for division when 53 >= 2·24 + 2), so the values are identical. When α < 1e-3 the constants are
    the Python-double ones (n/1e-3 is not n/float32(1e-3)).
    """
    a = alpha.detach().to(opmath(dtype))
    low = a < ALPHA_MIN
    a = a.clamp_min(ALPHA_MIN)
    n_over_a = torch.full_like(a, n).div_(a)  # not ``n / a``: torch computes a scalar over a tensor as n·(1/a)
    return a, torch.where(low, n / ALPHA_MIN, n_over_a), torch.where(low, ALPHA_MIN / n, a / n)


class _PactFn(torch.autograd.Function):
    """One fused-ish pass: the forward works in place on a single buffer, the backward on two masks.

    Same arithmetic as ``pact_reference`` (so the values are identical), about half the memory passes; α stays
    a tensor throughout (no ``float(α)``: a host sync that breaks ``torch.compile`` graphs and ``torch.export``).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: torch.Tensor, bits: int) -> torch.Tensor:
        n = 2**bits - 1
        a, up, down = pact_scalars(alpha, n, x.dtype)
        a = a.to(x.dtype)  # what torch does with a Python-float bound: round it to x's dtype
        ctx.save_for_backward(x, a)
        ctx.alpha_shape = alpha.shape
        return x.clamp_min(0.0).clamp_max_(a).mul_(up).round_().mul_(down)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        x, a = ctx.saved_tensors
        above = x >= a
        galpha = torch.where(above, g, 0.0).sum().reshape(ctx.alpha_shape)  # ∂y_q/∂α = 1_{x >= α}
        gx = g.masked_fill(above | (x < 0), 0.0)  # ∂y_q/∂x = 1_{0 <= x < α}
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

    def __init__(self, bits: int, alpha: float | None = None, reg: float = 2e-4, percentile: float = 99.99):
        super().__init__(bits)
        if alpha is not None and not (isinstance(alpha, (int, float)) and alpha > 0):
            raise ValueError(f"pact: alpha={alpha!r} is not accepted; expected a positive number or None (from data)")
        if not (isinstance(reg, (int, float)) and reg >= 0):
            raise ValueError(f"pact: reg={reg!r} is not accepted; expected a number >= 0")
        if not (isinstance(percentile, (int, float)) and 0 < percentile <= 100):
            raise ValueError(f"pact: percentile={percentile!r} is not accepted; expected a number in (0, 100]")
        self.alpha_init = None if alpha is None else float(alpha)
        self.reg, self.percentile = float(reg), float(percentile)
        self.alpha = nn.Parameter(torch.tensor(ALPHA_DEFAULT if alpha is None else float(alpha)))
        self._calibrated = alpha is not None

    def config(self) -> dict[str, Any]:
        return {"bits": self.bits, "alpha": self.alpha_init, "reg": self.reg, "percentile": self.percentile}

    @property
    def signed_input(self) -> bool:
        return False

    def needs_calibration(self) -> bool:
        return not self._calibrated

    @torch.no_grad()
    def calibrate(self, x: torch.Tensor) -> None:
        """α = the ``percentile``-th percentile (nearest rank) of ``x``; kept when that is not positive.

        A fixed ``alpha`` given to the constructor is never overwritten.
        """
        if self.alpha_init is not None or x.numel() == 0:
            return
        a = percentile_nearest_rank(x.detach(), self.percentile)
        if a > 0 and math.isfinite(a):
            self.alpha.fill_(max(a, ALPHA_MIN))
        self._calibrated = True

    def reset(self) -> None:
        if self.alpha_init is None:
            self._calibrated = False

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if prefix + "alpha" in state_dict:
            self._calibrated = True  # a loaded α is a trained (or calibrated) one

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits >= 32:
            return torch.minimum(torch.clamp_min(x, 0.0), self.alpha)
        return pact_quantize(x, self.alpha, self.bits)

    def regularizer(self) -> torch.Tensor:
        """λ_α·α², added to the task loss by the trainer (spec §3)."""
        return self.reg * self.alpha**2

    def export_activation(self) -> ActivationGrid | None:
        """PACT's output grid: Δ = max(α, 1e-3)/(2^k - 1), codes 0..2^k - 1, torch.round ties (export hook)."""
        if self.bits >= 32:
            return None
        n = 2**self.bits - 1
        return ActivationGrid(max(float(self.alpha.detach()), ALPHA_MIN) / n, 0, 0, n, "half_even")

    def levels(self, x: torch.Tensor) -> torch.Tensor:
        a = float(self.alpha.detach().clamp_min(ALPHA_MIN))
        n = 2**self.bits - 1
        return torch.arange(n + 1, dtype=torch.float64).mul(a / n).to(x.dtype)
