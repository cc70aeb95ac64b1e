"""The package's import graph: no import circles, and lower layers never import higher ones.

Only imports that run when a module is imported count (module level, not inside functions: a function-level import
is the deliberate way to reach a higher layer lazily, e.g. the engine's report from the sweep). An import of
``a.b.c`` also runs ``a.b``'s ``__init__``, so it counts as an edge to every package on the way that is not an
ancestor of the importing module itself (those are already being imported).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "lowbit"

# Lower layers first; a module may import its own layer and the layers before it (DESIGN: the layering).
LAYERS = [
    {"registry", "arguments", "extras", "fileio", "tomlio", "progress", "runlock", "limits"},
    {"quantizers"},
    {"nn"},
    {"config", "api", "inq", "metrics", "models", "data", "calibration", "coverage", "finite"},
    {"train", "serialize"},
    {"tasks", "active"},
    {"deploy"},
    {"mixed"},
    {"engine"},
    {"studies"},
    {"cli", "__init__", "__main__"},
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PKG.rglob("*.py")}


def _resolve(current: str, is_pkg: bool, level: int, module: str | None) -> str:
    base = current.split(".") if is_pkg else current.split(".")[:-1]
    if level:
        base = base[: len(base) - (level - 1)]
        return ".".join([*base, *([module] if module else [])])
    return module or ""


def _edges() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.parse(path.read_text()).body:  # module level only
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_pkg, node.level, node.module)
                targets = [base] + [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in mods]
            for t in targets:
                if not t.startswith("lowbit"):
                    continue
                parts = t.split(".")
                for i in range(2, len(parts) + 1):  # every package on the way, then the module
                    target = ".".join(parts[:i])
                    if target in mods and not name.startswith(target + ".") and target != name:
                        graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_graph_is_read():
    graph = _edges()
    assert "lowbit.engine.spec" in graph["lowbit.engine.plan"]
    assert "lowbit.quantizers" in graph["lowbit.nn.linear"]
    assert len(graph) > 100


def test_no_import_circle():
    assert _cycles(_edges()) == []


def test_a_circle_is_found():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    pytest.fail(f"{module}: top-level name {top!r} is in no layer of LAYERS; add it where it belongs")


def test_lower_layers_never_import_higher_ones():
    bad = [
        f"{a} -> {b}"
        for a, targets in _edges().items()
        for b in targets
        if a != "lowbit" and b != "lowbit" and _layer(b) > _layer(a)
    ]
    assert bad == []
