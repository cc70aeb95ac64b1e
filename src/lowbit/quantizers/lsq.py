"""LSQ: Learned Step Size Quantization (Esser et al., ICLR 2020, arXiv 1902.08153), spec §4h, as lsq-net.

    v̂ = round_pass(clamp(v/s', -Q_N, Q_P))·s',   s' = grad_scale(s, g)
    unsigned (activations): Q_N = 0, Q_P = 2^b - 1;  signed (weights): Q_N = 2^(b-1), Q_P = 2^(b-1) - 1
    (``symmetric=True``: Q_N = Q_P = 2^(b-1) - 1, the lsq-net option)
    g = 1/sqrt(N·Q_P);  N = x.numel() for weights, x.numel()/batch (per-example features) for activations
    init on the first call: s = 2·mean|v|/sqrt(Q_P);  s is used as max(s, 1e-8)
Autograd then gives ∂v̂/∂s = -v/s + round(v/s) inside, -Q_N / Q_P outside, and ∂v̂/∂v = 1_{-Q_N < v/s < Q_P}.
The boundary v/s = -Q_N or Q_P is in the clipped branch (∂v̂/∂v = 0, ∂v̂/∂s = -Q_N or Q_P), as the paper's
piecewise gradient (Esser et al. 2020, Eq. 3) puts it; lsq-net's torch.clamp would pass the gradient there
(∂v̂/∂v = 1, ∂v̂/∂s = 0), so the clip is written with an open interval. torch.round: half-even.
Signed 1-bit gives Q_P = 0 (g and the init divide by zero): rejected.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .base import ActivationGrid, ExportedCodes, Quantizer, run_eager
from .registry import register

S_MIN = 1e-8


def grad_scale(x: torch.Tensor, g: float) -> torch.Tensor:
    """Value x, gradient scaled by g. lsq-net writes (x - x·g).detach() + x·g; this form has the same gradient
    and returns x exactly (the lsq-net sum can be off by an ulp)."""
    return x.detach() + (x * g - (x * g).detach())


def round_pass(x: torch.Tensor) -> torch.Tensor:
    """Value round(x) (exactly), identity gradient: lsq-net's (round(x) - x).detach() + x, ulp-exact."""
    return torch.round(x).detach() + (x - x.detach())


def lsq_bounds(bits: int, signed: bool, symmetric: bool = False) -> tuple[int, int]:
    """(Q_N, Q_P) of spec §4h."""
    if not signed:
        return 0, 2**bits - 1
    qp = 2 ** (bits - 1) - 1
    return (qp if symmetric else 2 ** (bits - 1)), qp


def clip_open(r: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Value clamp(r, lo, hi); gradient 1 only on the open interval lo < r < hi (the boundary is clipped, §4h)."""
    return torch.where((r > lo) & (r < hi), r, torch.clamp(r.detach(), lo, hi))


def lsq_quantize(x: torch.Tensor, s: torch.Tensor, qn: int, qp: int, g: float) -> torch.Tensor:
    s2 = grad_scale(torch.clamp(s, min=S_MIN), g)
    return round_pass(clip_open(x / s2, -qn, qp)) * s2


@register("lsq")
class LSQQuantizer(Quantizer):
    """LSQ with a learned step s (one nn.Parameter per layer), spec §4h.

    Args:
        signed: True for weights (default), False for post-ReLU activations.
        per_example: count N per example (activations, spec §11.15) or over the whole tensor (weights);
            None picks per-example exactly when ``signed`` is False.
    """

    kind = "both"
    reference = "Esser et al. 2020, LSQ (arXiv 1902.08153); zhutmost/lsq-net; spec §4h"

    def __init__(self, bits: int = 4, signed: bool = True, symmetric: bool = False, per_example: bool | None = None):
        super().__init__(bits)
        if signed and self.bits == 1:
            raise ValueError(
                "lsq: bits=1 is not accepted for signed (weight) quantization: Q_P = 2^(b-1) - 1 = 0 makes "
                "the gradient scale and the init divide by zero; use bits >= 2, or signed=False"
            )
        self.signed, self.symmetric = bool(signed), bool(symmetric)
        self.per_example = (not self.signed) if per_example is None else bool(per_example)
        self.per_example_given = per_example
        self.qn, self.qp = lsq_bounds(self.bits, self.signed, self.symmetric)
        self.s = nn.Parameter(torch.ones(()))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        # The same fact as a Python bool, which ``forward`` branches on: reading the buffer there would be a host
        # sync on every call (and a graph break). Kept equal to the buffer by init_step, reset and loading.
        self._ready = False

    def config(self) -> dict[str, Any]:
        return {
            "bits": self.bits,
            "signed": self.signed,
            "symmetric": self.symmetric,
            "per_example": self.per_example_given,
        }

    def max_levels(self) -> int:
        return self.qn + self.qp + 1

    def reset(self) -> None:
        self.initialized.fill_(False)
        self._ready = False

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if prefix + "initialized" in state_dict:
            self._ready = bool(state_dict[prefix + "initialized"])

    @property
    def signed_input(self) -> bool:
        return self.signed

    def needs_calibration(self) -> bool:
        return not self._ready

    def calibrate(self, x: torch.Tensor) -> None:
        """The paper's init s = 2·mean|v|/sqrt(Q_P) over ``x`` (all calibration inputs, or the weight)."""
        self.init_step(x.detach())

    @torch.no_grad()
    def init_step(self, x: torch.Tensor) -> None:
        """s = 2·mean|v|/sqrt(Q_P) (lsq-net ``init_from``); 0 for an all-zero tensor (then clamped to 1e-8)."""
        m = float(x.abs().mean()) if x.numel() else 0.0
        self.s.fill_(2 * m / math.sqrt(self.qp))
        self.initialized.fill_(True)
        self._ready = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits >= 32:
            return x
        if not self._ready:  # never calibrated: the paper's init from this first tensor, eagerly
            run_eager(self.init_step, x.detach(), "lsq")
        n = x.numel() / x.shape[0] if self.per_example and x.dim() > 0 and x.shape[0] > 0 else x.numel()
        g = 1.0 / math.sqrt(max(n, 1) * self.qp)
        return lsq_quantize(x, self.s.to(x.dtype), self.qn, self.qp, g)

    # export hooks (base.Quantizer): codes -Q_N..Q_P of the learned step s
    @torch.no_grad()
    def export_codes(self, w: torch.Tensor, name: str = "weight") -> ExportedCodes | None:
        if self.bits >= 32:
            return None
        qw = self(w.detach())
        s = torch.tensor(max(float(self.s.detach()), S_MIN), dtype=torch.float32)
        codes = torch.round(qw.to(torch.float32) / s).to(torch.int32)
        return ExportedCodes(codes, s, torch.zeros((), dtype=torch.int32), "affine", self.bits)

    def export_activation(self) -> ActivationGrid | None:
        if self.bits >= 32 or not self._ready:
            return None
        return ActivationGrid(max(float(self.s.detach()), S_MIN), 0, -self.qn, self.qp, "half_even")

    def levels(self, x: torch.Tensor) -> torch.Tensor:
        if not self._ready:
            self.init_step(x.detach())
        s = max(float(self.s.detach()), S_MIN)
        return torch.arange(-self.qn, self.qp + 1, dtype=torch.float64).mul(s).to(x.dtype)
