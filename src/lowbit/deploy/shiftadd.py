"""Multiplication-free reference inference for power-of-two weights (spec §1.1: w ∈ {0, ±2^n2..±2^n1}).

With integer activations x = s_x·x_int and weights w = sign·2^(n2 + k) (k = e - e_min >= 0), a dot product is

    y = Σ_i w_i·x_i = s_x·2^n2 · Σ_i sign_i·(x_int_i << k_i)

so the accumulator needs only shifts, negations and additions; the one multiplication by s_x·2^n2 per output
is a rescale that folds into the next layer's quantizer (or is itself a shift when s_x is a power of two).
``shiftadd_linear``/``shiftadd_conv`` compute that integer accumulator for a frozen "pow2" layer; the
result is bit-exact with the fake-quantized layer evaluated in exact (float64) arithmetic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .freeze import FrozenWeight


def _pow2_fields(layer: nn.Module, name: str = "weight") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    fw = getattr(layer, "weight_quant", None)
    if not isinstance(fw, FrozenWeight) or fw.schemes[name]["scheme"] != "pow2":
        raise ValueError(
            f"shift-add needs a frozen power-of-two layer (pot or INQ, then lowbit.freeze); got "
            f"{type(fw).__name__ if fw is not None else 'no weight quantizer'}"
        )
    bits = fw.schemes[name]["bits"]
    field = getattr(fw, f"codes_{name}").long()
    sign = (field >> (bits - 1)) & 1
    nonzero = ((field >> (bits - 2)) & 1).bool()
    k = field & ((1 << (bits - 2)) - 1)
    exp = getattr(fw, f"exp_{name}")
    n2 = int(exp[1]) if exp.numel() else 0
    return sign.bool(), nonzero, k, n2


def _accumulate(x_int: torch.Tensor, sign: torch.Tensor, nonzero: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """acc[n, o] = Σ_i sign[o,i]·(x_int[n,i] << k[o,i]): shifts and adds only. x_int (N, I), weights (O, I)."""
    acc = torch.zeros(x_int.shape[0], sign.shape[0], dtype=torch.int64)
    for o in range(sign.shape[0]):  # one output at a time: what a shift-add datapath does
        shifted = torch.bitwise_left_shift(x_int, k[o])  # (N, I)
        terms = torch.where(sign[o], -shifted, shifted)
        acc[:, o] = torch.where(nonzero[o], terms, torch.zeros_like(terms)).sum(dim=1)
    return acc


def shiftadd_linear(layer: nn.Linear, x_int: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(integer accumulator (N, out), n2): the layer's output is acc·s_x·2^n2 + bias."""
    if x_int.dtype != torch.int64:
        raise TypeError(f"shift-add: x_int must be an int64 tensor, got {x_int.dtype}")
    sign, nonzero, k, n2 = _pow2_fields(layer)
    return _accumulate(x_int, sign, nonzero, k), n2


def shiftadd_conv2d(layer: nn.Conv2d, x_int: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(integer accumulator (N, C_out, H', W'), n2) for a frozen pow2 Conv2d (groups and depthwise included)."""
    if x_int.dtype != torch.int64:
        raise TypeError(f"shift-add: x_int must be an int64 tensor, got {x_int.dtype}")
    if layer.padding_mode != "zeros":
        raise ValueError(f"shift-add: padding_mode={layer.padding_mode!r} is not supported; expected 'zeros'")
    sign, nonzero, k, n2 = _pow2_fields(layer)
    n, _, h, w = x_int.shape
    # im2col only moves integers (float64 holds them exactly below 2^53)
    cols = F.unfold(x_int.to(torch.float64), layer.kernel_size, layer.dilation, layer.padding, layer.stride)
    cols = cols.round().to(torch.int64)  # (N, C_in·kh·kw, L)
    ho = (h + 2 * layer.padding[0] - layer.dilation[0] * (layer.kernel_size[0] - 1) - 1) // layer.stride[0] + 1
    wo = (w + 2 * layer.padding[1] - layer.dilation[1] * (layer.kernel_size[1] - 1) - 1) // layer.stride[1] + 1
    g, cin_g, cout_g = layer.groups, layer.in_channels // layer.groups, layer.out_channels // layer.groups
    kk = cols.shape[1] // layer.in_channels
    out = []
    for gi in range(g):
        xg = cols[:, gi * cin_g * kk : (gi + 1) * cin_g * kk, :].permute(0, 2, 1).reshape(-1, cin_g * kk)
        sl = slice(gi * cout_g, (gi + 1) * cout_g)
        sg, nz, kg = (t[sl].reshape(cout_g, -1) for t in (sign, nonzero, k))
        acc = _accumulate(xg, sg, nz, kg)  # (N·L, cout_g)
        out.append(acc.reshape(n, -1, cout_g).permute(0, 2, 1))
    return torch.cat(out, dim=1).reshape(n, layer.out_channels, ho, wo), n2


def shiftadd_forward(layer: nn.Module, x_int: torch.Tensor, x_scale: float) -> torch.Tensor:
    """The float output: acc·(s_x·2^n2) + bias (the one rescale per output)."""
    if isinstance(layer, nn.Conv2d):
        acc, n2 = shiftadd_conv2d(layer, x_int)
        bias = None if layer.bias is None else layer.bias.detach().reshape(1, -1, 1, 1)
    elif isinstance(layer, nn.Linear):
        acc, n2 = shiftadd_linear(layer, x_int)
        bias = None if layer.bias is None else layer.bias.detach()
    else:
        raise TypeError(f"shift-add: expected a frozen Linear or Conv2d layer, got {type(layer).__name__}")
    y = acc.to(torch.float64) * (x_scale * 2.0**n2)
    return y if bias is None else y + bias.to(torch.float64)
