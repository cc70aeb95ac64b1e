"""Ternary weights: TWN (Li, Zhang, Liu 2016, spec §4d) and TTQ (Zhu, Han, Mao, Dally 2017, arXiv 1612.01064).

TWN, per layer (default) or per output channel (``per_channel=True``, not the paper):
    Δ = 0.7·mean|W|;  T = +1 if W > Δ, -1 if W < -Δ, else 0   (strict);  α = mean of |W| over {|W| > Δ}
    W_q = α·T, identity STE; α = 0 when nothing lies above Δ (all-zero weights included).

TTQ: learned positive and negative scales W^p, W^n (nn.Parameters, one pair per layer):
    Δ = t·max|W| (t = 0.05, no gradient);  W_t = W^p if W >= Δ, -W^n if W <= -Δ, else 0   (W = 0 stays 0)
    ∂L/∂W^p = Σ_{W >= Δ} g,   ∂L/∂W^n = -Σ_{W <= -Δ} g                    (paper Eq. 7)
    ∂L/∂W   = W^p·g if W >= Δ,  g if |W| < Δ,  W^n·g if W <= -Δ           (paper Eq. 8)
This follows the official code (czhu95/ternarynet @ 3fe8613, ``examples/Ternary-Net/ternary.py``,
``tw_ternarize``): ``thre_x = stop_gradient(max|x|·thre)``; ``Wp``/``Wn`` are variables with ``initializer=1.0``;
only ``(x < thre_x) & (x > -thre_x)`` is zeroed, so |W| == Δ is non-zero (at the initial scales it maps to ±1).
The official code multiplies such a boundary weight by its mask's default 1 rather than by W^p/W^n; lowbit
gives it ±W^p/∓W^n so the layer keeps three levels (the two agree at the initial W^p = W^n = 1; the case
has measure zero once training moves the scales).

``init`` chooses the scales set on the first call:
    "official" (default): W^p = W^n = 1.0, as the official code (the paper, Zhu et al. 2017, does not state it).
    "mean": each side's mean |W| over its non-zero set (0 when the side is empty): TWN's α per side, the closest
        ternary approximation with the TTQ threshold (lowbit's earlier default).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .base import Quantizer, run_eager
from .registry import register

TWN_RATIO = 0.7


def _ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Forward exactly q, backward identity: q + (x - x.detach()) adds an exact 0 (x + (q - x) can be off by an ulp)."""
    return q.detach() + (x - x.detach())


def _rows(x: torch.Tensor, per_channel: bool) -> torch.Tensor:
    """(groups, n) view: one row per output channel, or a single row for the whole tensor (spec §0)."""
    return x.reshape(x.shape[0], -1) if per_channel and x.dim() >= 1 else x.reshape(1, -1)


def twn_quantize(w: torch.Tensor, per_channel: bool = False) -> torch.Tensor:
    """The TWN forward value (no gradient): α·T with Δ = 0.7·mean|W| (spec §4d)."""
    if w.numel() == 0:
        return w.clone()
    r = _rows(w, per_channel)
    a = r.abs()
    delta = TWN_RATIO * a.mean(dim=1, keepdim=True)
    t = (r > delta).to(r.dtype) - (r < -delta).to(r.dtype)
    count = t.abs().sum(dim=1, keepdim=True)
    alpha = torch.where(count > 0, (a * t.abs()).sum(dim=1, keepdim=True) / count.clamp_min(1), 0.0)
    return (alpha * t).reshape(w.shape)


@register("twn")
class TernaryWeightNetwork(Quantizer):
    """TWN ternary weights {-α, 0, α} (spec §4d). ``per_channel``: Δ and α per output channel (dim 0)."""

    kind = "weight"
    reference = "Li, Zhang, Liu 2016, Ternary Weight Networks (arXiv 1605.04711); spec §4d"
    min_bits = 2
    max_bits = 2

    def __init__(self, bits: int = 2, per_channel: bool = False):
        super().__init__(bits)
        self.per_channel = bool(per_channel)

    def config(self) -> dict[str, Any]:
        return {"bits": self.bits, "per_channel": self.per_channel}

    def max_levels(self) -> int:
        return 3  # per quantization group (per output channel when per_channel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ste(x, twn_quantize(x.detach(), self.per_channel))

    def levels(self, x: torch.Tensor) -> torch.Tensor:
        q = twn_quantize(x.detach(), self.per_channel)
        return torch.unique(torch.cat([q.reshape(-1).abs(), -q.reshape(-1).abs(), q.new_zeros(1)]))


TTQ_INITS = ("official", "mean")


def ttq_sides(w: torch.Tensor, delta: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(W >= Δ, W <= -Δ) without W = 0: |W| == Δ is non-zero as in the official code; Δ = 0 keeps zeros at 0."""
    return (w >= delta) & (w > 0), (w <= -delta) & (w < 0)


class _TTQFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w: torch.Tensor, wp: torch.Tensor, wn: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        pos, neg = ttq_sides(w, delta)
        ctx.save_for_backward(pos, neg, wp, wn)
        return torch.where(pos, wp, torch.where(neg, -wn, torch.zeros_like(w)))

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        pos, neg, wp, wn = ctx.saved_tensors
        gwp = torch.where(pos, g, 0.0).sum().reshape(wp.shape)  # Eq. 7
        gwn = -torch.where(neg, g, 0.0).sum().reshape(wn.shape)
        gw = torch.where(pos, wp * g, torch.where(neg, wn * g, g))  # Eq. 8
        return gw, gwp, gwn, None


def ttq_delta(w: torch.Tensor, t: float) -> torch.Tensor:
    """Δ = t·max|W| as a 0-dim tensor (no host sync), the value the Python-float product gave.

    max|W| is a value of W's dtype and t a Python float: the reference multiplies in double precision and the
    comparison with W rounds Δ to W's dtype. Computed here in float64 too (a 0-dim op), except on MPS, which
    has no float64 (there Δ = float32(t)·max|W| may differ from it by an ulp).
    """
    if w.numel() == 0:
        return w.new_zeros(())
    dt = torch.float32 if w.device.type == "mps" else torch.float64
    return w.detach().abs().max().to(dt) * t


def ttq_quantize(w: torch.Tensor, wp: torch.Tensor, wn: torch.Tensor, t: float) -> torch.Tensor:
    """TTQ with the paper's gradients to W, W^p and W^n (Δ = t·max|W|, no gradient)."""
    return _TTQFn.apply(w, wp, wn, ttq_delta(w, t))


@register("ttq")
class TrainedTernary(Quantizer):
    """Trained Ternary Quantization: {-W^n, 0, W^p} with learned scales (Zhu et al. 2017)."""

    kind = "weight"
    reference = "Zhu, Han, Mao, Dally 2017, Trained Ternary Quantization (arXiv 1612.01064)"
    min_bits = 2
    max_bits = 2

    def __init__(self, bits: int = 2, t: float = 0.05, init: str = "official"):
        super().__init__(bits)
        if not (isinstance(t, (int, float)) and 0 <= t < 1):
            raise ValueError(f"ttq: t={t!r} is not accepted; expected a number in [0, 1)")
        if init not in TTQ_INITS:
            raise ValueError(f"ttq: init={init!r} is not accepted; expected one of {TTQ_INITS}")
        self.t, self.init = float(t), init
        self.wp = nn.Parameter(torch.ones(()))
        self.wn = nn.Parameter(torch.ones(()))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self._ready = False  # the buffer's value as a Python bool, for ``forward`` (as LSQ's)

    def config(self) -> dict[str, Any]:
        return {"bits": self.bits, "t": self.t, "init": self.init}

    def max_levels(self) -> int:
        return 3

    def reset(self) -> None:
        self.initialized.fill_(False)
        self._ready = False

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if prefix + "initialized" in state_dict:
            self._ready = bool(state_dict[prefix + "initialized"])

    def needs_calibration(self) -> bool:
        return not self._ready

    def calibrate(self, x: torch.Tensor) -> None:
        """Initialise W^p, W^n from the weight ``x`` (what the first forward would do).

        With ``init="official"`` the start (1, 1) does not depend on data: once initialised, the learned scales
        are kept (re-calibrating would only reset them to 1).
        """
        if self.init == "official" and self._ready:
            return
        self.init_scales(x.detach())

    @torch.no_grad()
    def init_scales(self, w: torch.Tensor) -> None:
        """``init="official"``: W^p = W^n = 1; ``"mean"``: each side's mean |W| at or beyond Δ (0 when empty)."""
        if self.init == "official":
            self.wp.fill_(1.0)
            self.wn.fill_(1.0)
        else:
            delta = float(w.abs().max()) * self.t if w.numel() else 0.0
            pos, neg = ttq_sides(w, delta)
            self.wp.fill_(float(w[pos].mean()) if pos.any() else 0.0)
            self.wn.fill_(float(-w[neg].mean()) if neg.any() else 0.0)
        self.initialized.fill_(True)
        self._ready = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._ready:  # never calibrated: the scales from this first weight, eagerly
            run_eager(self.init_scales, x.detach(), "ttq")
        return ttq_quantize(x, self.wp.to(x.dtype), self.wn.to(x.dtype), self.t)

    def levels(self, x: torch.Tensor) -> torch.Tensor:
        if not self._ready:
            self.init_scales(x.detach())
        vals = [-float(self.wn.detach()), 0.0, float(self.wp.detach())]
        return torch.unique(torch.tensor(vals, dtype=x.dtype))
