"""Quantized modules: thin twins of the float layers, and the table ``quantize_`` swaps with."""

from .act_point import ActPoint, QuantActPoint
from .equivalents import UnsupportedLayerError, float_base, register_equivalent, twin_for
from .hooks import XNORInputScaling, add_gradient_quantization, add_xnor_input_scaling
from .linear import QuantConv1d, QuantConv2d, QuantLinear
from .qmodule import QUANT_TWINS, QuantMixin, register_twin
from .recurrent import QuantGRU, QuantLSTM, QuantRNN
from .shift_bn import ShiftBatchNorm1d, ShiftBatchNorm2d

__all__ = [
    "ActPoint",
    "QUANT_TWINS",
    "QuantActPoint",
    "QuantConv1d",
    "QuantConv2d",
    "QuantGRU",
    "QuantLSTM",
    "QuantLinear",
    "QuantMixin",
    "QuantRNN",
    "ShiftBatchNorm1d",
    "ShiftBatchNorm2d",
    "UnsupportedLayerError",
    "XNORInputScaling",
    "add_gradient_quantization",
    "add_xnor_input_scaling",
    "float_base",
    "register_equivalent",
    "register_twin",
    "twin_for",
]
