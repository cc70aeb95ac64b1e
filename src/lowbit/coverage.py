"""What a quantized model leaves float, with each module's share of the parameters; and the warning ``quantize_``
gives when a config quantizes nothing or leaves most of the weights float.

``quantization_map`` keeps its contract (one entry per quantizable layer; ``serialize`` rebuilds a model from it
and the engine compares maps), so the float listing is a function of its own, ``float_layers``, which
``quantize_``'s warning, ``lowbit.deploy.summary`` and ``lowbit summary`` all use.

Counted as float, each module that owns parameters itself (not through a child) and whose weights are not
quantized: a layer ``keep_float`` or a rule left float (reason "kept float"), and any module lowbit has no twin
for (reason "no twin": norms, parameters a model holds directly such as a ViT's class token and position
embedding, ...). Modules inside a layer that are not layers themselves count under that layer (the BatchNorm
folded into ``QuantConvBn2d``); biases belong to their layer (float by design, spec §0: only weights are
quantized). Quantizer parameters (PACT α, LSQ steps) are not model weights: not counted. A tied parameter counts
once, under its first owner.
"""

from __future__ import annotations

import warnings
from typing import Any

from torch import Tensor, nn

from .nn import QuantMixin
from .nn.equivalents import float_base, float_opaque
from .quantizers import Quantizer

FLOAT_WARN_SHARE = 0.5  # quantize_ warns when more than this share of the parameters stays float
KEPT, NO_TWIN = "kept float", "no twin"


def _quantized(m: nn.Module) -> bool:
    return isinstance(m, QuantMixin) and m.weight_quant is not None


def _is_layer(m: nn.Module) -> bool:
    return isinstance(m, QuantMixin) or float_base(type(m)) is not None


def _own_weights(m: nn.Module) -> list[Any]:
    """The weight tensors ``m`` holds itself: its parameters, and a frozen twin's decoded weight buffers."""
    out = list(m.parameters(recurse=False))
    if isinstance(m, QuantMixin) and m.weight_quant is not None:
        names = {n for n, _ in m.named_parameters(recurse=False)}
        out += [
            getattr(m, n) for n in m.quant_weight_names if n not in names and isinstance(getattr(m, n, None), Tensor)
        ]
    return out


def _walk(model: nn.Module) -> tuple[dict[str, tuple[nn.Module, str | None, list[Any]]], dict[str, str], int]:
    """Per weight-owning entry {name: (module, float reason or None when quantized, weights)}; which entry each
    module's weights count under {module name: entry name}; the total number of weights.

    A layer (twin or float layer with a twin) or a float opaque module absorbs the weights of its descendants
    that are not layers themselves (a folded BatchNorm inside ``QuantConvBn2d``); quantizers count nowhere.
    """
    entries: dict[str, tuple[nn.Module, str | None, list[Any]]] = {}
    owner: dict[str, str] = {}
    skip: list[str] = []
    absorbers: list[str] = []  # names of the layers/opaque modules whose non-layer descendants they absorb
    seen: set[int] = set()
    for n, m in model.named_modules():
        if any(n.startswith(p) for p in skip):
            continue
        if isinstance(m, Quantizer):
            skip.append(f"{n}." if n else "")
            continue
        host = (
            None if _is_layer(m) else next((a for a in reversed(absorbers) if n.startswith(a + "." if a else "")), None)
        )
        if _is_layer(m) or float_opaque(m):
            absorbers.append(n)
        ws = [w for w in _own_weights(m) if id(w) not in seen]
        seen.update(id(w) for w in ws)
        key = n if host is None else host
        owner[n] = key
        if not ws:
            continue
        if key in entries:
            entries[key][2].extend(ws)
            continue
        mod = model.get_submodule(key) if key else model
        if _quantized(mod):
            reason = None
        elif _is_layer(mod):
            reason = KEPT
        else:
            reason = NO_TWIN
        entries[key] = (mod, reason, ws)
    return entries, owner, sum(w.numel() for _, _, ws in entries.values() for w in ws)


def float_layers(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Every module left float that owns weights: {name: {"type", "params", "share", "reason"}} in model order.

    ``share``: its parameters over all the model's weights (quantized and float, quantizer state excluded);
    ``reason``: "kept float" (a quantizable layer the config left float) or "no twin" (lowbit has no quantized
    form for it). The root module's own parameters are listed under "".
    """
    entries, _, total = _walk(model)
    out = {}
    for n, (m, reason, ws) in entries.items():
        if reason is not None:
            k = sum(w.numel() for w in ws)
            out[n] = {"type": type(m).__name__, "params": k, "share": k / total if total else 0.0, "reason": reason}
    return out


def float_reasons(model: nn.Module) -> dict[str, str]:
    """{module name: float reason} for every module whose own weights are counted in a ``float_layers`` entry
    (the entry itself, and the non-layer modules it absorbs)."""
    entries, owner, _ = _walk(model)
    return {n: entries[k][1] for n, k in owner.items() if k in entries and entries[k][1] is not None}


def float_share(model: nn.Module) -> float:
    """The share of the model's weights left float (0.0 for a model without weights)."""
    return sum(e["share"] for e in float_layers(model).values())


def warn_coverage(model: nn.Module, quantized_layers: int, quantizable: int, weights_expected: bool) -> None:
    """One warning when ``quantize_`` quantized no layer, or (``weights_expected``: the config quantizes weights
    by default) left more than half of the weights float; it lists the biggest float modules."""
    flt = float_layers(model)
    top = sorted(flt.items(), key=lambda kv: -kv[1]["params"])[:4]
    listing = ", ".join(f"{n or '<model>'} ({e['type']}, {e['reason']}: {e['share']:.0%})" for n, e in top)
    if quantized_layers == 0:
        why = (
            "the model has no layer lowbit can quantize"
            if quantizable == 0
            else f"keep_float and the rules leave all {quantizable} quantizable layer(s) float"
        )
        warnings.warn(
            f"lowbit.quantize_: the config quantizes nothing: {why}; the biggest float modules: {listing or 'none'}",
            stacklevel=3,
        )
        return
    share = sum(e["share"] for e in flt.values())
    if weights_expected and share > FLOAT_WARN_SHARE:
        warnings.warn(
            f"lowbit.quantize_: {share:.0%} of the model's weights stay float; the biggest float modules: {listing}. "
            "lowbit.float_layers(model) lists them all ('kept float': narrow keep_float or the rules; 'no twin': "
            "lowbit has no quantized form of that module)",
            stacklevel=3,
        )
