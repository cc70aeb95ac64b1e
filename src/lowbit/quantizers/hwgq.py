"""HWGQ: half-wave Gaussian quantizer (Cai, He, Sun, Vasconcelos, CVPR 2017), spec §4f.

Applied to BN-normalised pre-activations (≈ N(0, 1)):
    Q(x) = 0 if x <= 0;  q_i if x in (t_i, t_{i+1}],  t_1 = 0, t_{i+1} = (q_i + q_{i+1})/2, t_{m+1} = ∞
    (x exactly on a threshold goes to the LOWER level; every x > 0 maps to at least q_1, as the Caffe code)
    backward ("clipped ReLU"): g_x = g_y · 1_{0 < x <= q_m}
Built-in centers: 2 bits (uniform, Δ = 0.538): (0.538, 1.076, 1.614); variant "2n" (the shipped 1.x-bit
non-uniform config): (0.453, 1.51). Other bit widths need explicit ``centers`` (the paper's Lloyd-Max tables
for them are not in the spec); len(centers) + 1 must fit in 2^bits codes.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import Quantizer
from .registry import register

CENTERS = {"2": (0.538, 1.076, 1.614), "2n": (0.453, 1.51)}


def hwgq_quantize(x: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Forward value (no gradient): the level of the half-open bin (t_i, t_{i+1}] holding x."""
    thr = (centers[:-1] + centers[1:]) / 2  # t_2 .. t_m
    idx = torch.bucketize(x.contiguous(), thr, right=False)  # count of thresholds < x: x == t -> lower bin
    return torch.where(x > 0, centers[idx], torch.zeros_like(x))


@register("hwgq")
class HWGQ(Quantizer):
    """Half-wave Gaussian quantizer for activations (spec §4f)."""

    kind = "act"
    reference = "Cai et al. 2017, HWGQ (arXiv 1702.00953); spec §4f"

    def __init__(self, bits: int = 2, variant: str = "2", centers: list[float] | tuple[float, ...] | None = None):
        super().__init__(bits)
        if centers is None:
            if variant not in CENTERS:
                raise ValueError(f"hwgq: variant={variant!r} is not accepted; expected one of {sorted(CENTERS)}")
            if self.bits != 2:
                raise ValueError(
                    f"hwgq: bits={self.bits!r} has no built-in centers (only 2 bits, variants '2' and '2n'); "
                    "pass centers=[...] for other bit widths"
                )
            cs = CENTERS[variant]
        else:
            cs = tuple(float(c) for c in centers)
            if not cs or any(c <= 0 for c in cs) or any(a >= b for a, b in zip(cs, cs[1:])):
                raise ValueError(f"hwgq: centers={centers!r} must be positive and strictly increasing")
            if len(cs) + 1 > 2**self.bits:
                raise ValueError(f"hwgq: {len(cs)} centers plus zero do not fit in bits={self.bits}")
        self.variant = variant
        self.centers_given = None if centers is None else list(cs)
        self.register_buffer("centers", torch.tensor(cs), persistent=False)

    def config(self) -> dict[str, Any]:
        return {"bits": self.bits, "variant": self.variant, "centers": self.centers_given}

    def max_levels(self) -> int:
        return self.centers.numel() + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.centers.to(x.dtype)
        q = hwgq_quantize(x.detach(), c)
        inside = ((x > 0) & (x <= c[-1])).to(x.dtype)
        xm = x * inside
        return q + (xm - xm.detach())  # exact q forward, gradient 1_{0 < x <= q_m}

    def levels(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros(1, dtype=x.dtype), self.centers.to(x.dtype)])
