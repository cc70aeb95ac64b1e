"""Study-specific report parts, registered by name and named in a spec: ``[report.extras.NAME]`` + options.

An extra is ``fn(results: RunResults, **options) -> Section`` (paragraphs, tables, figures); it reads the run's
rows (and may load the models the store points to), writes its figures under ``figures/`` and never trains.

    @register_extra("spirals_decision_maps")
    def decision_maps(res, resolution=160, groups=(...)): ...
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from .document import Figure, Table


@dataclass
class Section:
    heading: str = ""
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)


_EXTRAS: dict[str, Callable[..., Section]] = {}
BUILTIN_EXTRA_MODULES = [
    "lowbit.experiments.report.spirals",
    "lowbit.experiments.report.applications",
    "lowbit.experiments.report.seg_masks",
    "lowbit.experiments.report.ensemble_memory",
    "lowbit.experiments.report.observations",
    "lowbit.experiments.report.comparisons",
]


def register_extra(name: str):
    def deco(fn: Callable[..., Section]):
        if name in _EXTRAS and _EXTRAS[name] is not fn:
            raise ValueError(f"report extra {name!r} is already registered")
        _EXTRAS[name] = fn
        return fn

    return deco


def _load_builtin() -> None:
    for mod in BUILTIN_EXTRA_MODULES:
        importlib.import_module(mod)


def extra_names() -> list[str]:
    _load_builtin()
    return sorted(_EXTRAS)


def get_extra(name: str) -> Callable[..., Section]:
    _load_builtin()
    if name not in _EXTRAS:
        raise ValueError(f"unknown report extra {name!r}; registered: {', '.join(sorted(_EXTRAS))}")
    return _EXTRAS[name]
