"""Study registry: ``lowbit reproduce NAME`` runs a registered study into one run folder.

A study is a function ``run(out: Path, scale: str, resume: bool, workers: int, progress: bool) -> Path``
that writes ``config.toml``, ``metrics.jsonl`` (or per-job metrics), ``report.md``, ``report.html`` and
``figures/*.png`` under ``out`` and returns the path of ``report.md``. ``scale`` is one of the study's
``scales`` ("tiny" for tests, "default" for a few CPU minutes, "paper" for the published setting).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

StudyFn = Callable[..., Path]


@dataclass(frozen=True)
class Study:
    name: str
    description: str
    run: StudyFn
    scales: tuple[str, ...] = ("tiny", "default", "paper")
    report: Callable[[Path], Path] | None = None  # rebuild report.md/html from a finished run folder


_STUDIES: dict[str, Study] = {}


def register_study(
    name: str,
    description: str,
    scales: tuple[str, ...] = ("tiny", "default", "paper"),
    report: Callable[[Path], Path] | None = None,
):
    """Register ``run``; ``report(out)``, if given, lets ``lowbit report`` rebuild a finished run's report."""

    def deco(fn: StudyFn) -> StudyFn:
        if name in _STUDIES:
            raise ValueError(f"study {name!r} is already registered")
        _STUDIES[name] = Study(name, description, fn, tuple(scales), report)
        return fn

    return deco


def study_names() -> list[str]:
    _load_builtin()
    return sorted(_STUDIES)


def get_study(name: str) -> Study:
    _load_builtin()
    if name not in _STUDIES:
        raise ValueError(
            f"unknown study {name!r}; available: {', '.join(sorted(_STUDIES))} (see `lowbit reproduce --list`)"
        )
    return _STUDIES[name]


# Modules that register studies when imported (each study module adds itself here).
# (every reproduced study is a spec now: lowbit/studies/*.toml; none is left as a module)
BUILTIN_STUDY_MODULES: list[str] = []


def _load_builtin() -> None:
    import importlib

    for mod in BUILTIN_STUDY_MODULES:
        importlib.import_module(mod)
