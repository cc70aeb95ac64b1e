"""What `--backend ray` checks before anything runs (no cluster needed): the spec's [resources], the backend's
options, and the one line naming the extra when ray is not installed."""

from __future__ import annotations

import sys
import tomllib

import pytest
from support.specs import SPIRALS_TINY

from lowbit.cli import main
from lowbit.engine.backends import check_backend
from lowbit.engine.plan import plan
from lowbit.engine.resources import job_resources
from lowbit.engine.spec import SpecError, parse_spec


def _raw(extra: str = "", method_line: str = "") -> dict:
    text = SPIRALS_TINY.replace('[methods.W2]\nkind = "qat"', f'[methods.W2]\nkind = "qat"\n{method_line}')
    return tomllib.loads(text + "\n" + extra)


@pytest.mark.parametrize(
    "extra, method_line, message",
    [
        ("[resources]\ncpus = -1", "", "spec: resources.cpus = -1: expected a number >= 0"),
        ("[resources]\ngpus = true", "", "spec: resources.gpus = true: expected a number >= 0"),
        ("[resources]\nmemory = 4", "", "spec: resources.memory: unknown key; accepted: cpus, gpus"),
        ("[resources]\ncpus = 0", "", "spec: resources = {'cpus': 0}: a job needs cpus > 0 or gpus > 0"),
        ("", "resources = { gpu = 1 }", "spec: methods.W2.resources.gpu: unknown key; accepted: cpus, gpus"),
        ("", 'resources = { cpus = "2" }', "spec: methods.W2.resources.cpus = '2': expected a number >= 0"),
        ("", "resources = 2", "spec: methods.W2.resources = 2: expected a table"),
    ],
)
def test_bad_resources_are_one_line_naming_the_path(extra, method_line, message):
    with pytest.raises(SpecError) as e:
        parse_spec(_raw(extra, method_line))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_resources_come_from_the_method_then_the_spec_then_the_defaults_and_leave_job_ids_alone():
    spec = parse_spec(_raw("[resources]\ncpus = 2", "resources = { gpus = 0.5 }"))
    assert job_resources(spec.raw, "W2", "cpu") == {"cpus": 2, "gpus": 0.5}
    assert job_resources(spec.raw, "float", "cpu") == {"cpus": 2, "gpus": 0}
    assert job_resources(parse_spec(_raw()).raw, "float", "cuda:1") == {"cpus": 1, "gpus": 1}  # a GPU job's default
    assert [j.id for j in plan(spec)] == [j.id for j in plan(parse_spec(_raw()))]  # where a job runs is not what


def test_options_of_another_backend_are_refused():
    with pytest.raises(ValueError, match=r"^--address 'auto' is not accepted with --backend local; it is an option"):
        check_backend("local", 2, {"address": "auto"})
    check_backend("local", 2, {"address": None})  # unset options are fine


def test_without_ray_the_ray_backend_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if it were not installed
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPIRALS_TINY)
    rc = main(["sweep", str(spec), "--backend", "ray", "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == "lowbit sweep: error: --backend ray needs ray, which is not installed: " + (
        "pip install 'lowbit[cluster]'"
    )
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_without_tensorboard_the_tracking_option_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPIRALS_TINY)
    rc = main(["sweep", str(spec), "--out", str(tmp_path / "run"), "--tensorboard", str(tmp_path / "tb")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == "lowbit sweep: error: --tensorboard needs tensorboard, which is not installed: " + (
        "pip install 'lowbit[tracking]'"
    )
    assert not (tmp_path / "run").exists() and not (tmp_path / "tb").exists()
