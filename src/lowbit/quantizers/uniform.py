"""Uniform quantization with clipping (Boo, Shin, Sung 2020), spec §2.

    Q(x) = Δ · floor(clip(x, α, β)/Δ + 0.5)          (ties half-up, spec §2.1: not torch.round)
    signed weights, n bits:   levels {-LΔ, …, 0, …, LΔ}, L = 2^(n-1) - 1, identity STE
    unsigned activations:     levels {0, Δ, …, (2^n - 1)Δ}, STE 1_{0 <= x <= β}
    1-bit weights (n=1 gives β=0): binary sgn(w)·mean|w| (spec §2.1 [R], §11.9)

The step Δ is the L2-optimal one (spec §2.2, alternating least squares with multi-start; the solver, vectorised
over sorted values and starts, is ``l2_step.l2_opt_step``), computed from the
first tensor the quantizer sees and then kept fixed (Hwang & Sung 2014), unless ``step`` is given or
``update="always"`` re-estimates it on every call (the adaptive variant). For activations the first tensor
is the calibration batch (spec §2.3); ``lowbit.calibrate`` feeds several batches at once.

Options beyond spec §2 (the default path above is unchanged):
    granularity="per_channel": one Δ per output channel (dim 0 of a (C_out, ...) weight, spec §0), step buffer (C_out,)
    symmetric=False: asymmetric min-max quantization with a zero point z (``signed`` is then irrelevant):
        Δ = (max(x, 0) - min(x, 0))/(2^n - 1),  z = clamp(floor(-min/Δ + 0.5), 0, 2^n - 1)
        Q(x) = Δ·(clamp(floor(x/Δ + 0.5) + z, 0, 2^n - 1) - z),  STE 1_{-zΔ <= x <= (2^n - 1 - z)Δ}
    (min-max, not L2-optimal: the spec's L2 solver is for the symmetric grid; all-zero range -> Δ = 1, z = 0.)
"""

from __future__ import annotations

from typing import Any

import torch

from .base import ActivationGrid, ExportedCodes, Quantizer, opmath, run_eager
from .l2_step import l2_opt_step
from .registry import register
from .rounding import round_half_up, sgn

UPDATES = ("once", "always")
GRANULARITIES = ("per_tensor", "per_channel")


def uniform_quantize(x: torch.Tensor, step: torch.Tensor | float, bits: int, signed: bool) -> torch.Tensor:
    """The forward value only (no STE): Δ·clamp(floor(x/Δ + 0.5), lo, hi)."""
    if signed and bits == 1:
        return step * sgn(x)
    lo, hi = (-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    return step * torch.clamp(round_half_up(x / step), lo, hi)


def asym_params(x: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(Δ, z) of the asymmetric min-max grid for the rows of ``x`` ((groups, n) -> two (groups,) tensors)."""
    n = 2**bits - 1
    lo = x.amin(dim=1).clamp(max=0.0)
    hi = x.amax(dim=1).clamp(min=0.0)
    step = (hi - lo) / n
    step = torch.where(step > 0, step, torch.ones_like(step))
    z = torch.clamp(round_half_up(-lo / step), 0, n)
    return step, z


def asym_quantize(x: torch.Tensor, step: torch.Tensor, z: torch.Tensor, bits: int) -> torch.Tensor:
    """Δ·(clamp(floor(x/Δ + 0.5) + z, 0, 2^n - 1) - z); step/z broadcast against x."""
    return step * (torch.clamp(round_half_up(x / step) + z, 0, 2**bits - 1) - z)


class _UnsignedActFn(torch.autograd.Function):
    """Per-tensor unsigned activation quantizer in one buffer: the forward runs the same operations as
    ``uniform_quantize`` (so the values are identical) in place; the backward is 1_{0 <= x <= β}·g.

    The hot path of activation quantization: about half the memory passes of the autograd composition.
    ``step`` is a 0-dim tensor of x's dtype (never a Python float: reading it would be a host sync).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, step: torch.Tensor, hi: int) -> torch.Tensor:
        ctx.save_for_backward(x, step)
        ctx.hi = hi
        return torch.div(x, step).add_(0.5).floor_().clamp_(0, hi).mul_(step)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        x, step = ctx.saved_tensors
        # β = Δ·hi in the arithmetic dtype, then rounded to x's dtype by the comparison, as a Python-float β was
        # (the same value for hi < 2^24, i.e. bits <= 24)
        beta = step.to(opmath(x.dtype)) * ctx.hi
        return torch.where((x >= 0) & (x <= beta), g, 0.0), None, None


class _SignedWeightFn(torch.autograd.Function):
    """Per-tensor signed (weight) quantizer with the identity STE as one autograd node: same operations as
    ``uniform_quantize`` in place on one buffer (identical values), gradient passed through unchanged."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, step: torch.Tensor, hi: int) -> torch.Tensor:
        return torch.div(x, step).add_(0.5).floor_().clamp_(-hi, hi).mul_(step)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        return g, None, None


def _ste_mask(x: torch.Tensor, q: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """Forward exactly q; gradient 1 where ``inside`` (a closed interval: min/max would split ties 0.5/0.5)."""
    xm = torch.where(inside, x, x.detach())
    return q + (xm - xm.detach())


@register("uniform")
class UniformQuantizer(Quantizer):
    """Boo et al. uniform quantizer with the L2-optimal step (spec §2).

    Args:
        bits: 1..32 (32 = no quantization). Signed 1-bit is the binary special case.
        signed: True for weights (symmetric, 2^n - 1 levels); False for post-ReLU activations (2^n levels).
        step: a fixed Δ; None computes the L2-optimal Δ from the data.
        update: "once" (default; Δ from the first tensor seen, then frozen) or "always" (every call).
        granularity: "per_tensor" (default, spec §2) or "per_channel" (one Δ per dim-0 channel, for weights).
        symmetric: True (default, spec §2) or False (asymmetric min-max grid with a zero point).
    """

    kind = "both"
    reference = "Boo, Shin, Sung 2020 (arXiv 2006.00530); Hwang & Sung 2014; spec §2"

    def __init__(
        self,
        bits: int,
        signed: bool = True,
        step: float | None = None,
        update: str = "once",
        granularity: str = "per_tensor",
        symmetric: bool = True,
    ):
        super().__init__(bits)
        if update not in UPDATES:
            raise ValueError(f"uniform: update={update!r} is not accepted; expected one of {UPDATES}")
        if step is not None and not (isinstance(step, (int, float)) and step > 0):
            raise ValueError(f"uniform: step={step!r} is not accepted; expected a positive number or None")
        if granularity not in GRANULARITIES:
            raise ValueError(f"uniform: granularity={granularity!r} is not accepted; expected one of {GRANULARITIES}")
        if step is not None and (granularity != "per_tensor" or not symmetric):
            raise ValueError("uniform: a fixed step is only accepted with granularity='per_tensor', symmetric=True")
        self.signed, self.update, self.fixed_step = bool(signed), update, step
        self.granularity, self.symmetric = granularity, bool(symmetric)
        self.per_channel = granularity == "per_channel"  # max_levels() then counts one channel's levels
        self.register_buffer("step", torch.tensor(float(step)) if step is not None else torch.empty(0))
        if not self.symmetric:
            self.register_buffer("zero_point", torch.empty(0))

    def config(self) -> dict[str, Any]:
        return {
            "bits": self.bits,
            "signed": self.signed,
            "step": self.fixed_step,
            "update": self.update,
            "granularity": self.granularity,
            "symmetric": self.symmetric,
        }

    def max_levels(self) -> int:
        if not self.symmetric:
            return 2**self.bits
        if self.signed:
            return 2 if self.bits == 1 else 2**self.bits - 1
        return 2**self.bits

    def reset(self) -> None:
        if self.fixed_step is None:
            self.step = torch.empty(0, device=self.step.device)
        if not self.symmetric:
            self.zero_point = torch.empty(0, device=self.zero_point.device)

    def _rows(self, x: torch.Tensor) -> torch.Tensor:
        # per_channel groups dim 0 of a >= 2-D weight; a 1-D tensor is one group
        return x.detach().reshape(x.shape[0], -1) if self.per_channel and x.dim() > 1 else x.detach().reshape(1, -1)

    @property
    def signed_input(self) -> bool:
        return self.signed or not self.symmetric

    def needs_calibration(self) -> bool:
        return self.fixed_step is None and self.step.numel() == 0

    def calibrate(self, x: torch.Tensor) -> None:
        """Set Δ from ``x`` (weights, or activations gathered over calibration batches) and keep it.

        A fixed ``step`` given to the constructor is never overwritten.
        """
        if self.fixed_step is not None:
            return
        if not self.symmetric:
            step, z = asym_params(self._rows(x), self.bits)
            self.step, self.zero_point = (step, z) if self.per_channel else (step[0], z[0])
        elif self.per_channel:
            rows = self._rows(x)
            self.step = torch.tensor([l2_opt_step(r, self.bits, self.signed) for r in rows], device=x.device)
        else:
            self.step = torch.tensor(l2_opt_step(x, self.bits, self.signed), device=x.device)

    def _bcast(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # (C_out,) -> (C_out, 1, ..., 1) so that it broadcasts against a (C_out, ...) weight
        return t.reshape((-1,) + (1,) * (x.dim() - 1)) if self.per_channel and x.dim() > 1 else t

    def current_step(self, x: torch.Tensor) -> torch.Tensor:
        """Δ as a tensor (x's dtype, broadcastable against x); computes it first if it is still unset.

        The L2 search reads values on the host (it is iterative, with data-dependent stopping), so it runs
        eagerly (``run_eager``): once, on the first tensor, for a quantizer ``lowbit.calibrate`` has not set,
        and on every call with ``update="always"``, the one mode whose forward is not compile-clean.
        """
        if self.fixed_step is None and (self.step.numel() == 0 or self.update == "always"):
            run_eager(self.calibrate, x, "uniform")
        if self.per_channel and self.step.numel() > 1 and (x.dim() < 2 or x.shape[0] != self.step.numel()):
            raise ValueError(
                f"uniform per_channel: {self.step.numel()} channel steps do not fit a tensor of shape "
                f"{tuple(x.shape)}; per_channel is for (C_out, ...) weights"
            )
        return self._bcast(self.step.to(x.dtype), x)

    def _forward_asym(self, x: torch.Tensor) -> torch.Tensor:
        step = self.current_step(x)
        z = self._bcast(self.zero_point.to(x.dtype), x)
        q = asym_quantize(x.detach(), step, z, self.bits)
        lo, hi = -z * step, (2**self.bits - 1 - z) * step
        return _ste_mask(x, q, (x >= lo) & (x <= hi))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits >= 32:
            return x
        if not self.symmetric:
            return self._forward_asym(x)
        step = self.current_step(x)
        if not self.per_channel:
            if not self.signed:
                return _UnsignedActFn.apply(x, step, 2**self.bits - 1)
            if self.bits > 1:
                return _SignedWeightFn.apply(x, step, 2 ** (self.bits - 1) - 1)
        q = uniform_quantize(x.detach(), step, self.bits, self.signed)
        if self.signed:
            return q + (x - x.detach())  # identity STE; forward exactly q (rounding.ste's x + (q - x) is off by ulps)
        if self.per_channel:
            hi = step * (2**self.bits - 1)
            return _ste_mask(x, q, (x >= 0) & (x <= hi))
        raise AssertionError("unreachable: per-tensor unsigned takes the fused path above")

    # export hooks (base.Quantizer): the affine grid with its zero point; signed 1-bit stays a codebook
    @torch.no_grad()
    def export_codes(self, w: torch.Tensor, name: str = "weight") -> ExportedCodes | None:
        if self.bits >= 32 or (self.signed and self.symmetric and self.bits == 1):
            return None
        qw = self(w.detach())
        step = self.current_step(w).to(torch.float32)
        z = self._bcast(self.zero_point, w).to(torch.float32) if not self.symmetric else torch.zeros(())
        codes = torch.round(qw / step) + z
        zp = (self.zero_point if not self.symmetric else torch.zeros(())).to(torch.int32)
        scale = self.step.detach().to(torch.float32).clone()
        return ExportedCodes(codes.to(torch.int32), scale, zp, "affine", self.bits)

    def export_activation(self) -> ActivationGrid | None:
        if self.bits >= 32 or self.per_channel or self.step.numel() != 1 or (self.signed and self.bits == 1):
            return None
        if not self.symmetric:
            return ActivationGrid(float(self.step), int(self.zero_point), 0, 2**self.bits - 1, "half_up")
        lo, hi = (-(2 ** (self.bits - 1) - 1), 2 ** (self.bits - 1) - 1) if self.signed else (0, 2**self.bits - 1)
        return ActivationGrid(float(self.step), 0, lo, hi, "half_up")

    def levels(self, x: torch.Tensor) -> torch.Tensor:
        if not self.symmetric or self.per_channel:
            return self._levels_grouped(x)
        step = float(self.current_step(x))
        if self.signed and self.bits == 1:
            return torch.tensor([-step, step])
        lo, hi = (-(2 ** (self.bits - 1) - 1), 2 ** (self.bits - 1) - 1) if self.signed else (0, 2**self.bits - 1)
        return torch.arange(lo, hi + 1, dtype=torch.float64).mul(step).to(x.dtype)

    def _levels_grouped(self, x: torch.Tensor) -> torch.Tensor:
        """Union over channels (per_channel) of each channel's grid."""
        step = self.current_step(x).reshape(-1, 1).to(torch.float64)
        if not self.symmetric:
            z = self.zero_point.reshape(-1, 1).to(torch.float64)
            codes = torch.arange(2**self.bits, dtype=torch.float64).reshape(1, -1)
            return torch.unique(step * (codes - z)).to(x.dtype)
        if self.signed and self.bits == 1:
            return torch.unique(torch.cat([-step, step])).to(x.dtype)
        lo, hi = (-(2 ** (self.bits - 1) - 1), 2 ** (self.bits - 1) - 1) if self.signed else (0, 2**self.bits - 1)
        codes = torch.arange(lo, hi + 1, dtype=torch.float64).reshape(1, -1)
        return torch.unique(step * codes).to(x.dtype)
