"""The checks of a spec's ``[methods.*]``: kinds and their keys, parents and cycles, each recipe with every
``"${axis}"`` substituted, per-method tasks, INQ's portions and bits, and grid axes no method uses."""

from __future__ import annotations

import itertools
from typing import Any

from ..inq import STRATEGIES
from ..quantizers.pot import inq_fixed_exponents
from .annotate_step import KEYS as ANNOTATE_KEYS
from .axes import CORE_AXES, axis_refs, substitute
from .checker import Checker, SpecError, table
from .mixed import MIXED_KEYS, check_mixed

METHOD_KEYS = {  # and "resources" for every kind (resources.py: where a job runs, not what it computes)
    "float": ("kind", "task", "train", "resources"),
    # float training that starts from the parent's model (at ``parent_seed``: one shared parent for every seed)
    "finetune": ("kind", "parent", "parent_seed", "task", "train", "resources"),
    "qat": ("kind", "parent", "parent_seed", "task", "quant", "calibrate", "train", "resources"),
    "inq": (
        "kind",
        "parent",
        "parent_seed",
        "bits",
        "portions",
        "strategy",
        "max_value",
        "task",
        "quant",
        "calibrate",
        "train",
        "resources",
    ),
    "ensemble": ("kind", "parent", "members", "rotation", "resources"),
    "mixed": (*MIXED_KEYS, "resources"),  # per-layer bits under a memory budget, then qat (engine/mixed.py)
    "annotate": (*ANNOTATE_KEYS, "resources"),  # suggestive annotation + NT/QNT in one job (annotate_step.py)
}


def check_methods(c: Checker, raw: dict, grid: dict) -> None:
    methods = table(c, raw["methods"], "methods")
    for name, m in methods.items():
        p = f"methods.{name}"
        table(c, m, p)
        c.name_in(f"{p}.kind", m.get("kind"), list(METHOD_KEYS), "method kind")
        c.keys(m, p, METHOD_KEYS[m["kind"]])
        if m["kind"] not in ("float", "annotate"):  # the kinds that train from scratch
            if "parent" not in m:
                raise SpecError(f"{c.source}: {p}.parent: missing; a {m['kind']} method needs a parent method")
            c.name_in(f"{p}.parent", m["parent"], list(methods), "parent method")
            parent_kind = methods[m["parent"]].get("kind")
            if parent_kind == "ensemble":
                c.fail(f"{p}.parent", m["parent"], "an ensemble cannot be a parent; name a trained method")
        if "task" in m:
            _check_method_task(c, p, m["task"], raw)
        if m["kind"] == "qat" and "quant" not in m:
            raise SpecError(
                f"{c.source}: {p}.quant: missing; a qat method needs quant = {{ weight = ..., act = ... }} "
                "(what it quantizes before retraining)"
            )
        if m["kind"] == "inq" and "bits" not in m:
            raise SpecError(f'{c.source}: {p}.bits: missing; an inq method needs bits (a number or "${{axis}}")')
        if m["kind"] == "ensemble" and "members" not in m:
            raise SpecError(f"{c.source}: {p}.members: missing; an ensemble needs members (a number)")
        refs = axis_refs(m)
        for a in sorted(refs):
            if a not in grid or a in CORE_AXES:
                extra = [x for x in grid if x not in CORE_AXES]
                c.fail(p, f"${{{a}}}", f"refers to no grid axis; axes it may use: {', '.join(extra) or '(none)'}")
        axes = sorted(refs)
        for values in itertools.product(*(grid[a] for a in axes)):
            recipe = substitute(m, dict(zip(axes, values)))
            _check_recipe(c, p, recipe, raw, len(grid["seed"]))
            if m["kind"] == "mixed":
                check_mixed(c, p, recipe, methods)
    for name in methods:  # cycles
        seen, cur = [name], methods[name].get("parent")
        while cur is not None:
            if cur in seen:
                raise SpecError(f"{c.source}: methods.{name}.parent: cycle {' -> '.join([*seen, cur])}")
            seen.append(cur)
            cur = methods[cur].get("parent")


def _check_method_task(c: Checker, p: str, name: Any, raw: dict) -> None:
    """A method's own task (a recipe axis: e.g. plain vs crop + flip training in one study) must be registered and
    report the same metrics as the spec's task, so every table and claim reads every method the same way."""
    from ..tasks import get_task, task_names

    c.name_in(f"{p}.task", name, task_names(), "task")
    spec_task = get_task(raw.get("task", "classification"))
    if set(get_task(name).metric_names) != set(spec_task.metric_names):
        wanted = ", ".join(spec_task.metric_names)
        c.fail(f"{p}.task", name, f"expected a task reporting the spec task {spec_task.name!r}'s metrics ({wanted})")


def _check_recipe(c: Checker, p: str, m: dict, raw: dict, n_seeds: int) -> None:
    if "train" in m:
        c.train(f"{p}.train", m["train"], raw.get("train"))
    if "quant" in m:
        c.quant(f"{p}.quant", m["quant"])
    if "calibrate" in m:
        c.whole(f"{p}.calibrate", m["calibrate"], 0)
    if m["kind"] == "inq" and "quant" in m and not sets_weights(m["quant"]):
        c.fail(
            f"{p}.quant",
            m["quant"],
            "an inq method quantizes the weights its quant gives a weight quantizer (INQ replaces that quantizer), "
            "and this quant gives none: add weight = { name = ..., bits = ... } or drop quant",
        )
    if m["kind"] == "inq":
        c.whole(f"{p}.bits", m["bits"], 2, 32)
        if m.get("strategy", "magnitude") not in STRATEGIES:
            c.fail(f"{p}.strategy", m["strategy"], f"expected one of {', '.join(STRATEGIES)}")
        portions = m.get("portions", [0.5, 0.75, 0.875, 1.0])
        if not isinstance(portions, list) or not all(isinstance(x, (int, float)) for x in portions):
            c.fail(f"{p}.portions", portions, "expected a list of numbers")
        try:
            _check_portions(portions)
        except ValueError as e:
            c.fail(f"{p}.portions", portions, str(e))
        if "max_value" in m:  # a fixed top level 2^n1 for every layer (spec §1.1); absent: Eq. 3 per layer
            try:
                inq_fixed_exponents(m["max_value"], m["bits"])
            except ValueError:
                c.fail(f"{p}.max_value", m["max_value"], "expected a positive power of two (the top level, e.g. 4.0)")
    if "parent_seed" in m:
        c.whole(f"{p}.parent_seed", m["parent_seed"], 0)
    if m["kind"] == "annotate":
        _check_annotate(c, p, m, raw)
    if m["kind"] == "ensemble":
        c.whole(f"{p}.members", m["members"], 1, n_seeds)
        c.whole(f"{p}.rotation", m.get("rotation", 0), 0, n_seeds - 1)


def _check_annotate(c: Checker, p: str, m: dict, raw: dict) -> None:
    from .annotate_step import plan_of

    for k in ("member_train", "inq_train"):
        if k in m:
            c.train(f"{p}.{k}", m[k], raw.get("train"))
    if "budget" not in m:
        raise SpecError(f'{c.source}: {p}.budget: missing; an annotate method needs budget (a number or "${{axis}}")')
    try:
        plan_of({**m, "train": {}})
    except (ValueError, TypeError) as e:
        c.fail(p, {k: m[k] for k in m if k not in ("train", "member_train", "inq_train")}, str(e))


def sets_weights(quant: dict) -> bool:
    """Whether a QuantConfig table gives any layer a weight quantizer (by default or by a rule)."""
    if quant.get("weight") is not None:
        return True
    rules = quant.get("rules", {})
    return any(isinstance(r, dict) and r.get("weight") not in (None, "float") for r in rules.values())


def check_axes_used(c: Checker, raw: dict, grid: dict) -> None:
    """An axis beside model, method and seed makes jobs only through the methods that refer to it as "${axis}":
    one no method refers to would silently make nothing."""
    used: set[str] = set().union(*(axis_refs(m) for m in raw["methods"].values()))
    for axis, values in grid.items():
        if axis not in CORE_AXES and axis not in used:
            c.fail(
                f"grid.{axis}",
                values,
                f'no method uses this axis: refer to it as "${{{axis}}}" in a [methods.*] value, or remove it',
            )


def _check_portions(portions: list) -> None:
    if not portions or any(not 0 < x <= 1 for x in portions) or portions != sorted(set(portions)):
        raise ValueError("expected strictly increasing numbers in (0, 1]")
    if portions[-1] != 1.0:
        raise ValueError("expected the last portion to be 1.0 (every weight quantized)")
