"""A spec's ``[data]`` and ``[models.NAME]`` entries: a registered builder or a user's own, and its arguments.

    [data]                                   [models.mine]
    name = "fashion_mnist"                   target = "my_pkg.models:build"   # a user's builder (imported)
    subset = 3000                            hidden = 64                      # its keyword arguments
                                             flatten = true                   # engine key: it takes flat vectors

An entry names its builder with ``name`` (a registered data set / model: ``lowbit datasets``, ``lowbit models``)
or ``target`` (``"package.module:function"``; ``usercode.py`` says where it is found). Every other key is a
keyword argument of the builder, checked against its signature (``lowbit.arguments``: types, ranges, unknown
names) when the spec is read, before anything is built. A model entry's ``flatten`` is the engine's, not the
builder's: whether the model takes flat vectors, so image data is flattened for it (per job; the default comes
from the model's registration, e.g. ``fcdnn`` takes vectors).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..arguments import check_kwargs, params
from ..registry import Registry, resolve_target
from .axes import axis_refs
from .checker import Checker, SpecError
from .usercode import target_module

MODEL_ENGINE_KEYS = ("flatten",)  # keys of a [models.*] entry the engine reads; never passed to the builder
COMMANDS_OF = {"model": "lowbit models", "data set": "lowbit datasets"}


def builder_kwargs(cfg: dict, engine_keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """The builder's keyword arguments of an entry: every key but name / target and the engine's own."""
    return {k: v for k, v in cfg.items() if k not in ("name", "target", *engine_keys)}


def entry_builder(cfg: dict, registry: Registry) -> Callable[..., Any]:
    """The builder an entry names: ``resolve_target(target)`` (imports its module) or the registered ``name``."""
    if "target" in cfg:
        return resolve_target(cfg["target"], "target")
    return registry.get(cfg["name"])


def entry_label(cfg: dict) -> str:
    """How messages and reports name an entry's builder: the registered name or the target."""
    return str(cfg.get("name", cfg.get("target", "?")))


def check_entry(c: Checker, path: str, cfg: Any, registry: Registry, code: bool, lenient: bool, engine_keys=()) -> None:
    """One ``[data]`` / ``[models.NAME]`` entry (see the module docstring).

    code: resolve a ``target`` (imports its module) and check the arguments of a target's builder.
    lenient: a name the registry does not know may come from the spec's plugins, which were not imported: accept it.
    """
    if not isinstance(cfg, dict):
        c.fail(path, cfg, "expected a table")
    kind = registry.kind
    listing = COMMANDS_OF.get(kind, "lowbit")
    how = f"name = a registered {kind} (`{listing}` lists them) or target = 'package.module:function'"
    if ("name" in cfg) == ("target" in cfg):
        if "name" in cfg:
            c.fail(f"{path}.target", cfg["target"], f"give either name or target, not both ({how})")
        raise SpecError(f"{c.source}: {path}.name: missing; give {how}")
    for k in engine_keys:
        if k in cfg and not isinstance(cfg[k], bool):
            c.fail(f"{path}.{k}", cfg[k], "expected true or false")
    args = builder_kwargs(cfg, engine_keys)
    for k, v in args.items():
        for a in sorted(axis_refs(v)):
            c.fail(
                f"{path}.{k}",
                v,
                f"'${{{a}}}' is not substituted here: grid axes are referred to only inside [methods.*]",
            )
    if "target" in cfg:
        if target_module(cfg["target"]) is None:
            c.fail(f"{path}.target", cfg["target"], "expected 'package.module:function'")
        if not code:
            return
        fn = _resolve(c, path, cfg["target"])
        keys = "target"
    else:
        name = cfg["name"]
        known = isinstance(name, str) and name in registry
        if not known and lenient and isinstance(name, str):
            return
        if not known:
            c.fail(f"{path}.name", name, f"unknown {kind}; accepted: {', '.join(registry.names())}")
        fn = registry.get(name)
        keys = "name"
    bad = check_kwargs(fn, args)
    if bad is not None and bad.unknown:
        accepted = [keys, *(p.name for p in params(fn)), *engine_keys]
        raise SpecError(f"{c.source}: {path}.{bad.name}: unknown key; accepted: {', '.join(accepted)}")
    if bad is not None:
        c.fail(f"{path}.{bad.name}", bad.value, bad.what)


def _resolve(c: Checker, path: str, target: str) -> Callable[..., Any]:
    """``resolve_target`` with its errors as one spec line (a user's module may raise anything on import)."""
    what = f"{path}.target"
    try:
        return resolve_target(target, what)
    except (ImportError, ValueError) as e:
        if str(e).startswith(what):  # resolve_target's own line: the module or the attribute is missing
            raise SpecError(f"{c.source}: {_first_line(e)}") from None
        raise SpecError(f"{c.source}: {what} = {target!r}: importing it failed: {_first_line(e)}") from None
    except Exception as e:  # noqa: BLE001  (a user's module failed while being imported)
        raise SpecError(f"{c.source}: {path}.target = {target!r}: importing it failed: {_first_line(e)}") from None


def _first_line(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {text}" if not isinstance(e, (ImportError, ValueError)) else text


def import_plugins(c: Checker, plugins: Any) -> list[str]:
    """Check ``plugins = ["module", ...]`` and import each one (they register models, data sets, tasks, extras)."""
    if not isinstance(plugins, list):
        c.fail("plugins", plugins, "expected a list of module names, e.g. ['my_pkg.lowbit_plugin']")
    import importlib

    for i, mod in enumerate(plugins):
        if not isinstance(mod, str) or not mod or ":" in mod or not all(part.isidentifier() for part in mod.split(".")):
            c.fail(f"plugins[{i}]", mod, "expected an importable module name like 'my_pkg.lowbit_plugin'")
    done = []
    for i, mod in enumerate(plugins):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            where = "no module named " + repr(e.name) if e.name else _first_line(e)
            c.fail(f"plugins[{i}]", mod, f"cannot be imported: {where} (is it installed, or on PYTHONPATH?)")
        except Exception as e:  # noqa: BLE001
            c.fail(f"plugins[{i}]", mod, f"importing it failed: {_first_line(e)}")
        done.append(mod)
    return done


def check_plugin_names(c: Checker, plugins: Any) -> None:
    """The plugin list's form only (when reading results: nothing is imported)."""
    if not isinstance(plugins, list) or not all(isinstance(m, str) and m for m in plugins):
        c.fail("plugins", plugins, "expected a list of module names, e.g. ['my_pkg.lowbit_plugin']")


def unsubstituted(raw: dict, skip: tuple[str, ...] = ("methods", "data", "models")) -> tuple[str, str] | None:
    """The first ``"${axis}"`` outside the tables that substitute it: (dotted path, the text)."""

    def walk(v: Any, path: str) -> tuple[str, str] | None:
        if isinstance(v, dict):
            for k, x in v.items():
                hit = walk(x, f"{path}.{k}" if path else str(k))
                if hit:
                    return hit
        elif isinstance(v, list):
            for i, x in enumerate(v):
                hit = walk(x, f"{path}[{i}]")
                if hit:
                    return hit
        elif axis_refs(v):
            return path, v
        return None

    return walk({k: v for k, v in raw.items() if k not in skip}, "")
