"""Validation of a resolved study spec (the format is in ``spec.py``): one error line naming the path.

Field values are checked by the same code that will use them (TrainConfig, the quantizer registry,
QuantConfig, INQ's own checks, the data/model/task/extra registries); their messages are re-raised with the
path in the file: ``spec.toml: methods.W2.quant.weight.bits = 2.5: expected a whole number from 1 to 32``.
"""

from __future__ import annotations

import inspect
import itertools
import re
from typing import Any

from .. import quantizers
from ..config import QuantConfig
from ..inq import STRATEGIES
from ..train.config import TrainConfig
from .axes import CORE_AXES, axis_refs, substitute

TOP_KEYS = (
    "name",
    "description",
    "task",
    "scale",
    "plugins",
    "data",
    "grid",
    "exclude",
    "models",
    "train",
    "methods",
    "report",
)
METHOD_KEYS = {
    "float": ("kind", "task", "train"),
    "qat": ("kind", "parent", "task", "quant", "calibrate", "train"),
    "inq": ("kind", "parent", "bits", "portions", "strategy", "task", "quant", "calibrate", "train"),
    "ensemble": ("kind", "parent", "members", "rotation"),
}
REPORT_KEYS = ("tables", "figures", "extras", "paragraphs")
TABLE_KEYS = ("title", "rows", "columns", "value", "where", "note", "reference")
FIGURE_KEYS = ("title", "metric", "x", "lines", "where", "file")
_NOT_ACCEPTED = re.compile(r"(\w+)=(.+?) is not accepted; expected (.+)$")


class SpecError(ValueError):
    """A study spec that cannot run; the message is one line naming the path in the file."""


def _fmt(v: Any) -> str:
    return repr(v) if isinstance(v, str) else str(v).replace("True", "true").replace("False", "false")


class _Checker:
    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, value: Any, what: str) -> None:
        raise SpecError(f"{self.source}: {path} = {_fmt(value)}: {what}")

    def keys(self, d: Any, path: str, accepted: tuple[str, ...] | list[str]) -> dict:
        if not isinstance(d, dict):
            self.fail(path, d, "expected a table")
        for k in d:
            if k not in accepted:
                raise SpecError(f"{self.source}: {path}.{k}: unknown key; accepted: {', '.join(accepted)}")
        return d

    def reword(self, path: str, err: Exception) -> None:
        """Re-raise a config/quantizer error with the path: ``path.field = value: expected ...``."""
        msg = str(err)
        m = _NOT_ACCEPTED.search(msg)
        if m:
            value = {"True": "true", "False": "false"}.get(m.group(2), m.group(2))  # as TOML writes it
            raise SpecError(f"{self.source}: {path}.{m.group(1)} = {value}: expected {m.group(3)}") from None
        raise SpecError(f"{self.source}: {path}: {msg}") from None

    def whole(self, path: str, v: Any, lo: int, hi: int | None = None) -> None:
        ok = isinstance(v, int) and not isinstance(v, bool) and v >= lo and (hi is None or v <= hi)
        if not ok:
            what = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            self.fail(path, v, f"expected a whole number {what}")

    def name_in(self, path: str, v: Any, names: list[str], what: str) -> None:
        if v not in names:
            self.fail(path, v, f"unknown {what}; accepted: {', '.join(names)}")

    def call_args(self, path: str, fn: Any, args: dict) -> None:
        """Unknown keyword arguments of a registered builder, by name."""
        params = inspect.signature(fn).parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return
        for k in args:
            if k not in params:
                accepted = ", ".join(["name", *params])
                raise SpecError(f"{self.source}: {path}.{k}: unknown key; accepted: {accepted}")

    def train(self, path: str, d: Any, base: dict | None = None) -> None:
        self.keys(d, path, [f for f in TrainConfig.__dataclass_fields__ if f != "seed"])
        try:
            TrainConfig.from_dict({**(base or {}), **d})
        except (ValueError, TypeError) as e:
            self.reword(path, e)

    def quantizer(self, path: str, d: Any) -> None:
        if d is None:
            return
        if isinstance(d, str):
            d = {"name": d}
        if not isinstance(d, dict) or "name" not in d:
            self.fail(path, d, 'expected a quantizer table like { name = "uniform", bits = 2 }')
        self.name_in(f"{path}.name", d["name"], quantizers.names(), "quantizer")
        try:
            quantizers.get(d)
        except (ValueError, TypeError) as e:
            self.reword(path, e)

    def quant(self, path: str, d: Any) -> None:
        self.keys(d, path, ("weight", "act", "keep_float", "rules", "quantize_input"))
        self.quantizer(f"{path}.weight", d.get("weight"))
        self.quantizer(f"{path}.act", d.get("act"))
        for sel, rule in d.get("rules", {}).items():
            self.keys(rule, f"{path}.rules.{sel}", ("weight", "act"))
            for role in ("weight", "act"):  # "float": this role stays float (a left-out key inherits the default)
                spec = rule.get(role)
                self.quantizer(f"{path}.rules.{sel}.{role}", None if spec == "float" else spec)
        try:
            QuantConfig.from_dict(d)
        except (ValueError, TypeError) as e:
            self.reword(path, e)


def check_spec(raw: dict, source: str, code: bool = True) -> None:
    """Raise ``SpecError`` for the first problem in a resolved spec ``raw``.

    code: import the modules the spec names (``plugins``, ``target`` entries) and check what they define. False
    when only reading a run's results (``usercode.py``): nothing is imported, and a name only the spec's plugins
    could define is taken as it is."""
    from ..data.sets import DATASETS
    from ..models import MODELS
    from ..tasks import TASKS
    from .entries import MODEL_ENGINE_KEYS, check_entry, check_plugin_names, import_plugins, unsubstituted
    from .report.extras import EXTRAS
    from .usercode import already_imported, named_code

    c = _Checker(source)
    c.keys(raw, "(top level)", TOP_KEYS)
    for k in ("name", "data", "grid", "models", "methods"):
        if k not in raw:
            raise SpecError(f"{source}: {k}: missing; a spec needs {', '.join(('name', 'data', 'grid', 'models'))}")
    if not isinstance(raw["name"], str) or not raw["name"]:
        c.fail("name", raw["name"], "expected a non-empty string")
    if code:
        import_plugins(c, raw.get("plugins", []))
    else:
        check_plugin_names(c, raw.get("plugins", []))
    lenient = not code and bool(named_code(raw)) and not already_imported(raw)
    task = raw.get("task", "classification")
    if not (lenient and task not in TASKS):
        c.name_in("task", task, TASKS.names(), "task")
    check_entry(c, "data", raw["data"], DATASETS, code, lenient)
    for m, cfg in _table(c, raw["models"], "models").items():
        check_entry(c, f"models.{m}", cfg, MODELS, code, lenient, MODEL_ENGINE_KEYS)
    hit = unsubstituted(raw)
    if hit:
        c.fail(hit[0], hit[1], "not substituted here: grid axes are referred to only inside [methods.*]")
    grid = _check_grid(c, raw)
    if "train" in raw:
        c.train("train", raw["train"])
    _check_methods(c, raw, grid)
    _check_axes_used(c, raw, grid)
    _check_exclude(c, raw.get("exclude", []), grid)
    from ..tasks import get_task
    from .evaluation import added_metric_names

    if lenient and task not in TASKS:  # the task comes from a plugin not imported: its metrics are unknown
        metrics = None
    else:
        metrics = list(get_task(task).metric_names)
        metrics = [*metrics, *(f"{m}_before" for m in metrics), "on_codebook"]  # what steps.py adds
        metrics += added_metric_names(get_task(task))  # evaluation.py: train_*, memory
    extras = EXTRAS.names() if not lenient else None
    _check_report(c, raw.get("report", {}), grid, extras, metrics, list(raw.get("methods", {})))


def _table(c: _Checker, d: Any, path: str) -> dict:
    if not isinstance(d, dict):
        c.fail(path, d, "expected a table")
    return d


# the fixed columns of a result row (store.Row.flat): an axis of the same name would be overwritten there
RESERVED_AXES = ("job", "metric", "value", "wall_s", "model_path", "code_version")


def _check_grid(c: _Checker, raw: dict) -> dict:
    grid = _table(c, raw["grid"], "grid")
    for axis in ("model", "method", "seed"):
        if axis not in grid:
            raise SpecError(f"{c.source}: grid.{axis}: missing; the grid needs model, method and seed lists")
    for axis, values in grid.items():
        if axis in RESERVED_AXES:
            c.fail(
                f"grid.{axis}",
                values,
                f"this name is a column of the result rows; reserved: {', '.join(RESERVED_AXES)}",
            )
        if not isinstance(values, list) or not values:
            c.fail(f"grid.{axis}", values, "expected a non-empty list")
        if len({repr(v) for v in values}) != len(values):
            c.fail(f"grid.{axis}", values, "expected distinct values")
        for i, v in enumerate(values):
            if not isinstance(v, (int, float, str, bool)):
                c.fail(f"grid.{axis}[{i}]", v, "expected a number or a string")
    for i, m in enumerate(grid["model"]):
        c.name_in(f"grid.model[{i}]", m, list(raw["models"]), "model (a [models.NAME] table)")
    for i, m in enumerate(grid["method"]):
        c.name_in(f"grid.method[{i}]", m, list(raw["methods"]), "method (a [methods.NAME] table)")
    for i, s in enumerate(grid["seed"]):
        c.whole(f"grid.seed[{i}]", s, 0)
    return grid


def _check_exclude(c: _Checker, entries: Any, grid: dict) -> None:
    """``[[exclude]]``: tables {axis: value or list of values} naming grid axes (plan.excluded)."""
    if not isinstance(entries, list):
        c.fail("exclude", entries, "expected a list of tables [[exclude]] {axis = value or [values]}")
    for i, e in enumerate(entries):
        _table(c, e, f"exclude[{i}]")
        if not e:
            c.fail(f"exclude[{i}]", e, "expected at least one axis (an empty entry would exclude every job)")
        for a, v in e.items():
            c.name_in(f"exclude[{i}].{a}", a, list(grid), "grid axis")
            if not all(isinstance(x, (int, float, str, bool)) for x in (v if isinstance(v, list) else [v])):
                c.fail(f"exclude[{i}].{a}", v, "expected a value or a list of values of the axis")


def _check_methods(c: _Checker, raw: dict, grid: dict) -> None:
    methods = _table(c, raw["methods"], "methods")
    for name, m in methods.items():
        p = f"methods.{name}"
        _table(c, m, p)
        c.name_in(f"{p}.kind", m.get("kind"), list(METHOD_KEYS), "method kind")
        c.keys(m, p, METHOD_KEYS[m["kind"]])
        if m["kind"] != "float":
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
            _check_recipe(c, p, substitute(m, dict(zip(axes, values))), raw, len(grid["seed"]))
    for name in methods:  # cycles
        seen, cur = [name], methods[name].get("parent")
        while cur is not None:
            if cur in seen:
                raise SpecError(f"{c.source}: methods.{name}.parent: cycle {' -> '.join([*seen, cur])}")
            seen.append(cur)
            cur = methods[cur].get("parent")


def _check_method_task(c: _Checker, p: str, name: Any, raw: dict) -> None:
    """A method's own task (a recipe axis: e.g. plain vs crop + flip training in one study) must be registered and
    report the same metrics as the spec's task, so every table and claim reads every method the same way."""
    from ..tasks import get_task, task_names

    c.name_in(f"{p}.task", name, task_names(), "task")
    spec_task = get_task(raw.get("task", "classification"))
    if set(get_task(name).metric_names) != set(spec_task.metric_names):
        wanted = ", ".join(spec_task.metric_names)
        c.fail(f"{p}.task", name, f"expected a task reporting the spec task {spec_task.name!r}'s metrics ({wanted})")


def _check_recipe(c: _Checker, p: str, m: dict, raw: dict, n_seeds: int) -> None:
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
    if m["kind"] == "ensemble":
        c.whole(f"{p}.members", m["members"], 1, n_seeds)
        c.whole(f"{p}.rotation", m.get("rotation", 0), 0, n_seeds - 1)


def sets_weights(quant: dict) -> bool:
    """Whether a QuantConfig table gives any layer a weight quantizer (by default or by a rule)."""
    if quant.get("weight") is not None:
        return True
    rules = quant.get("rules", {})
    return any(isinstance(r, dict) and r.get("weight") not in (None, "float") for r in rules.values())


def _check_axes_used(c: _Checker, raw: dict, grid: dict) -> None:
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


def _axis_list(c: _Checker, path: str, v: Any, grid: dict) -> None:
    for a in [v] if isinstance(v, str) else v if isinstance(v, list) else [None]:
        c.name_in(path, a, list(grid), "grid axis")


def _check_report(
    c: _Checker, rep: Any, grid: dict, extras: list[str] | None, metrics: list[str] | None, methods: list[str]
) -> None:
    """extras / metrics None: not known (they come from plugins that were not imported), so not checked."""
    from .report.extras import EXTRAS, get_extra

    c.keys(rep, "report", REPORT_KEYS)
    for i, t in enumerate(rep.get("tables", [])):
        p = f"report.tables[{i}]"
        c.keys(t, p, TABLE_KEYS)
        for k in ("rows", "columns", "value"):
            if k not in t:
                raise SpecError(f"{c.source}: {p}.{k}: missing; a table needs rows, columns and value")
        _axis_list(c, f"{p}.rows", t["rows"], grid)
        _axis_list(c, f"{p}.columns", t["columns"], grid)
        if metrics is not None:
            c.name_in(f"{p}.value", t["value"], metrics, "metric")
        for a in t.get("where", {}):
            c.name_in(f"{p}.where", a, list(grid), "grid axis")
    for i, f in enumerate(rep.get("figures", [])):
        p = f"report.figures[{i}]"
        c.keys(f, p, FIGURE_KEYS)
        for k in ("metric", "x"):
            if k not in f:
                raise SpecError(f"{c.source}: {p}.{k}: missing; a figure needs metric and x")
        _axis_list(c, f"{p}.x", f["x"], grid)
        if metrics is not None:
            c.name_in(f"{p}.metric", f["metric"], metrics, "metric")
        if "lines" in f:
            _axis_list(c, f"{p}.lines", f["lines"], grid)
        for a in f.get("where", {}):
            c.name_in(f"{p}.where", a, list(grid), "grid axis")
    for name, opts in _table(c, rep.get("extras", {}), "report.extras").items():
        if extras is None and name not in EXTRAS:
            continue  # a plugin's extra (the report skips it with a note unless its code may be imported)
        c.name_in("report.extras", name, extras or EXTRAS.names(), "report extra")
        _table(c, opts, f"report.extras.{name}")
        # the extra's options are its keyword arguments: checked now, not after every job has trained
        c.call_args(f"report.extras.{name}", get_extra(name), opts)
        check = getattr(get_extra(name), "check_options", None)  # an extra's own option checks (it may have none)
        if check is not None:
            try:
                check(opts, methods)
            except ValueError as e:
                raise SpecError(f"{c.source}: report.extras.{name}: {e}") from None
