"""The run folder's config.toml: written first, and the guard that a resumed run is the same run."""

from __future__ import annotations

from pathlib import Path

from .. import tomlio
from ..fileio import atomic_write_text


def start_run_folder(out: str | Path, cfg: dict, resume: bool) -> Path:
    """Create ``out`` and write ``config.toml`` atomically; return ``out``.

    On ``resume`` a folder whose config.toml says something else is refused: continuing it would mix two
    configurations in one report.
    """
    out = Path(out)
    text = tomlio.dumps(cfg)
    cfg_path = out / "config.toml"
    if resume and cfg_path.exists() and cfg_path.read_text() != text:
        raise ValueError(
            f"{cfg_path} was written by a different configuration; resume it with the same "
            "settings (e.g. the same --scale), or start a new --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cfg_path, text)
    return out
