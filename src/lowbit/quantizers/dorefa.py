"""DoReFa-Net (Zhou et al. 2016, arXiv 1606.06160), spec §4a, following tensorpack's dorefa.py.

    quantize_k(r) = round((2^k - 1)·r)/(2^k - 1),  r in [0, 1],  identity STE    (torch.round: half-even)
    weights k = 1:   r_o = sgn(r_i)·E,  E = mean|r_i| over the layer (no gradient), identity STE
    weights k >= 2:  r_o = 2·quantize_k(tanh(r_i)/(2·max|tanh(r_i)|) + 1/2) - 1
                     (gradient through tanh AND the max; levels (2i - n)/n, no zero level)
    activations:     r_o = quantize_k(clip(x, 0, 1)),  gradient 1_{0 <= x <= 1}
    k = 32: no quantization (weights pass through, activations are only clipped).
    All-zero weights: output zeros (spec §4a [R]).

Gradient quantization (paper §2.6, tensorpack ``fg``), per example (max over all axes but the batch axis):
    dr_q = 2·max|dr|·[quantize_k(clip(dr/(2·max|dr|) + 1/2 + N(k), 0, 1)) - 1/2],  N(k) ~ U(-0.5, 0.5)/(2^k - 1)
An example whose gradient is all zero (padding, ``ignore_index``, a masked or zero-weighted loss) has
max|dr| = 0: the formula is 0·[...], so it stays exactly zero (no noise is added to it).
``quantize_gradient(x, bits)`` is identity forward and quantizes the gradient flowing back into ``x``; the module
hook ``lowbit.nn.add_gradient_quantization(model, bits)`` applies it to the output of every quantized layer.
"""

from __future__ import annotations

import torch

from .base import Quantizer, check_bits
from .registry import register
from .rounding import sgn


def _ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Forward exactly q, backward identity: q + (x - x.detach()) adds an exact 0 (x + (q - x) can be off by an ulp)."""
    return q.detach() + (x - x.detach())


def quantize_k(r: torch.Tensor, bits: int) -> torch.Tensor:
    """round((2^k - 1)·r)/(2^k - 1) with an identity gradient (half-even ties, as TF/tensorpack)."""
    n = 2**bits - 1
    return _ste(r, torch.round(r.detach() * n) / n)


def dorefa_weight(w: torch.Tensor, bits: int) -> torch.Tensor:
    """DoReFa weight quantization with tensorpack's gradients (spec §4a)."""
    if bits >= 32:
        return w
    if bits == 1:
        e = w.detach().abs().mean() if w.numel() else w.new_zeros(())
        return _ste(w, sgn(w.detach()) * e)
    t = torch.tanh(w)
    m = t.abs().max() if w.numel() else t.new_zeros(())
    # All-zero weights -> zeros, gradient passes [R]. A tensor branch (torch.where), not ``if float(m) == 0``: that
    # would be a host sync on every call. m is replaced by 1 where it is 0 only so that the unused branch stays
    # finite (its 0/0 would put NaN into the gradient); where m > 0 both are the reference's values and gradients.
    live = m.detach() > 0
    q = 2 * quantize_k(t / (2 * torch.where(live, m, torch.ones_like(m))) + 0.5, bits) - 1
    return torch.where(live, q, _ste(w, torch.zeros_like(w)))


def dorefa_act(x: torch.Tensor, bits: int) -> torch.Tensor:
    """quantize_k(clip(x, 0, 1)); clip passes the gradient on the closed interval [0, 1]."""
    c = torch.clamp(x, 0.0, 1.0)
    return c if bits >= 32 else quantize_k(c, bits)


@register("dorefa_w")
class DoReFaWeight(Quantizer):
    """DoReFa k-bit weights (spec §4a): binary with E = mean|W| for k = 1, tanh-normalised otherwise."""

    kind = "weight"
    reference = "Zhou et al. 2016, DoReFa-Net (arXiv 1606.06160); spec §4a"

    def __init__(self, bits: int = 2):
        super().__init__(bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dorefa_weight(x, self.bits)

    def levels(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() == 0 or float(x.detach().abs().max()) == 0.0:
            return torch.zeros(1, dtype=x.dtype)
        if self.bits == 1:
            e = float(x.detach().abs().mean())
            return torch.tensor([-e, e], dtype=x.dtype)
        n = 2**self.bits - 1
        return ((2 * torch.arange(n + 1, dtype=torch.float64) - n) / n).to(x.dtype)


@register("dorefa_a")
class DoReFaAct(Quantizer):
    """DoReFa k-bit activations quantize_k(clip(x, 0, 1)) (spec §4a)."""

    kind = "act"
    reference = "Zhou et al. 2016, DoReFa-Net (arXiv 1606.06160); spec §4a"

    def __init__(self, bits: int = 2):
        super().__init__(bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dorefa_act(x, self.bits)

    def levels(self, x: torch.Tensor) -> torch.Tensor:
        n = 2**self.bits - 1
        return (torch.arange(n + 1, dtype=torch.float64) / n).to(x.dtype)


def quantize_grad_tensor(g: torch.Tensor, bits: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """DoReFa's stochastic k-bit gradient quantizer f_γ^k (paper Eq. 12, tensorpack ``fg``), per example.

    ``generator`` (optional, for reproducible noise) must live on ``g``'s device.
    """
    if g.dim() == 0 or g.numel() == 0:
        return g
    n = 2**bits - 1
    rank = g.abs().reshape(g.shape[0], -1).amax(dim=1).reshape((-1,) + (1,) * (g.dim() - 1))
    live = rank > 0
    safe = torch.where(live, rank, torch.ones_like(rank))  # only to avoid 0/0; the result is masked below
    noise = (torch.rand(g.shape, generator=generator, dtype=g.dtype, device=g.device) - 0.5) / n
    u = torch.clamp(g / (2 * safe) + 0.5 + noise, 0.0, 1.0)
    # max|dr| = 0 makes the whole formula 0: an all-zero example stays exactly zero, whatever the noise
    return torch.where(live, (torch.round(u * n) / n - 0.5) * 2 * safe, torch.zeros_like(g))


class _GradQuantFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, bits: int, generator: torch.Generator | None) -> torch.Tensor:
        ctx.bits, ctx.generator = bits, generator
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        return quantize_grad_tensor(g, ctx.bits, ctx.generator), None, None


def quantize_gradient(x: torch.Tensor, bits: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Identity forward; the gradient flowing back into ``x`` is quantized to ``bits`` with DoReFa noise."""
    bits = check_bits(bits, name="dorefa gradient")
    return x if bits >= 32 else _GradQuantFn.apply(x, bits, generator)


__all__ = [
    "DoReFaAct",
    "DoReFaWeight",
    "dorefa_act",
    "dorefa_weight",
    "quantize_gradient",
    "quantize_grad_tensor",
    "quantize_k",
]
