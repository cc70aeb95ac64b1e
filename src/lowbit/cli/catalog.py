"""What ``lowbit models`` and ``lowbit datasets`` print: every registered builder with its arguments (read from its
signature by ``lowbit.arguments``: type, range, default), the facts its registration gives (what the model takes
and returns; what the data set gives and which task scores it) and the first paragraph of its docstring."""

from __future__ import annotations

import argparse
import inspect
import json
from collections.abc import Callable
from typing import Any

from ..arguments import params
from ..registry import Registry

# model arguments a study fills from the data (lowbit.engine.models.ALIASES and Data.info)
FROM_DATA = ("in_features", "n_input", "num_classes", "n_classes", "in_channels", "input_size")


def add_listing_options(p: argparse.ArgumentParser, kind: str) -> None:
    p.add_argument("names", nargs="*", metavar="NAME", help=f"only these {kind}s (default: every registered one)")
    p.add_argument("--json", action="store_true", help="print a JSON list of objects instead of text")


def _jsonable(v: Any) -> Any:
    if v is inspect.Parameter.empty:
        return None
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if v is None or isinstance(v, (bool, int, float, str, list, dict)):
        return v
    return repr(v)


def _doc(fn: Callable[..., Any]) -> str:
    text = inspect.getdoc(fn) or ""
    return " ".join(text.split("\n\n")[0].split())


def describe_entries(reg: Registry, names: list[str], facts: Callable[[str], dict[str, str]]) -> list[dict]:
    """One dict per entry: name, facts, doc, arguments [{name, type, default, required, from_data}]."""
    for n in names:
        reg.get(n)  # an unknown name: one line with close matches
    out = []
    for name in names or reg.names():
        fn = reg.get(name)
        args = [
            {
                "name": p.name,
                "type": p.type_text(),
                "default": _jsonable(p.default),
                "required": p.required,
                "from_data": p.name in FROM_DATA,
            }
            for p in params(fn)
        ]
        out.append({"name": name, **facts(name), "doc": _doc(fn), "arguments": args})
    return out


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return repr(v).replace("'", '"')
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return str(v)


def print_entries(entries: list[dict], fact_labels: dict[str, str], as_json: bool) -> None:
    if as_json:
        print(json.dumps(entries, indent=1))
        return
    for e in entries:
        print(e["name"])
        for key, label in fact_labels.items():
            if e.get(key):
                print(f"  {label}: {e[key]}")
        if e["doc"]:
            print(f"  {e['doc']}")
        for a in e["arguments"]:
            default = "required" if a["required"] else f"default {_value(a['default'])}"
            note = "; set from the data unless given" if a["from_data"] else ""
            print(f"    {a['name']}: {a['type']} ({default}{note})")
        print()
    print(f"{len(entries)} registered")
