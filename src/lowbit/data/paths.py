"""Where lowbit finds the shared real data sets.

``LOWBIT_DATA`` (an environment variable) names the folder; without it, ``<repo>/../shared/data`` where
``<repo>`` is the nearest folder holding ``pyproject.toml`` (searched upward from the current directory, then
from this file), or the current directory when there is none.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "LOWBIT_DATA"


def repo_root() -> Path:
    """The nearest folder holding ``pyproject.toml`` above the cwd (then above this file); else the cwd."""
    for start in (Path.cwd().resolve(), Path(__file__).resolve().parent):
        for folder in (start, *start.parents):
            if (folder / "pyproject.toml").is_file():
                return folder
    return Path.cwd().resolve()


def shared_data_dir() -> Path:
    """The shared data folder: ``$LOWBIT_DATA`` if set (and non-empty), else ``<repo>/../shared/data``.

    The folder is not required to exist; see :func:`require_shared`.
    """
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    return repo_root().parent / "shared" / "data"


def require_shared(subpath: str | os.PathLike[str]) -> Path:
    """``shared_data_dir() / subpath``, raising a clear FileNotFoundError when it is absent."""
    path = shared_data_dir() / subpath
    if not path.exists():
        raise FileNotFoundError(
            f"shared data {str(subpath)!r} not found at {str(path)!r}; set {ENV_VAR} to the folder that holds it "
            f"(currently {ENV_VAR}={os.environ.get(ENV_VAR, '<unset>')!r})"
        )
    return path


class MissingData(FileNotFoundError):
    """A data set a study needs is not where lowbit looks: the message is one line saying what to put where."""


def require_data(subpath: str | os.PathLike[str], what: str, root: str | os.PathLike[str] = "") -> Path:
    """``root`` if given, else ``shared_data_dir() / subpath``; when absent, ``MissingData`` in one line: ``what``
    (the data set and its layout) and the folder to put it in."""
    path = Path(root).expanduser() if root else shared_data_dir() / subpath
    if not path.exists():
        where = "" if root else f" (the data root is {ENV_VAR} or --data-root; now {str(shared_data_dir())!r})"
        raise MissingData(f"missing data: put {what} at {str(path)!r}{where}")
    return path


CACHE_ENV_VAR = "LOWBIT_CACHE"


def cache_dir() -> Path:
    """Where lowbit keeps extracted archives and decoded arrays: ``$LOWBIT_CACHE`` or ``~/.cache/lowbit``."""
    env = os.environ.get(CACHE_ENV_VAR, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lowbit"
