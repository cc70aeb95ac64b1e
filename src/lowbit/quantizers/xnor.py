"""XNOR-Net weights and input scaling (Rastegari et al. 2016), spec §4e.

Weights, per output channel c (n = C_in·kh·kw):
    α_c = ||W_c||_1 / n,   W̃_c = α_c · sgn_ste(W_c)
with α NOT detached and sgn_ste passing 1_{|W| <= 1}, so autograd gives the paper's exact gradient
    ∂C/∂W_i = α·1_{|W_i| <= 1}·g_i + (sgn(W_i)/n)·Σ_j sgn(W_j)·g_j
(jiecaoyu's extra factor (1 - 1/C_in)·n is omitted, spec §11.14). All-zero channel: α = 0, output 0.

Binary inputs with the scaling factor K (spec §4e): conv(I, W) ≈ (sgn(I) ⊛ W̃) ⊙ K with
A = mean_c |I| and K = A ∗ k, k a kh×kw box filter of value 1/(kh·kw), same stride/padding/dilation as the conv.
K lives on the conv's OUTPUT grid, so it cannot be an input quantizer: it is a module hook,
``lowbit.nn.add_xnor_input_scaling`` (``nn/hooks.py``). The activation binarisation itself is the ``sign``
quantizer (spec §4c: the same sgn with 1_{|x| <= 1} backward), so a full XNOR layer is ``weight=xnor, act=sign``
+ the scaling.
"""

from __future__ import annotations

import torch

from .base import Quantizer
from .registry import register
from .rounding import sgn


def _ste_clipped(x: torch.Tensor, q: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Forward exactly q, backward 1_{lo <= x <= hi} (clamp passes the gradient on the closed interval)."""
    xc = torch.clamp(x, lo, hi)
    return q.detach() + (xc - xc.detach())


def xnor_weight(w: torch.Tensor) -> torch.Tensor:
    """α(W)·sgn_ste(W) with α = mean|W_c| per output channel (dim 0), differentiable in α (spec §4e)."""
    if w.dim() == 0 or w.numel() == 0:
        return w * 1.0
    dims = tuple(range(1, w.dim()))
    s = sgn(w.detach())
    # α = mean(W·sgn(W)) = mean|W| in value; its gradient is sgn(W_i)/n with sgn(0) = +1 as the paper's formula
    # (w.abs() would give torch's 0 subgradient at W_i = 0)
    alpha = (w * s).mean(dim=dims, keepdim=True) if dims else (w * s).mean()
    return alpha * _ste_clipped(w, s, -1.0, 1.0)


@register("xnor")
class XNORWeight(Quantizer):
    """XNOR-Net binary weights with a per-output-channel scale α_c = mean|W_c| (spec §4e)."""

    kind = "weight"
    reference = "Rastegari et al. 2016, XNOR-Net (arXiv 1603.05279); spec §4e"
    min_bits = 1
    max_bits = 1
    per_channel = True  # max_levels() counts the levels of one output channel

    def __init__(self, bits: int = 1):
        super().__init__(bits)

    def max_levels(self) -> int:
        return 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return xnor_weight(x)

    def levels(self, x: torch.Tensor) -> torch.Tensor:
        q = xnor_weight(x.detach()).reshape(-1)
        return torch.unique(torch.cat([q.abs(), -q.abs()]))
