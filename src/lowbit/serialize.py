"""Model files: a registered model, its quantization map and its state, in one checkpoint.

``save_model(path, model, name, **kwargs)`` records how to rebuild the model (registry name + kwargs)
and what each layer's quantizers are; ``load_model(path)`` rebuilds, re-quantizes and loads the state.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from . import inq, quantizers  # noqa: F401  (importing inq registers INQ's per-layer state "inq" for get)
from .api import quantization_map, quantize_
from .config import LayerRule, QuantConfig
from .finite import require_finite
from .models import create_model
from .models.size import check_saved_model
from .train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def build_quantizer(d: dict | None):
    """Quantizer from its ``to_dict()`` form (every quantizer, INQ's per-layer state included, is in the registry)."""
    if d is None:
        return None
    return quantizers.get(d)


def apply_quantization_map(model: nn.Module, qmap: dict[str, dict[str, Any]]) -> nn.Module:
    """Give each named layer the quantizers ``qmap`` lists (the output of ``quantization_map``)."""
    if any(e.get("type") == "QuantConvBn2d" for e in qmap.values()):  # saved from QuantConfig(fold_bn=True)
        from .nn.conv_bn import fold_bn_

        fold_bn_(model)
    rules = {
        name: LayerRule(weight=build_quantizer(e["weight"]), act=build_quantizer(e["act"]))
        for name, e in qmap.items()
        if e["weight"] is not None or e["act"] is not None
    }
    return quantize_(model, QuantConfig(rules=rules)) if rules else model


def save_model(
    path: str | Path, model: nn.Module, name: str, extra: dict[str, Any] | None = None, **kwargs: Any
) -> None:
    """Save ``model`` (built by ``create_model(name, **kwargs)``, or by a user's function: ``name`` is then its
    "pkg.module:fn" target) with its quantization and state.

    A NaN or inf in the model (weights, norm statistics, quantizer steps) is a ValueError naming the layer;
    nothing is written (the file is written atomically: complete or absent)."""
    require_finite(model, "save_model")
    frozen = [n for n, e in quantization_map(model).items() if (e.get("weight") or {}).get("name") == "frozen"]
    if frozen:  # integer codes are the deploy layer's format: a model file holds latent weights + quantizers
        raise ValueError(
            f"save_model: the model is frozen (layers {', '.join(frozen[:3])}{' ...' if len(frozen) > 3 else ''}); "
            "save a frozen model with lowbit.deploy.save_packed, or save it before lowbit.freeze"
        )
    meta = {
        "kind": "model",
        "model": {"name": name, "kwargs": kwargs},
        "quantization": quantization_map(model),
        "extra": extra or {},
    }
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    save_checkpoint(path, tensors, meta)


def load_model(path: str | Path, builder: Callable[..., nn.Module] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model saved by ``save_model`` (or a training checkpoint); returns (model, metadata).

    builder: the function that builds the model (called with the saved keyword arguments) instead of the
    registered name. A model a spec built from a user's ``target = "pkg.module:fn"`` is saved under that target;
    loading never imports it by itself (a file someone sent must not run code): pass the builder."""
    tensors, meta = load_checkpoint(path)
    if "model" not in meta or "quantization" not in meta:
        raise CheckpointError(f"{str(path)!r} holds no model description (keys: {sorted(meta)})")
    name, kwargs = meta["model"]["name"], meta["model"].get("kwargs", {})
    if builder is not None:
        model = builder(**kwargs)
    elif isinstance(name, str) and ":" in name:
        raise CheckpointError(
            f"{str(path)!r} holds a model built by {name!r}, a user's function; loading does not import code by "
            "itself: pass the function, load_model(path, builder=fn)"
        )
    else:
        check_saved_model(name, kwargs, repr(str(path)))  # sized on the meta device first: the file says how big
        model = create_model(name, **kwargs)
    model = apply_quantization_map(model, meta["quantization"])
    state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {str(path)!r} does not fit its model description: {e}") from None
    return model, meta
