"""A user's own model and data set run from a spec: ``target = "module:function"`` entries and ``plugins = [...]``
modules that register models, data sets and report extras, in the sweep's process and in its workers. Reading a
run never imports that code unless asked (``lowbit report --trust-code``); what needs it is skipped with a note."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from lowbit.cli import main
from lowbit.engine.report import build_report
from lowbit.engine.report.results import RunResults
from lowbit.engine.spec import SpecError
from lowbit.serialize import load_model
from lowbit.train.checkpoint import CheckpointError

USER_CODE = '''
"""A user's own model and data set (module written by the test); every import appends its pid to <module>.log."""
import os
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from lowbit.data.sets import Data

with open(Path(__file__).with_suffix(".log"), "a") as f:
    f.write(f"{os.getpid()}\\n")


class Tiny(nn.Module):
    def __init__(self, in_features, hidden, num_classes):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.body(x)


def build_model(hidden: int = 8, in_features: int = 2, num_classes: int = 2) -> nn.Module:
    return Tiny(in_features, hidden, num_classes)


def build_data(n: int = 64, seed: int = 0) -> Data:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2 * n, 3, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    info = {"in_features": 3, "num_classes": 2}
    return Data(TensorDataset(x[:n], y[:n]), TensorDataset(x[n:], y[n:]), info, f"blobs ({n} training points)")
'''

PLUGIN = """
from lowbit.data.sets import register_dataset
from lowbit.engine.report import Section, register_extra
from lowbit.models import register_model

register_model("plugin_mlp_{tag}", input="vector", output="(N, 2) scores")(build_model)
register_dataset("plugin_blobs_{tag}", gives="(N, 3) vectors", targets="class labels", task="classification")(
    build_data
)


@register_extra("plugin_note_{tag}")
def note(res, text: str = "") -> Section:
    return Section(paragraphs=[f"plugin note: {{text}}"])
"""

TARGETS = """
name = "mine"
[data]
target = "{mod}:build_data"
n = 64
[grid]
model = ["tiny"]
method = ["float", "W4", "INQ"]
seed = [0]
[models.tiny]
target = "{mod}:build_model"
hidden = 8
[train]
epochs = 2
batch_size = 16
[methods.float]
kind = "float"
[methods.W4]
kind = "qat"
parent = "float"
quant = {{ weight = {{ name = "uniform", bits = 4 }} }}
calibrate = 32
train = {{ epochs = 1 }}
[methods.INQ]
kind = "inq"
parent = "float"
bits = 3
portions = [0.5, 1.0]
train = {{ epochs = 1 }}
"""


def _module(folder: Path, text: str = USER_CODE) -> str:
    """Write a uniquely named module into ``folder`` (a module imported once stays in sys.modules)."""
    name = f"user_code_{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(text)
    return name


def _imports(folder: Path, mod: str) -> list[int]:
    log = folder / f"{mod}.log"
    return [int(x) for x in log.read_text().split()] if log.is_file() else []


def _sweep_targets(tmp_path: Path, workers: int) -> tuple[Path, str, Path]:
    code = tmp_path / "study"
    mod = _module(code)
    spec = code / "mine.toml"  # the module sits beside the spec: found without installing it
    spec.write_text(TARGETS.format(mod=mod))
    out = tmp_path / "run"
    assert main(["sweep", str(spec), "--out", str(out), "--workers", str(workers), "--no-progress"]) == 0
    return out, mod, code


def test_a_users_model_and_data_set_run_from_a_spec_in_process(tmp_path, capsys):
    out, mod, code = _sweep_targets(tmp_path, workers=1)
    res = RunResults(out)
    assert len(res.jobs) == 3 and all(0 <= j.metrics["accuracy"] <= 100 for j in res.jobs.values())
    inq = next(j for j in res.jobs.values() if j.axes["method"] == "INQ")
    assert inq.metrics["on_codebook"] == 1.0  # INQ ran on the user's model, rebuilt from the float job's file
    assert f"data {mod}:build_data (n=64)" in res.caption_facts(list(res.jobs.values()))
    path = out / next(iter(res.jobs.values())).model_path
    with pytest.raises(CheckpointError, match=rf"built by '{mod}:build_model', a user's function; .* builder=fn"):
        load_model(path)  # a model file never imports code by itself
    module = sys.modules[mod]
    model, meta = load_model(path, module.build_model)
    assert meta["model"] == {"name": f"{mod}:build_model", "kwargs": {"hidden": 8, "in_features": 3, "num_classes": 2}}
    assert _imports(code, mod) == [os.getpid()]  # imported once, by the spec check; the jobs reused it
    assert "| tiny |" in (out / "report.md").read_text()


def test_a_targets_arguments_are_checked_when_the_spec_is_read(tmp_path, capsys):
    code = tmp_path / "c"
    mod = _module(code)
    spec = code / "bad.toml"
    for old, new, msg in [
        ("hidden = 8", 'hidden = "8"', "models.tiny.hidden = '8': expected a whole number (write it without quotes)"),
        ("hidden = 8", "hiden = 8", "models.tiny.hiden: unknown key; accepted: target, hidden, in_features"),
        ("n = 64", "n = 6.5", "data.n = 6.5: expected a whole number"),
        (f"{mod}:build_model", f"{mod}:no_such", f"models.tiny.target '{mod}:no_such': module '{mod}' has no attr"),
    ]:
        spec.write_text(TARGETS.format(mod=mod).replace(old, new, 1))
        assert main(["sweep", str(spec), "--dry-run"]) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1, err


@pytest.mark.slow  # worker processes start with spawn (an interpreter and torch each)
def test_a_users_model_and_data_set_run_in_worker_processes(tmp_path, capsys):
    out, mod, code = _sweep_targets(tmp_path, workers=2)
    assert len(RunResults(out).jobs) == 3
    pids = _imports(code, mod)
    assert os.getpid() in pids and len(set(pids) - {os.getpid()}) >= 1  # the workers imported it themselves


def test_reading_a_run_whose_spec_names_code_imports_nothing(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    mod = f"never_imported_{uuid.uuid4().hex[:8]}"  # no such module exists: importing it would fail
    (out / "spec.toml").write_text(
        textwrap.dedent(f"""
        name = "sent-to-me"
        scale = "default"
        plugins = ["{mod}"]
        [data]
        name = "plugin_blobs"
        [grid]
        model = ["m"]
        method = ["float"]
        seed = [0]
        [models.m]
        name = "plugin_mlp"
        [methods.float]
        kind = "float"
        [report.extras.plugin_note]
        text = "hello"
        """)
    )
    res = RunResults(out)
    assert res.imported == [] and mod not in sys.modules and res.spec.plugins == [mod]
    report = build_report(out).read_text()
    assert mod not in sys.modules
    assert (
        f"Skipped: report extra 'plugin_note' needs the spec's code ({mod}), which was not imported; rebuild with "
        f"`lowbit report {out} --trust-code` to run it." in report
    )
    with pytest.raises(SpecError, match=f"plugins\\[0\\] = '{mod}': cannot be imported"):
        RunResults(out, trust_code=True)


@pytest.mark.slow  # four interpreters and a sweep with two spawned workers
def test_plugins_in_workers_and_reports_that_import_only_when_trusted(tmp_path):
    proj = tmp_path / "proj"
    tag = uuid.uuid4().hex[:6]
    mod = _module(proj, USER_CODE + PLUGIN.format(tag=tag))
    (proj / "studies").mkdir()
    spec = TARGETS.format(mod=mod)
    spec = spec.replace(f'target = "{mod}:build_data"', f'name = "plugin_blobs_{tag}"')
    spec = spec.replace(f'target = "{mod}:build_model"', f'name = "plugin_mlp_{tag}"')
    spec = f'plugins = ["{mod}"]\n' + spec + f'[report.extras.plugin_note_{tag}]\ntext = "hello"\n'
    (proj / "studies" / "mine.toml").write_text(spec)

    def lowbit(*args: str) -> subprocess.CompletedProcess:
        # -P: the current directory is not on sys.path (as with the installed `lowbit` script); lowbit adds it
        code = "import sys; from lowbit.cli import main; sys.exit(main(sys.argv[1:]))"
        return subprocess.run(
            [sys.executable, "-P", "-c", code, *args], cwd=proj, capture_output=True, text=True, timeout=300
        )

    r = lowbit("sweep", "studies/mine.toml", "--out", "run", "--workers", "2", "--no-progress")
    assert r.returncode == 0, r.stderr
    pids = _imports(proj, mod)
    assert len(set(pids)) >= 2  # the sweep's process and at least one worker imported the plugin
    assert "plugin note: hello" in (proj / "run" / "report.md").read_text()
    (proj / f"{mod}.log").unlink()

    r = lowbit("results", "run")
    assert r.returncode == 0 and "accuracy" in r.stdout and _imports(proj, mod) == [], r.stderr
    r = lowbit("report", "run")
    md = (proj / "run" / "report.md").read_text()
    assert r.returncode == 0 and _imports(proj, mod) == [], r.stderr  # nothing the spec names was executed
    assert f"Skipped: report extra 'plugin_note_{tag}' needs the spec's code ({mod})" in md
    assert "plugin note: hello" not in md and "| tiny |" in md  # the rest of the report is built
    r = lowbit("report", "run", "--trust-code")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == f"importing the spec's code: {mod}" and len(_imports(proj, mod)) == 1
    assert "plugin note: hello" in (proj / "run" / "report.md").read_text()
