"""What each job asks a cluster for: the spec's ``[resources]`` table, overridable per method (docs/scaling.md).

    [resources]                        # every job: 1 CPU (one intra-op thread), no GPU
    cpus = 1
    gpus = 0                           # default: 1 for a job whose train device is "cuda..." (else 0)
    [methods.W2]
    resources = { gpus = 1 }           # this method's jobs: a GPU each (cpus as above)

A backend that places jobs on machines (``--backend ray``) reserves these for a job while it runs; the local backend
runs each job in one single-threaded worker process and ignores them. Resources change where a job runs, never what
it computes: they are not part of a job's config (its id), and a run may be resumed with other resources.
Fractions are accepted (Ray shares a GPU between jobs asking for 0.5 each).
"""

from __future__ import annotations

import copy
from typing import Any

from .checker import Checker

KEYS = ("cpus", "gpus")
DEFAULT_CPUS = 1


def _check_table(c: Checker, path: str, d: Any) -> None:
    c.keys(d, path, KEYS)
    for k, v in d.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or v != v or v == float("inf"):
            c.fail(f"{path}.{k}", v, "expected a number >= 0 (fractions share a device)")


def check_resources(c: Checker, raw: dict) -> None:
    """``[resources]`` and each ``methods.NAME.resources``: tables of cpus / gpus, numbers >= 0; a job must ask for
    some CPU or GPU (one asking for nothing would be started without limit)."""
    top = raw.get("resources", {})
    _check_table(c, "resources", top)
    for name, m in raw.get("methods", {}).items():
        if isinstance(m, dict) and "resources" in m:
            _check_table(c, f"methods.{name}.resources", m["resources"])
            r = {"cpus": DEFAULT_CPUS, **top, **m["resources"]}
            if r["cpus"] == 0 and r.get("gpus", 0) == 0:
                c.fail(f"methods.{name}.resources", m["resources"], "a job needs cpus > 0 or gpus > 0")
    if top.get("cpus", DEFAULT_CPUS) == 0 and top.get("gpus", 0) == 0:
        c.fail("resources", top, "a job needs cpus > 0 or gpus > 0")


def job_resources(raw: dict, method: str, train_device: str | None) -> dict[str, float]:
    """{"cpus": n, "gpus": n} for a job of ``method`` (its method's table over the spec's over the defaults)."""
    gpus = 1 if str(train_device or "").startswith("cuda") else 0
    own = raw["methods"][method].get("resources", {})
    return {"cpus": DEFAULT_CPUS, "gpus": gpus, **raw.get("resources", {}), **own}


def without_resources(raw: dict) -> dict:
    """A resolved spec with its resources removed (what a resumed run compares: they change nothing computed)."""
    out = copy.deepcopy(raw)
    out.pop("resources", None)
    for m in out.get("methods", {}).values():
        if isinstance(m, dict):
            m.pop("resources", None)
    return out
