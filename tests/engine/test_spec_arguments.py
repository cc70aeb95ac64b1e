"""Every value of a spec is checked when the spec is read, before anything is built or trained: builder arguments
by their signatures (types, ranges, unknown names), [train] (finite numbers), methods' required fields, axes no
method uses and "${axis}" where nothing substitutes it. Each error is one line naming the path in the file."""

from __future__ import annotations

import copy
import tomllib

import pytest
from support.specs import DIGITS

from lowbit.cli import main
from lowbit.engine.spec import SpecError, load_spec, parse_spec

IDX = DIGITS.replace('name = "digits"\nsubset = 300', 'name = "idx"\nroot = "no/such/folder"\nsubset = 300')


def _err(text: str) -> str:
    return _err_raw(tomllib.loads(text))


def _err_raw(raw: dict) -> str:
    with pytest.raises(SpecError) as e:
        parse_spec(raw, None, "s.toml")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("s.toml: "), msg
    return msg


@pytest.mark.parametrize(
    "text, old, new, message",
    [
        # [data]: the builder's signature (digits: subset: Count; idx: flatten: bool)
        (DIGITS, "subset = 300", "subset = 300.7", "data.subset = 300.7: expected a whole number >= 0"),
        (
            DIGITS,
            "subset = 300",
            'subset = "300"',
            "data.subset = '300': expected a whole number >= 0 (write it without quotes)",
        ),
        (DIGITS, "subset = 300", "subset = -5", "data.subset = -5: expected a whole number >= 0"),
        (DIGITS, "subset = 300", "subset = true", "data.subset = true: expected a whole number >= 0"),
        (DIGITS, "subset = 300", "test_fraction = 1.5", "data.test_fraction = 1.5: expected a number in (0, 1)"),
        (IDX, "subset = 300", 'flatten = "false"', "data.flatten = 'false': expected true or false (write it"),
        (IDX, "subset = 300", "flatten = 0", "data.flatten = 0: expected true or false"),
        # [models.*]: types from the builder's signature; flatten is the engine's and a bool
        ("", "width = 16", 'width = "16"', "models.narrow.width = '16': expected a whole number >= 1 (write it"),
        ("", "width = 16", "width = 16.5", "models.narrow.width = 16.5: expected a whole number >= 1"),
        ("", "width = 16", "width = 0", "models.narrow.width = 0: expected a whole number >= 1"),
        (
            "",
            "depth = 2\n[models.wide]",
            "depth = 1\n[models.wide]",
            "models.narrow.depth = 1: expected a whole number >= 2",
        ),
        ("", "depth = 2\n[models.wide]", "residual = 1\n[models.wide]", "models.narrow.residual = 1: expected true"),
        ("", "depth = 2\n[models.wide]", "flatten = 1\n[models.wide]", "models.narrow.flatten = 1: expected true"),
        ("", "width = 16", "widht = 16", "models.narrow.widht: unknown key; accepted: name, width, depth, residual"),
        # [train]: finite numbers only
        ("", "lr = 0.01", "lr = inf", "train.lr = inf: expected a positive number (finite)"),
        ("", "lr = 0.01", "lr = nan", "train.lr = nan: expected a positive number (finite)"),
        ("", "train = { epochs = 1 }\n[methods.E2]", "train = { lr = -inf }\n[methods.E2]", "methods.INQ.train.lr"),
        ("", "lr = 0.01", 'lr = 0.01\nweight_decay = "1e-4"', "train.weight_decay = '1e-4': expected a number >= 0"),
        ("", "lr = 0.01", "lr = 0.01\nmomentum = true", "train.momentum = true: expected a number in [0, 1]"),
        ("", "lr = 0.01", "lr = 0.01\nmilestones = [1.5]", "train.milestones = [1.5]: expected a list of whole"),
        # "${axis}" is substituted inside [methods.*] only; an axis no method uses makes nothing
        ("", "subset = 300", 'subset = "${bits}"', "data.subset = '${bits}': '${bits}' is not substituted here"),
        ("", "width = 16", 'width = "${bits}"', "models.narrow.width = '${bits}': '${bits}' is not substituted"),
        ("", "lr = 0.01", 'lr = "${bits}"', "train.lr = '${bits}': not substituted here: grid axes are referred"),
        ("", "bits = [3]", "bits = [3]\nwidth = [8, 16]", "grid.width = [8, 16]: no method uses this axis"),
        # an entry names a registered builder or a target, and a target is "package.module:function"
        ("", 'name = "fcdnn"\nwidth = 16', "width = 16", "models.narrow.name: missing; give name = a registered model"),
        ("", 'name = "fcdnn"\nwidth = 16', 'name = ["fcdnn"]\nwidth = 16', "models.narrow.name = ['fcdnn']: unknown"),
        ("", 'name = "fcdnn"\nwidth = 16', 'name = "fcdnn"\ntarget = "a:b"\nwidth = 16', "not both"),
        ("", 'name = "fcdnn"\nwidth = 16', 'target = "nocolon"\nwidth = 16', "models.narrow.target = 'nocolon'"),
        (
            "",
            'name = "fcdnn"\nwidth = 16',
            'target = "no_such_module_lowbit_x:build"\nwidth = 16',
            "models.narrow.target 'no_such_module_lowbit_x' cannot be imported: no module named",
        ),
        (
            "",
            'name = "digits"',
            'target = "lowbit.data.sets:no_such_builder"',
            "data.target 'lowbit.data.sets:no_such_builder': module 'lowbit.data.sets' has no attribute",
        ),
        ("", 'task = "classification"', "plugins = 'x'", "plugins = 'x': expected a list of module names"),
        ("", 'task = "classification"', 'plugins = ["a b"]', "plugins[0] = 'a b': expected an importable module"),
        (
            "",
            'task = "classification"',
            'plugins = ["no_such_plugin_lowbit_x"]',
            "plugins[0] = 'no_such_plugin_lowbit_x': cannot be imported: no module named 'no_such_plugin_lowbit_x'",
        ),
    ],
)
def test_a_bad_value_is_one_line_when_the_spec_is_read(text, old, new, message):
    text = text or DIGITS
    assert old in text
    assert message in _err(text.replace(old, new, 1))


def test_a_qat_method_without_quant_is_refused_when_read():
    raw = tomllib.loads(DIGITS)
    del raw["methods"]["W4A4"]["quant"]  # used to fail after training: "internal error: KeyError('quant')"
    assert "methods.W4A4.quant: missing; a qat method needs quant" in _err_raw(raw)


@pytest.mark.parametrize(
    "quant, ok",
    [
        ({"act": {"name": "uniform", "bits": 4, "signed": False}}, False),  # used to fail after training
        ({"act": {"name": "uniform", "bits": 4, "signed": False}, "rules": {"out": {"weight": "float"}}}, False),
        ({"act": {"name": "uniform", "bits": 4, "signed": False}, "rules": {"out": {"weight": "binary"}}}, True),
        ({"weight": {"name": "uniform", "bits": 4}}, True),
    ],
)
def test_an_inq_quant_must_give_some_layer_a_weight_quantizer(quant, ok):
    raw = tomllib.loads(DIGITS)
    raw["methods"]["INQ"]["quant"] = quant
    if ok:
        parse_spec(copy.deepcopy(raw), None, "s.toml")
    else:
        assert "methods.INQ.quant = " in _err_raw(raw) and "gives none" in _err_raw(raw)


def test_an_axis_used_by_a_method_outside_the_grid_is_still_used():
    raw = tomllib.loads(DIGITS)
    raw["grid"]["method"] = ["float"]  # INQ (which uses bits) is not in the grid, but it refers to the axis
    parse_spec(raw, None, "s.toml")


def test_a_directory_given_as_a_spec_says_it_is_a_directory(tmp_path, capsys):
    with pytest.raises(IsADirectoryError, match="is a directory; expected a TOML file"):
        load_spec(tmp_path)
    for cmd in (["sweep", str(tmp_path)], ["run", str(tmp_path)]):
        assert main([*cmd, "--dry-run"]) == 2
        err = capsys.readouterr().err
        assert "is a directory" in err and "does not exist" not in err and err.count("\n") == 1, err


def test_the_cli_prints_a_load_time_error_as_one_line_and_writes_nothing(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(DIGITS.replace("lr = 0.01", "lr = inf"))
    out = tmp_path / "run"
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == "lowbit sweep: error: s.toml: train.lr = inf: expected a positive number (finite)\n"
    assert not out.exists()
