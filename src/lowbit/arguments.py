"""A builder's keyword arguments, read from its signature: name, accepted type and range, default.

A spec passes keyword arguments to registered builders (data sets, models) and to a user's own (``target =
"pkg.module:build"``). What each one accepts is read here from the builder's signature, so the spec is checked
before anything is built and ``lowbit models`` / ``lowbit datasets`` list the same facts:

- the annotation, when there is one: ``int``, ``float`` (finite), ``bool``, ``str``, ``Literal["a", "b"]``,
  ``tuple[int, ...]`` / ``list[...]`` (a TOML list), ``dict`` (a TOML table), unions of these;
  ``Annotated[int, Range(0)]`` adds a range (``Count``, ``Positive``, ``Fraction`` below);
- else the type of the default (``seed=0`` takes a whole number); no annotation and no default: anything.

A bool is never a number here and a number never a bool (TOML keeps them apart, and ``flatten = "false"`` must not
read as true). Bottom layer: imports nothing from lowbit.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union


@dataclass(frozen=True)
class Range:
    """An inclusive (or open) numeric range an ``Annotated`` argument must lie in."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def ok(self, v: Any) -> bool:
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return self.hi is None or (v < self.hi if self.hi_open else v <= self.hi)

    def text(self) -> str:
        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        return f"{'<' if self.hi_open else '<='} {self.hi:g}" if self.hi is not None else ""


Count = Annotated[int, Range(0)]  # a whole number >= 0 (a subset size: 0 = all of it)
Positive = Annotated[int, Range(1)]  # a whole number >= 1
Fraction = Annotated[float, Range(0, 1, lo_open=True, hi_open=True)]  # strictly between 0 and 1
PositiveNumber = Annotated[float, Range(0, lo_open=True)]  # a number > 0

REQUIRED = inspect.Parameter.empty


@dataclass(frozen=True)
class Param:
    name: str
    hint: Any  # a resolved type hint; None when nothing is known (any value is accepted)
    default: Any = REQUIRED

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def type_text(self) -> str:
        return describe(self.hint) if self.hint is not None else "any"

    def check(self, value: Any) -> str | None:
        """None when ``value`` is accepted, else what is: "expected a whole number >= 0"."""
        if self.hint is None or accepts(value, self.hint):
            return None
        hint = ""
        if isinstance(value, str) and _parses(value, self.hint):
            hint = " (write it without quotes)"
        return f"expected {describe(self.hint)}{hint}"


def params(fn: Callable[..., Any]) -> list[Param]:
    """The keyword arguments of ``fn`` (a builder; ``**kwargs`` followed to the class its return hint names)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    hints = _hints(fn)
    out = [
        Param(n, hints.get(n, _from_default(p.default)), p.default)
        for n, p in sig.parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        ret = hints.get("return")
        if isinstance(ret, type) and ret.__init__ is not object.__init__:
            seen = {p.name for p in out}
            out += [p for p in params(ret.__init__) if p.name not in seen and p.name != "self"]
    return out


def takes_any_keyword(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` accepts keywords it does not name (``**kwargs`` not resolved to a class)."""
    try:
        ps = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    if not any(p.kind is p.VAR_KEYWORD for p in ps):
        return False
    ret = _hints(fn).get("return")
    return not (isinstance(ret, type) and ret.__init__ is not object.__init__)


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """Resolved annotations (``from __future__ import annotations`` leaves strings); one that cannot be resolved
    is left out (the default's type stands in for it)."""
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception:  # noqa: BLE001  (a user's builder may annotate with anything)
        out = {}
        glb = getattr(fn, "__globals__", {})
        for name, ann in getattr(fn, "__annotations__", {}).items():
            try:
                out[name] = eval(ann, glb) if isinstance(ann, str) else ann  # noqa: S307  (the builder's own text)
            except Exception:  # noqa: BLE001
                pass
        return out


def _from_default(default: Any) -> Any:
    if default is REQUIRED or default is None:
        return None
    if isinstance(default, (bool, int, float, str)):
        return type(default)
    if isinstance(default, (tuple, list)):
        return list
    if isinstance(default, dict):
        return dict
    return None


def accepts(value: Any, hint: Any) -> bool:
    """Whether ``value`` (from TOML: bool, int, float, str, list, dict) is accepted by ``hint``."""
    if hint is Any or hint is None or isinstance(hint, typing.TypeVar):
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        return accepts(value, args[0]) and all(r.ok(value) for r in args[1:] if isinstance(r, Range))
    if origin in (Union, types.UnionType):
        return any(accepts(value, a) for a in args if a is not type(None))
    if origin is Literal:
        return any(type(value) is type(a) and value == a for a in args)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str or (isinstance(hint, type) and hint.__name__ in ("Path", "PurePath")):
        return isinstance(value, str)
    container = origin or hint
    if isinstance(container, type) and issubclass(container, Mapping):
        return isinstance(value, dict)
    if isinstance(container, type) and issubclass(container, Sequence) and container is not str:
        if not isinstance(value, (list, tuple)):
            return False
        if container is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            return len(value) == len(args) and all(accepts(v, a) for v, a in zip(value, args))
        return not args or all(accepts(v, args[0]) for v in value)
    return True  # a type TOML cannot spell (a module, a callable): left to the builder


def describe(hint: Any) -> str:
    """What ``hint`` accepts, in words: "a whole number >= 0", "true or false", "one of 'fine', 'coarse'"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        ranges = " ".join(r.text() for r in args[1:] if isinstance(r, Range))
        return f"{describe(args[0])} {ranges}".strip()
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in args if a is not type(None))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}
    if hint in names:
        return names[hint]
    container = origin or hint
    if isinstance(container, type) and issubclass(container, Mapping):
        return "a table"
    if isinstance(container, type) and issubclass(container, Sequence) and container is not str:
        return f"a list of {_plural(describe(args[0]))}" if args else "a list"
    return getattr(hint, "__name__", str(hint))


def _plural(text: str) -> str:
    for one, many in (("a whole number", "whole numbers"), ("a number", "numbers"), ("a string", "strings")):
        if text.startswith(one):
            return many + text[len(one) :]
    return text


def _parses(text: str, hint: Any) -> bool:
    """Whether a string would have been accepted unquoted ("300" for an int, "false" for a bool)."""
    for value in (text.lower() == "true" if text.lower() in ("true", "false") else None, _number(text)):
        if value is not None and accepts(value, hint):
            return True
    return False


def _number(text: str) -> int | float | None:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return None


@dataclass(frozen=True)
class Problem:
    """The first keyword argument a builder does not accept: its name and value, what is accepted, and whether the
    builder has no argument of that name at all (``unknown``) rather than a value it refuses."""

    name: str
    value: Any
    what: str
    unknown: bool = False


def check_kwargs(fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> Problem | None:
    """The first keyword argument ``fn`` does not accept (None when it accepts them all)."""
    ps = {p.name: p for p in params(fn)}
    for k, v in kwargs.items():
        if k not in ps:
            if takes_any_keyword(fn):
                continue
            return Problem(k, v, f"unknown argument; accepted: {', '.join(ps) or '(none)'}", unknown=True)
        problem = ps[k].check(v)
        if problem:
            return Problem(k, v, problem)
    return None
