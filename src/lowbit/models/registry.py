"""Name -> model builder registry (the timm pattern: tests iterate it, checkpoints name their model)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}
# Small keyword arguments a test can build each model with (timm's "test config").
TEST_KWARGS: dict[str, dict[str, Any]] = {}


def register_model(name: str, test_kwargs: dict[str, Any] | None = None):
    """Decorator for a builder function ``fn(**kwargs) -> nn.Module``."""

    def deco(fn):
        if name in _MODELS and _MODELS[name] is not fn:
            raise ValueError(f"model name {name!r} is already registered")
        _MODELS[name] = fn
        TEST_KWARGS[name] = dict(test_kwargs or {})
        return fn

    return deco


def model_names() -> list[str]:
    return sorted(_MODELS)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model; the error lists the registered names or the bad argument."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(model_names())}")
    try:
        return _MODELS[name](**kwargs)
    except TypeError as e:
        raise ValueError(f"model {name!r}: {e}") from None
