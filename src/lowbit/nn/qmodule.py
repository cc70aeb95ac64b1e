"""The quantized-twin mixin and the float -> quantized swap table (the optimum-quanto pattern).

A twin holds the float module's own latent weights (the very same Parameter objects, so an optimizer made
before the swap still updates them) plus two quantizer submodules: ``weight_quant`` applied to the weight on
read and ``act_quant`` applied to the layer's input. Either may be None (float). The quantizers may bring new
parameters (PACT's α, LSQ's steps, TTQ's scales) that such an optimizer does not hold: see
``lowbit.quantize_(..., optimizer=)`` and ``lowbit.check_optimizer``.

Weight layout: a weight quantizer's per-channel options (uniform ``granularity="per_channel"``, XNOR's α_c, TWN
``per_channel``) and freeze's per-row codebooks act on dim 0, the output channel of Linear/Conv weights. Layers
that store their weight another way (ConvTranspose: (C_in, C_out/groups, k...); transformers' Conv1D: (in, out))
override ``to_quant_layout``/``from_quant_layout``: the quantizer, ``latent_weight`` and the frozen codes see the
weight output-channel first, the layer keeps its parameter (same object, same state_dict shape) as it was.

Optional libraries: the twin of a class from an optional library (transformers' ``Conv1D``) can only be defined
once that library is imported. ``OPTIONAL_TWINS`` maps the library module that defines the float class to the
function that defines and registers the twin; ``load_optional_twins()`` runs those whose library module is already
imported (a model holding such a layer has imported it), so the core never imports the library itself.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Iterable
from typing import TypeVar

import torch
from torch import nn

from ..quantizers import Quantizer
from ..quantizers.base import float32_under_autocast

QUANT_TWINS: dict[type[nn.Module], type[nn.Module]] = {}
T = TypeVar("T", bound=type[nn.Module])

# library module that defines a float class -> the function that defines and registers its twin (importing it);
# filled by the twin modules themselves (hf_conv1d.py)
OPTIONAL_TWINS: dict[str, Callable[[], object]] = {}


def load_optional_twins() -> None:
    """Register the twins of optional libraries' layers whose library module is already imported (see above)."""
    for library_module, register in OPTIONAL_TWINS.items():
        if library_module in sys.modules:
            register()


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

    def to_quant_layout(self, name: str, w: torch.Tensor) -> torch.Tensor:
        """Weight ``name`` as its quantizer sees it: output channel on dim 0 (the identity for Linear/Conv)."""
        return w

    def from_quant_layout(self, name: str, w: torch.Tensor) -> torch.Tensor:
        """The inverse of ``to_quant_layout``: back to the layout the layer computes with."""
        return w

    def latent_weight(self, name: str = "weight") -> torch.Tensor:
        """The tensor the weight quantizer reads for ``name``: the parameter in the quantizer's layout
        (``to_quant_layout``; BN-folded twins: W·s)."""
        return self.to_quant_layout(name, getattr(self, name))

    def weight_quantizer(self, name: str = "weight") -> Quantizer | None:
        """The quantizer applied to weight ``name`` (recurrent twins keep one copy per matrix)."""
        return self.weight_quant

    def quantized_weight(self, name: str = "weight") -> torch.Tensor:
        """The weight as the forward pass uses it (fake-quantized, straight-through).

        In the layer's own layout (the quantizer runs in ``to_quant_layout``'s). In eval mode without autograd
        the result is cached until the latent weight or the quantizer's state changes (tensor version counters),
        so inference quantizes each weight once.
        """
        w = getattr(self, name)
        q = self.weight_quantizer(name)
        if q is None:
            return w
        if self.training or torch.is_grad_enabled() or torch.compiler.is_compiling():
            # traced by torch.compile / torch.export: the cache key reads version counters and data pointers on
            # the host, and a compiled graph has no use for a Python-side cache anyway
            return self.from_quant_layout(name, q(self.to_quant_layout(name, w)))
        cache = self.__dict__.setdefault("_wq_cache", {})
        hit = cache.get(name)
        if hit is not None and hit[0] == _state_key(w, q):
            return hit[1]
        value = self.from_quant_layout(name, q(self.to_quant_layout(name, w)))  # may calibrate q: key afterwards
        cache[name] = (_state_key(w, q), value)
        return value

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.act_quant is None else self.act_quant(float32_under_autocast(x))

    @classmethod
    def from_float(cls, module: nn.Module, weight_quant: Quantizer | None, act_quant: Quantizer | None):
        raise NotImplementedError


def _state_key(w: torch.Tensor, q: nn.Module) -> tuple:
    return (w._version, w.data_ptr(), id(q), tuple((k, v.data_ptr(), v._version) for k, v in q.state_dict().items()))


def quantizer_copies(template: Quantizer | None, names: Iterable[str]) -> nn.ModuleDict:
    """One deep copy of ``template`` per name (empty when None or a per-parameter-state quantizer, which is
    shared): roles of one layer (MHA's Q, K, V, ...) calibrate their own steps from the same configuration."""
    if template is None or template.per_parameter_state:
        return nn.ModuleDict()
    return nn.ModuleDict({n: copy.deepcopy(template) for n in names})


def adopt_parameters(new: nn.Module, old: nn.Module) -> None:
    """Move ``old``'s parameters, buffers and training flag onto ``new`` (same objects, no copies)."""
    for name, p in old.named_parameters(recurse=False):
        setattr(new, name, p)
    for name, b in old.named_buffers(recurse=False):
        new.register_buffer(name, b)
    new.train(old.training)
