"""Quantized twins of nn.Linear and nn.Conv1d/2d/3d (depthwise included: groups are kept as they are)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..quantizers import Quantizer
from .qmodule import QuantMixin, adopt_parameters, register_twin


@register_twin(nn.Linear)
class QuantLinear(QuantMixin, nn.Linear):
    @classmethod
    def from_float(cls, module: nn.Linear, weight_quant: Quantizer | None, act_quant: Quantizer | None):
        with torch.device("meta"):
            q = cls(module.in_features, module.out_features, bias=module.bias is not None)
        adopt_parameters(q, module)
        q._set_quantizers(weight_quant, act_quant)
        return q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.quantize_input(x), self.quantized_weight(), self.bias)


class _QuantConvNd(QuantMixin):
    @classmethod
    def from_float(cls, module, weight_quant: Quantizer | None, act_quant: Quantizer | None):
        with torch.device("meta"):
            q = cls(
                module.in_channels,
                module.out_channels,
                module.kernel_size,
                stride=module.stride,
                padding=module.padding,
                dilation=module.dilation,
                groups=module.groups,
                bias=module.bias is not None,
                padding_mode=module.padding_mode,
            )
        adopt_parameters(q, module)
        q._set_quantizers(weight_quant, act_quant)
        return q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self.quantize_input(x), self.quantized_weight(), self.bias)


@register_twin(nn.Conv1d)
class QuantConv1d(_QuantConvNd, nn.Conv1d):
    pass


@register_twin(nn.Conv2d)
class QuantConv2d(_QuantConvNd, nn.Conv2d):
    pass


@register_twin(nn.Conv3d)
class QuantConv3d(_QuantConvNd, nn.Conv3d):
    pass
