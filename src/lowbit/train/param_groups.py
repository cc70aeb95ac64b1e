"""Optimizer parameter groups with a per-group learning-rate factor.

Every trainable parameter gets a factor, the product of two sources:
- the weight quantizer of the layer that holds it: ``Quantizer.lr_scale(weight)`` (1.0 unless the method asks for
  one, e.g. BinaryConnect's ``lr_scale="glorot"``: 1/H with H = sqrt(1.5/(fan_in + fan_out)), spec §4b);
- ``TrainConfig.lr_scale``: {fnmatch pattern over ``model.named_parameters()`` names: factor}; the first
  pattern (in the dict's order) that matches a name applies; a pattern that matches no parameter is an error.
Parameters with the same factor share a group (in the order of ``model.parameters()``), and each group carries
``"lr_scale"``; ``fit`` sets ``lr = cfg.lr × schedule factor × group["lr_scale"]`` every epoch. With every factor
1 there is one group holding ``model.parameters()`` in order, exactly the optimizer ``fit`` built before.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from torch import nn

from .config import TrainConfig


def quantizer_lr_scales(model: nn.Module) -> dict[int, float]:
    """{id(weight): factor} for every latent weight whose quantizer declares a factor != 1."""
    from ..nn import QuantMixin

    out: dict[int, float] = {}
    for m in model.modules():
        if not isinstance(m, QuantMixin):
            continue
        for name in m.quant_weight_names:
            q, w = m.weight_quantizer(name), getattr(m, name, None)
            if q is not None and w is not None:
                s = float(q.lr_scale(w))
                if s != 1.0:
                    out[id(w)] = s
    return out


def lr_scales(model: nn.Module, cfg: TrainConfig) -> dict[str, float]:
    """{parameter name: learning-rate factor} for every trainable parameter of ``model`` (see the module doc)."""
    from_quant = quantizer_lr_scales(model)
    patterns = dict(cfg.lr_scale)
    used = dict.fromkeys(patterns, False)
    out: dict[str, float] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        s = from_quant.get(id(p), 1.0)
        for pat, factor in patterns.items():
            if fnmatch.fnmatchcase(name, pat):
                s, used[pat] = s * float(factor), True
                break
        out[name] = s
    unused = [p for p, hit in used.items() if not hit]
    if unused:
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        raise ValueError(
            f"TrainConfig.lr_scale: pattern(s) {unused} match no trainable parameter; "
            f"names look like {names[:4]} (fnmatch patterns over model.named_parameters())"
        )
    return out


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """Optimizer groups ``[{"params": [...], "lr_scale": s}, ...]``, one per distinct factor."""
    scales = lr_scales(model, cfg)
    groups: dict[float, list[nn.Parameter]] = {}
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if name in scales and id(p) not in seen:
            seen.add(id(p))
            groups.setdefault(scales[name], []).append(p)
    return [{"params": ps, "lr_scale": s} for s, ps in groups.items()]


__all__ = ["lr_scales", "param_groups", "quantizer_lr_scales"]
