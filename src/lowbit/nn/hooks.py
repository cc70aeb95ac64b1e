"""Module hooks that act on a quantized model's layers: DoReFa gradient quantization and XNOR input scaling.

These walk a model's modules and register forward hooks, so they live in ``nn/`` (above ``quantizers/``, which
only holds the pure functions they call).

DoReFa gradient quantization (Zhou et al. 2016 §2.6, tensorpack ``fg``; spec §4a): ``add_gradient_quantization``
makes the output of every quantized layer pass through ``quantizers.dorefa.quantize_gradient`` (identity forward,
the per-example stochastic k-bit quantizer on the gradient w.r.t. that output, the tensor the paper quantizes
before it reaches the layer's backward). An example whose gradient is all zero stays exactly zero.

XNOR-Net input scaling (Rastegari et al. 2016; spec §4e): conv(I, W) ≈ (sgn(I) ⊛ W̃) ⊙ K with A = mean_c |I| and
K = A ∗ k, k a kh×kw box filter of value 1/(kh·kw), same stride/padding/dilation as the conv. K lives on the
conv's OUTPUT grid, so it cannot be an input quantizer: ``XNORInputScaling`` computes K in a forward pre-hook from
the raw input (before ``act_quant`` binarises it) and multiplies the bias-free output by K in a forward hook. The
binarisation itself is the ``sign`` quantizer (spec §4c), so a full XNOR layer is ``weight=xnor, act=sign`` + K.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..quantizers.base import check_bits
from ..quantizers.binary import SignActivation
from ..quantizers.dorefa import quantize_gradient
from .qmodule import QuantMixin


def add_gradient_quantization(
    model: nn.Module, bits: int, generator: torch.Generator | None = None
) -> list[torch.utils.hooks.RemovableHandle]:
    """Quantize the gradient w.r.t. the output of every quantized layer of ``model`` (DoReFa §2.6, spec §4a).

    ``generator`` (optional, on the model's device) makes the noise reproducible. Returns the hook handles
    (``h.remove()`` undoes it). Hooks are not saved with the model.
    """
    bits = check_bits(bits, name="dorefa gradient")

    def hook(module: nn.Module, args: Any, out: Any) -> Any:
        # a layer whose output is not one tensor (MultiheadAttention: (output, weights)) ends in a twin that has
        # its own hook (MHA's out_proj), so its output gradient is quantized there
        if not torch.is_grad_enabled() or not isinstance(out, torch.Tensor):
            return out
        return quantize_gradient(out, bits, generator)

    return [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, QuantMixin)]


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
    return [
        XNORInputScaling(m)
        for m in model.modules()
        if isinstance(m, QuantMixin) and isinstance(getattr(m, "act_quant", None), SignActivation)
    ]


__all__ = ["XNORInputScaling", "add_gradient_quantization", "add_xnor_input_scaling", "xnor_k"]
