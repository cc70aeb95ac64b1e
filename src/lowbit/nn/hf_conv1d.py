"""Quantized twin of transformers' ``Conv1D`` (GPT-2, GPT, ...): a Linear layer whose weight is stored transposed.

``Conv1D(nf, nx)`` computes ``x @ W + b`` with W of shape (nx, nf) = (in, out), so dim 0 is the INPUT feature. The
twin presents W to its quantizer as (out, in) (``to_quant_layout`` = transpose), so per-channel quantization is per
output feature, exactly as for the equivalent ``nn.Linear``; the parameter keeps transformers' layout (a Hugging
Face checkpoint loads as it is) and freezing stores the codes as (out, in).

transformers is optional and the core never imports it. The twin subclasses ``Conv1D`` (``isinstance`` checks in
transformers and PEFT keep holding), so its class can only be defined once transformers is imported:
``register_hf_conv1d`` defines and registers it, and this module enters that function in ``OPTIONAL_TWINS`` under
``transformers.pytorch_utils``, the module that defines ``Conv1D``. ``quantize_``/``quantizable_layers`` call
``load_optional_twins()``, which runs it when that module is already in ``sys.modules`` (a model holding a
``Conv1D`` has imported it). No class names are matched as strings. ``lowbit.nn.QuantHFConv1D`` (and unpickling)
define it on first access.
"""

from __future__ import annotations

import torch
from torch import nn

from ..quantizers import Quantizer
from .qmodule import OPTIONAL_TWINS, QuantMixin, adopt_parameters, register_twin


def register_hf_conv1d() -> type[nn.Module]:
    """Define the twin of ``transformers.pytorch_utils.Conv1D`` (once) and register it; returns the class."""
    if "QuantHFConv1D" in globals():
        return globals()["QuantHFConv1D"]
    from transformers.pytorch_utils import Conv1D

    @register_twin(Conv1D)
    class QuantHFConv1D(QuantMixin, Conv1D):
        """transformers' Conv1D with a quantized weight (``weight_quant``) and input (``act_quant``)."""

        __repr__ = nn.Module.__repr__  # Conv1D's own repr hides the quantizers

        @classmethod
        def from_float(cls, module: Conv1D, weight_quant: Quantizer | None, act_quant: Quantizer | None):
            with torch.device("meta"):
                q = cls(module.nf, module.nx)
            adopt_parameters(q, module)
            q._set_quantizers(weight_quant, act_quant)
            return q

        def extra_repr(self) -> str:
            return f"nf={self.nf}, nx={self.nx}"

        def to_quant_layout(self, name: str, w: torch.Tensor) -> torch.Tensor:
            return w.t()  # (in, out) -> (out, in)

        def from_quant_layout(self, name: str, w: torch.Tensor) -> torch.Tensor:
            return w.t()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.quantize_input(x)
            out = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.quantized_weight())  # Conv1D's op
            return out.view(x.shape[:-1] + (self.nf,))

    QuantHFConv1D.__qualname__ = "QuantHFConv1D"  # pickle finds it as lowbit.nn.hf_conv1d.QuantHFConv1D
    globals()["QuantHFConv1D"] = QuantHFConv1D
    return QuantHFConv1D


def __getattr__(name: str):
    if name == "QuantHFConv1D":
        return register_hf_conv1d()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


OPTIONAL_TWINS["transformers.pytorch_utils"] = register_hf_conv1d
