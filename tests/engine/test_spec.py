"""Spec validation: every kind of error is one line naming the path in the file and what is accepted."""

from __future__ import annotations

import tomllib

import pytest
from support.specs import DIGITS, SPIRALS_TINY

from lowbit.engine.spec import SpecError, load_spec, parse_spec

SMALL = SPIRALS_TINY.replace('method = ["float", "W2", "INQ"]', 'method = ["float"]')  # float only


def _raw(text: str = DIGITS) -> dict:
    return tomllib.loads(text)


def _err(text: str, scale: str | None = None) -> str:
    with pytest.raises(SpecError) as e:
        parse_spec(_raw(text), scale, "s.toml")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("s.toml: "), msg
    return msg


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("bits = 4 }\nact", "bits = 2.5 }\nact", "methods.W4A4.quant.weight.bits = 2.5: expected a whole number"),
        ("bits = 4 }\nact", "bits = 33 }\nact", "methods.W4A4.quant.weight.bits = 33: expected a whole number"),
        (
            'name = "uniform", bits = 4 }\nact',
            'name = "unifrom", bits = 4 }\nact',
            "methods.W4A4.quant.weight.name = 'unifrom': unknown quantizer; accepted: ",
        ),
        ("keep_float", "keep_flaot", "methods.W4A4.quant.keep_flaot: unknown key; accepted: weight, act, keep_float"),
        (
            'parent = "float"\ncalibrate',
            'parent = "flaot"\ncalibrate',
            "methods.W4A4.parent = 'flaot': unknown parent method; accepted: float, W4A4, INQ, E2",
        ),
        ("lr = 0.01", "lr = -1", "train.lr = -1: expected a positive number"),
        ("epochs = 3\nbatch", "epochz = 3\nbatch", "train.epochz: unknown key; accepted: epochs, batch_size"),
        (
            "train = { epochs = 1 }\n[methods.E2]",
            "train = { epochs = 1.5 }\n[methods.E2]",
            "methods.INQ.train.epochs = 1.5: expected a whole number >= 0",
        ),
        ('name = "digits"', 'name = "digitz"', "data.name = 'digitz': unknown data set; accepted: "),
        ("subset = 300", "subsett = 300", "data.subsett: unknown key; accepted: name, test_fraction, seed, subset"),
        ('name = "fcdnn"\nwidth = 16', 'name = "fcdnnn"\nwidth = 16', "models.narrow.name = 'fcdnnn': unknown model"),
        ("width = 16", "widht = 16", "models.narrow.widht: unknown key; accepted: name, width, depth"),
        (
            'task = "classification"',
            'task = "regression"',
            "task = 'regression': unknown task; accepted: classification",
        ),
        ('method = ["float", "W4A4", "INQ"]', 'method = ["float", "W8"]', "grid.method[1] = 'W8': unknown method"),
        ("seed = [0, 1]", "seed = [0, -1]", "grid.seed[1] = -1: expected a whole number >= 0"),
        ("bits = [3]", "bits = [3, 1]", "methods.INQ.bits = 1: expected a whole number 2..32"),
        (
            'bits = "${bits}"',
            'bits = "${bitz}"',
            "methods.INQ = '${bitz}': refers to no grid axis; axes it may use: bits",
        ),
        (
            "portions = [0.5, 1.0]",
            "portions = [0.5, 0.9]",
            "methods.INQ.portions = [0.5, 0.9]: expected the last portion",
        ),
        ("members = 2", "members = 3", "methods.E2.members = 3: expected a whole number 1..2"),
        ('kind = "ensemble"', 'kind = "ensembel"', "methods.E2.kind = 'ensembel': unknown method kind"),
        ('rows = "model"', 'rows = "modell"', "report.tables[0].rows = 'modell': unknown grid axis"),
        ('value = "accuracy"', 'value = "acc"', "report.tables[0].value = 'acc': unknown metric; accepted: accuracy, "),
        ("[methods.float]", "colour = 1\n[methods.float]", "train.colour: unknown key"),
        ('name = "digits-grid"', 'nme = "x"', "nme: unknown key; accepted: name, description, task"),
    ],
)
def test_errors_name_the_path_and_what_is_accepted(old, new, message):
    assert old in DIGITS
    assert message in _err(DIGITS.replace(old, new, 1))


def test_cycle_and_ensemble_parent_and_unknown_extra_and_scale():
    cyc = DIGITS.replace(
        '[methods.float]\nkind = "float"',
        '[methods.float]\nkind = "qat"\nparent = "W4A4"\nquant = { weight = { name = "uniform", bits = 2 } }',
    )
    assert "methods.float.parent: cycle float -> W4A4 -> float" in _err(cyc)
    bad = DIGITS.replace('parent = "float"\nbits', 'parent = "E2"\nbits')
    assert "methods.INQ.parent = 'E2': an ensemble cannot be a parent" in _err(bad)
    extra = DIGITS + "[report.extras.nope]\n"
    msg = _err(extra)
    assert "report.extras = 'nope': unknown report extra; accepted: " in msg and "spirals_decision_maps" in msg
    assert "--scale 'huge' is not defined; accepted: default, tiny" in _err(DIGITS, "huge")


def test_scale_overlay_merges_tables_and_records_the_scale(tmp_path):
    p = tmp_path / "d.toml"
    p.write_text(DIGITS)
    tiny, default = load_spec(p, "tiny"), load_spec(p)
    assert tiny.scale == "tiny" and default.scale == "default"
    assert tiny.raw["train"] == {"epochs": 1, "batch_size": 32, "lr": 0.01}  # merged key by key
    assert "scales" not in tiny.raw
    # the resolved spec reads back as itself (what a run folder's spec.toml holds)
    again = parse_spec(tomllib.loads(tiny.to_toml()), None, "spec.toml")
    assert again.raw == tomllib.loads(tiny.to_toml()) and again.scale == "tiny"
    with pytest.raises(SpecError, match="already resolved at scale 'tiny'"):
        parse_spec(tomllib.loads(tiny.to_toml()), "default", "spec.toml")


def test_a_scale_extends_other_scales_in_order_then_its_own_fields():
    text = DIGITS + (
        "[scales.slow]\ntrain = { lr = 0.5, epochs = 9 }\ngrid = { seed = [7, 8] }\n"
        '[scales.both]\nextends = ["tiny", "slow"]\ntrain = { batch_size = 8 }\n'
        '[scales.one]\nextends = "slow"\n'
    )
    raw = _raw(text)
    both = parse_spec(raw, "both", "s.toml").raw
    # tiny (epochs 1), then slow on top (lr 0.5, epochs 9), then both's own batch_size; extends itself is dropped
    assert both["train"] == {"epochs": 9, "batch_size": 8, "lr": 0.5} and both["grid"]["seed"] == [7, 8]
    assert "extends" not in both and both["scale"] == "both"
    slow, one = parse_spec(raw, "slow", "s.toml").raw, parse_spec(raw, "one", "s.toml").raw
    assert {**one, "scale": "slow"} == slow  # a bare string is one base; nothing else differs
    assert parse_spec(raw, None, "s.toml").raw["train"] == {"epochs": 3, "batch_size": 32, "lr": 0.01}


@pytest.mark.parametrize(
    "scales, message",
    [
        (
            '[scales.a]\nextends = "tinny"\n',
            "scales.a.extends = 'tinny': not a scale of this spec; accepted: a, default, tiny",
        ),
        ('[scales.a]\nextends = "a"\n', "scales.a.extends: the scales extend each other: a -> a"),
        (
            '[scales.a]\nextends = "b"\n[scales.b]\nextends = ["tiny", "a"]\n',
            "the scales extend each other: a -> b -> a",
        ),
        ("[scales.a]\nextends = 3\n", "scales.a.extends = 3: expected a scale name or a list of them"),
    ],
)
def test_a_wrong_extends_is_one_line_whichever_scale_runs(scales, message):
    assert message in _err(DIGITS + scales)  # caught at the default scale too, before anything runs


def test_shipped_study_specs_are_valid_at_every_scale():
    from lowbit.studies import study_listing, study_path

    for name, _, scales in study_listing():
        for scale in scales:
            assert load_spec(study_path(name), scale).scale == scale


def _spec(extra: str = "", text: str = SMALL):
    import tomllib

    return parse_spec(tomllib.loads(text + extra), None, "edges.toml")


def test_reserved_axis_names_are_refused():
    with pytest.raises(SpecError, match=r"grid.metric = \[2, 4\]: this name is a column of the result rows"):
        _spec(text=SMALL.replace("seed = [0]", "seed = [0]\nmetric = [2, 4]"))


def test_report_extra_options_are_checked_on_load():
    with pytest.raises(SpecError, match=r"report.extras.score_vs_axis.figure: unknown key"):
        _spec("[report.extras.score_vs_axis]\nfigure = {}\n")
