"""Shipping a quantized model: per-layer summary, freezing to integer codes, the packed ``.lowbit`` file,
ONNX export and a multiplication-free (shift-add) reference for power-of-two weights."""

from .freeze import FrozenWeight, freeze, is_frozen
from .packed import PackedFormatError, load_packed, read_packed, save_packed
from .summary import SummaryTable, summary

__all__ = [
    "FrozenWeight",
    "PackedFormatError",
    "SummaryTable",
    "freeze",
    "is_frozen",
    "load_packed",
    "read_packed",
    "save_packed",
    "summary",
]
