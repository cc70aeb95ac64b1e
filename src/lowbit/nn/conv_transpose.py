"""Quantized twins of nn.ConvTranspose1d/2d/3d (output_padding, output_size, groups and dilation as torch has them).

A transposed convolution stores its weight as (C_in, C_out/groups, k...), not (C_out, C_in/groups, k...) as a
convolution does. Per-channel weight quantization means one step per OUTPUT channel (what one output's
accumulator is rescaled by; torch.ao refuses per-channel observers for these layers altogether, and ONNX's
per-axis DequantizeLinear on this weight is axis 1, the output channel when groups = 1), so the twin presents
the weight to its quantizer output-channel first (``to_quant_layout``):

    W (C_in, C_out/g, k...) -> (g, C_in/g, C_out/g, k...) -> swap the two channel axes -> (C_out, C_in/g, k...)

which is exactly the weight of the equivalent convolution's channel order; ``from_quant_layout`` undoes it. The
parameter itself keeps torch's layout (a float checkpoint loads as it is); freezing stores the codes output-channel
first (``lowbit.deploy.freeze``), and the decoded buffer in torch's layout again.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..quantizers import Quantizer
from .qmodule import QuantMixin, adopt_parameters, register_twin


def swap_channel_axes(w: torch.Tensor, groups: int) -> torch.Tensor:
    """(A, B/g, k...) -> (B, A/g, k...) within each group: (C_in, C_out/g, k...) <-> (C_out, C_in/g, k...)."""
    return w.unflatten(0, (groups, w.shape[0] // groups)).transpose(1, 2).flatten(0, 1)


class _QuantConvTransposeNd(QuantMixin):
    _dims: int
    _conv_transpose = staticmethod(F.conv_transpose2d)

    @classmethod
    def from_float(cls, module, weight_quant: Quantizer | None, act_quant: Quantizer | None):
        if module.padding_mode != "zeros":  # torch's own forward refuses it too; say so at quantize_ time
            raise ValueError(
                f"{type(module).__name__}: padding_mode={module.padding_mode!r} is not accepted; torch supports "
                "only 'zeros' for transposed convolutions"
            )
        with torch.device("meta"):
            q = cls(
                module.in_channels,
                module.out_channels,
                module.kernel_size,
                stride=module.stride,
                padding=module.padding,
                output_padding=module.output_padding,
                groups=module.groups,
                bias=module.bias is not None,
                dilation=module.dilation,
            )
        adopt_parameters(q, module)
        q._set_quantizers(weight_quant, act_quant)
        return q

    def to_quant_layout(self, name: str, w: torch.Tensor) -> torch.Tensor:
        return swap_channel_axes(w, self.groups)

    def from_quant_layout(self, name: str, w: torch.Tensor) -> torch.Tensor:
        return swap_channel_axes(w, self.groups)  # the same reshuffle maps each layout onto the other

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        output_padding = self._output_padding(
            x, output_size, self.stride, self.padding, self.kernel_size, self._dims, self.dilation
        )
        return self._conv_transpose(
            self.quantize_input(x),
            self.quantized_weight(),
            self.bias,
            self.stride,
            self.padding,
            output_padding,
            self.groups,
            self.dilation,
        )


@register_twin(nn.ConvTranspose1d)
class QuantConvTranspose1d(_QuantConvTransposeNd, nn.ConvTranspose1d):
    _dims = 1
    _conv_transpose = staticmethod(F.conv_transpose1d)


@register_twin(nn.ConvTranspose2d)
class QuantConvTranspose2d(_QuantConvTransposeNd, nn.ConvTranspose2d):
    _dims = 2
    _conv_transpose = staticmethod(F.conv_transpose2d)


@register_twin(nn.ConvTranspose3d)
class QuantConvTranspose3d(_QuantConvTransposeNd, nn.ConvTranspose3d):
    _dims = 3
    _conv_transpose = staticmethod(F.conv_transpose3d)
