"""The reproduced studies: ``lowbit/studies/NAME.toml`` specs shipped with the package (``configs/studies`` in
the repository is a link to that folder: one source of truth). ``lowbit reproduce NAME`` runs one."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path


def studies_dir() -> Path:
    return Path(str(resources.files("lowbit") / "studies"))


def study_names() -> list[str]:
    return sorted(p.stem for p in studies_dir().glob("*.toml"))


def study_path(name: str) -> Path:
    path = studies_dir() / f"{name}.toml"
    if name not in study_names() or not path.is_file():  # a shipped name, never a path (`reproduce ../x`)
        raise ValueError(
            f"unknown study {name!r}; available: {', '.join(study_names())} (see `lowbit reproduce --list`)"
        )
    return path


def study_listing() -> list[tuple[str, str, list[str]]]:
    """(name, description, scales) of every shipped study, read from its spec."""
    out = []
    for name in study_names():
        raw = tomllib.loads(study_path(name).read_text())
        out.append((name, raw.get("description", ""), sorted({"default", *raw.get("scales", {})})))
    return out
