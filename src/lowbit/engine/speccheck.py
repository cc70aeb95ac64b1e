"""Validation of a resolved study spec (the format is in ``spec.py``): one error line naming the path.

Field values are checked by the same code that will use them (TrainConfig, the quantizer registry,
QuantConfig, INQ's own checks, the data/model/task/extra registries); their messages are re-raised with the
path in the file: ``spec.toml: methods.W2.quant.weight.bits = 2.5: expected a whole number from 1 to 32``.
"""

from __future__ import annotations

from typing import Any

from .checker import Checker, SpecError, table
from .methodcheck import check_axes_used, check_methods
from .resources import check_resources
from .safepath import check_extra_names, check_name

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
    "resources",
    "report",
)
REPORT_KEYS = ("tables", "figures", "extras", "paragraphs")
TABLE_KEYS = ("title", "rows", "columns", "value", "where", "note", "reference", "aggregate")
AGGREGATES = ("mean", "max", "min")  # a table cell: mean ± std of its runs, or the best run (the seed's best-of-4)
FIGURE_KEYS = ("title", "metric", "x", "lines", "where", "file")


def check_spec(raw: dict, source: str, code: bool = True) -> None:
    """Raise ``SpecError`` for the first problem in a resolved spec ``raw``.

    code: import the modules the spec names (``plugins``, ``target`` entries) and check what they define. False
    when only reading a run's results (``usercode.py``): nothing is imported, and a name only the spec's plugins
    could define is taken as it is."""
    from ..data.sets import DATASETS
    from ..models import MODELS
    from ..tasks import TASKS
    from .bounds import check_bounds
    from .entries import MODEL_ENGINE_KEYS, check_entry, check_plugin_names, import_plugins, unsubstituted
    from .report.extras import EXTRAS
    from .usercode import already_imported, named_code

    c = Checker(source)
    c.keys(raw, "(top level)", TOP_KEYS)
    for k in ("name", "data", "grid", "models", "methods"):
        if k not in raw:
            raise SpecError(f"{source}: {k}: missing; a spec needs {', '.join(('name', 'data', 'grid', 'models'))}")
    if not isinstance(raw["name"], str) or not raw["name"]:
        c.fail("name", raw["name"], "expected a non-empty string")
    check_name(c, "name", raw["name"], "study name (it names the default run folder runs/NAME)")
    if code:
        import_plugins(c, raw.get("plugins", []))
    else:
        check_plugin_names(c, raw.get("plugins", []))
    lenient = not code and bool(named_code(raw)) and not already_imported(raw)
    task = raw.get("task", "classification")
    if not (lenient and task not in TASKS):
        c.name_in("task", task, TASKS.names(), "task")
    check_entry(c, "data", raw["data"], DATASETS, code, lenient)
    for m, cfg in table(c, raw["models"], "models").items():
        check_entry(c, f"models.{m}", cfg, MODELS, code, lenient, MODEL_ENGINE_KEYS)
    hit = unsubstituted(raw)
    if hit:
        c.fail(hit[0], hit[1], "not substituted here: grid axes are referred to only inside [methods.*]")
    grid = _check_grid(c, raw)
    check_bounds(c, raw, code)  # sizes within the local limits (bounds.py), before the methods' per-cell checks
    if "train" in raw:
        c.train("train", raw["train"])
    check_methods(c, raw, grid)
    check_resources(c, raw)
    check_axes_used(c, raw, grid)
    _check_exclude(c, raw.get("exclude", []), grid)
    from ..tasks import get_task
    from .annotate_step import metric_names as annotate_metric_names
    from .evaluation import added_metric_names

    if lenient and task not in TASKS:  # the task comes from a plugin not imported: its metrics are unknown
        metrics = None
    else:
        metrics = list(get_task(task).metric_names)
        metrics = [*metrics, *(f"{m}_before" for m in metrics), "on_codebook"]  # what steps.py adds
        metrics += added_metric_names(get_task(task))  # evaluation.py: train_*, memory
        metrics += annotate_metric_names(get_task(task).metric_names)  # annotate_step.py: QNT, diversity
    extras = EXTRAS.names() if not lenient else None
    _check_report(c, raw.get("report", {}), grid, extras, metrics, list(raw.get("methods", {})))


# the fixed columns of a result row (store.Row.flat): an axis of the same name would be overwritten there
RESERVED_AXES = ("job", "metric", "value", "wall_s", "model_path", "code_version")


def _check_grid(c: Checker, raw: dict) -> dict:
    grid = table(c, raw["grid"], "grid")
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


def _check_exclude(c: Checker, entries: Any, grid: dict) -> None:
    """``[[exclude]]``: tables {axis: value or list of values} naming grid axes (plan.excluded)."""
    if not isinstance(entries, list):
        c.fail("exclude", entries, "expected a list of tables [[exclude]] {axis = value or [values]}")
    for i, e in enumerate(entries):
        table(c, e, f"exclude[{i}]")
        if not e:
            c.fail(f"exclude[{i}]", e, "expected at least one axis (an empty entry would exclude every job)")
        for a, v in e.items():
            c.name_in(f"exclude[{i}].{a}", a, list(grid), "grid axis")
            if not all(isinstance(x, (int, float, str, bool)) for x in (v if isinstance(v, list) else [v])):
                c.fail(f"exclude[{i}].{a}", v, "expected a value or a list of values of the axis")


def _axis_list(c: Checker, path: str, v: Any, grid: dict) -> None:
    for a in [v] if isinstance(v, str) else v if isinstance(v, list) else [None]:
        c.name_in(path, a, list(grid), "grid axis")


def _check_report(
    c: Checker, rep: Any, grid: dict, extras: list[str] | None, metrics: list[str] | None, methods: list[str]
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
        if "aggregate" in t:
            c.name_in(f"{p}.aggregate", t["aggregate"], list(AGGREGATES), "aggregate")
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
        if "file" in f:  # figures/<file>.png: a plain name, inside the run folder (safepath.py)
            check_name(c, f"{p}.file", f["file"])
        for a in f.get("where", {}):
            c.name_in(f"{p}.where", a, list(grid), "grid axis")
    for name, opts in table(c, rep.get("extras", {}), "report.extras").items():
        if extras is None and name not in EXTRAS:
            continue  # a plugin's extra (the report skips it with a note unless its code may be imported)
        c.name_in("report.extras", name, extras or EXTRAS.names(), "report extra")
        table(c, opts, f"report.extras.{name}")
        # the extra's options are its keyword arguments: checked now, not after every job has trained
        c.call_args(f"report.extras.{name}", get_extra(name), opts)
        check_extra_names(c, f"report.extras.{name}", get_extra(name), opts)  # the figure names it writes
        check = getattr(get_extra(name), "check_options", None)  # an extra's own option checks (it may have none)
        if check is not None:
            try:
                check(opts, methods)
            except ValueError as e:
                raise SpecError(f"{c.source}: report.extras.{name}: {e}") from None
