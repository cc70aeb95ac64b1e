"""What a quantized model leaves float, with each module's share of the parameters; and the warning ``quantize_``
gives when a config quantizes nothing or leaves most of the weights float.

``quantization_map`` keeps its contract (one entry per quantizable layer; ``serialize`` rebuilds a model from it
and the engine compares maps), so the float listing is a function of its own, ``float_layers``, which
``quantize_``'s warning, ``lowbit.deploy.summary`` and ``lowbit summary`` all use.

Counted as float, each module that owns parameters itself (not through a child) and whose weights are not
quantized: a layer ``keep_float`` or a rule left float (reason "kept float"), and any module lowbit has no twin
for (reason "no twin": ``nn.Embedding``, norms, ``nn.MultiheadAttention``, a transposed convolution, parameters
a model holds directly such as a ViT's class token and position embedding). A module whose forward reads its
children's weights (``nn.MultiheadAttention`` and its ``out_proj``) is one entry with all of its parameters.
Biases and folded BatchNorms inside a quantized layer belong to that layer (float by design, spec §0: only
weights are quantized). Quantizer parameters (PACT α, LSQ steps) are not model weights: not counted. A tied
parameter counts once.
"""

from __future__ import annotations

import warnings
from typing import Any

from torch import nn

from .nn import QuantMixin
from .nn.equivalents import float_base, is_opaque
from .quantizers import Quantizer

FLOAT_WARN_SHARE = 0.5  # quantize_ warns when more than this share of the parameters stays float
KEPT, NO_TWIN = "kept float", "no twin"


def _quantized(m: nn.Module) -> bool:
    return isinstance(m, QuantMixin) and m.weight_quant is not None


def _weights_of(m: nn.Module, recurse: bool) -> list[Any]:
    """The weight tensors ``m`` owns: parameters (not quantizers'), and a frozen twin's decoded weight buffers."""
    if isinstance(m, Quantizer):
        return []
    out = [p for n, p in m.named_parameters(recurse=recurse) if not _in_quantizer(m, n)]
    if isinstance(m, QuantMixin) and m.weight_quant is not None:
        names = {n for n, _ in m.named_parameters(recurse=False)}
        out += [getattr(m, n) for n in m.quant_weight_names if n not in names and hasattr(m, n)]
    return out


def _in_quantizer(root: nn.Module, pname: str) -> bool:
    path = pname.split(".")[:-1]
    mod = root
    for part in path:
        mod = getattr(mod, part)
        if isinstance(mod, Quantizer):
            return True
    return False


def _walk(model: nn.Module) -> tuple[list[tuple[str, nn.Module, str | None, list[Any]]], int]:
    """(name, module, float reason or None when quantized, weights) per weight-owning entry; total weight count."""
    entries, skip, seen = [], [], set()
    for n, m in model.named_modules():
        if any(n.startswith(p) for p in skip):
            continue
        if isinstance(m, Quantizer):
            skip.append(f"{n}." if n else "")
            continue
        whole = is_opaque(m)  # a twin or an opaque module: one entry with everything below it
        if whole:
            skip.append(f"{n}." if n else "")
        ws = [w for w in _weights_of(m, recurse=whole) if id(w) not in seen]
        seen.update(id(w) for w in ws)
        if not ws:
            continue
        if _quantized(m):
            reason = None
        elif isinstance(m, QuantMixin) or float_base(type(m)) is not None:
            reason = KEPT
        else:
            reason = NO_TWIN
        entries.append((n, m, reason, ws))
    return entries, sum(w.numel() for _, _, _, ws in entries for w in ws)


def float_layers(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Every module left float that owns weights: {name: {"type", "params", "share", "reason"}} in model order.

    ``share``: its parameters over all the model's weights (quantized and float, quantizer state excluded);
    ``reason``: "kept float" (a quantizable layer the config left float) or "no twin" (lowbit has no quantized
    form for it). The root module's own parameters are listed under "".
    """
    entries, total = _walk(model)
    out = {}
    for n, m, reason, ws in entries:
        if reason is not None:
            k = sum(w.numel() for w in ws)
            out[n] = {"type": type(m).__name__, "params": k, "share": k / total if total else 0.0, "reason": reason}
    return out


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
