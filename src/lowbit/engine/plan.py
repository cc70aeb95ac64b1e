"""A spec -> the DAG of jobs it needs, parents first, each with a stable id (docs/architecture.md).

Every cell of the grid (model x method x seed x the extra axes the method uses) asks for one job; a QAT or
INQ job needs its parent method's job at the same model, seed and axis values; an ensemble needs its parent's
jobs at the first ``members`` seeds (it belongs to no seed). A method depends only on the axes it (or a
parent) refers to with ``"${axis}"``, so the float model is trained once, not once per bit width.

A job's id is the first 12 hex digits of the SHA-256 of its resolved config (task, data, model config, method
recipe with axis values substituted and the full TrainConfig, seed, parent ids, axis values) as canonical
JSON: the same spec gives the same ids in every process, and a job's folder ``jobs/<id>/`` can only ever hold
that job's checkpoints. A spec's ``plugins`` are part of each job's config (a worker imports them), so listing
plugins changes the ids.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ..train.config import TrainConfig
from .checker import SpecError
from .spec import Spec, axis_refs, substitute


@dataclass(frozen=True)
class Job:
    id: str
    kind: str  # "float" | "qat" | "inq" | "ensemble"
    axes: dict[str, Any]  # model, method, seed (absent for ensembles) and the extra axes the method uses
    config: dict[str, Any]  # everything the job does (what steps.run_job reads)
    parents: tuple[str, ...] = field(default_factory=tuple)

    @property
    def label(self) -> str:
        return axes_label(self.axes)


def axes_label(axes: dict[str, Any]) -> str:
    """How a job is named to people: ``narrow W2A2 seed 1 bits=2``."""
    extra = " ".join(f"{k}={v}" for k, v in axes.items() if k not in ("model", "method", "seed"))
    seed = f" seed {axes['seed']}" if "seed" in axes else ""
    return f"{axes.get('model')} {axes.get('method')}{seed}{' ' + extra if extra else ''}"


def job_id(config: dict, axes: dict) -> str:
    text = json.dumps({"config": config, "axes": axes}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def method_task(spec: Spec, method: str) -> str:
    """The task a method trains and is scored with: its own ``task``, else its nearest parent's (a QAT child
    retrains with the data treatment its float parent had), else the spec's."""
    cur: str | None = method
    while cur is not None:
        if "task" in spec.methods[cur]:
            return spec.methods[cur]["task"]
        cur = spec.methods[cur].get("parent")
    return spec.task


def method_axes(spec: Spec, method: str) -> list[str]:
    """The extra axes a method depends on (its own ``${axis}`` references and its parents'), in grid order."""
    refs: set[str] = set()
    cur: str | None = method
    while cur is not None:
        refs |= axis_refs(spec.methods[cur])
        cur = spec.methods[cur].get("parent")
    return [a for a in spec.extra_axes if a in refs]


class _Planner:
    def __init__(self, spec: Spec):
        self.spec = spec
        self.jobs: dict[str, Job] = {}  # insertion order = parents first

    def job(self, method: str, model: str, seed: int, cell: dict[str, Any]) -> str:
        s = self.spec
        m = s.methods[method]
        used = {a: cell[a] for a in method_axes(s, method)}
        # resources say where a job runs, not what it computes: not in its config, so not in its id
        recipe = {
            k: v for k, v in substitute(m, used).items() if k not in ("parent", "parent_seed", "task", "resources")
        }
        if m["kind"] == "ensemble":
            seeds, r = s.grid["seed"], recipe.get("rotation", 0)  # members: seeds r..r+members-1 (mod len)
            members = [seeds[(r + i) % len(seeds)] for i in range(recipe["members"])]
            parents = [self.job(m["parent"], model, x, cell) for x in members]
            axes = {"model": model, "method": method, **used}
            seed_value = None
        else:
            # parent_seed: every seed starts from the parent's model at that one seed (members of one parent)
            pseed = m.get("parent_seed", seed)
            parents = [self.job(m["parent"], model, pseed, cell)] if "parent" in m else []
            train = {**s.raw.get("train", {}), **recipe.get("train", {}), "seed": seed}
            recipe["train"] = TrainConfig.from_dict(train).to_dict()
            axes = {"model": model, "method": method, "seed": seed, **used}
            seed_value = seed
        config = {
            "task": method_task(s, method),
            "data": s.data,
            "model": s.models[model],
            "recipe": recipe,
            "seed": seed_value,
            "parents": parents,
        }
        if s.plugins:  # the modules a worker imports before building (absent when none: ids stay as they were)
            config["plugins"] = s.plugins
        jid = job_id(config, axes)
        if jid not in self.jobs:
            self.jobs[jid] = Job(jid, m["kind"], axes, config, tuple(parents))
        return jid


def plan(spec: Spec) -> list[Job]:
    """Every job of ``spec`` (its resolved scale), parents before children, in grid order."""
    p = _Planner(spec)
    for model in spec.grid["model"]:
        for method in spec.grid["method"]:
            used = method_axes(spec, method)
            for seed in spec.grid["seed"]:
                for values in _product([spec.grid[a] for a in used]):
                    cell = dict(zip(used, values))
                    named = {"model": model, "method": method, **cell}
                    if spec.methods[method]["kind"] != "ensemble":
                        named["seed"] = seed
                    if not excluded(spec, named):
                        p.job(method, model, seed, cell)
    if not p.jobs:
        raise SpecError(f"{spec.source}: [[exclude]] removes every cell of the grid: nothing to run")
    return list(p.jobs.values())


def excluded(spec: Spec, cell: dict[str, Any]) -> bool:
    """Whether a grid cell matches an ``[[exclude]]`` entry: every axis the entry names is in the cell with one of
    the listed values (an entry naming ``bits`` never matches a float model, which has no bits). Parents of a
    cell that is kept are planned even where their own cell is excluded."""
    return any(
        all(k in cell and cell[k] in (v if isinstance(v, list) else [v]) for k, v in e.items())
        for e in spec.raw.get("exclude", [])
    )


def _product(lists: list[list]) -> list[tuple]:
    out: list[tuple] = [()]
    for values in lists:
        out = [(*t, v) for t in out for v in values]
    return out


def describe(jobs: list[Job]) -> str:
    """The ``--dry-run`` listing: one line per job, then the count."""
    lines = [f"{'id':12s}  {'kind':8s}  {'job':40s}  parents"]
    for j in jobs:
        lines.append(f"{j.id:12s}  {j.kind:8s}  {j.label:40s}  {', '.join(j.parents) or '-'}")
    lines.append(f"{len(jobs)} jobs")
    return "\n".join(lines)
