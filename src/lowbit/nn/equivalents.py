"""Which twin a layer gets: exact float classes, their subclasses, and layers lowbit must not swap.

``QUANT_TWINS`` maps exact float classes (nn.Linear, nn.Conv2d, ...) to their twins. Models users bring hold
subclasses of them: timm's ``timm.layers.Linear`` head, PyTorch's ``NonDynamicallyQuantizableLinear`` (every
``MultiheadAttention.out_proj``), a project's own ``MyConv(nn.Conv2d)``. A twin recomputes the layer from its
parameters with the base class's arithmetic, so a subclass can take its base's twin exactly when it computes what
the base computes:

- it does not override the methods that compute the output (``forward``, and ``_conv_forward`` for convolutions):
  its instances are swapped for the base's twin (a new ``__init__``, ``reset_parameters`` or ``extra_repr`` do not
  change the output);
- or it is registered as equivalent, ``register_equivalent(cls, base)``: its own ``forward`` is known to compute
  the same as ``base``'s (timm's ``Linear`` casts the weight's dtype under TorchScript only; lowbit registers it
  when timm is imported, without importing timm itself);
- otherwise ``twin_for`` raises ``UnsupportedLayerError`` naming the class and the layer and how to proceed: keep
  it float (``QuantConfig.keep_float``), or register it as equivalent if its forward is a re-statement of the
  base's. Quantizing it silently with the base's arithmetic, or skipping it silently, would both be wrong.

A float module whose ``forward`` reads a child layer's weight directly instead of calling it is opaque
(``nn.MultiheadAttention`` reads ``out_proj.weight`` through ``F.multi_head_attention_forward``): while it stays
float its child layers never run, so ``quantize_`` keeps them float with it (their twin lets them run once the
parent is quantized: ``QuantMultiheadAttention`` calls ``out_proj``).
"""

from __future__ import annotations

import sys

from torch import nn
from torch.nn.parameter import is_lazy

from .qmodule import OPTIONAL_TWINS, QUANT_TWINS, QuantMixin, load_optional_twins

EQUIVALENT: dict[type[nn.Module], type[nn.Module]] = {}  # subclass -> the float base whose twin it takes
COMPUTE_METHODS = ("forward", "_conv_forward")  # what computes a layer's output (where the base has them)
OPAQUE: tuple[type[nn.Module], ...] = (nn.MultiheadAttention,)  # forward reads children's weights directly


class UnsupportedLayerError(TypeError):
    """A subclass of a quantizable layer whose forward lowbit cannot honour."""


def register_equivalent(cls: type[nn.Module], base: type[nn.Module]) -> None:
    """Declare that ``cls`` (a subclass of ``base``) computes exactly what ``base`` computes, so ``quantize_``
    swaps its instances for ``base``'s twin (with ``base``'s arithmetic: ``cls.forward`` no longer runs)."""
    if not (isinstance(cls, type) and isinstance(base, type) and issubclass(cls, base)):
        raise TypeError(f"register_equivalent: {cls!r} must be a subclass of {base!r}")
    if base not in QUANT_TWINS:
        known = ", ".join(sorted(c.__name__ for c in QUANT_TWINS))
        raise ValueError(f"register_equivalent: {base.__name__} has no quantized twin; layers with twins: {known}")
    EQUIVALENT[cls] = base


def _register_timm_linear() -> None:
    """timm's ``timm.layers.Linear`` overrides forward with F.linear(input, self.weight, self.bias) outside
    TorchScript (it casts the weight's dtype only when scripted; timm 1.0): nn.Linear's arithmetic."""
    cls = getattr(sys.modules.get("timm.layers.linear"), "Linear", None)
    if isinstance(cls, type) and issubclass(cls, nn.Linear):
        EQUIVALENT.setdefault(cls, nn.Linear)


# optional libraries' subclasses, registered when their module is already imported (the core never imports timm)
OPTIONAL_TWINS.setdefault("timm.layers.linear", _register_timm_linear)


def float_base(cls: type[nn.Module]) -> type[nn.Module] | None:
    """The nearest class in ``cls``'s MRO that has a twin (``cls`` itself for an exact float layer), or None."""
    if issubclass(cls, QuantMixin):
        return None
    return next((c for c in cls.__mro__ if c in QUANT_TWINS), None)


def overridden(cls: type[nn.Module], base: type[nn.Module]) -> list[str]:
    """The compute methods ``cls`` defines differently from ``base``."""
    return [n for n in COMPUTE_METHODS if hasattr(base, n) and getattr(cls, n) is not getattr(base, n)]


def twin_for(module: nn.Module, name: str = "") -> type[nn.Module] | None:
    """The twin class ``quantize_`` swaps ``module`` for; None when it is not a layer of a kind lowbit quantizes.

    Raises ``UnsupportedLayerError`` (naming the class and ``name``) for a subclass whose forward differs from its
    base's and that is not registered as equivalent.
    """
    cls = type(module)
    base = float_base(cls)
    if base is None:
        return None
    where = f"layer {name!r}" if name else "a layer"
    if any(is_lazy(p) for p in module.parameters(recurse=False)):
        raise UnsupportedLayerError(
            f"quantize_: {where} ({cls.__name__}) has uninitialized (lazy) parameters; run one forward pass to "
            "materialize them before quantize_"
        )
    if cls is base:
        return QUANT_TWINS[base]
    load_optional_twins()
    if cls in EQUIVALENT:
        return QUANT_TWINS[EQUIVALENT[cls]]
    changed = overridden(cls, base)
    if not changed:
        return QUANT_TWINS[base]
    raise UnsupportedLayerError(
        f"quantize_: {where} is a {cls.__module__}.{cls.__qualname__}, a subclass of {_qualified(base)} that "
        f"overrides {' and '.join(changed)}, which lowbit's {QUANT_TWINS[base].__name__} cannot honour; keep it "
        f"float (QuantConfig(keep_float=[{name or '<its name>'!r}])), or, if its forward computes exactly what "
        f"{base.__name__}'s does, call lowbit.nn.register_equivalent({cls.__qualname__}, {_qualified(base)})"
    )


def _qualified(cls: type) -> str:
    return f"torch.nn.{cls.__name__}" if cls.__module__.startswith("torch.nn.") else cls.__qualname__


def float_opaque(module: nn.Module) -> bool:
    """True for a float module whose forward reads its child layers' weights directly (they never run)."""
    return isinstance(module, OPAQUE) and not isinstance(module, QuantMixin)


__all__ = [
    "EQUIVALENT",
    "OPAQUE",
    "UnsupportedLayerError",
    "float_base",
    "float_opaque",
    "register_equivalent",
    "twin_for",
]
