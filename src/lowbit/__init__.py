"""lowbit: train, study and ship low-bit neural networks (PyTorch).

import lowbit as lb
cfg = lb.QuantConfig(weight=lb.quantizers.get("uniform", bits=2),
                     act=lb.quantizers.get("pact", bits=2), keep_float=("first", "last"))
lb.quantize_(model, cfg)
"""

from . import deploy, models, nn, quantizers
from .api import (
    calibrate,
    check_optimizer,
    load_float_state_dict,
    quantizable_layers,
    quantization_map,
    quantize_,
    quantizer_parameters,
)
from .config import LayerRule, QuantConfig
from .coverage import float_layers
from .deploy import freeze, summary
from .inq import INQ, INQWeight
from .mixed import allocate_bits, sensitivity
from .nn import add_gradient_quantization, add_xnor_input_scaling

__version__ = "0.1.0"

__all__ = [
    "INQ",
    "INQWeight",
    "LayerRule",
    "add_gradient_quantization",
    "allocate_bits",
    "add_xnor_input_scaling",
    "QuantConfig",
    "calibrate",
    "check_optimizer",
    "float_layers",
    "load_float_state_dict",
    "quantizer_parameters",
    "models",
    "nn",
    "quantizable_layers",
    "quantization_map",
    "quantize_",
    "deploy",
    "freeze",
    "summary",
    "quantizers",
    "sensitivity",
]
