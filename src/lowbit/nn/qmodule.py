"""The quantized-twin mixin and the float -> quantized swap table (the optimum-quanto pattern).

A twin holds the float module's own latent weights (the very same Parameter objects, so an optimizer made
before the swap still updates them) plus two quantizer submodules: ``weight_quant`` applied to the weight on
read and ``act_quant`` applied to the layer's input. Either may be None (float). The quantizers may bring new
parameters (PACT's α, LSQ's steps, TTQ's scales) that such an optimizer does not hold: see
``lowbit.quantize_(..., optimizer=)`` and ``lowbit.check_optimizer``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

from ..quantizers import Quantizer

QUANT_TWINS: dict[type[nn.Module], type[nn.Module]] = {}
T = TypeVar("T", bound=type[nn.Module])


def register_twin(float_cls: type[nn.Module]) -> Callable[[T], T]:
    """Class decorator: ``quantize_`` swaps exact instances of ``float_cls`` for the decorated class."""

    def deco(cls: T) -> T:
        QUANT_TWINS[float_cls] = cls
        cls.float_class = float_cls
        return cls

    return deco


class QuantMixin:
    """Shared behaviour of the quantized twins. Subclasses implement ``from_float`` and ``forward``."""

    float_class: type[nn.Module]
    weight_quant: Quantizer | None
    act_quant: Quantizer | None
    # Names of the parameters the weight quantizer acts on (recurrent twins have several).
    quant_weight_names: tuple[str, ...] = ("weight",)

    def _set_quantizers(self, weight_quant: Quantizer | None, act_quant: Quantizer | None) -> None:
        self.weight_quant = weight_quant
        self.act_quant = act_quant

    def latent_weight(self, name: str = "weight") -> torch.Tensor:
        """The tensor the weight quantizer reads for ``name``: the parameter itself (BN-folded twins: W·s)."""
        return getattr(self, name)

    def weight_quantizer(self, name: str = "weight") -> Quantizer | None:
        """The quantizer applied to weight ``name`` (recurrent twins keep one copy per matrix)."""
        return self.weight_quant

    def quantized_weight(self, name: str = "weight") -> torch.Tensor:
        """The weight as the forward pass uses it (fake-quantized, straight-through).

        In eval mode without autograd the result is cached until the latent weight or the quantizer's
        state changes (tensor version counters), so inference quantizes each weight once.
        """
        w = getattr(self, name)
        q = self.weight_quantizer(name)
        if q is None:
            return w
        if self.training or torch.is_grad_enabled() or torch.compiler.is_compiling():
            # traced by torch.compile / torch.export: the cache key reads version counters and data pointers on
            # the host, and a compiled graph has no use for a Python-side cache anyway
            return q(w)
        cache = self.__dict__.setdefault("_wq_cache", {})
        hit = cache.get(name)
        if hit is not None and hit[0] == _state_key(w, q):
            return hit[1]
        value = q(w)  # may calibrate the quantizer: take the key afterwards
        cache[name] = (_state_key(w, q), value)
        return value

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.act_quant is None else self.act_quant(x)

    @classmethod
    def from_float(cls, module: nn.Module, weight_quant: Quantizer | None, act_quant: Quantizer | None):
        raise NotImplementedError


def _state_key(w: torch.Tensor, q: nn.Module) -> tuple:
    return (w._version, w.data_ptr(), id(q), tuple((k, v.data_ptr(), v._version) for k, v in q.state_dict().items()))


def adopt_parameters(new: nn.Module, old: nn.Module) -> None:
    """Move ``old``'s parameters, buffers and training flag onto ``new`` (same objects, no copies)."""
    for name, p in old.named_parameters(recurse=False):
        setattr(new, name, p)
    for name, b in old.named_buffers(recurse=False):
        new.register_buffer(name, b)
    new.train(old.training)
