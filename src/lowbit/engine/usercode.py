"""The code a spec names: ``plugins = ["my_pkg.lowbit_plugin"]`` and ``target = "my_pkg.models:build"`` entries.

A spec that names code is code: running it (``lowbit sweep``, ``run``, ``reproduce``, ``--dry-run``) imports those
modules, in the sweep's process and in every worker (``steps.run_job`` imports the job's ``plugins``; a target is
resolved where its model or data set is built). Reading results never does unless asked:

- ``lowbit results`` reads the store only;
- ``lowbit report RUN`` (``RunResults``) checks the stored spec without importing anything (``code=False``):
  names it cannot check without the plugins are taken as they are, and what needs the code (a report extra from a
  plugin, an extra that rebuilds a target's data) is skipped with a one-line note in the report. ``--trust-code``
  imports the modules and prints their names first. Code already imported in the process (the sweep that just ran
  the spec) runs no new code, so it counts as trusted.

Where the modules are found: ``sys.path``, plus (appended, so an installed package of the same name wins) the
spec file's folder and the current directory when the spec is read from a file: ``my_pkg/`` next to the spec or
where ``lowbit`` runs is importable without installing it. Worker processes are started with ``spawn``, which
gives them the sweep's ``sys.path``.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class UntrustedCode(RuntimeError):
    """Something needs a module the spec names, and reading this run was not allowed to import it."""

    flag = "--trust-code"  # what `lowbit report` takes to allow it


class UntrustedData(UntrustedCode):
    """Something needs files a stored spec names outside the run folder, and reading this run was not allowed to."""

    flag = "--trust-data"


def target_module(target: Any) -> str | None:
    """``"pkg.mod:fn"`` -> ``"pkg.mod"`` (None for anything else; the spec check says what is wrong with it)."""
    if isinstance(target, str) and target.count(":") == 1 and all(target.split(":")):
        return target.split(":")[0]
    return None


def named_code(raw: dict) -> list[str]:
    """Every module a resolved spec names: its plugins, then the modules of its ``target`` entries."""
    out: list[str] = []
    plugins = raw.get("plugins", [])
    for p in plugins if isinstance(plugins, list) else []:
        if isinstance(p, str) and p not in out:
            out.append(p)
    entries = [raw.get("data")] + list(
        (raw.get("models") or {}).values() if isinstance(raw.get("models"), dict) else []
    )
    for e in entries:
        mod = target_module(e.get("target")) if isinstance(e, dict) else None
        if mod and mod not in out:
            out.append(mod)
    return out


def already_imported(raw: dict) -> bool:
    """Whether every module the spec names is imported in this process already (reading it runs no new code)."""
    return all(m in sys.modules for m in named_code(raw))


def add_search_dirs(dirs: Iterable[str | Path]) -> None:
    """Append folders to ``sys.path`` (once each), after what is there: an installed package of the same name wins."""
    present = {os.path.abspath(p or os.curdir) for p in sys.path}
    for d in dirs:
        d = os.path.abspath(d)
        if d not in present and os.path.isdir(d):
            sys.path.append(d)
            present.add(d)
    importlib.invalidate_caches()


def require_trusted(raw: dict, trusted: bool, what: str) -> None:
    """Raise ``UntrustedCode`` when ``what`` needs a module the spec names that this reader may not import."""
    missing = [m for m in named_code(raw) if m not in sys.modules]
    if not trusted and missing:
        raise UntrustedCode(f"{what} needs the spec's code ({', '.join(missing)}), which was not imported")
