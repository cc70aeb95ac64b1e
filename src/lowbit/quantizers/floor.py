"""The floor under every calibrated step and range: the grid's top level is at least 1/16 of the RMS of what it
represents.

A quantizer's calibrated range is its top level c (uniform: hi·Δ, LSQ: Q_P·s, PACT: α). Quantized values are at
most c in magnitude, so a grid with c < RMS(x)/16 can reproduce at most (c/RMS)² < 0.4 % of the tensor's energy
Σx²: whatever the rounding, its L2 error is over 88 % of Σx² and nearly every value saturates. That is a
degenerate range, not a choice: the L2-optimal uniform grid (spec §2.2) puts c above 1.1·RMS on every distribution
tried (Gaussian, half-wave rectified, Laplace, Cauchy, log-normal, 99.99 % sparse, a single 10^4 outlier; 2, 4 and
8 bits; ``tests/quantizers/test_quantizers_calibration_floor.py``), so the floor never moves a spec result; it
binds where a rule of thumb meets sparse data (LSQ's 2·mean|x|/sqrt(Q_P) and PACT's 99.99th percentile on a
tensor that is > 99.99 % zeros) or a solver degenerates.

The other calibrated ranges meet the floor by construction: HWGQ's top center is 1.5-1.6 times
sqrt(mean(x² | x > 0)) >= RMS, log2's top level is about max(x) >= RMS, the asymmetric uniform grid spans
[min, max].

RMS rather than max|x|: one outlier sets the max, and the L2 optimum rightly clips it; the RMS moves little.
"What it represents": |x| for a signed grid, max(x, 0) for an unsigned one (negative inputs become 0 anyway).
An all-zero tensor has no floor (RMS 0); each quantizer keeps its documented placeholder and ``lowbit.calibrate``
warns naming the layer.
"""

from __future__ import annotations

import torch

TOP_LEVEL_FRACTION = 1.0 / 16  # top level >= RMS/16 (see above)
TINY = float(torch.finfo(torch.float32).tiny)  # a positive step must survive float32 storage


def represented_rms(x: torch.Tensor, signed: bool, dim: int | None = None) -> torch.Tensor:
    """sqrt(mean(v²)), v = x (signed) or max(x, 0) (unsigned), in float64; over ``dim`` or the whole tensor."""
    v = x.detach().to(torch.float64)
    if not signed:
        v = v.clamp_min(0.0)
    sq = v * v
    return (sq.mean() if dim is None else sq.mean(dim=dim)).sqrt()


def step_floor(x: torch.Tensor, top_code: int, signed: bool) -> float:
    """The smallest step a grid whose top level is ``top_code``·Δ may take for ``x``: RMS/(16·top_code)."""
    rms = float(represented_rms(x, signed)) if x.numel() else 0.0
    return rms * TOP_LEVEL_FRACTION / top_code


def floored_step(step: float, x: torch.Tensor, top_code: int, signed: bool) -> float:
    """``step`` raised to ``step_floor`` (unchanged for an all-zero ``x``), and never below float32's tiny."""
    floor = step_floor(x, top_code, signed)
    out = max(step, floor)
    return max(out, TINY) if out > 0 else out


__all__ = ["TOP_LEVEL_FRACTION", "floored_step", "represented_rms", "step_floor"]
