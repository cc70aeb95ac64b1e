"""TOML in and out. TOML has no null: a None value is written by leaving its key out, and every config
field that may be None defaults to None, so ``from_dict(loads(dumps(to_dict())))`` round-trips."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w


def strip_none(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): strip_none(x) for k, x in v.items() if x is not None}
    if isinstance(v, (list, tuple)):
        return [strip_none(x) for x in v if x is not None]
    return v


def dumps(d: dict) -> str:
    return tomli_w.dumps(strip_none(d))


def load(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"config file {str(path)!r} is a directory; expected a TOML file")
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"config file {str(path)!r} is not valid TOML: {e}") from None
