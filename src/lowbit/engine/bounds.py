"""Bounded resources on untrusted input (docs/reliability.md, "Bounded resources"): what a spec, a stored
``spec.toml`` or a result store asks for is estimated from its numbers before anything is allocated, and refused in
one line naming the key, the estimate and the limit (``lowbit.limits``; the local user raises a limit with
``LOWBIT_LIMITS``, a spec cannot).

When a spec is read (``check_spec``, so ``lowbit sweep``, ``--dry-run``, ``--plan-only``, and ``lowbit report`` /
``lowbit results`` on a stored ``spec.toml``):

- **jobs**: the plan's size, counted from the grid without expanding it (``job_estimate``): for every method of the
  grid and each of its parents, models x seeds (one for an ensemble) x the values of each axis it uses.
  ``[[exclude]]`` is ignored, so this is an upper bound (the plan expands the grid cell by cell: 10⁹ cells would
  hold the memory and time of 10⁹ job configs);
- **data**: the bytes of one input item and of the whole set, from the data set's ``sizes`` fact
  (``lowbit.data.sets.sizes``); a data set without one (a plugin's, a ``target``) is estimated only once loaded;
- **models**: each model of the grid is built on the meta device (``lowbit.models.size``) with the sizes the data
  gives; a model whose data sizes only the files tell is checked in the preflight (``check_model_fits``), after
  the data is loaded and before the model is built. A user's ``target`` model is built on ``meta`` only when the
  spec's code may be imported; a builder that cannot run on ``meta`` is not estimated (its real build follows).

A result store is checked when it is opened (``check_store``): its rows and its file size.
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

from ..limits import LimitExceeded, limit, over, show
from .axes import CORE_AXES, axis_refs
from .checker import Checker, SpecError, _fmt

STORE_ROW_BYTES = 1_000  # measured memory of reading one store row (benchmarks/store_memory.py: 953-1,265 bytes)


def check_bounds(c: Checker, raw: dict, code: bool) -> None:
    """Raise ``SpecError`` when the resolved spec ``raw`` asks for more than the limits allow. Called once its data,
    model entries and grid are checked, before its methods are (their checks visit every cell of the grid)."""
    _check_jobs(c, raw)
    sizes = _check_data(c, raw["data"])
    if sizes is None or sizes.item_bytes is None:
        return  # what the models take is known once the data is loaded: check_model_fits in the preflight
    for label in dict.fromkeys(raw["grid"]["model"]):
        cfg = raw["models"][label]
        if "target" in cfg and not code:
            continue  # a user's builder that may not be imported here
        try:
            check_model_fits(label, cfg, _info_for(cfg, sizes.info))
        except LimitExceeded as e:
            raise SpecError(f"{c.source}: {e}") from None


# ---------------------------------------------------------------------------------------------------- jobs
def job_estimate(raw: dict) -> tuple[int, str]:
    """(at most how many jobs the plan of ``raw`` has, its largest term written out). Each method of the grid and
    each of its parents counts once (a parent's jobs depend only on the axes it and its own parents use, as in
    ``plan.method_axes``): models x seeds (1 for an ensemble) x the values of each such axis. Exact without
    ``[[exclude]]`` and ensembles (whose parents may need only some seeds), an upper bound with them."""
    grid = raw["grid"]
    methods = raw["methods"] if isinstance(raw["methods"], dict) else {}
    extra = [a for a in grid if a not in CORE_AXES]
    counted: set[str] = set()
    total, largest, text = 0, -1, ""
    for name in grid["method"]:
        chain: list[str] = []
        cur: str | None = name
        while isinstance(cur, str) and cur not in chain and isinstance(methods.get(cur), dict):
            chain.append(cur)  # (checked before the methods are: anything odd ends the chain, check_methods says it)
            cur = methods[cur].get("parent")
        for i, m in enumerate(chain):
            if m in counted:
                continue
            counted.add(m)
            refs = set().union(*(axis_refs(methods[x]) for x in chain[i:]))
            factors = [("model", len(grid["model"]))]
            if methods[m].get("kind") != "ensemble":
                factors.append(("seed", len(grid["seed"])))
            factors += [(a, len(grid[a])) for a in extra if a in refs]
            n = math.prod(f for _, f in factors)
            total += n
            if n > largest:
                largest, text = n, f"method {m!r}: " + " x ".join(f"{a} {f:,}" for a, f in factors)
    return total, text


def _check_jobs(c: Checker, raw: dict) -> None:
    n, largest = job_estimate(raw)
    tail = over("jobs", n)
    if tail is not None:
        raise SpecError(f"{c.source}: grid: the plan would have up to {show('jobs', n)} jobs ({largest}), {tail}")


# ---------------------------------------------------------------------------------------------------- data
def data_args(cfg: dict) -> dict[str, Any] | None:
    """The arguments a registered data set's builder gets from a ``[data]`` entry, its defaults filled in; None for
    a ``target`` or a name the registry does not know (a plugin's, not imported)."""
    from ..arguments import params
    from ..data.sets import DATASETS
    from .entries import builder_kwargs

    if "name" not in cfg or cfg["name"] not in DATASETS:
        return None
    return {p.name: p.default for p in params(DATASETS.get(cfg["name"])) if not p.required} | builder_kwargs(cfg)


def data_sizes(cfg: dict):
    """The ``DataSizes`` of a ``[data]`` entry, or None when its data set gives no ``sizes`` (a ``target``, a plugin's
    set without one) or the estimate fails on odd arguments (the builder refuses them in its own line)."""
    from ..data.sets import DATASETS

    args = data_args(cfg)
    estimate = None if args is None else DATASETS.meta(cfg["name"]).get("sizes")
    if estimate is None:
        return None
    try:
        return estimate(args)
    except (TypeError, ValueError, KeyError, ZeroDivisionError, OverflowError):
        return None


def _keys_text(cfg: dict, keys: tuple[str, ...]) -> str:
    """``data.tile = 64 (default), data.tiles_per_image = 100000000``: the arguments an estimate grows with."""
    args = data_args(cfg) or {}
    shown = [f"data.{k} = {_fmt(args[k])}{'' if k in cfg else ' (default)'}" for k in keys if k in args]
    return ", ".join(shown) or f"data (data set {cfg.get('name')!r})"


def _check_data(c: Checker, cfg: dict):
    sizes = data_sizes(cfg)
    if sizes is None:
        return None
    if sizes.item_bytes is not None and (tail := over("item_bytes", sizes.item_bytes)) is not None:
        raise SpecError(
            f"{c.source}: {_keys_text(cfg, sizes.item_keys)}: one input item would take about "
            f"{show('item_bytes', sizes.item_bytes)} as float32, {tail}"
        )
    if sizes.total_bytes is not None and (tail := over("data_bytes", sizes.total_bytes)) is not None:
        raise SpecError(
            f"{c.source}: {_keys_text(cfg, sizes.total_keys)}: the data set would hold about "
            f"{show('data_bytes', sizes.total_bytes)} in memory, {tail}"
        )
    return sizes


def _info_for(cfg: dict, info: dict) -> dict:
    """The data sizes as a model entry sees them: flattened for a model that takes vectors (``flatten_images``)."""
    from .models import takes_vectors

    if takes_vectors(cfg) and "in_channels" in info and "input_size" in info:
        out = {k: v for k, v in info.items() if k not in ("in_channels", "input_size")}
        out["in_features"] = info["in_channels"] * info["input_size"] ** 2
        return out
    return info


# ---------------------------------------------------------------------------------------------------- models
def check_model_fits(label: str, cfg: dict, info: dict) -> None:
    """Raise ``LimitExceeded`` (``models.LABEL (builder args): ...``) when the model of entry ``cfg``, with the
    data sizes ``info`` filled in, passes the ``params`` or ``parts`` limit; built on the meta device only."""
    from ..models import MODELS
    from ..models.size import model_size
    from .entries import builder_kwargs, entry_label
    from .models import model_builder_of, model_kwargs

    if "name" in cfg and cfg["name"] not in MODELS:
        return  # a plugin's model whose plugin was not imported
    args = " ".join(f"{k}={_fmt(v)}" for k, v in builder_kwargs(cfg, ("flatten",)).items())
    what = f"models.{label} ({entry_label(cfg)}{' ' + args if args else ''})"
    try:
        fn, kwargs = model_builder_of(cfg), model_kwargs(cfg, info)
    except (ValueError, TypeError, ImportError, AttributeError):
        return  # the builder cannot be resolved: the spec check or the real build says so
    model_size(fn, kwargs, what)


# ---------------------------------------------------------------------------------------------------- store
def check_store(path: Path, db: sqlite3.Connection, tables: set[str]) -> None:
    """Raise ``LimitExceeded`` when the store at ``path`` holds more rows (results + failures) than ``store_rows``
    or its files are larger than ``store_memory`` (what is read from them is held in memory): before reading it."""
    size = sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.is_file())
    if (tail := over("store_memory", size)) is not None:
        raise LimitExceeded(f"{str(path)!r} takes {show('store_memory', size)} on disk, {tail}")
    rows = sum(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("results", "failures") if t in tables)
    if (tail := over("store_rows", rows)) is not None:
        raise LimitExceeded(
            f"{str(path)!r} holds {show('store_rows', rows)} rows; reading them takes about "
            f"{show('store_memory', rows * STORE_ROW_BYTES)} (~1 KB a row), {tail}"
        )


ROW_BYTES = 200  # a Row (96 bytes with slots), its two floats (24 each) and its place in the lists that hold it


def json_bytes(text: str) -> int:
    """An upper estimate of what ``json.loads(text)`` holds: the text, 200 bytes a container (CPython 3.11: an empty
    dict 64, one of 1-5 keys 184) and 60 a value. Made-up JSON of empty tables takes 24x its text; real configs ~5x."""
    return len(text) + 200 * (text.count("{") + text.count("[")) + 60 * (text.count(",") + text.count(":") + 1)


class StoreBudget:
    """What reading a store holds, estimated row by row as it is read (``add``): ``LimitExceeded`` as soon as the
    estimate passes ``store_memory``, so a store whose rows were made to expand (their JSON, their count) is refused
    with a bounded amount read, whatever its file holds."""

    def __init__(self, path: Path):
        self.path, self.limit, self.used, self.rows = path, limit("store_memory"), 0, 0

    def add(self, strings: tuple = (), json_texts: tuple = ()) -> None:
        """One row: its object, the new strings it holds and the JSON it parses (shared ones are not counted)."""
        self.rows += 1
        self.used += ROW_BYTES + sum(50 + len(s) for s in strings if isinstance(s, str))
        self.used += sum(json_bytes(t) for t in json_texts if isinstance(t, str))
        if self.used > self.limit:
            raise LimitExceeded(
                f"{str(self.path)!r}: reading its rows would hold more than {show('store_memory', self.limit)} "
                f"(estimated row by row; {self.rows:,} rows read so far), over the limit store_memory = "
                f'{show("store_memory", self.limit)} (the local user raises it: LOWBIT_LIMITS="store_memory=N")'
            )


def check_file_size(path: Path, name: str, what: str) -> None:
    """Raise ``LimitExceeded`` when the file at ``path`` is larger than the byte limit ``name``."""
    try:
        size = Path(path).stat().st_size
    except OSError:
        return  # a missing file: the reader says so
    if (tail := over(name, size)) is not None:
        raise LimitExceeded(f"{what} {str(path)!r} takes {show(name, size)}, {tail}")
