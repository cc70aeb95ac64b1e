"""Name -> quantizer class registry (the larq pattern: string aliases, one ``get``), on ``lowbit.registry``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ..registry import Registry
from .base import Quantizer

FAMILIES = ("binary", "dorefa", "hwgq", "log2", "lsq", "pact", "pot", "ternary", "uniform", "xnor")
QUANTIZERS: Registry[type[Quantizer]] = Registry(
    "quantizer", modules=[f"lowbit.quantizers.{m}" for m in FAMILIES], entry_points="lowbit.quantizers"
)
Q = TypeVar("Q", bound=type[Quantizer])


def register(name: str, listed: bool = True) -> Callable[[Q], Q]:
    """Class decorator: register a quantizer under ``name`` (and set ``cls.name``).

    ``listed=False``: state holders that other code creates (INQ's per-layer state) — ``get`` rebuilds them from a
    checkpoint's ``to_dict()``, ``names()`` does not list them.
    """

    def deco(cls: Q) -> Q:
        QUANTIZERS.register(name, cls, listed=listed)
        cls.name = name
        return cls

    return deco


def names() -> list[str]:
    """All registered quantizer names, sorted."""
    return QUANTIZERS.names()


def get_class(name: str) -> type[Quantizer]:
    return QUANTIZERS.get(name)


def get(spec: str | Quantizer | dict | None, **kwargs: Any) -> Quantizer | None:
    """Return a quantizer from a registry name (+ constructor kwargs), an instance, a dict, or None.

    ``get("uniform", bits=2)``; ``get(q)`` returns ``q``; ``get({"name": "pact", "bits": 4})``;
    ``get(None)`` returns None (stay in float). Anything else is rejected.
    """
    if spec is None:
        if kwargs:
            raise ValueError(f"quantizer None takes no arguments, got {sorted(kwargs)}")
        return None
    if isinstance(spec, Quantizer):
        if kwargs:
            raise ValueError(f"pass arguments with a name, not with an instance: got {sorted(kwargs)}")
        return spec
    if isinstance(spec, dict):
        d = dict(spec)
        if "name" not in d:
            raise ValueError(f"a quantizer dict needs a 'name' key, got keys {sorted(d)}")
        return get(d.pop("name"), **d, **kwargs)
    if isinstance(spec, str):
        cls = get_class(spec)
        try:
            return cls(**kwargs)
        except TypeError as e:
            raise ValueError(f"quantizer {spec!r}: {e}") from None
    raise TypeError(
        f"cannot make a quantizer from {spec!r} ({type(spec).__name__}); "
        "expected a registered name, a Quantizer, a dict with 'name', or None"
    )
