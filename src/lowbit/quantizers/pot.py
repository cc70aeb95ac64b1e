"""INQ's power-of-two codebook and rounding (Zhou et al. 2017, arXiv 1702.03044), spec §1.1-1.2.

s  = max|W|,  n1 = floor(log2(4s/3)),  n2 = n1 + 1 - 2^(b-2)
P  = {0, ±2^n2, …, ±2^n1}                      (2^(b-1) + 1 values; b >= 2)
round: nearest level in linear distance, ties up (away from zero), |w| >= 1.5·2^n1 saturates to 2^n1,
       |w| < 2^(n2-1) goes to 0.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .base import ExportedCodes, Quantizer, run_eager
from .registry import register
from .rounding import ste


def inq_exponents(s: float, bits: int) -> tuple[int, int]:
    """(n1, n2) for max|W| = s (spec §1.1), with the robust floor. Raises for b < 2 (spec §1.4)."""
    if not isinstance(bits, int) or isinstance(bits, bool) or bits < 2:
        raise ValueError(
            f"INQ: bits={bits!r} is not accepted; power-of-two INQ needs a whole number >= 2 "
            "(one bit flags zero, b-1 bits encode sign and exponent)"
        )
    if not s > 0 or not math.isfinite(s):
        raise ValueError(f"INQ: max|W| = {s!r}; the codebook needs a positive finite maximum")
    t = 4.0 * s / 3.0
    n1 = math.floor(math.log2(t))
    if 2.0 ** (n1 + 1) <= t:
        n1 += 1
    if 2.0**n1 > t:
        n1 -= 1
    return n1, n1 + 1 - 2 ** (bits - 2)


def inq_fixed_exponents(max_value: float, bits: int) -> tuple[int, int]:
    """(n1, n2) for a codebook whose top level is fixed at ``max_value`` for every layer (spec §1.1, the INQ edge
    paper's "the max value of the quantized weights is set to 4.0": n1 = 2), instead of Eq. 3's max|W|.

    ``max_value`` must be a power of two (it *is* the top level 2^n1); n2 = n1 + 1 - 2^(b-2) as usual."""
    inq_exponents(1.0, bits)  # the same bits check and message
    ok = isinstance(max_value, (int, float)) and not isinstance(max_value, bool) and math.isfinite(max_value)
    if not ok or max_value <= 0 or math.frexp(max_value)[0] != 0.5:
        raise ValueError(
            f"INQ: max_value={max_value!r} is not accepted; expected a positive power of two (the codebook's top "
            "level 2^n1, e.g. 4.0 for n1 = 2)"
        )
    n1 = math.frexp(max_value)[1] - 1
    return n1, n1 + 1 - 2 ** (bits - 2)


def inq_round(w: torch.Tensor, n1: int | torch.Tensor, n2: int | torch.Tensor) -> torch.Tensor:
    """Element-wise Eq. 4 in closed form (spec §1.2): nearest of {0, ±2^n2..±2^n1}, ties up.

    n1, n2 may be 0-dim tensors (the quantizer's buffer: no host sync); whole numbers and powers of two are exact.
    """
    n1 = torch.as_tensor(n1, device=w.device).to(w.dtype)
    n2 = torch.as_tensor(n2, device=w.device).to(w.dtype)
    a = w.abs()
    safe = torch.where(a > 0, a, torch.ones_like(a))
    p = torch.floor(torch.log2(safe * (4.0 / 3.0)))
    p = torch.where(safe < 3.0 * torch.exp2(p - 2), p - 1, p)  # off-by-one fixes of the float log2
    p = torch.where(safe >= 3.0 * torch.exp2(p - 1), p + 1, p)
    p = torch.clamp(p, n2, n1)
    q = torch.sign(w) * torch.exp2(p)
    return torch.where(a < torch.exp2(n2 - 1), torch.zeros_like(w), q)


def inq_levels(n1: int, n2: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    mags = [2.0**p for p in range(n2, n1 + 1)]
    return torch.tensor(sorted([-m for m in mags] + [0.0] + mags), dtype=dtype)


def encode_pow2(w: torch.Tensor, n1: int, n2: int, bits: int) -> torch.Tensor:
    """Codes of values on (or within rounding of) {0, ±2^n2..±2^n1}: sign<<(b-1) | nonzero<<(b-2) | (p - n2)."""
    a = w.abs().to(torch.float64)
    nonzero = a > 0
    p = torch.round(torch.log2(torch.where(nonzero, a, torch.ones_like(a)))).long().clamp(n2, n1)
    k = torch.where(nonzero, p - n2, torch.zeros_like(p))
    sign = (w < 0).long()
    return (sign << (bits - 1)) | (nonzero.long() << (bits - 2)) | k


def pow2_export(qw: torch.Tensor, e: tuple[int, int] | None, bits: int) -> ExportedCodes:
    """The "pow2" ``ExportedCodes`` of a tensor on the codebook with exponent range ``e`` (None: all zero)."""
    if e is None:
        return ExportedCodes(torch.zeros(qw.shape, dtype=torch.int64), torch.empty(0, dtype=torch.int64), None,
                             "pow2", bits)  # fmt: skip
    return ExportedCodes(encode_pow2(qw, e[0], e[1], bits), torch.tensor(e, dtype=torch.int64), None, "pow2", bits)


@register("pot")
class PowerOfTwoQuantizer(Quantizer):
    """The INQ codebook applied to a whole tensor at once, with an identity STE.

    n1 comes from the first tensor seen (the pretrained weights, spec §11.1) and is then kept, unless
    ``update="always"``. An all-zero tensor quantizes to zeros (spec §1.4).
    """

    kind = "weight"
    reference = "Zhou et al. 2017, INQ (arXiv 1702.03044); spec §1.1-1.2"
    min_bits = 2

    def __init__(self, bits: int, update: str = "once"):
        super().__init__(bits)
        if update not in ("once", "always"):
            raise ValueError(f"pot: update={update!r} is not accepted; expected 'once' or 'always'")
        self.update = update
        self.register_buffer("n1", torch.empty(0, dtype=torch.int64))

    def config(self) -> dict[str, Any]:
        return {"bits": self.bits, "update": self.update}

    def max_levels(self) -> int:
        return 2 ** (self.bits - 1) + 1

    def reset(self) -> None:
        self.n1 = torch.empty(0, dtype=torch.int64, device=self.n1.device)

    @torch.no_grad()
    def set_n1(self, x: torch.Tensor) -> bool:
        """n1 from max|x| (spec §1.1); False (n1 left as it is) for an all-zero tensor."""
        s = float(x.detach().abs().max()) if x.numel() else 0.0
        if s == 0.0:
            return False
        self.n1 = torch.tensor(inq_exponents(s, self.bits)[0], device=x.device)
        return True

    def exponents(self, x: torch.Tensor) -> tuple[int, int] | None:
        """(n1, n2), or None for an all-zero first tensor."""
        if (self.n1.numel() == 0 or self.update == "always") and not self.set_n1(x):
            return None
        n1 = int(self.n1)
        return n1, n1 + 1 - 2 ** (self.bits - 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits >= 32:
            return x
        if self.n1.numel() == 0 or self.update == "always":  # n1 from this tensor, eagerly (``run_eager``)
            run_eager(self.set_n1, x, "pot")
        if self.n1.numel() == 0:  # only all-zero tensors so far: they quantize to zeros
            return ste(x, torch.zeros_like(x))
        # n1 stays a tensor (no int(n1) host sync); an all-zero x with update="always" keeps the last n1, and
        # quantizes to zeros with it as with none
        return ste(x, inq_round(x.detach(), self.n1, self.n1 + 1 - 2 ** (self.bits - 2)))

    @torch.no_grad()
    def export_codes(self, w: torch.Tensor, name: str = "weight") -> ExportedCodes | None:
        """Power-of-two codes (export hook; spec §1.1 field layout)."""
        if self.bits >= 32:
            return None
        return pow2_export(self(w.detach()), self.exponents(w), self.bits)

    def levels(self, x: torch.Tensor) -> torch.Tensor:
        e = self.exponents(x)
        return torch.zeros(1, dtype=x.dtype) if e is None else inq_levels(*e, dtype=x.dtype)
