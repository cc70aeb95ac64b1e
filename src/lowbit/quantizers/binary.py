"""BinaryConnect weights (Courbariaux et al. 2015, spec §4b) and the BNN sign activation (Hubara et al. 2016, §4c).

    hard_sigmoid(x) = clip((x + 1)/2, 0, 1)
    deterministic:  w_b = +H if w >= 0 else -H         (sgn(0) = +1: C round(hard_sigmoid(0) = 0.5) = 1)
    stochastic:     w_b = +H with probability hard_sigmoid(w/H), else -H; in eval mode the REAL w is used
    backward:       identity STE to the latent w;   after every optimizer step w <- clip(w, -H, H) (``post_step``)
    BNN sign:       q = sgn(x),  g_x = g_q · 1_{|x| <= 1}  (the hard-tanh derivative)

H is 1 (the paper) or "glorot": H = sqrt(1.5/(fan_in + fan_out)) from the weight's shape (code option).
``lr_scale`` is the reference code's separate per-layer learning-rate factor ``W_LR_scale`` (binary_connect.py
L179: the update of W is multiplied by it): 1 (default, the paper), a positive number, or "glorot", which gives
1/sqrt(1.5/(fan_in + fan_out)) = 1/H_glorot (the code's ``W_LR_scale="Glorot"``). The quantizer only
declares it (``lr_scale(weight)``); ``lowbit.train.fit`` gives each such weight its own param group with
lr = base lr × schedule × factor. A hand-written loop gets the groups from ``lowbit.train.param_groups``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .base import Quantizer
from .registry import register
from .rounding import sgn


def _ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Forward exactly q, backward identity: q + (x - x.detach()) adds an exact 0 (x + (q - x) can be off by an ulp)."""
    return q.detach() + (x - x.detach())


def _ste_clipped(x: torch.Tensor, q: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Forward exactly q, backward 1_{lo <= x <= hi} (clamp passes the gradient on the closed interval)."""
    xc = torch.clamp(x, lo, hi)
    return q.detach() + (xc - xc.detach())


def glorot_h(w: torch.Tensor) -> float:
    """H = sqrt(1.5/(fan_in + fan_out)) (BinaryConnect ``H="Glorot"``; conv fans include the kernel area)."""
    if w.dim() < 2:
        raise ValueError(f"binary: H='glorot' needs a weight with >= 2 dims, got shape {tuple(w.shape)}")
    rf = w[0][0].numel()
    return math.sqrt(1.5 / (w.shape[1] * rf + w.shape[0] * rf))


def _check_h(name: str, H: Any, field: str = "H") -> float | str:
    if H == "glorot":
        return H
    if isinstance(H, (int, float)) and not isinstance(H, bool) and math.isfinite(H) and H > 0:
        return float(H)
    raise ValueError(f"{name}: {field}={H!r} is not accepted; expected a positive number or 'glorot'")


class _BinaryConnectBase(Quantizer):
    kind = "weight"
    min_bits = 1
    max_bits = 1

    def __init__(self, bits: int = 1, H: float | str = 1.0, lr_scale: float | str = 1.0):
        super().__init__(bits)
        self.H = _check_h(self.name, H)
        self.w_lr_scale = _check_h(self.name, lr_scale, "lr_scale")

    def config(self) -> dict[str, Any]:
        return {"bits": self.bits, "H": self.H, "lr_scale": self.w_lr_scale}

    def lr_scale(self, weight: torch.Tensor) -> float:
        """W_LR_scale: 1/H_glorot for "glorot" (reference L179), else the number given (spec §4b)."""
        return 1.0 / glorot_h(weight) if self.w_lr_scale == "glorot" else float(self.w_lr_scale)

    def max_levels(self) -> int:
        return 2

    def h_for(self, w: torch.Tensor) -> float:
        return glorot_h(w) if self.H == "glorot" else float(self.H)

    @torch.no_grad()
    def post_step(self, weight: torch.Tensor) -> None:
        """Clip the latent weight to [-H, H] in place (spec §4b, reference L180); the trainer calls this."""
        h = self.h_for(weight)
        weight.clamp_(-h, h)

    def levels(self, x: torch.Tensor) -> torch.Tensor:
        h = self.h_for(x)
        return torch.tensor([-h, h], dtype=x.dtype)


@register("binary")
class BinaryConnect(_BinaryConnectBase):
    """Deterministic BinaryConnect: w_b = H·sgn(w), identity STE (spec §4b)."""

    reference = "Courbariaux et al. 2015, BinaryConnect (arXiv 1511.00363); spec §4b"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ste(x, self.h_for(x) * sgn(x.detach()))


@register("binary_stochastic")
class StochasticBinaryConnect(_BinaryConnectBase):
    """Stochastic BinaryConnect: +H with probability hard_sigmoid(w/H) in training, the real w in eval (§4b)."""

    reference = "Courbariaux et al. 2015, BinaryConnect (arXiv 1511.00363), stochastic; spec §4b"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x  # reference code L41: stochastic BC evaluates with the real-valued weights
        h = self.h_for(x)
        p = torch.clamp((x.detach() / h + 1) / 2, 0, 1)
        # u < p with u ~ U[0,1): +H; p = 1 (w >= H) is always +H, p = 0 (w <= -H) always -H.
        wb = torch.where(torch.rand_like(p) < p, h, -h)
        return _ste(x, wb)


@register("sign")
class SignActivation(Quantizer):
    """BNN binary activation: sgn(x) forward, 1_{|x| <= 1} backward (spec §4c)."""

    kind = "act"
    reference = "Hubara, Courbariaux et al. 2016, BinaryNet (arXiv 1602.02830); spec §4c"
    min_bits = 1
    max_bits = 1

    def __init__(self, bits: int = 1):
        super().__init__(bits)

    def max_levels(self) -> int:
        return 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ste_clipped(x, sgn(x.detach()), -1.0, 1.0)

    def levels(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tensor([-1.0, 1.0], dtype=x.dtype)
