"""XNOR-Net weights and input scaling (Rastegari et al. 2016), spec §4e.

Weights, per output channel c (n = C_in·kh·kw):
    α_c = ||W_c||_1 / n,   W̃_c = α_c · sgn_ste(W_c)
with α NOT detached and sgn_ste passing 1_{|W| <= 1}, so autograd gives the paper's exact gradient
    ∂C/∂W_i = α·1_{|W_i| <= 1}·g_i + (sgn(W_i)/n)·Σ_j sgn(W_j)·g_j
(jiecaoyu's extra factor (1 - 1/C_in)·n is omitted, spec §11.14). All-zero channel: α = 0, output 0.

Binary inputs with the scaling factor K (spec §4e): conv(I, W) ≈ (sgn(I) ⊛ W̃) ⊙ K with
A = mean_c |I| and K = A ∗ k, k a kh×kw box filter of value 1/(kh·kw), same stride/padding/dilation as the conv.
K lives on the conv's OUTPUT grid, so it cannot be an input quantizer. ``XNORInputScaling`` is a small
module attached to a QuantConv2d/QuantConv1d/QuantLinear by forward hooks (``add_xnor_input_scaling``): the
pre-hook computes K from the raw input (before ``act_quant`` binarises it), the post-hook multiplies the
bias-free conv output by K. The activation binarisation itself is the ``sign`` quantizer (spec §4c: the
same sgn with 1_{|x| <= 1} backward), so a full XNOR layer is ``weight=xnor, act=sign`` + the scaling.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

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


def xnor_k(x: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """K = (mean_c |I|) ∗ box(kh×kw), with the layer's stride/padding/dilation; shape of the output grid."""
    a = x.abs().mean(dim=1, keepdim=True)  # (N, 1, *spatial)
    if isinstance(layer, nn.Conv2d):
        kh, kw = layer.kernel_size
        box = a.new_full((1, 1, kh, kw), 1.0 / (kh * kw))
        return F.conv2d(a, box, stride=layer.stride, padding=layer.padding, dilation=layer.dilation)
    if isinstance(layer, nn.Conv1d):
        (k,) = layer.kernel_size
        box = a.new_full((1, 1, k), 1.0 / k)
        return F.conv1d(a, box, stride=layer.stride, padding=layer.padding, dilation=layer.dilation)
    if isinstance(layer, nn.Linear):
        return x.abs().mean(dim=-1, keepdim=True)  # a dense layer is a conv whose kernel covers the input
    raise TypeError(f"XNOR input scaling needs a Linear/Conv1d/Conv2d layer, got {type(layer).__name__}")


class XNORInputScaling:
    """Hooks that multiply a layer's output by K (spec §4e). Keep the object to ``remove()`` them."""

    def __init__(self, layer: nn.Module):
        if not isinstance(layer, (nn.Conv2d, nn.Conv1d, nn.Linear)):
            raise TypeError(f"XNOR input scaling needs a Linear/Conv1d/Conv2d layer, got {type(layer).__name__}")
        if isinstance(layer, (nn.Conv2d, nn.Conv1d)) and (layer.groups != 1 or layer.padding_mode != "zeros"):
            raise ValueError(
                f"XNOR input scaling needs groups=1 and padding_mode='zeros', got groups={layer.groups}, "
                f"padding_mode={layer.padding_mode!r}"
            )
        self._k: torch.Tensor | None = None
        self.handles = [layer.register_forward_pre_hook(self._pre), layer.register_forward_hook(self._post)]

    def _pre(self, layer: nn.Module, args: tuple[Any, ...]) -> None:
        self._k = xnor_k(args[0], layer)

    def _post(self, layer: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor:
        k, self._k = self._k, None
        bias = getattr(layer, "bias", None)
        if bias is None:
            return out * k
        shape = (1, -1) + (1,) * (out.dim() - 2)
        b = bias.reshape(shape) if out.dim() > 2 else bias
        return (out - b) * k + b  # K scales sgn(I)⊛W̃ only, the bias stays as it is

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def add_xnor_input_scaling(model: nn.Module) -> list[XNORInputScaling]:
    """Attach K scaling to every quantized layer whose activation quantizer is ``sign`` (binary inputs).

    Returns the scalers (call ``.remove()`` on each to detach them). Hooks are not saved with the model:
    call this again after ``load_model``.
    """
    from ..nn import QuantMixin
    from .binary import SignActivation

    out = []
    for m in model.modules():
        if isinstance(m, QuantMixin) and isinstance(getattr(m, "act_quant", None), SignActivation):
            out.append(XNORInputScaling(m))
    return out
