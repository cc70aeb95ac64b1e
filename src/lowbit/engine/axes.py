"""Grid axes in a spec: the core axes every job has, and ``"${axis}"`` references a method makes to the others."""

from __future__ import annotations

import re
from typing import Any

_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
CORE_AXES = ("model", "method", "seed")


def axis_refs(value: Any) -> set[str]:
    """The axes a value refers to with ``"${axis}"`` strings (anywhere inside tables and lists)."""
    if isinstance(value, str):
        m = _REF.match(value)
        return {m.group(1)} if m else set()
    if isinstance(value, dict):
        return set().union(*(axis_refs(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(axis_refs(v) for v in value)) if value else set()
    return set()


def substitute(value: Any, axes: dict[str, Any]) -> Any:
    """``value`` with every ``"${axis}"`` replaced by the axis value (keeping its type)."""
    if isinstance(value, str):
        m = _REF.match(value)
        return axes[m.group(1)] if m else value
    if isinstance(value, dict):
        return {k: substitute(v, axes) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, axes) for v in value]
    return value
