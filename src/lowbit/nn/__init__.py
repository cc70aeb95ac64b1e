"""Quantized modules: thin twins of the float layers, and the table ``quantize_`` swaps with."""

from .act_point import ActPoint, QuantActPoint
from .attention import QuantMultiheadAttention
from .conv_transpose import QuantConvTranspose1d, QuantConvTranspose2d, QuantConvTranspose3d
from .embedding import QuantEmbedding
from .fastpath import SlowPathTransformerEncoderLayer, disable_fast_paths
from .hf_conv1d import register_hf_conv1d
from .hooks import XNORInputScaling, add_gradient_quantization, add_xnor_input_scaling
from .linear import QuantConv1d, QuantConv2d, QuantConv3d, QuantLinear
from .matmul import Matmul, QuantMatmul, QuantScaledDotProductAttention, ScaledDotProductAttention
from .qmodule import OPTIONAL_TWINS, QUANT_TWINS, QuantMixin, load_optional_twins, register_twin
from .recurrent import QuantGRU, QuantLSTM, QuantRNN
from .shift_bn import ShiftBatchNorm1d, ShiftBatchNorm2d


def __getattr__(name: str):
    # twins of optional libraries' layers import that library: loaded on first access, never at import
    if name == "QuantHFConv1D":
        return register_hf_conv1d()
    raise AttributeError(f"module 'lowbit.nn' has no attribute {name!r}")


__all__ = [
    "ActPoint",
    "Matmul",
    "OPTIONAL_TWINS",
    "QUANT_TWINS",
    "QuantActPoint",
    "QuantConv1d",
    "QuantConv2d",
    "QuantConv3d",
    "QuantConvTranspose1d",
    "QuantConvTranspose2d",
    "QuantConvTranspose3d",
    "QuantEmbedding",
    "QuantGRU",
    "QuantLSTM",
    "QuantLinear",
    "QuantMatmul",
    "QuantMixin",
    "QuantMultiheadAttention",
    "QuantRNN",
    "QuantScaledDotProductAttention",
    "ScaledDotProductAttention",
    "ShiftBatchNorm1d",
    "ShiftBatchNorm2d",
    "SlowPathTransformerEncoderLayer",
    "XNORInputScaling",
    "add_gradient_quantization",
    "add_xnor_input_scaling",
    "disable_fast_paths",
    "load_optional_twins",
    "register_hf_conv1d",
    "register_twin",
]
