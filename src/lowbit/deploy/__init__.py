"""Shipping a quantized model: per-layer summary, freezing to integer codes, the packed ``.lowbit`` file,
ONNX export and a multiplication-free (shift-add) reference for power-of-two weights.

``export_onnx`` / ``run_onnx`` are re-exported lazily from ``onnx_export``: importing ``lowbit.deploy`` never
imports onnx or onnxruntime (the ``deploy`` extra); calling them without it raises one line naming the extra.
"""

from .freeze import FrozenWeight, freeze, is_frozen
from .packed import PackedFormatError, load_packed, read_packed, save_packed
from .summary import SummaryTable, summary

__all__ = [
    "FrozenWeight",
    "PackedFormatError",
    "SummaryTable",
    "export_onnx",
    "freeze",
    "is_frozen",
    "load_packed",
    "read_packed",
    "run_onnx",
    "save_packed",
    "summary",
]

# name -> (module that defines it, the optional package it needs, what for)
_LAZY = {
    "export_onnx": ("onnx_export", "onnx", "ONNX export"),
    "run_onnx": ("onnx_export", "onnxruntime", "running an ONNX graph"),
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import functools
    import importlib

    from ..extras import require

    module, package, feature = _LAZY[name]
    fn = getattr(importlib.import_module(f".{module}", __name__), name)

    @functools.wraps(fn)
    def checked(*args, **kwargs):
        require(package, feature)  # one line naming the extra, before any work
        return fn(*args, **kwargs)

    globals()[name] = checked
    return checked
