"""HWGQ: half-wave Gaussian quantizer (Cai, He, Sun, Vasconcelos, CVPR 2017), spec §4f.

Applied to BN-normalised pre-activations (≈ N(0, 1)):
    Q(x) = 0 if x <= 0;  q_i if x in (t_i, t_{i+1}],  t_1 = 0, t_{i+1} = (q_i + q_{i+1})/2, t_{m+1} = ∞
    (x exactly on a threshold goes to the LOWER level; every x > 0 maps to at least q_1, as the Caffe code)
    backward ("clipped ReLU"): g_x = g_y · 1_{0 < x <= q_m}
Built-in centers: 2 bits (uniform, Δ = 0.538): (0.538, 1.076, 1.614); variant "2n" (the shipped 1.x-bit
non-uniform config): (0.453, 1.51). Other bit widths need explicit ``centers`` (the paper's Lloyd-Max tables
for them are not in the spec); len(centers) + 1 must fit in 2^bits codes.

Scale from data (issue 9 item 9): the centers are Lloyd-Max levels for N(0, 1), and Lloyd-Max levels of
N(0, σ²) are σ times those of N(0, 1). lowbit applies the quantizer to a layer's *input*, which need not have
unit variance (it is often the ReLU of a BN output, or a pooled one), so the centers used are ``scale``·centers:
``scale=None`` (the default) estimates σ in ``calibrate(x)`` as sqrt(mean(x² | x > 0)) (for a zero-mean
symmetric input, and for its half-wave rectification alike, that is σ); until then, and with ``scale=1.0``,
the centers are the paper's.
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

    def __init__(
        self,
        bits: int = 2,
        variant: str = "2",
        centers: list[float] | tuple[float, ...] | None = None,
        scale: float | None = None,
    ):
        super().__init__(bits)
        if scale is not None and not (isinstance(scale, (int, float)) and 0 < scale < float("inf")):
            raise ValueError(f"hwgq: scale={scale!r} is not accepted; expected a positive number or None (from data)")
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
        self.fixed_scale = None if scale is None else float(scale)
        self.register_buffer("scale", torch.tensor(1.0 if scale is None else float(scale)))
        self._calibrated = scale is not None

    def config(self) -> dict[str, Any]:
        return {"bits": self.bits, "variant": self.variant, "centers": self.centers_given, "scale": self.fixed_scale}

    @property
    def signed_input(self) -> bool:
        return False

    def needs_calibration(self) -> bool:
        return not self._calibrated

    @torch.no_grad()
    def calibrate(self, x: torch.Tensor) -> None:
        """scale = sqrt(mean(x² | x > 0)) (σ of the Gaussian the centers are fitted to); a given scale is kept."""
        if self.fixed_scale is not None:
            return
        pos = x.detach()[x.detach() > 0].double()
        if pos.numel():
            s = float(pos.pow(2).mean().sqrt())
            if s > 0 and s < float("inf"):
                self.scale.fill_(s)
        self._calibrated = True

    def reset(self) -> None:
        if self.fixed_scale is None:
            self.scale.fill_(1.0)
            self._calibrated = False

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, *args, **kwargs)
        if prefix + "scale" in missing_keys:  # saved before the scale existed: the paper's centers (scale 1)
            missing_keys.remove(prefix + "scale")
        else:
            self._calibrated = True

    def scaled_centers(self, dtype: torch.dtype) -> torch.Tensor:
        return (self.centers * self.scale).to(dtype)

    def max_levels(self) -> int:
        return self.centers.numel() + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.scaled_centers(x.dtype)
        q = hwgq_quantize(x.detach(), c)
        inside = ((x > 0) & (x <= c[-1])).to(x.dtype)
        xm = x * inside
        return q + (xm - xm.detach())  # exact q forward, gradient 1_{0 < x <= q_m}

    def levels(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros(1, dtype=x.dtype), self.scaled_centers(x.dtype)])
