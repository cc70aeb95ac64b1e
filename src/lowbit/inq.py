"""Incremental Network Quantization (Zhou et al. 2017, arXiv 1702.03044), spec §1.

    inq = lowbit.INQ(model, bits=5, portions=(0.5, 0.75, 0.875, 1.0), optimizer=opt)
    for portion in inq:          # each iteration quantizes and freezes the next portion of every layer
        train(model, opt)        # frozen weights stay exactly on the codebook after every optimizer step

Each quantized layer's weight quantizer becomes an ``INQWeight``: it keeps the layer's codebook (n1, n2
from the *pretrained* weights, spec §11.1), the frozen mask and the stage reached, as buffers, so a
checkpoint of the model is a checkpoint of INQ. Its forward is the identity: the latent weight holds the
exact codebook values where frozen and trains freely elsewhere (Eq. 5-8). A plain float model's
Linear/Conv layers are first swapped for their quantized twins; on a model already passed through
``quantize_``, INQ takes over the layers that have a weight quantizer and keeps their activation quantizers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from .api import _match_all, quantizable_layers, quantize_
from .config import LayerRule, QuantConfig
from .nn import QuantMixin
from .nn.equivalents import twin_for
from .quantizers import Quantizer
from .quantizers.base import ExportedCodes
from .quantizers.pot import inq_exponents, inq_fixed_exponents, inq_levels, inq_round, pow2_export
from .quantizers.registry import register

STRATEGIES = ("magnitude", "random")


@register("inq", listed=False)  # serialize rebuilds it by name like any quantizer; not a user-facing choice
class INQWeight(Quantizer):
    """Per-layer INQ state; forward is the identity (frozen weights already sit on the codebook).

    One codebook and one frozen mask per quantized parameter of the layer (``quant_weight_names``: just
    "weight" for Linear/Conv, several for recurrent layers), stored as buffers ``exp_<name>``/``frozen_<name>``.
    """

    name = "inq"
    kind = "weight"
    reference = "Zhou et al. 2017, INQ (arXiv 1702.03044); spec §1"
    min_bits = 2
    # Holds one codebook/mask per parameter itself: a layer with several weight matrices (recurrent twins)
    # uses this one instance for all of them instead of making per-parameter copies.
    per_parameter_state = True

    def __init__(self, bits: int, names: Sequence[str] = ("weight",), max_value: float | None = None):
        super().__init__(bits)
        if max_value is not None:
            inq_fixed_exponents(max_value, bits)  # a bad max_value is one line before anything changes
        self.max_value = None if max_value is None else float(max_value)
        self.param_names = tuple(names)
        for n in self.param_names:
            self.register_buffer(f"exp_{n}", torch.empty(0, dtype=torch.int64))  # [n1, n2]; empty: all-zero
            self.register_buffer(f"frozen_{n}", torch.empty(0, dtype=torch.bool))
        self.register_buffer("stage", torch.tensor(-1, dtype=torch.int64))  # index of the last portion applied

    def config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"bits": self.bits, "names": list(self.param_names)}
        if self.max_value is not None:
            out["max_value"] = self.max_value
        return out

    def max_levels(self) -> int:
        return 2 ** (self.bits - 1) + 1

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w

    def frozen(self, name: str = "weight") -> torch.Tensor:
        return getattr(self, f"frozen_{name}")

    def exponents(self, name: str = "weight") -> tuple[int, int] | None:
        e = getattr(self, f"exp_{name}")
        return None if e.numel() == 0 else (int(e[0]), int(e[1]))

    def levels(self, x: torch.Tensor | None = None, name: str = "weight") -> torch.Tensor:
        e = self.exponents(name)
        return torch.zeros(1) if e is None else inq_levels(*e)

    def export_codes(self, w: torch.Tensor, name: str = "weight") -> ExportedCodes | None:
        """Power-of-two codes of a fully quantized parameter (export hook); raises before the last portion."""
        frozen = self.frozen(name)
        if frozen.numel() and not bool(frozen.all()):
            raise ValueError(
                f"freeze: INQ has quantized only {int(frozen.sum())}/{frozen.numel()} weights of {name!r}; "
                "run every portion (for portion in inq: ...) before freezing"
            )
        return pow2_export(w.detach(), self.exponents(name), self.bits)

    def init_from(self, name: str, w: torch.Tensor) -> None:
        """Codebook from the pretrained weights (spec §1.1: n1 from max|W|, Eq. 3) or, with ``max_value``, the same
        fixed top level 2^n1 = max_value for every layer; an all-zero tensor is frozen at zero (spec §1.4)."""
        s = float(w.detach().abs().max()) if w.numel() else 0.0
        if s == 0.0:
            setattr(self, f"exp_{name}", torch.empty(0, dtype=torch.int64, device=w.device))
            setattr(self, f"frozen_{name}", torch.ones_like(w, dtype=torch.bool))
        else:
            e = (
                inq_exponents(s, self.bits)
                if self.max_value is None
                else inq_fixed_exponents(self.max_value, self.bits)
            )
            setattr(self, f"exp_{name}", torch.tensor(e, device=w.device))
            setattr(self, f"frozen_{name}", torch.zeros_like(w, dtype=torch.bool))


class INQ:
    """Drive incremental quantization over every quantized layer of ``model``.

    Args:
        model: a float model, or one passed through ``quantize_``.
        bits: b >= 2 (INQ is undefined for b = 1, spec §1.4).
        portions: accumulated portions σ_1 < … < σ_K = 1.
        strategy: "magnitude" (pruning-inspired, the default and best in the paper) or "random".
        optimizer: if given, frozen weights are masked before and restored after each of its steps.
        keep_float: selectors of layers to leave in float (float models only; see QuantConfig).
        seed: for the random strategy.
        max_value: None (default): each layer's top level from its own max|W| (Eq. 3). A power of two: the top
            level of every layer's codebook, 2^n1 = max_value (the INQ edge paper's classification setting,
            "the max value of the quantized weights is set to 4.0", spec §1.1); more bits then add smaller powers.
    """

    def __init__(
        self,
        model: nn.Module,
        bits: int,
        portions: Sequence[float] = (0.5, 0.75, 0.875, 1.0),
        strategy: str = "magnitude",
        optimizer: torch.optim.Optimizer | None = None,
        keep_float: Sequence[str] = (),
        seed: int = 0,
        max_value: float | None = None,
    ):
        INQWeight(bits, max_value=max_value)  # validates bits and max_value with a clear message before any change
        portions = tuple(float(p) for p in portions)
        if not portions or any(not 0 < p <= 1 for p in portions) or list(portions) != sorted(set(portions)):
            raise ValueError(
                f"INQ: portions={portions!r} is not accepted; expected strictly increasing numbers in (0, 1]"
            )
        if portions[-1] != 1.0:
            raise ValueError(f"INQ: portions={portions!r} must end with 1.0 so that every weight is quantized")
        if strategy not in STRATEGIES:
            raise ValueError(f"INQ: strategy={strategy!r} is not accepted; expected one of {STRATEGIES}")
        self.bits, self.portions, self.strategy, self.seed = bits, portions, strategy, seed
        self.max_value = max_value
        self.model = model
        self.layers = self._take_over(model, bits, tuple(keep_float), max_value)
        if not self.layers:
            raise ValueError("INQ: the model has no layer to quantize")
        for m in self.layers:
            for n in m.quant_weight_names:
                if m.weight_quant.frozen(n).numel() == 0:
                    m.weight_quant.init_from(n, getattr(m, n))
        self._handles: list[Any] = []
        if optimizer is not None:
            self.attach(optimizer)

    @staticmethod
    def _take_over(
        model: nn.Module, bits: int, keep_float: tuple[str, ...], max_value: float | None = None
    ) -> list[QuantMixin]:
        layers = quantizable_layers(model)
        if any(isinstance(m, QuantMixin) for _, m in layers):
            if keep_float:
                raise ValueError(
                    "INQ: keep_float applies to float models; a quantized model already says which layers are float"
                )
            chosen = [m for _, m in layers if isinstance(m, QuantMixin) and m.weight_quant is not None]
            folded = [type(m).__name__ for m in chosen if type(m).latent_weight is not QuantMixin.latent_weight]
            if folded:  # INQ puts W on powers of two, but the layer computes with W·s (BN folded): not a pow2 model
                raise ValueError(
                    f"INQ: layers with BatchNorm folded into their weights ({folded[0]}) are not supported; run INQ "
                    "on a model quantized without fold_bn"
                )
            for m in chosen:
                if not isinstance(m.weight_quant, INQWeight):
                    m.weight_quant = INQWeight(bits, m.quant_weight_names, max_value)
            return chosen
        names = [n for n, _ in layers]
        kept = {n for hits in _match_all(keep_float, names, "keep_float").values() for n in hits}
        mods = dict(layers)
        weighted = [n for n in names if n not in kept and _weight_names(mods[n], n)]  # activation points have none
        rules = {n: LayerRule(weight=INQWeight(bits, _weight_names(mods[n], n), max_value)) for n in weighted}
        if not rules:
            return []
        quantize_(model, QuantConfig(rules=rules))
        return [m for n, m in quantizable_layers(model) if n in rules]

    # -- the partition schedule ------------------------------------------------------------------------
    @property
    def stage(self) -> int:
        return int(self.layers[0].weight_quant.stage)

    def __len__(self) -> int:
        return len(self.portions)

    def __iter__(self) -> Iterator[float]:
        """Yield each remaining portion after quantizing and freezing it (resumes after a reload)."""
        while self.stage + 1 < len(self.portions):
            self.step()
            yield self.portions[self.stage]

    @torch.no_grad()
    def step(self) -> float:
        """Quantize and freeze the next portion of every layer; return the accumulated portion."""
        k = self.stage + 1
        if k >= len(self.portions):
            raise StopIteration("INQ: every portion has been quantized already")
        sigma = self.portions[k]
        i = 0
        for m in self.layers:
            m.weight_quant.stage.fill_(k)
            for n in m.quant_weight_names:
                self._freeze_portion(getattr(m, n).data, m.weight_quant, n, sigma, self.seed * 1000003 + k * 1009 + i)
                i += 1
        return sigma

    def _freeze_portion(self, w: torch.Tensor, q: INQWeight, name: str, sigma: float, seed: int) -> None:
        frozen, e = q.frozen(name), q.exponents(name)
        if e is None:  # all-zero tensor: zero and frozen from the start (spec §1.4)
            w.zero_()
            return
        n = w.numel()
        target = n if sigma == 1.0 else round(sigma * n)
        count = target - int(frozen.sum())
        if count <= 0:  # very small layers may have nothing to do at a step (spec §1.4)
            return
        flat_w, flat_frozen = w.view(-1), frozen.view(-1)
        cand = (~flat_frozen).nonzero().squeeze(1)
        if self.strategy == "magnitude":
            # largest |W| first; ties -> lower flat index (stable sort), spec §1.3
            order = torch.sort(-flat_w[cand].abs(), stable=True).indices
        else:
            order = torch.randperm(cand.numel(), generator=torch.Generator().manual_seed(seed)).to(cand.device)
        idx = cand[order[:count]]
        flat_w[idx] = inq_round(flat_w[idx], *e)
        flat_frozen[idx] = True

    # -- keeping frozen weights on the codebook ----------------------------------------------------------
    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        """Mask frozen gradients before each step (T-masking) and restore frozen values after it.

        Restoring is what makes it exact for any optimizer: SGD's weight decay and momentum, and Adam's
        moments, would otherwise move frozen weights even with a zero gradient (spec §1.3, §11.4).
        """
        tracked = [(getattr(m, n), m.weight_quant.frozen(n)) for m in self.layers for n in m.quant_weight_names]
        snapshots: list[torch.Tensor] = []

        def pre(opt, args, kwargs):
            snapshots.clear()
            for p, f in tracked:
                if p.grad is not None:
                    p.grad.masked_fill_(f, 0.0)
                snapshots.append(p.detach().clone())

        def post(opt, args, kwargs):
            for (p, f), snap in zip(tracked, snapshots):
                torch.where(f, snap, p.data, out=p.data)

        self._handles += [optimizer.register_step_pre_hook(pre), optimizer.register_step_post_hook(post)]

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def check(self) -> bool:
        """True when every frozen weight is exactly a codebook value (an invariant test helper)."""
        for m in self.layers:
            for n in m.quant_weight_names:
                w, f = getattr(m, n).detach(), m.weight_quant.frozen(n)
                lv = m.weight_quant.levels(name=n).to(w.dtype)
                if f.any() and not torch.isin(w[f], lv).all():
                    return False
        return True

    def summary(self) -> dict[str, Any]:
        return {
            "bits": self.bits,
            "portions": list(self.portions),
            "strategy": self.strategy,
            "max_value": self.max_value,
            "stage": self.stage,
            "layers": len(self.layers),
        }


def _weight_names(module: nn.Module, name: str = "") -> tuple[str, ...]:
    # A float layer does not know its twin's weight names; twins with several (recurrent) say so via weight_names_of.
    names_of = getattr(twin_for(module, name), "weight_names_of", None)
    if names_of is not None:
        return tuple(names_of(module))
    return tuple(getattr(module, "quant_weight_names", ("weight",)))
