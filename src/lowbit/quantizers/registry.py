"""Name -> quantizer class registry (the larq pattern: string aliases, one ``get``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .base import Quantizer

_REGISTRY: dict[str, type[Quantizer]] = {}
_UNLISTED: set[str] = set()  # rebuildable by name (checkpoints), but not offered to users by ``names()``
Q = TypeVar("Q", bound=type[Quantizer])


def register(name: str, listed: bool = True) -> Callable[[Q], Q]:
    """Class decorator: register a quantizer under ``name`` (and set ``cls.name``).

    ``listed=False``: state holders that other code creates (INQ's per-layer state) — ``get`` rebuilds them from a
    checkpoint's ``to_dict()``, ``names()`` does not list them.
    """

    def deco(cls: Q) -> Q:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"quantizer name {name!r} is already registered to {_REGISTRY[name].__name__}")
        cls.name = name
        _REGISTRY[name] = cls
        if not listed:
            _UNLISTED.add(name)
        return cls

    return deco


def names() -> list[str]:
    """All registered quantizer names, sorted."""
    return sorted(set(_REGISTRY) - _UNLISTED)


def get_class(name: str) -> type[Quantizer]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown quantizer {name!r}; registered quantizers: {', '.join(names())}") from None


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
