"""The one registry helper: every name -> thing table of lowbit is a ``Registry``.

    MODELS = Registry("model", modules=["lowbit.models.fcdnn", ...], entry_points="lowbit.models")

    @MODELS.register("fcdnn")
    def fcdnn(...): ...

    MODELS.get("fcdnn")          # the builder; an unknown name is one line with close matches:
                                 # unknown model 'fcdn'; did you mean 'fcdnn'? available: fcdnn, fcn, ...
    MODELS.names()               # sorted names

Three things every registry gets here instead of writing its own:

- **lazy modules**: the modules that hold the built-in entries are imported on the first lookup, not when the
  registry's own module is imported. An entry's module imports the registry, never the other way round, so no
  registration needs a bottom-of-file import and no import circle arises;
- **one duplicate check**: registering a second, different object under a taken name is an error (registering
  the same object again, e.g. on a module reload, is not);
- **plugins**: installed packages may add entries through the entry-point group ``entry_points`` (each entry
  point names a module; importing it registers its entries), and a spec's ``plugins = [...]`` imports modules
  by name (``load_modules``). Both are explicit imports of code the user chose.

Bottom layer: imports nothing from lowbit.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(ValueError):
    """A name that is not in a registry; the message lists close matches and every available name."""


class Registry(Generic[T]):
    """A name -> entry table with lazy built-in modules, a duplicate check and close-match errors.

    kind: what an entry is, for messages ("model", "data set", "quantizer", ...).
    modules: modules whose import registers the built-in entries (imported on first lookup).
    entry_points: an ``importlib.metadata`` entry-point group whose modules add entries (plugins).
    """

    def __init__(self, kind: str, modules: Iterable[str] = (), entry_points: str | None = None):
        self.kind = kind
        self.modules = list(modules)
        self.entry_points = entry_points
        self._entries: dict[str, T] = {}
        self._unlisted: set[str] = set()
        self._meta: dict[str, dict[str, Any]] = {}
        self._loaded = False

    # ------------------------------------------------------------------ registration
    def register(self, name: str, entry: T | None = None, *, listed: bool = True, **meta: Any):
        """Register ``entry`` under ``name``; without ``entry``, a decorator that registers what it decorates.

        listed=False: reachable by ``get`` (e.g. to rebuild a checkpoint) but not offered by ``names()``.
        meta: extra facts about the entry that tools may read back with ``meta(name)``.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} registry: name {name!r} is not accepted; expected a non-empty string")

        def add(obj: T) -> T:
            old = self._entries.get(name)
            if old is not None and old is not obj and not _same_definition(old, obj):
                raise ValueError(f"{self.kind} {name!r} is already registered to {_describe(old)}")
            self._entries[name] = obj
            self._meta[name] = dict(meta)
            if not listed:
                self._unlisted.add(name)
            return obj

        return add if entry is None else add(entry)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a temporary registration: tests, an interactive session); unknown names are ignored."""
        self._entries.pop(name, None)
        self._meta.pop(name, None)
        self._unlisted.discard(name)

    # ------------------------------------------------------------------ lookup
    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True  # set first: a module being imported may look itself up
        load_modules(self.modules)
        if self.entry_points:
            from importlib.metadata import entry_points

            for ep in entry_points(group=self.entry_points):
                importlib.import_module(ep.value.split(":")[0])

    def names(self) -> list[str]:
        """Every listed name, sorted."""
        self._load()
        return sorted(set(self._entries) - self._unlisted)

    def get(self, name: str) -> T:
        """The entry registered as ``name``; an unknown name raises ``UnknownNameError`` with close matches."""
        self._load()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.unknown_message(name)) from None

    def meta(self, name: str) -> dict[str, Any]:
        self.get(name)
        return dict(self._meta.get(name, {}))

    def unknown_message(self, name: Any) -> str:
        names = self.names()
        close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return f"unknown {self.kind} {name!r}{hint} available: {', '.join(names) or '(none)'}"

    def __contains__(self, name: object) -> bool:
        self._load()
        try:
            return name in self._entries
        except TypeError:  # an unhashable value (a list where a spec wants a name) is no entry
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._entries[n]) for n in self.names()]

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"


def load_modules(modules: Iterable[str], what: str = "module") -> list[str]:
    """Import each module by name (plugins, built-in entry modules); a missing one is one line naming it."""
    done = []
    for mod in modules:
        if not isinstance(mod, str) or not mod:
            raise ValueError(f"{what} {mod!r} is not accepted; expected an importable module name like 'my_pkg.models'")
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name and (mod == e.name or mod.startswith(e.name + ".")):
                raise ModuleNotFoundError(
                    f"{what} {mod!r} cannot be imported: no module named {e.name!r} "
                    "(is it installed, or on PYTHONPATH?)",
                    name=e.name,
                ) from None
            raise
        done.append(mod)
    return done


def resolve_target(target: str, what: str = "target") -> Callable[..., Any]:
    """``"pkg.module:attr"`` -> the object (a user's model builder or data-set builder named in a spec)."""
    if not isinstance(target, str) or target.count(":") != 1 or not all(target.split(":")):
        raise ValueError(f"{what} {target!r} is not accepted; expected 'package.module:function'")
    mod, attr = target.split(":")
    load_modules([mod], what)
    obj = importlib.import_module(mod)
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{what} {target!r}: module {mod!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{what} {target!r} is not callable ({type(obj).__name__})")
    return obj


def _same_definition(old: Any, new: Any) -> bool:
    """The same function or class defined again (a module imported twice under one name, e.g. by a reload)."""
    return getattr(old, "__module__", None) == getattr(new, "__module__", 0) and getattr(
        old, "__qualname__", None
    ) == getattr(new, "__qualname__", 0)


def _describe(obj: Any) -> str:
    mod, qual = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    return f"{mod}.{qual}" if mod and qual else repr(obj)
