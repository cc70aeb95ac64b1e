"""Activation-quantization points: where a network's activations are quantized, as named modules.

A convolution twin quantizes its own input, which is enough for a plain CNN. Residual networks quantize
signals that are not the input of one layer: the activations inside a block (QA) and the signal on the
residual path (QRA) of Boo et al. Fig. 4 (seed §4.1), with the shortcut precision chosen on its own (8 bits in
the paper's ImageNet experiment). ``ActPoint`` marks such a place: in float it is the identity; ``quantize_``
swaps it for ``QuantActPoint``, which applies the activation quantizer its rule gives (``act``; a weight
quantizer is ignored, the point has no weights). Rules select points by name (the CNN blocks name them
``qa1``, ``qa2``, ... and ``qra``: ``rules = {"*qa?": ..., "*qra": ...}``), so QA and QRA can get different
quantizers and bits.

``role`` says which kind of point it is ("qa": an activation inside a block; "qra": the residual path) and
``signed`` whether the signal can be negative (a pre-activation or linear-bottleneck residual stream), where
an unsigned quantizer such as PACT clips the negative half.
"""

from __future__ import annotations

import torch
from torch import nn

from ..quantizers import Quantizer
from .qmodule import QuantMixin, register_twin

ROLES = ("qa", "qra")


class ActPoint(nn.Module):
    """Identity in float; the place ``quantize_`` puts an activation quantizer."""

    def __init__(self, role: str = "qa", signed: bool = False):
        super().__init__()
        if role not in ROLES:
            raise ValueError(f"ActPoint: role={role!r} is not accepted; expected one of {ROLES}")
        self.role, self.signed = role, bool(signed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def extra_repr(self) -> str:
        return f"role={self.role!r}, signed={self.signed}"


@register_twin(ActPoint)
class QuantActPoint(QuantMixin, ActPoint):
    """An ``ActPoint`` with its activation quantizer (``act_quant``; None = float)."""

    quant_weight_names: tuple[str, ...] = ()  # no weights: weight hooks (INQ, freeze, post_step) skip it

    @staticmethod
    def weight_names_of(module: ActPoint) -> tuple[str, ...]:
        """The weights a float ``ActPoint`` would have quantized: none (INQ asks before swapping)."""
        return ()

    def _set_quantizers(self, weight_quant: Quantizer | None, act_quant: Quantizer | None) -> None:
        self.weight_quant = None  # a point has no weight to quantize
        self.act_quant = act_quant

    @classmethod
    def from_float(cls, module: ActPoint, weight_quant: Quantizer | None, act_quant: Quantizer | None):
        q = cls(module.role, module.signed)
        q.train(module.training)
        q._set_quantizers(weight_quant, act_quant)
        return q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quantize_input(x)
