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

from .config import LayerRule, QuantConfig
from .nn import QUANT_TWINS, QuantMixin, disable_fast_paths, load_optional_twins
from .quantizers import Quantizer


def quantizable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(qualified name, module) of every layer ``quantize_`` can swap or has swapped, in registration order."""
    load_optional_twins()  # twins of optional libraries' layers (transformers' Conv1D) whose library is imported
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
    return out


def quantize_(model: nn.Module, config: QuantConfig, optimizer: torch.optim.Optimizer | None = None) -> nn.Module:
    """Swap every quantizable layer for its quantized twin, in place, as ``config`` says.

    Each layer gets its own copy of the configured quantizers (their calibrated statistics are per
    layer). Layers kept float stay the original modules. Already-quantized twins are re-configured.
    Returns ``model`` (or the new module when ``model`` itself is a single quantizable layer).

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
    disable_fast_paths(root)  # torch's fused transformer inference would read the latent weights directly
    if optimizer is not None:
        missing = _missing_from(root, optimizer)
        if missing:
            optimizer.add_param_group({"params": missing})
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


CALIBRATION_SAMPLE = 2**20  # values kept per quantizer and batch (a fixed-seed sample of larger inputs)


def _weight_quantizers(model: nn.Module) -> list[tuple[Quantizer, torch.Tensor]]:
    out, seen = [], set()
    for m in model.modules():
        if isinstance(m, QuantMixin) and m.weight_quant is not None:
            for n in m.quant_weight_names:
                q = m.weight_quantizer(n)
                if isinstance(q, Quantizer) and (id(q), n) not in seen:
                    seen.add((id(q), n))
                    out.append((q, m.latent_weight(n)))  # what the quantizer reads (BN-folded: W·s)
    return out


def _act_quantizers(model: nn.Module) -> dict[Quantizer, str]:
    """Every quantizer module that is not a weight quantizer (layer inputs, recurrent x_t/h_t roles), by name."""
    wq = {id(q) for q, _ in _weight_quantizers(model)}
    out: dict[Quantizer, str] = {}
    for name, q in model.named_modules():
        if isinstance(q, Quantizer) and id(q) not in wq and q not in out:
            out[q] = name
    return out


def _sample(x: torch.Tensor, cap: int | None, gen: torch.Generator) -> torch.Tensor:
    v = x.detach().reshape(-1)
    if cap is None or v.numel() <= cap:
        return v.clone()
    idx = torch.randint(v.numel(), (cap,), generator=gen).to(v.device)
    return v[idx]


@torch.no_grad()
def calibrate(
    model: nn.Module,
    batches: Iterable[Any],
    forward=None,
    *,
    only_uncalibrated: bool = False,
    sample: int | None = CALIBRATION_SAMPLE,
) -> nn.Module:
    """Set every quantizer's data-derived ranges and steps, in one pass over ``batches`` (spec §2.3).

    Weight quantizers calibrate from their weights (LSQ step, TTQ scales, uniform Δ). Activation quantizers
    (every other quantizer in the model) see all the inputs they got over the batches at once, flattened and
    concatenated, with activation quantization switched off during these passes (each layer's input is that of
    the model with quantized weights and float activations): PACT α, LSQ step, unsigned uniform Δ, HWGQ
    scale, log2 FSR. Each quantizer's ``calibrate(x)`` says what it sets.

    only_uncalibrated: touch only quantizers whose ``needs_calibration()`` is True (what ``fit`` does, so a
        trained or loaded model keeps its learned ranges); False recalibrates everything calibratable.
    sample: keep at most this many values per quantizer and batch (a fixed-seed random sample; None: all).
    ``forward(model, batch)`` defaults to ``model(batch[0])`` for (x, y) batches, else ``model(batch)``, with the
        input moved to the model's device.

    Warns once when more than half of the values reaching an unsigned quantizer (PACT, HWGQ, unsigned
    uniform/LSQ/log2) are negative: it maps all of them to 0 (e.g. a normalised image fed to PACT).
    """
    if sample is not None and (not isinstance(sample, int) or sample < 1):
        raise ValueError(f"calibrate: sample={sample!r} is not accepted; expected a whole number >= 1 or None")

    def wanted(q: Quantizer) -> bool:
        return q.needs_calibration() if only_uncalibrated else True

    for q, w in _weight_quantizers(model):
        if wanted(q):
            q.calibrate(w.detach())
    acts = {q: name for q, name in _act_quantizers(model).items() if wanted(q)}
    if not acts:
        return model
    seen: dict[Quantizer, list[torch.Tensor]] = {q: [] for q in acts}
    gen = torch.Generator().manual_seed(0)

    def observer(q: Quantizer):
        def observe(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
            seen[q].append(_sample(x, sample, gen))
            return x  # float activations while calibrating

        return observe

    for q in acts:
        q.forward = observer(q)  # instance attribute: shadows the class's forward for these passes only
    was_training = model.training
    model.eval()
    # the default forward feeds each batch on the model's own device (a model already on the GPU calibrates there)
    device = next(iter(model.parameters()), torch.empty(0)).device
    try:
        for batch in batches:
            if forward is not None:
                forward(model, batch)
            else:
                model((batch[0] if isinstance(batch, (tuple, list)) else batch).to(device))
    finally:
        for q in acts:
            del q.forward
        model.train(was_training)
    negative = []
    for q, xs in seen.items():
        if not xs:
            continue
        x = torch.cat(xs)
        if not q.signed_input and x.numel() and float((x < 0).float().mean()) > 0.5:
            negative.append(f"{acts[q] or '<model>'} ({q.name}: {float((x < 0).float().mean()):.0%} negative)")
        q.calibrate(x)
    if negative:
        warnings.warn(
            "lowbit.calibrate: more than half of the values reaching these unsigned activation quantizers are "
            f"negative, and they all become 0: {', '.join(negative)}. Keep that input float "
            "(QuantConfig.quantize_input=False keeps the model input float) or use a signed quantizer.",
            stacklevel=2,
        )
    return model
