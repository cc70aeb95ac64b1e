"""Uniform quantization with clipping (Boo, Shin, Sung 2020), spec §2.

    Q(x) = Δ · floor(clip(x, α, β)/Δ + 0.5)          (ties half-up, spec §2.1: not torch.round)
    signed weights, n bits:   levels {-LΔ, …, 0, …, LΔ}, L = 2^(n-1) - 1, identity STE
    unsigned activations:     levels {0, Δ, …, (2^n - 1)Δ}, STE 1_{0 <= x <= β}
    1-bit weights (n=1 gives β=0): binary sgn(w)·mean|w| (spec §2.1 [R], §11.9)

The step Δ is the L2-optimal one (spec §2.2, alternating least squares with multi-start), computed from the
first tensor the quantizer sees and then kept fixed (Hwang & Sung 2014), unless ``step`` is given or
``update="always"`` re-estimates it on every call (the adaptive variant). For activations the first tensor
is the calibration batch (spec §2.3); ``lowbit.calibrate`` feeds several batches at once.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .base import Quantizer
from .registry import register
from .rounding import round_half_up, sgn, ste, ste_clipped

UPDATES = ("once", "always")


def l2_opt_step(
    x: torch.Tensor, bits: int, signed: bool = True, n_starts: int = 20, iters: int = 100, tol: float = 1e-9
) -> float:
    """Δ* = argmin_Δ Σ (x - Q_Δ(x))², spec §2.2 (signed) and §2.3 (unsigned, on activations).

    Alternating minimisation never increases the error; the multi-start guards against local minima.
    Returns 1.0 for an all-zero tensor (any Δ gives Q = 0, spec §2.4).
    """
    w = x.detach().reshape(-1).to(torch.float64)
    lo, hi = (-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    a = float(w.abs().max()) if signed else float(w.clamp_min(0).max()) if w.numel() else 0.0
    if a == 0.0:
        return 1.0
    if hi == 0:  # signed 1-bit: the binary special case
        return float(w.abs().mean())
    best_err, best_step = math.inf, a / hi
    for c in torch.linspace(0.05, 1.0, n_starts).tolist():
        step = c * a / hi
        for _ in range(iters):
            z = torch.clamp(torch.floor(w / step + 0.5), lo, hi)
            zz = float((z * z).sum())
            if zz == 0.0:
                step /= 2
                continue
            new = float((w * z).sum()) / zz
            if new <= 0.0:
                break
            converged = abs(new - step) <= tol * step
            step = new
            if converged:
                break
        err = float(((w - step * torch.clamp(torch.floor(w / step + 0.5), lo, hi)) ** 2).sum())
        if err < best_err:
            best_err, best_step = err, step
    return best_step


def uniform_quantize(x: torch.Tensor, step: torch.Tensor | float, bits: int, signed: bool) -> torch.Tensor:
    """The forward value only (no STE): Δ·clamp(floor(x/Δ + 0.5), lo, hi)."""
    if signed and bits == 1:
        return step * sgn(x)
    lo, hi = (-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    return step * torch.clamp(round_half_up(x / step), lo, hi)


@register("uniform")
class UniformQuantizer(Quantizer):
    """Boo et al. uniform quantizer with the L2-optimal step (spec §2).

    Args:
        bits: 1..32 (32 = no quantization). Signed 1-bit is the binary special case.
        signed: True for weights (symmetric, 2^n - 1 levels); False for post-ReLU activations (2^n levels).
        step: a fixed Δ; None computes the L2-optimal Δ from the data.
        update: "once" (default; Δ from the first tensor seen, then frozen) or "always" (every call).
    """

    kind = "both"
    reference = "Boo, Shin, Sung 2020 (arXiv 2006.00530); Hwang & Sung 2014; spec §2"

    def __init__(self, bits: int, signed: bool = True, step: float | None = None, update: str = "once"):
        super().__init__(bits)
        if update not in UPDATES:
            raise ValueError(f"uniform: update={update!r} is not accepted; expected one of {UPDATES}")
        if step is not None and not (isinstance(step, (int, float)) and step > 0):
            raise ValueError(f"uniform: step={step!r} is not accepted; expected a positive number or None")
        self.signed, self.update, self.fixed_step = bool(signed), update, step
        self.register_buffer("step", torch.tensor(float(step)) if step is not None else torch.empty(0))

    def config(self) -> dict[str, Any]:
        return {"bits": self.bits, "signed": self.signed, "step": self.fixed_step, "update": self.update}

    def max_levels(self) -> int:
        if self.signed:
            return 2 if self.bits == 1 else 2**self.bits - 1
        return 2**self.bits

    def reset(self) -> None:
        if self.fixed_step is None:
            self.step = torch.empty(0, device=self.step.device)

    def calibrate(self, x: torch.Tensor) -> None:
        """Set Δ from ``x`` (weights, or activations gathered over calibration batches) and keep it."""
        self.step = torch.tensor(l2_opt_step(x, self.bits, self.signed), device=x.device)

    def current_step(self, x: torch.Tensor) -> torch.Tensor:
        if self.fixed_step is None and (self.step.numel() == 0 or self.update == "always"):
            self.calibrate(x)
        return self.step.to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits >= 32:
            return x
        step = self.current_step(x)
        q = uniform_quantize(x.detach(), step, self.bits, self.signed)
        if self.signed:
            return ste(x, q)
        return ste_clipped(x, q, 0.0, float(step) * (2**self.bits - 1))

    def levels(self, x: torch.Tensor) -> torch.Tensor:
        step = float(self.current_step(x))
        if self.signed and self.bits == 1:
            return torch.tensor([-step, step])
        lo, hi = (-(2 ** (self.bits - 1) - 1), 2 ** (self.bits - 1) - 1) if self.signed else (0, 2**self.bits - 1)
        return torch.arange(lo, hi + 1, dtype=torch.float64).mul(step).to(x.dtype)
