"""``--dry-run`` runs every check a sweep makes before training: the data loads, each model builds with its
arguments and fits the data, every quantization plan matches layers (``keep_float`` / ``rules`` patterns) and an
INQ method has layers to quantize. Each failure is one line, exit 2, nothing written; ``--plan-only`` skips them."""

from __future__ import annotations

import pytest
from support.specs import DIGITS

from lowbit.cli import main


def _dry(tmp_path, capsys, text: str, *flags: str) -> tuple[int, str, str]:
    spec = tmp_path / "s.toml"
    spec.write_text(text)
    out = tmp_path / "run"
    rc = main(["sweep", str(spec), "--out", str(out), *(flags or ("--dry-run",))])
    assert not out.exists()  # a dry run writes nothing, whatever it finds
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.mark.parametrize(
    "old, new, message",
    [
        (
            'name = "fcdnn"\nwidth = 16\ndepth = 2',
            'name = "fcn_sa"\ndepth = 9',
            "models.narrow (fcn_sa): fcn_sa: depth=9 is not accepted; expected 1..6",
        ),
        ("width = 16", "width = 16\nin_features = 3", "models.narrow (fcdnn {"),
        (
            'keep_float = ["first"]',
            'keep_float = ["head*"]',
            "keep_float selector 'head*' matches no quantizable layer",
        ),
        (
            'keep_float = ["first"]',
            'keep_float = ["first"]\nrules = { "nothing.*" = { weight = "float" } }',
            "'nothing.*' matches no quantizable layer",
        ),
        (
            "portions = [0.5, 1.0]",
            'portions = [0.5, 1.0]\nquant = { weight = { name = "uniform", bits = 4 }, keep_float = ["*"] }',
            "methods.INQ.quant on model 'narrow': gives no layer a weight quantizer, so INQ",
        ),
    ],
)
def test_the_dry_run_finds_what_used_to_fail_after_training(tmp_path, capsys, old, new, message):
    assert old in DIGITS
    rc, out, err = _dry(tmp_path, capsys, DIGITS.replace(old, new, 1))
    assert rc == 2 and message in err and err.count("\n") == 1, err
    assert out.splitlines()[-1] == "12 jobs"  # the plan was printed first


def test_a_model_that_does_not_fit_names_both(tmp_path, capsys):
    rc, _, err = _dry(tmp_path, capsys, DIGITS.replace("width = 16", "width = 16\nin_features = 3", 1))
    assert rc == 2 and "does not fit data 'digits' (inputs of shape (64,))" in err, err


def test_a_good_spec_passes_every_check_and_plan_only_skips_the_data(tmp_path, capsys):
    rc, out, _ = _dry(tmp_path, capsys, DIGITS)
    assert rc == 0 and out.splitlines()[-2:] == [
        "12 jobs",
        "checked: data 'digits' loaded; every model fits it; every quantization planned",
    ]
    missing = DIGITS.replace('name = "digits"\nsubset = 300', 'name = "idx"\nroot = "no/such/folder"')
    rc, out, err = _dry(tmp_path, capsys, missing, "--plan-only")
    assert rc == 0 and out.splitlines()[-1] == "12 jobs"
    rc, _, err = _dry(tmp_path, capsys, missing)
    assert rc == 2 and "no/such/folder" in err, err
