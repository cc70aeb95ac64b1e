"""Every registry of lowbit is a ``lowbit.registry.Registry``: one parametrized test covers them all (lookups,
close-match errors, the duplicate check, lazy built-in modules), plus the helper's plugin paths."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from lowbit.cli import COMMANDS
from lowbit.data.sets import DATASETS
from lowbit.engine.backends import BACKENDS
from lowbit.engine.report.extras import EXTRAS
from lowbit.models import MODELS
from lowbit.quantizers import QUANTIZERS
from lowbit.registry import Registry, UnknownNameError, load_modules, resolve_target
from lowbit.tasks import TASKS

REGISTRIES = {
    "quantizer": (QUANTIZERS, "uniform"),
    "model": (MODELS, "fcdnn"),
    "data set": (DATASETS, "spirals"),
    "task": (TASKS, "classification"),
    "report extra": (EXTRAS, "paired_comparisons"),
    "backend": (BACKENDS, "local"),
    "command": (COMMANDS, "sweep"),
}


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_every_registry_looks_up_lists_and_refuses_unknown_names(kind):
    reg, known = REGISTRIES[kind]
    assert isinstance(reg, Registry) and reg.kind == kind
    names = reg.names()
    assert known in names and names == sorted(names) and known in reg
    assert reg.get(known) is dict(reg.items())[known]
    typo = known[:-1] + ("x" if known[-1] != "x" else "y")
    with pytest.raises(UnknownNameError) as e:
        reg.get(typo)
    msg = str(e.value)
    assert msg.startswith(f"unknown {kind} {typo!r}; did you mean {known!r}") and ", ".join(names) in msg
    with pytest.raises(ValueError, match=f"{kind} {known!r} is already registered"):
        reg.register(known, object())
    assert reg.get(known) is dict(reg.items())[known]  # the refused registration changed nothing


@pytest.mark.slow
@pytest.mark.parametrize(
    "module, entries",
    [
        ("lowbit.quantizers", "lowbit.quantizers.uniform"),
        ("lowbit.models", "lowbit.models.fcdnn"),
        ("lowbit.data.sets", "lowbit.data.sets.images"),
        ("lowbit.tasks", "lowbit.tasks.segmentation"),
        ("lowbit.engine.report.extras", "lowbit.studies.spirals_report"),
    ],
)
def test_built_in_entries_load_on_first_lookup_not_on_import(module, entries):
    code = f"""
        import importlib, sys
        m = importlib.import_module({module!r})
        assert {entries!r} not in sys.modules, "imported eagerly"
        reg = next(v for v in vars(m).values() if type(v).__name__ == "Registry")
        reg.names()
        assert {entries!r} in sys.modules, "not loaded by the first lookup"
    """
    subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=True)


def test_unknown_name_without_close_match_lists_everything():
    reg = Registry("widget")
    reg.register("alpha", 1)
    reg.register("beta", 2, listed=False)
    assert reg.names() == ["alpha"] and reg.get("beta") == 2  # unlisted: reachable, not offered
    with pytest.raises(UnknownNameError, match=r"^unknown widget 'zzz' available: alpha$"):
        reg.get("zzz")
    with pytest.raises(ValueError, match="expected a non-empty string"):
        reg.register("", 3)


def test_plugins_by_entry_point_and_by_module_name(tmp_path, monkeypatch):
    pkg = tmp_path / "lowbit_plugin_demo.py"
    pkg.write_text(
        "from lowbit.models import register_model\n\n@register_model('demo_net')\ndef demo_net():\n    return 1\n"
    )
    dist = tmp_path / "lowbit_plugin_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lowbit-plugin-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[lowbit.models]\ndemo = lowbit_plugin_demo\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("model", entry_points="lowbit.models")
    assert reg.names() == []  # this fresh registry is not MODELS: the plugin registered into MODELS
    assert "lowbit_plugin_demo" in sys.modules and "demo_net" in MODELS
    assert load_modules(["lowbit_plugin_demo"]) == ["lowbit_plugin_demo"]
    with pytest.raises(ModuleNotFoundError, match="plugin 'no_such_plugin_mod' cannot be imported"):
        load_modules(["no_such_plugin_mod"], "plugin")
    assert resolve_target("lowbit_plugin_demo:demo_net")() == 1
    for bad, msg in [
        ("lowbit_plugin_demo", "expected 'package.module:function'"),
        ("lowbit_plugin_demo:nothing", "has no attribute 'nothing'"),
        ("lowbit_plugin_demo:register_model.__doc__", "is not callable"),
    ]:
        with pytest.raises(ValueError, match=msg):
            resolve_target(bad)
    MODELS._entries.pop("demo_net")
