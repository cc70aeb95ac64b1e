"""The quantizer base class: a small named object backed by pure functions.

A quantizer is an ``nn.Module`` because some methods learn parameters (PACT's alpha, LSQ's step) or keep
calibrated statistics (the uniform quantizer's L2-optimal step). Calling it returns the fake-quantized
tensor (same shape and dtype) with the straight-through gradient its spec section defines.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

MAX_BITS = 32


def check_bits(bits: Any, *, name: str, min_bits: int = 1, max_bits: int = MAX_BITS) -> int:
    """Validate a bit width and return it as an int; the error names the value and what is accepted."""
    ok = isinstance(bits, int) and not isinstance(bits, bool)
    if isinstance(bits, float) and bits.is_integer():
        bits, ok = int(bits), True
    if not ok or not (min_bits <= bits <= max_bits):
        raise ValueError(
            f"{name}: bits={bits!r} is not accepted; expected a whole number from {min_bits} to {max_bits}"
        )
    return bits


class Quantizer(nn.Module):
    """Base class. Subclasses set ``name``/``kind``/``reference`` and implement ``forward`` and ``levels``.

    kind: "weight" (signed, acts on weight tensors), "act" (activations) or "both".
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "both"
    reference: ClassVar[str] = ""
    min_bits: ClassVar[int] = 1
    max_bits: ClassVar[int] = MAX_BITS

    def __init__(self, bits: int):
        super().__init__()
        self.bits = check_bits(
            bits, name=self.name or type(self).__name__, min_bits=self.min_bits, max_bits=self.max_bits
        )

    def levels(self, x: torch.Tensor) -> torch.Tensor:
        """Sorted 1-D tensor of every value ``self(x)`` can output for this input's statistics."""
        raise NotImplementedError(f"{self.name} has no finite level set")

    def max_levels(self) -> int | None:
        """The most distinct values the method allows at ``self.bits`` (None: not bounded)."""
        return 2**self.bits

    def config(self) -> dict[str, Any]:
        """Constructor arguments, so that ``get(name, **config())`` rebuilds an equivalent quantizer."""
        return {"bits": self.bits}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.config()}

    def reset(self) -> None:
        """Forget calibrated statistics (they are recomputed on the next call)."""

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items())

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Calibrated buffers start empty and take their shape on first use; accept the stored shape.
        for bname, buf in self._buffers.items():
            key = prefix + bname
            if buf is not None and key in state_dict and state_dict[key].shape != buf.shape:
                self._buffers[bname] = torch.empty_like(state_dict[key], dtype=buf.dtype, device=buf.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def is_float_bits(bits: int) -> bool:
    """32 bits means no quantization for every method (spec §4a: 'k=32 means no quantization')."""
    return bits >= MAX_BITS


def finite_or(value: float, default: float) -> float:
    return value if math.isfinite(value) and value > 0 else default
