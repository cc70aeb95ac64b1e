"""The study spec: one TOML file says what a study trains, on what, and what its report shows (docs/spec.md).

    name = "my-study"                  # required; description = "..." optional
    task = "classification"            # a registered task (lowbit.tasks): loss, predict, metrics
    plugins = ["my_pkg.lowbit_plugin"] # optional: modules to import first (they register models, data sets,
                                       # tasks, report extras); a spec that names code is code (usercode.py)
    [data]                             # a registered data set (`lowbit datasets`) and its arguments, checked
    name = "digits"                    # against the builder's signature; or target = "my_pkg.data:build", a
                                       # function returning lowbit.data.sets.Data, with its arguments
    [grid]                             # named axes; every job is one cell of their product
    model = ["small", "wide"]          # names of [models.*] entries
    method = ["float", "W2", "INQ"]    # names of [methods.*] entries (parents are added to the plan as needed)
    seed = [0, 1]
    bits = [2, 3, 4]                   # any other axis; a method uses it by writing "${bits}" as a value
                                       # (only [methods.*] values are substituted; an axis no method uses is
                                       # an error)
    [models.small]                     # a registered model (`lowbit models`) and its arguments (input size /
    name = "fcdnn"                     # classes come from the data where the model takes them); or
    width = 32                         # target = "my_pkg.models:build" (returns an nn.Module) and its arguments
    flatten = true                     # optional: the model takes flat vectors, so image data is flattened for
                                       # it (the default comes from the model: true for fcdnn; entries.py)
    [train]                            # defaults for every method's train table (TrainConfig fields, no seed;
                                       # `lowbit train-config` lists them: Adam, lr 1e-3, cosine by default)
    epochs = 5
    [methods.float]                    # kind = "float": train from scratch
    kind = "float"
    [methods.W2]                       # kind = "qat": quantize the parent's saved model, calibrate, retrain
    kind = "qat"
    parent = "float"
    quant = { weight = { name = "uniform", bits = 2 } }   # QuantConfig fields (required)
    calibrate = 4096                   # training samples that calibrate activation quantizers (spec §2.3)
    train = { epochs = 2, lr = 1e-3 }
    [methods.INQ]                      # kind = "inq": incremental power-of-two quantization of the parent
    kind = "inq"
    parent = "float"
    bits = "${bits}"                   # one method, one job per value of the bits axis
    portions = [0.5, 0.75, 0.875, 1.0]
    strategy = "magnitude"             # optional quant = {...} as for qat (applied before INQ, which then
                                       # replaces its weight quantizers: it must set some)
    [methods.E4]                       # kind = "ensemble": average the probabilities of the parent's models
    kind = "ensemble"                  # over the first `members` seeds of the grid; nothing is trained
    parent = "W2"
    members = 2                        # (or "${members}" over an axis); rotation = r: seeds r..r+members-1 mod n
    [[exclude]]                        # grid cells not to run: every axis named matches (a value or a list);
    model = "wide"                     # a job without that axis (float has no bits) never matches
    bits = [2, 3]
    [resources]                        # optional: what each job reserves on a Ray cluster (resources.py);
    cpus = 1                           # a method's resources = { gpus = 1 } overrides it; not in job ids
    [scales.tiny]                      # overlays: merged over the spec when --scale tiny is given; any field
    grid = { seed = [0] }              # (tables merge key by key, other values are replaced; a table naming
                                       # another name / target, e.g. data = { name = "imagenet" }, replaces it)
    [scales.tiny_cosine]               # extends = a scale name or a list: those overlays first, in order, then
    extends = "tiny"                   # this one's fields on top (a scale that repeats another's changes names it)
    train = { schedule = "cosine" }
    [report]                           # see lowbit.engine.report: tables, figures, extras

Every error is one line naming the path in the file and what is accepted (``SpecError``).
The resolved spec (overlay applied, ``scale = NAME`` recorded, ``scales`` dropped) is what a run stores in
its ``spec.toml`` and what the run reads back: the config that ran is the config that was read.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import tomlio
from .axes import CORE_AXES, axis_refs, substitute
from .bounds import check_file_size
from .speccheck import SpecError, check_spec
from .usercode import add_search_dirs, named_code

__all__ = ["SpecError", "Spec", "load_spec", "parse_spec", "axis_refs", "substitute", "first_difference"]


@dataclass(frozen=True)
class Spec:
    """A validated, resolved spec. ``raw`` is the resolved TOML dict (what ``spec.toml`` holds)."""

    raw: dict
    source: str = "spec"

    @property
    def name(self) -> str:
        return self.raw["name"]

    @property
    def description(self) -> str:
        return self.raw.get("description", "")

    @property
    def scale(self) -> str:
        return self.raw.get("scale", "default")

    @property
    def task(self) -> str:
        return self.raw.get("task", "classification")

    @property
    def plugins(self) -> list[str]:
        return list(self.raw.get("plugins", []))

    @property
    def data(self) -> dict:
        return self.raw["data"]

    @property
    def grid(self) -> dict[str, list]:
        return self.raw["grid"]

    @property
    def extra_axes(self) -> list[str]:
        return [a for a in self.grid if a not in CORE_AXES]

    @property
    def models(self) -> dict[str, dict]:
        return self.raw["models"]

    @property
    def methods(self) -> dict[str, dict]:
        return self.raw["methods"]

    @property
    def report(self) -> dict:
        return self.raw.get("report", {})

    def to_toml(self) -> str:
        return tomlio.dumps(self.raw)


def _same_entry(base: dict, over: dict) -> bool:
    """Whether ``over`` overrides arguments of the same registered entry as ``base`` (a [data] or model table):
    one naming another ``name`` / ``target`` (the paper scale's ImageNet in place of CIFAR-10) replaces it whole,
    since the other builder's arguments mean nothing to it."""
    return all(over.get(k, base.get(k)) == base.get(k) for k in ("name", "target"))


def deep_merge(base: dict, over: dict) -> dict:
    """``over`` merged into a copy of ``base``: tables merge key by key (a table naming another data set or model,
    ``name`` / ``target``, replaces the table), any other value replaces."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and _same_entry(out[k], v):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def scale_overlay(scales: dict, name: str, source: str, chain: tuple[str, ...] = ()) -> dict:
    """The overlay of scale ``name`` with its ``extends`` applied first: a scale name or a list of them, merged in
    order, then the scale's own fields on top. ``default`` is the spec as written (an empty overlay)."""
    if name in chain:
        raise SpecError(
            f"{source}: scales.{chain[0]}.extends: the scales extend each other: {' -> '.join((*chain, name))}"
        )
    own = dict(scales.get(name, {}))
    bases = own.pop("extends", [])
    if isinstance(bases, str):
        bases = [bases]
    accepted = sorted({"default", *scales})
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise SpecError(f"{source}: scales.{name}.extends = {bases!r}: expected a scale name or a list of them")
    out: dict = {}
    for base in bases:
        if base not in scales and base != "default":
            raise SpecError(
                f"{source}: scales.{name}.extends = {base!r}: not a scale of this spec; accepted: {', '.join(accepted)}"
            )
        out = deep_merge(out, scale_overlay(scales, base, source, (*chain, name)))
    return deep_merge(out, own)


def resolve_scale(raw: dict, scale: str | None, source: str) -> dict:
    """Apply ``[scales.SCALE]`` (after the scales it ``extends``) and record ``scale``; None: the scale the spec
    records, else "default"."""
    scales = raw.get("scales", {})
    if not isinstance(scales, dict) or not all(isinstance(v, dict) for v in scales.values()):
        raise SpecError(f"{source}: scales: expected tables [scales.NAME] of overrides")
    overlays = {name: scale_overlay(scales, name, source) for name in scales}  # a wrong `extends` fails any scale
    out = {k: v for k, v in raw.items() if k != "scales"}
    if scale is None:
        scale = raw.get("scale", "default")
    if "scale" in raw and raw["scale"] != scale:
        raise SpecError(f"{source}: already resolved at scale {raw['scale']!r}; cannot re-scale it to {scale!r}")
    accepted = sorted({"default", *scales})
    if scale not in accepted and "scale" not in raw:
        raise SpecError(f"{source}: --scale {scale!r} is not defined; accepted: {', '.join(accepted)}")
    out = deep_merge(out, overlays.get(scale, {}))
    out["scale"] = scale
    return out


def parse_spec(raw: dict, scale: str | None = None, source: str = "spec", code: bool = True) -> Spec:
    """Validate ``raw`` (a parsed TOML dict) at ``scale`` and return the resolved ``Spec``.

    code: import the modules the spec names (``plugins``, ``target`` entries: a spec that names code is code)
    and check what they define; False reads a stored spec without importing anything (``usercode.py``)."""
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: expected a TOML table at the top level")
    resolved = resolve_scale(raw, scale, source)
    check_spec(resolved, source, code)
    return Spec(resolved, source)


def read_spec_file(path: str | Path, what: str = "spec file") -> dict:
    """The TOML table of a spec file; a missing file, a folder or bad TOML is one line."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} {str(path)!r} is a directory; expected a TOML file (e.g. my-study.toml)")
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    check_file_size(path, "spec_bytes", what)  # parsed whole: within the local limit (bounds.py)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise SpecError(f"{path.name}: not valid TOML: {e}") from None


def find_code_beside(raw: Any, path: str | Path) -> None:
    """When the spec read from ``path`` names code (``plugins``, ``target``; in any scale), let its modules be found
    beside the spec file and in the current directory (``usercode.add_search_dirs``)."""
    if not isinstance(raw, dict):
        return
    scales = raw.get("scales")
    overlays = [v for v in scales.values() if isinstance(v, dict)] if isinstance(scales, dict) else []
    tables = [raw, *overlays]
    tables += [{"data": t.get("data"), "models": {"model": t.get("model")}} for t in tables]  # `lowbit run` short form
    if any(named_code(t) for t in tables):
        add_search_dirs([Path(path).resolve().parent, Path.cwd()])


def load_spec(path: str | Path, scale: str | None = None) -> Spec:
    """Read, resolve and check a spec file. A spec that names code (``plugins``, ``target``) imports it: modules
    beside the spec file or in the current directory are found without installing them (``usercode.py``)."""
    raw = read_spec_file(path)
    find_code_beside(raw, path)
    return parse_spec(raw, scale, Path(path).name)


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """The first dotted key path where ``a`` and ``b`` differ (None when equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if k not in a or k not in b:
                return f"{path}{k}"
            d = first_difference(a[k], b[k], f"{path}{k}.")
            if d is not None:
                return d
        return None
    return None if a == b else (path[:-1] or "(top level)")
