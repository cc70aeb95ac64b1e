"""The quantizer base class: a small named object backed by pure functions.

A quantizer is an ``nn.Module`` because some methods learn parameters (PACT's alpha, LSQ's step) or keep
calibrated statistics (the uniform quantizer's L2-optimal step). Calling it returns the fake-quantized
tensor (same shape and dtype) with the straight-through gradient its spec section defines.

Under mixed precision (``torch.autocast``, ``TrainConfig.amp``) the quantized twins hand their activation
quantizers float32 (``float32_under_autocast``): a layer's output under autocast is bfloat16/float16, and the grid
arithmetic (x / Δ, rounding to an integer code, clamping) in bfloat16's 8 significant bits would pick wrong codes
and leave values off the grid. autocast itself does not touch these element-wise ops, so without the cast they
would run in the input's low precision. Weights are float32 parameters: weight quantizers see float32 anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

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


class ExportedCodes(NamedTuple):
    """What ``Quantizer.export_codes`` returns (see there)."""

    codes: torch.Tensor  # integer codes, the weight's shape
    scale: torch.Tensor  # affine: float32 scalar or (C_out,); pow2: int64 [n1, n2]
    zero_point: torch.Tensor | None  # affine: integer scalar or (C_out,); pow2: None
    kind: str  # "affine" | "pow2"
    bits: int  # the code width


class ActivationGrid(NamedTuple):
    """What ``Quantizer.export_activation`` returns (see there)."""

    scale: float
    zero_point: int
    qmin: int
    qmax: int
    rounding: str  # "half_even" | "half_up"


def opmath(dtype: torch.dtype) -> torch.dtype:
    """The dtype torch does scalar arithmetic in for a ``dtype`` tensor: float64 for float64, float32 otherwise.

    Quantizers keep their scalars (α, Δ, FSR, ...) as 0-dim tensors in this dtype instead of Python floats,
    with values chosen to be exactly what the Python-float arithmetic gave (each use says why).
    """
    return torch.float64 if dtype == torch.float64 else torch.float32


@torch.compiler.disable
def run_eager(init: Callable[[torch.Tensor], None], x: torch.Tensor, who: str) -> None:
    """Run a quantizer's data-dependent state update ``init(x)`` eagerly, outside any compiled graph.

    The ``forward`` of every quantizer is tensor ops only (no ``.item()``, ``float(t)``, ``bool(t)``): it
    branches on Python state and shapes, never on tensor values, so ``torch.compile`` traces it whole and
    ``torch.export`` exports it. What cannot be written that way is a quantizer's lazy initialisation from the
    first tensor it sees when nothing calibrated it (uniform's L2 step search, LSQ's and TTQ's initial scales,
    log2's FSR, pot's exponent): a search that reads values on the host by nature. ``lowbit.calibrate`` (which
    ``fit`` runs first) sets that state beforehand, so in training it never runs; when it does (a quantizer
    used without calibration), it runs here. Under ``torch.compile`` that is one graph break on that first
    call; the state it sets changes a shape or a Python flag, so the next call compiles a clean graph.
    ``update="always"`` (uniform, pot), which re-estimates from every tensor, runs here on every call: that
    mode is eager by design. ``torch.export`` cannot run a host-side search: it asks for calibration.
    """
    if torch.compiler.is_exporting():
        raise RuntimeError(
            f"{who}: the quantizer's state is not set (or update='always' re-estimates it on every call); "
            "torch.export needs it fixed first: lowbit.calibrate(model, batches), or one eager forward"
        )
    init(x)


_HALF = (torch.float16, torch.bfloat16)


def float32_under_autocast(x: torch.Tensor) -> torch.Tensor:
    """``x`` as float32 when it is float16/bfloat16 under autocast (module docstring); otherwise ``x`` itself, so
    a model converted to bfloat16 on purpose stays bfloat16. Dtype and autocast state are host facts: no sync."""
    if x.dtype in _HALF and torch.is_autocast_enabled(x.device.type):
        return x.float()
    return x


class Quantizer(nn.Module):
    """Base class. Subclasses set ``name``/``kind``/``reference`` and implement ``forward`` and ``levels``.

    kind: "weight" (signed, acts on weight tensors), "act" (activations) or "both".

    The protocol: every hook the rest of lowbit calls on a quantizer is declared here with a no-op default,
    so callers never probe with ``hasattr``/``getattr`` and a new quantizer overrides only what it needs:

    - ``calibrate(x)``: set ranges/steps from data (``lowbit.calibrate`` passes an activation quantizer every
      input it saw over the calibration batches, concatenated and flattened; a weight quantizer its weight).
      ``needs_calibration()`` says whether a data-derived range is still unset (``fit`` calibrates exactly
      those quantizers before training, so a second ``fit`` or a loaded checkpoint keeps its learned values).
    - ``post_step(weight)``: constrain a latent weight in place after each optimizer step (BinaryConnect).
    - ``regularizer()``: a loss term the trainer adds to the task loss, or None (PACT's λ_α·α²).
    - ``lr_scale(weight)``: a factor on that weight's learning rate (1.0; BinaryConnect's 1/H option).
    - ``per_parameter_state``: True when one object keeps the state of every weight matrix it quantizes
      (INQ), so recurrent twins share it instead of deep-copying one quantizer per matrix.
    - ``signed_input``: False for quantizers whose grid starts at 0 (they map negative inputs to 0);
      ``lowbit.calibrate`` warns once when most of such a quantizer's calibration input is negative.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "both"
    reference: ClassVar[str] = ""
    min_bits: ClassVar[int] = 1
    max_bits: ClassVar[int] = MAX_BITS
    per_parameter_state: ClassVar[bool] = False

    def __init__(self, bits: int):
        super().__init__()
        self.bits = check_bits(
            bits, name=self.name or type(self).__name__, min_bits=self.min_bits, max_bits=self.max_bits
        )

    # ------------------------------------------------------------------ hooks (no-op defaults)
    @property
    def signed_input(self) -> bool:
        """Whether negative inputs can come out negative (False: an unsigned grid {0, ...})."""
        return True

    def calibrate(self, x: torch.Tensor) -> None:
        """Set data-derived ranges/steps from ``x`` (no-op: nothing to calibrate)."""

    def needs_calibration(self) -> bool:
        """True while a range/step that comes from data is still unset (False: nothing to calibrate)."""
        return False

    def post_step(self, weight: torch.Tensor) -> None:
        """Constrain the latent ``weight`` in place after an optimizer step (no-op by default)."""

    def regularizer(self) -> torch.Tensor | None:
        """A term for the trainer to add to the task loss (None: no term)."""
        return None

    def lr_scale(self, weight: torch.Tensor) -> float:
        """Factor on the learning rate of the latent ``weight`` this quantizer acts on (BinaryConnect's
        per-layer W_LR_scale); ``lowbit.train.fit`` puts weights with a factor != 1 in their own param group."""
        return 1.0

    # ------------------------------------------------------------------ export / freeze hooks (deploy)
    # The quantizer declares what freezing and export need (issue 10 item 7, issue 12), so lowbit.deploy never
    # switches on quantizer names or classes. Both default to None: "no integer form, use the generic one".
    def export_codes(self, w: torch.Tensor, name: str = "weight") -> ExportedCodes | None:
        """Integer codes of the eval-mode weight ``self(w)`` (``name``: the parameter, for per-parameter state).

        kind "affine": value = scale·(codes - zero_point), scale a scalar or one per dim-0 channel.
        kind "pow2":   codes = sign<<(b-1) | nonzero<<(b-2) | k, value = ±2^(n2 + k) (spec §1.1); ``scale`` is
                       the int64 exponent range [n1, n2] (empty: all-zero tensor), zero_point None.
        None: no closed integer form; deploy falls back to the codebook of the values actually used.
        Raise ValueError when the weight cannot be frozen yet (INQ before its last portion).
        """
        return None

    def export_activation(self) -> ActivationGrid | None:
        """The affine integer grid the eval-mode output of an activation quantizer lies on, or None.

        The output is scale·(clamp(round(x/scale) + zero_point, qmin, qmax) - zero_point), rounded as
        ``rounding`` says ("half_even" = torch.round, "half_up" = floor(x + 0.5)).
        """
        return None

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
