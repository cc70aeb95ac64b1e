"""Logarithmic (power-of-two) quantization (Miyashita, Lee, Murmann 2016, arXiv 1603.01025), spec §4g.

    LogQuant(x) = 0 if x = 0, else 2^x̃,   x̃ = Clip(round(log2|x|), FSR - 2^b, FSR)
    Clip(v, lo, hi) = "underflow" -> output 0 if v <= lo;  hi - 1 if v >= hi;  v otherwise
round is half-up in the LOG domain (floor(log2|x| + 0.5)): the threshold between 2^e and 2^(e+1) is √2·2^e.
Levels: {0} ∪ {2^e : e = FSR - 2^b + 1 .. FSR - 1}, i.e. 2^b codes.
FSR (an integer) is given, or set from data: ``calibrate(x)`` (``lowbit.calibrate``, which ``fit`` runs before
training, passes every input seen over the calibration batches), else the first tensor seen:
FSR = floor(log2(max) + 0.5) + 1, max = max(x) (unsigned) or max|x| (signed), so the top level is about
the maximum (spec §4g [R]).
``signed=True`` (for weights) quantizes |x| and keeps the sign; the sign takes one of the b bits, so the
magnitude has b - 1 bits: levels {0, ±2^e : e = FSR - 2^(b-1) + 1 .. FSR - 1} (2^b - 1 values).
STE: unsigned, identity for x > 0 and 0 for x <= 0 (ReLU derivative); signed, identity everywhere.
``clip_grad=True`` also zeroes the gradient above √2·2^(FSR-1) (spec §4g optional).
An all-zero first tensor leaves FSR unset and outputs zeros.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .base import Quantizer, opmath, run_eager
from .registry import register


def log2_quantize(x: torch.Tensor, fsr: int | torch.Tensor, mag_bits: int, signed: bool = False) -> torch.Tensor:
    """Forward value (no gradient): sign(x)·LogQuant(|x|) (signed) or LogQuant(x) for x > 0, else 0 (unsigned).

    ``mag_bits`` magnitude bits give 2^mag_bits codes: 0 and 2^e for e = fsr - 2^mag_bits + 1 .. fsr - 1.
    ``fsr`` may be a 0-dim tensor (the quantizer's buffer: no host sync); whole numbers are exact either way.
    """
    a = x.abs()
    safe = torch.where(a > 0, a, torch.ones_like(a))
    e = torch.floor(torch.log2(safe) + 0.5)
    f = torch.as_tensor(fsr, device=x.device).to(opmath(x.dtype))
    lo = f - 2**mag_bits
    e = torch.minimum(e, (f - 1).to(e.dtype))
    q = torch.sign(x) * torch.exp2(e)
    keep = (x != 0) if signed else (x > 0)  # unsigned: negative inputs (below the ReLU) give 0
    return torch.where(keep & (e > lo), q, torch.zeros_like(x))


def fsr_from(x: torch.Tensor, signed: bool) -> int | None:
    """FSR = floor(log2(max) + 0.5) + 1 with max = max|x| (signed) or max(x) (unsigned); None if that is <= 0."""
    v = x.detach().abs() if signed else x.detach()
    m = float(v.max()) if x.numel() else 0.0
    if not (m > 0 and math.isfinite(m)):
        return None
    return math.floor(math.log2(m) + 0.5) + 1


@register("log2")
class LogQuantizer(Quantizer):
    """Log-domain power-of-two quantizer (spec §4g); unsigned (activations) unless ``signed``."""

    kind = "act"
    reference = "Miyashita, Lee, Murmann 2016 (arXiv 1603.01025); spec §4g"
    min_bits = 2

    def __init__(self, bits: int = 3, fsr: int | None = None, signed: bool = False, clip_grad: bool = False):
        super().__init__(bits)
        if fsr is not None and (not isinstance(fsr, int) or isinstance(fsr, bool)):
            raise ValueError(f"log2: fsr={fsr!r} is not accepted; expected an integer or None (calibrate)")
        self.fixed_fsr, self.signed, self.clip_grad = fsr, bool(signed), bool(clip_grad)
        self.register_buffer("fsr", torch.tensor(fsr) if fsr is not None else torch.empty(0, dtype=torch.int64))

    def config(self) -> dict[str, Any]:
        return {"bits": self.bits, "fsr": self.fixed_fsr, "signed": self.signed, "clip_grad": self.clip_grad}

    @property
    def mag_bits(self) -> int:
        return self.bits - 1 if self.signed else self.bits

    def max_levels(self) -> int:
        return 2**self.bits - 1 if self.signed else 2**self.bits

    def reset(self) -> None:
        if self.fixed_fsr is None:
            self.fsr = torch.empty(0, dtype=torch.int64, device=self.fsr.device)

    @property
    def signed_input(self) -> bool:
        return self.signed

    def needs_calibration(self) -> bool:
        return self.fixed_fsr is None and self.fsr.numel() == 0

    def calibrate(self, x: torch.Tensor) -> None:
        """FSR from the maximum of ``x`` (all calibration inputs at once); a given ``fsr`` is kept."""
        if self.fixed_fsr is not None:
            return
        f = fsr_from(x, self.signed)
        if f is not None:
            self.fsr = torch.tensor(f, device=x.device)

    def current_fsr(self, x: torch.Tensor) -> int | None:
        if self.fsr.numel() == 0:
            self.calibrate(x)
        return int(self.fsr) if self.fsr.numel() else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits >= 32:
            return x
        if self.fsr.numel() == 0:  # never calibrated: FSR from this first tensor, eagerly
            run_eager(self.calibrate, x, "log2")
        fsr = self.fsr if self.fsr.numel() else None  # still unset: nothing positive seen yet, output 0
        q = torch.zeros_like(x) if fsr is None else log2_quantize(x.detach(), fsr, self.mag_bits, self.signed)
        mask = torch.ones_like(x) if self.signed else (x > 0).to(x.dtype)
        if self.clip_grad and fsr is not None:
            # √2·2^(FSR-1): a power-of-two multiple of √2 rounds to x's dtype as the Python-float product did
            bound = math.sqrt(2) * torch.exp2(fsr.to(opmath(x.dtype)) - 1)
            mask = mask * (x.abs() <= bound).to(x.dtype)
        xm = x * mask
        return q + (xm - xm.detach())  # exact q forward, gradient = mask

    def levels(self, x: torch.Tensor) -> torch.Tensor:
        fsr = self.current_fsr(x)
        if fsr is None:
            return torch.zeros(1, dtype=x.dtype)
        mags = [2.0**e for e in range(fsr - 2**self.mag_bits + 1, fsr)]
        vals = [0.0] + mags + ([-m for m in mags] if self.signed else [])
        return torch.tensor(sorted(vals), dtype=x.dtype)
