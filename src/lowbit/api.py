"""The one verb: ``quantize_(model, config)``; plus ``quantization_map`` and ``calibrate``."""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from .config import LayerRule, QuantConfig
from .nn import QUANT_TWINS, QuantMixin
from .quantizers import Quantizer


def quantizable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(qualified name, module) of every layer ``quantize_`` can swap or has swapped, in registration order."""
    return [(n, m) for n, m in model.named_modules() if type(m) in QUANT_TWINS or isinstance(m, QuantMixin)]


def select(selector: str, names: list[str]) -> list[str]:
    """Names matched by one selector: "first", "last", or an fnmatch pattern."""
    if selector == "first":
        return names[:1]
    if selector == "last":
        return names[-1:]
    return [n for n in names if fnmatch.fnmatchcase(n, selector)]


def _match_all(selectors: Iterable[str], names: list[str], what: str) -> dict[str, list[str]]:
    out = {}
    for s in selectors:
        hit = select(s, names)
        if not hit:
            raise ValueError(f"{what} selector {s!r} matches no quantizable layer; layers are: {names}")
        out[s] = hit
    return out


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def plan(model: nn.Module, config: QuantConfig) -> dict[str, LayerRule | None]:
    """Which quantizers each layer gets (None = kept float), without changing the model."""
    names = [n for n, _ in quantizable_layers(model)]
    kept = {n for hits in _match_all(config.keep_float, names, "keep_float").values() for n in hits}
    rule_hits = _match_all(config.rules, names, "rules")
    default = LayerRule(weight=config.weight, act=config.act)
    out: dict[str, LayerRule | None] = {}
    for n in names:
        if n in kept:
            out[n] = None
            continue
        out[n] = next((config.rules[s] for s, hits in rule_hits.items() if n in hits), default)
    return out


def quantize_(model: nn.Module, config: QuantConfig) -> nn.Module:
    """Swap every quantizable layer for its quantized twin, in place, as ``config`` says.

    Each layer gets its own copy of the configured quantizers (their calibrated statistics are per
    layer). Layers kept float stay the original modules. Already-quantized twins are re-configured.
    Returns ``model`` (or the new module when ``model`` itself is a single quantizable layer).
    """
    if not isinstance(config, QuantConfig):
        raise TypeError(f"quantize_: config must be a lowbit.QuantConfig, got {type(config).__name__}")
    decisions = plan(model, config)
    root = model
    for name, rule in decisions.items():
        module = model.get_submodule(name) if name else model
        if rule is None or (rule.weight is None and rule.act is None):
            if isinstance(module, QuantMixin):
                module._set_quantizers(None, None)
            continue
        wq, aq = copy.deepcopy(rule.weight), copy.deepcopy(rule.act)
        if isinstance(module, QuantMixin):
            module._set_quantizers(wq, aq)
            continue
        twin = QUANT_TWINS[type(module)].from_float(module, wq, aq)
        if name:
            _set_submodule(model, name, twin)
        else:
            root = twin
    return root


def _describe(q: Quantizer | None) -> dict[str, Any] | None:
    return None if q is None else q.to_dict()


def quantization_map(model: nn.Module) -> dict[str, dict[str, Any]]:
    """What each quantizable layer got: {name: {"type", "weight", "act"}} (None = float)."""
    out = {}
    for name, m in quantizable_layers(model):
        wq = m.weight_quant if isinstance(m, QuantMixin) else None
        aq = m.act_quant if isinstance(m, QuantMixin) else None
        out[name] = {"type": type(m).__name__, "weight": _describe(wq), "act": _describe(aq)}
    return out


@torch.no_grad()
def calibrate(model: nn.Module, batches: Iterable[Any], forward=None) -> nn.Module:
    """Set every activation quantizer's statistics from several batches at once (spec §2.3).

    Quantizers with a ``calibrate(x)`` method (e.g. uniform) get all inputs they saw, concatenated.
    ``forward(model, batch)`` defaults to ``model(batch[0])`` for (x, y) batches, else ``model(batch)``.
    """
    seen: dict[Quantizer, list[torch.Tensor]] = {}
    handles = []
    for m in model.modules():
        aq = getattr(m, "act_quant", None) if isinstance(m, QuantMixin) else None
        if aq is not None and hasattr(aq, "calibrate"):
            seen[aq] = []
            handles.append(
                m.register_forward_pre_hook(lambda mod, args, aq=aq: seen[aq].append(args[0].detach().reshape(-1)))
            )
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            if forward is not None:
                forward(model, batch)
            else:
                model(batch[0] if isinstance(batch, (tuple, list)) else batch)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    for aq, xs in seen.items():
        if xs:
            aq.calibrate(torch.cat(xs))
    return model
