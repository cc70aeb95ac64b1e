"""The core install (no extras): every third-party import is declared, optional ones are imported lazily, and
import / --help / reproduce --list / quantizers / quantize_ / INQ / fit / summary / packed files work with the
optional packages unimportable. (`.ci/core_check.sh` repeats the smoke run in a real core-only venv.)"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from lowbit.extras import EXTRAS, MissingExtraError, require

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "lowbit"
# import name -> distribution name, where they differ
DIST = {"PIL": "pillow", "sklearn": "scikit-learn", "tomli_w": "tomli-w", "yaml": "pyyaml"}
BLOCKED = ("scipy", "onnx", "onnxruntime", "librosa", "soundfile", "sklearn")


def _requirements() -> tuple[set[str], dict[str, set[str]]]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(reqs):
        return {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in reqs}

    return names(meta["dependencies"]), {k: names(v) for k, v in meta["optional-dependencies"].items()}


def _imports() -> list[tuple[str, str, bool]]:
    """(top-level module, file, at module level?) for every import in src/lowbit."""
    out = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top_level = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            else:
                continue
            for m in mods:
                out.append((m.split(".")[0], str(path.relative_to(ROOT)), id(node) in top_level))
    return out


def _third_party(mod: str) -> bool:
    return mod not in sys.stdlib_module_names and mod not in ("lowbit", "__future__")


def test_every_third_party_import_is_declared():
    core, extras = _requirements()
    declared = core.union(*extras.values())
    missing = sorted({(m, f) for m, f, _ in _imports() if _third_party(m) and DIST.get(m, m).lower() not in declared})
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


@pytest.mark.slow
def test_optional_packages_are_imported_only_inside_functions():
    core, _ = _requirements()
    eager = sorted(
        {(m, f) for m, f, top in _imports() if top and _third_party(m) and DIST.get(m, m).lower() not in core}
    )
    assert not eager, f"optional packages imported at module level (breaks the core install): {eager}"


def test_extras_table_matches_pyproject():
    _, extras = _requirements()
    for mod, (dist, extra) in EXTRAS.items():
        assert dist.lower() in extras.get(extra, set()), f"{mod}: {dist} is not in the {extra!r} extra"


def test_require_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy", None)  # an absent package
    monkeypatch.delitem(sys.modules, "scipy.ndimage", raising=False)
    with pytest.raises(MissingExtraError, match=r"pip install 'lowbit\[segmentation\]'"):
        require("scipy.ndimage", "object F1")
    from lowbit.metrics.segmentation import label_objects

    with pytest.raises(ModuleNotFoundError, match=r"lowbit\[segmentation\]"):
        label_objects([[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="not an optional dependency"):
        require("numpy", "x")


# a None entry in sys.modules makes ``import X`` raise ModuleNotFoundError and ``find_spec(X)`` return None,
# exactly as if the package were not installed
BLOCKER = f"import sys\nsys.modules.update(dict.fromkeys({BLOCKED!r}))\n"


@pytest.mark.slow
def test_core_commands_work_without_optional_packages(tmp_path):
    """.ci/core_smoke.py with scipy, onnx, onnxruntime, librosa, soundfile and scikit-learn unimportable."""
    code = BLOCKER + f"import runpy, sys\nsys.argv = ['core_smoke', {str(tmp_path)!r}]\n"
    code += f"runpy.run_path({str(ROOT / '.ci' / 'core_smoke.py')!r}, run_name='__main__')\n"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "all checks passed" in r.stdout
    assert "ok   ONNX export names the deploy extra" in r.stdout
