"""A conv/linear layer as the integer exporter needs it: float weight, int8 codes with per-channel scales,
bias, and its input grid, with a following eval-mode BatchNorm folded in exactly.

Folding BN (y = γ·(z - μ)/sqrt(σ² + ε) + β, z = W*x + b) into the layer: g = γ/sqrt(σ² + ε) per output
channel, W' = g·W, b' = g·(b - μ) + β. The weight is Δ_c·c (codes c, per-channel step Δ_c), so
W' = (g_c·Δ_c)·c: the codes do not change, only the per-channel scale does — |g_c|·Δ_c, with the codes'
sign flipped where g_c < 0 (ONNX scales are positive; the symmetric grids are closed under negation).
A per-tensor step becomes per-channel. This is exact up to float32 rounding of the scale product.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..nn.conv_bn import QuantConvBn2d
from ..quantizers.base import ActivationGrid
from .freeze import FrozenWeight
from .onnx_graph import conv_attrs

INT8_MAX = 127


@dataclass
class LayerSpec:
    """One conv/linear layer for export (weights already BN-folded)."""

    name: str
    is_conv: bool
    attrs: dict[str, Any]  # conv attributes (empty for linear)
    weight: torch.Tensor  # float32, the decoded (folded) weight
    bias: torch.Tensor | None  # float32 (C_out,)
    codes: torch.Tensor | None  # int8 codes (C_out, ...) when the weight is on a per-channel int grid, else None
    scale: torch.Tensor | None  # float32 (C_out,) > 0 with weight == scale·codes
    bits: int  # code width (32: float weight)
    grid: ActivationGrid | None  # the layer's input quantizer grid (None: float input)


def _int8_form(m: nn.Module) -> tuple[torch.Tensor, torch.Tensor, int] | None:
    """(int8 codes, per-channel scale, bits) of a frozen weight that is Δ·c with |c| <= 127, else None."""
    fw = getattr(m, "weight_quant", None)
    if not isinstance(fw, FrozenWeight):
        return None
    s = fw.schemes["weight"]
    cout = s["shape"][0]
    if s["scheme"] == "uniform":
        codes, step = fw.codes_weight.to(torch.int32), fw.step_weight.to(torch.float32)
    elif s["scheme"] == "pow2" and fw.exp_weight.numel():  # ±2^(n2+k) = 2^n2 · (±2^k): an int grid when k is small
        kmax = 2 ** (s["bits"] - 2) - 1
        if 2**kmax > INT8_MAX:
            return None
        dec = fw.decode("weight")
        step = torch.tensor(2.0 ** int(fw.exp_weight[1]))
        codes = torch.round(dec / step).to(torch.int32)
    else:
        return None
    if codes.numel() and int(codes.abs().max()) > INT8_MAX:
        return None
    step = step.reshape(-1) if step.dim() else step.reshape(1)
    scale = step.expand(cout).clone() if step.numel() == 1 else step.clone()
    if not bool((scale > 0).all()):
        return None
    return codes, scale, s["bits"]


def input_grid(m: nn.Module) -> ActivationGrid | None:
    """The input quantizer's integer grid (None: no input quantizer); raises when it has no integer form."""
    aq = getattr(m, "act_quant", None)
    if aq is None:
        return None
    g = aq.export_activation()
    ok = g is not None and (0 <= g.qmin and g.qmax <= 255 and 0 <= g.zero_point <= 255 or
                            -128 <= g.qmin and g.qmax <= 127 and g.zero_point == 0)  # fmt: skip
    if not ok:
        raise ValueError(
            f"export_onnx: the input quantizer {aq.to_dict()} of layer {type(m).__name__} has no 8-bit integer grid "
            f"(export_activation() gave {g}); supported: quantizers whose output is an affine uint8/int8 grid"
        )
    return g


@torch.no_grad()
def layer_spec(name: str, m: nn.Module, bn: nn.Module | None = None) -> LayerSpec:
    """The export view of ``m`` (a float or frozen quantized Linear/Conv), with eval-mode ``bn`` folded in."""
    fw = getattr(m, "weight_quant", None)
    if fw is not None and not isinstance(fw, FrozenWeight):
        raise ValueError(f"export_onnx: layer {name!r} is not frozen; call lowbit.freeze(model) first")
    is_conv = isinstance(m, (nn.Conv1d, nn.Conv2d))
    folded = isinstance(m, QuantConvBn2d)  # trained with BN folded in: weight and bias are the folded ones
    w = fw.decode("weight") if isinstance(fw, FrozenWeight) else m.folded_weight() if folded else m.weight
    w = w.detach().to(torch.float32)
    b = m.folded_bias() if folded else m.bias
    b = None if b is None else b.detach().to(torch.float32)
    form = _int8_form(m)
    codes, scale, bits = form if form is not None else (None, None, 32 if fw is None else fw.schemes["weight"]["bits"])
    if bn is not None:
        g = 1 / torch.sqrt(bn.running_var + bn.eps)
        g = g * bn.weight.detach() if bn.affine else g
        beta = bn.bias.detach() if bn.affine else torch.zeros_like(g)
        g = g.to(torch.float32)
        shape = (-1,) + (1,) * (w.dim() - 1)
        w = w * g.reshape(shape)
        b = (torch.zeros_like(g) if b is None else b) - bn.running_mean.to(torch.float32)
        b = b * g + beta.to(torch.float32)
        if codes is not None:
            sign = torch.where(g < 0, -1, 1).to(torch.int32)
            codes = codes * sign.reshape(shape)
            scale = scale * g.abs()
            if not bool((scale > 0).all()):
                codes, scale = None, None
    return LayerSpec(
        name=name,
        is_conv=is_conv,
        attrs=conv_attrs(m) if is_conv else {},
        weight=w,
        bias=b,
        codes=None if codes is None else codes.to(torch.int8),
        scale=scale,
        bits=bits,
        grid=input_grid(m),
    )
