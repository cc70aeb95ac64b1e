"""The one verb: ``quantize_(model, config)``; plus ``quantization_map``, ``calibrate`` and the helpers that keep
a quantized model's optimizer and float checkpoints working (``check_optimizer``, ``load_float_state_dict``)."""

from __future__ import annotations

import copy
import fnmatch
import warnings
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from .calibration import calibrate  # noqa: F401  (re-exported: lowbit.api.calibrate)
from .config import LayerRule, QuantConfig
from .coverage import warn_coverage
from .nn import QuantMixin, disable_fast_paths, load_optional_twins
from .nn.equivalents import float_base, float_opaque, twin_for
from .quantizers import Quantizer


def quantizable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(qualified name, module) of every layer ``quantize_`` can swap or has swapped, in registration order.

    A layer is a twin, or an instance of a class with a twin or of a subclass of one (``lowbit.nn.equivalents``:
    a subclass whose forward lowbit cannot honour is listed too, so that ``keep_float`` can name it, and
    ``quantize_`` refuses to quantize it).
    """
    load_optional_twins()  # twins of optional libraries' layers (transformers' Conv1D) whose library is imported
    return [(n, m) for n, m in model.named_modules() if isinstance(m, QuantMixin) or float_base(type(m)) is not None]


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


def default_rule(config: QuantConfig, name: str, names: list[str]) -> LayerRule:
    """The config's default quantizers for layer ``name``: the model input (the first quantizable layer's
    input) gets no activation quantizer unless ``config.quantize_input``."""
    first = bool(names) and name == names[0]
    act = config.act if (config.quantize_input or not first) else None
    return LayerRule(weight=config.weight, act=act)


def plan(model: nn.Module, config: QuantConfig) -> dict[str, LayerRule | None]:
    """Which quantizers each layer gets (None = kept float), without changing the model."""
    names = [n for n, _ in quantizable_layers(model)]
    kept = {n for hits in _match_all(config.keep_float, names, "keep_float").values() for n in hits}
    rule_hits = _match_all(config.rules, names, "rules")
    out: dict[str, LayerRule | None] = {}
    for n in names:
        if n in kept:
            out[n] = None
            continue
        hit = next((config.rules[s] for s, hits in rule_hits.items() if n in hits), None)
        base = default_rule(config, n, names)
        out[n] = base if hit is None else hit.over(base)  # a rule's unset fields inherit the defaults
    # a float module whose forward reads its children's weights directly (nn.MultiheadAttention: out_proj) and
    # stays float never calls them: a quantizer there would never run, so its layers stay float with it
    mods = dict(model.named_modules())
    shut = [f"{n}." for n in names if float_opaque(mods[n]) and not _quantizes(out[n])]
    for n in names:
        if any(n.startswith(p) for p in shut):
            out[n] = None
    return out


def _quantizes(rule: LayerRule | None) -> bool:
    return rule is not None and (rule.weight is not None or rule.act is not None)


def quantize_(model: nn.Module, config: QuantConfig, optimizer: torch.optim.Optimizer | None = None) -> nn.Module:
    """Swap every quantizable layer for its quantized twin, in place, as ``config`` says.

    Each layer gets its own copy of the configured quantizers (their calibrated statistics are per
    layer). Layers kept float stay the original modules. Already-quantized twins are re-configured.
    Returns ``model`` (or the new module when ``model`` itself is a single quantizable layer).

    Subclasses of the float layers take their base's twin when their forward computes the base's
    (``lowbit.nn.equivalents``); one whose forward lowbit cannot honour raises ``UnsupportedLayerError`` naming
    it, before anything is swapped. Warns (one warning, the biggest float modules listed) when the config
    quantizes no layer, or leaves more than half of the weights float (``float_layers`` lists them).

    The twins keep the float layers' own weight Parameters, so an optimizer built before the swap still
    updates the weights; but the quantizers' new parameters (PACT's α, LSQ's steps, TTQ's scales) are not in
    it and would never train. Pass that ``optimizer`` here to add them to it (one new parameter group with
    the optimizer's defaults), or build the optimizer after the swap; ``check_optimizer`` warns about one that
    misses them.
    """
    if not isinstance(config, QuantConfig):
        raise TypeError(f"quantize_: config must be a lowbit.QuantConfig, got {type(config).__name__}")
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"quantize_: optimizer must be a torch.optim.Optimizer or None, got {type(optimizer).__name__}")
    if config.fold_bn:
        from .nn.conv_bn import fold_bn_

        fold_bn_(model)
    decisions = plan(model, config)
    # every twin class first: a layer lowbit cannot honour is refused before any layer is swapped
    twins = {
        name: twin_for(model.get_submodule(name) if name else model, name)
        for name, rule in decisions.items()
        if _quantizes(rule)
    }
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
        twin = twins[name].from_float(module, wq, aq)
        if name:
            _set_submodule(model, name, twin)
        else:
            root = twin
    disable_fast_paths(root)  # torch's fused transformer inference would read the latent weights directly
    if optimizer is not None:
        missing = _missing_from(root, optimizer)
        if missing:
            optimizer.add_param_group({"params": missing})
    # loud, never silently float: nothing quantized, or most weights left float (lowbit.coverage)
    warn_coverage(root, len(twins), len(decisions), weights_expected=config.weight is not None)
    return root


def _describe(q: Quantizer | None) -> dict[str, Any] | None:
    return None if q is None else q.to_dict()


def quantization_map(model: nn.Module) -> dict[str, dict[str, Any]]:
    """What each quantizable layer got: {name: {"type", "weight", "act"}} (None = float).

    Only quantizable layers (what ``quantize_`` can be told about, and what ``serialize`` rebuilds from):
    ``float_layers(model)`` lists every weight-bearing module left float, those without a twin included.
    """
    out = {}
    for name, m in quantizable_layers(model):
        wq = m.weight_quant if isinstance(m, QuantMixin) else None
        aq = m.act_quant if isinstance(m, QuantMixin) else None
        out[name] = {"type": type(m).__name__, "weight": _describe(wq), "act": _describe(aq)}
    return out


def quantizer_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The trainable parameters that belong to quantizers (PACT α, LSQ steps, TTQ scales, ...), in order."""
    seen: set[int] = set()
    out = []
    for m in model.modules():
        if isinstance(m, Quantizer):
            for p in m.parameters():
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
    return out


def _missing_from(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[nn.Parameter]:
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    return [p for p in quantizer_parameters(model) if id(p) not in held]


def check_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[nn.Parameter]:
    """Warn when ``optimizer`` trains ``model``'s weights but not its quantizers' parameters.

    That happens to an optimizer built before ``quantize_`` (the twins keep the weights, the quantizers' α,
    steps and scales are new). Returns the missing parameters (empty: nothing to fix). Fix: build the
    optimizer after ``quantize_``, pass it to ``quantize_(model, cfg, optimizer=opt)``, or
    ``opt.add_param_group({"params": lb.check_optimizer(model, opt)})``.
    """
    missing = _missing_from(model, optimizer)
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    holds_weights = any(id(p) in held for p in model.parameters())
    if missing and holds_weights:
        n = sum(p.numel() for p in missing)
        warnings.warn(
            f"the optimizer trains this model's weights but not {len(missing)} quantizer parameter tensor(s) "
            f"({n} values: PACT α, LSQ steps, TTQ scales, ...), which then never change; build the optimizer after "
            "quantize_, or pass it as quantize_(model, config, optimizer=opt)",
            stacklevel=2,
        )
    return missing


def load_float_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """Load a float model's ``state_dict`` into its quantized twin (``model``, after ``quantize_``).

    Strict about the float model's keys (every weight, bias and buffer of the quantized model that is not a
    quantizer's must be in ``state_dict``, and no key the model lacks may be); tolerant of the quantizers' own
    keys (PACT α, LSQ steps, calibrated steps): they may be absent, and are not loaded when present. Every
    quantizer is then ``reset()``, so its data-derived state (uniform Δ, LSQ step, TTQ scales, PACT α) is set
    again for the loaded weights by ``calibrate``/``fit`` (or the next forward pass, for Δ and LSQ).
    Raises one KeyError naming the missing and unexpected keys. (The other supported way: load the float
    weights into the float model first, then ``quantize_`` it.)
    """
    own = model.state_dict()
    quants = [(n, q) for n, q in model.named_modules() if isinstance(q, Quantizer)]
    qkeys = {f"{n}.{k}" if n else k for n, q in quants for k in q.state_dict()}
    want = set(own) - qkeys
    missing = sorted(want - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    if missing or unexpected:
        raise KeyError(
            f"load_float_state_dict: missing keys {missing}, unexpected keys {unexpected}; expected the float "
            "model's state_dict (quantizer keys are optional)"
        )
    model.load_state_dict({k: state_dict[k] for k in want}, strict=False)
    for q in model.modules():
        if isinstance(q, Quantizer):
            q.reset()
    return model
