"""lowbit: train, study and ship low-bit neural networks (PyTorch).

import lowbit as lb
cfg = lb.QuantConfig(weight=lb.quantizers.get("uniform", bits=2),
                     act=lb.quantizers.get("pact", bits=2), keep_float=("first", "last"))
lb.quantize_(model, cfg)
"""

from . import deploy, nn, quantizers
from .api import calibrate, quantizable_layers, quantization_map, quantize_
from .config import LayerRule, QuantConfig
from .deploy import freeze, summary
from .inq import INQ, INQWeight

__version__ = "0.1.0"

__all__ = [
    "INQ",
    "INQWeight",
    "LayerRule",
    "QuantConfig",
    "calibrate",
    "nn",
    "quantizable_layers",
    "quantization_map",
    "quantize_",
    "deploy",
    "freeze",
    "summary",
    "quantizers",
]
