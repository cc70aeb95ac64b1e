"""Quantized modules: thin twins of the float layers, and the table ``quantize_`` swaps with."""

from .linear import QuantConv1d, QuantConv2d, QuantLinear
from .qmodule import QUANT_TWINS, QuantMixin, register_twin
from .recurrent import QuantGRU, QuantLSTM, QuantRNN
from .shift_bn import ShiftBatchNorm1d, ShiftBatchNorm2d

__all__ = [
    "QUANT_TWINS",
    "QuantConv1d",
    "QuantConv2d",
    "QuantGRU",
    "QuantLSTM",
    "QuantLinear",
    "QuantMixin",
    "QuantRNN",
    "ShiftBatchNorm1d",
    "ShiftBatchNorm2d",
    "register_twin",
]
