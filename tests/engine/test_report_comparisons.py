"""The ``paired_comparisons`` report extra: seed-paired differences and the verdict sentences, on a store written by
hand (the values are chosen so that each verdict is known in advance)."""

from __future__ import annotations

import pytest

from lowbit.engine.report.comparisons import paired_comparisons
from lowbit.engine.report.results import RunResults
from lowbit.engine.spec import SpecError, parse_spec
from lowbit.engine.store import Store

SPEC = """
name = "pairs"
task = "classification"
scale = "default"
[data]
name = "spirals"
[grid]
model = ["d8", "d20", "d44"]
method = ["float", "W2", "A2"]
seed = [0, 1]
[models.d8]
name = "cifar_resnet"
block = "basic"
depth = 8
[models.d20]
name = "cifar_resnet"
block = "basic"
depth = 20
[models.d44]
name = "cifar_resnet"
block = "basic"
depth = 44
[methods.float]
kind = "float"
[methods.W2]
kind = "qat"
parent = "float"
quant = { weight = { name = "uniform", bits = 2 } }
[methods.A2]
kind = "qat"
parent = "float"
quant = { act = { name = "pact", bits = 2 } }
"""

# accuracy = float level + method offset(depth) + seed noise shared by the pair (cancels in a paired difference)
FLOAT = {"d8": 90.0, "d20": 91.0, "d44": 92.0}
OFFSET = {"W2": {"d8": -3.0, "d20": -2.0, "d44": -1.0}, "A2": {"d8": -1.0, "d20": -2.0, "d44": -6.0}}
NOISE = {0: 0.5, 1: -0.7}
DEPTH = {"d8": 8, "d20": 20, "d44": 44}


def _run(tmp_path, seeds=(0, 1)):
    (tmp_path / "spec.toml").write_text(SPEC)
    with Store(tmp_path) as s:
        for m in FLOAT:
            for seed in seeds:
                for method in ("float", "W2", "A2"):
                    acc = FLOAT[m] + NOISE[seed] + (OFFSET[method][m] if method != "float" else 0.0)
                    acc += 0.1 * seed if method == "A2" else 0.0  # a small non-shared part: a spread to report
                    recipe = {"kind": "float"} if method == "float" else {"kind": "qat", "quant": {}}
                    cfg = {"model": {"name": "cifar_resnet", "block": "basic", "depth": DEPTH[m]}, "recipe": recipe}
                    axes = {"model": m, "method": method, "seed": seed}
                    s.add_job(f"{m}-{method}-{seed}", {"accuracy": acc}, axes, cfg, 1.0, None)
    return RunResults(tmp_path)


@pytest.mark.slow
def test_paired_differences_and_verdicts(tmp_path):
    res = _run(tmp_path)
    claims = [
        {"method": "W2", "against": "float", "expect": "rises", "text": "depth helps W2"},
        {"method": "A2", "against": "float", "expect": "falls", "text": "depth hurts A2"},
        {"method": "A2", "against": "float", "expect": "higher", "text": "A2 beats float"},
    ]
    sec = paired_comparisons(res, claims, x_param="depth", group="block", figure="change", levels_figure="levels")
    table = sec.tables[0]
    assert table.columns == ["block", "depth", "W2 − float", "A2 − float", "A2 − float"]
    rows = {r[1]: r for r in table.rows}
    assert rows[8][2] == "-3.00 ± 0.00"  # the shared seed noise cancels exactly
    assert rows[44][3] == "-5.95 ± 0.07"  # mean of -6.0 and -5.9; sd 0.1/sqrt(2)
    w2, a2, higher = sec.paragraphs
    assert w2.startswith("**depth helps W2** — holds:") and "-3.00 → -2.00 → -1.00 from 8 to 44" in w2
    assert w2.endswith("(2 seeds: the change exceeds twice its paired standard error).")  # 8 -> 44, the one tested
    assert a2.startswith("**depth hurts A2** — holds:") and "change -5.00" in a2
    assert higher.startswith("**A2 beats float** — does not hold:")
    assert "per cell basic depth=8: -0.95 ± 0.07, basic depth=20: -1.95 ± 0.07" in higher
    assert [f.path for f in sec.figures] == ["figures/change.png", "figures/levels.png"]
    assert all((tmp_path / f.path).stat().st_size > 1000 for f in sec.figures)


def test_one_seed_says_there_is_no_spread_and_a_wrong_direction_does_not_hold(tmp_path):
    res = _run(tmp_path, seeds=(0,))
    sec = paired_comparisons(res, [{"method": "W2", "against": "float", "expect": "falls"}], x="model")
    assert sec.paragraphs[0].startswith("**W2 − float** — does not hold:")
    assert "one seed per cell: there is no spread" in sec.paragraphs[0]


def test_a_direction_inside_the_noise_is_not_resolved(tmp_path):
    """A2 − W2 pooled over depths with x = the seed-free "method" axis collapsed: +2.0/+2.1, 0.0/+0.1, −5.0/−4.9
    in one cell → mean −0.95, sd ≈ 2.9, SE ≈ 1.2: the sign is within two paired standard errors of 0, so neither
    "holds" nor "does not hold" may be said."""
    res = _run(tmp_path)
    claims = [
        {"method": "A2", "against": "W2", "expect": "lower", "text": "A2 below W2"},
        {"method": "A2", "against": "W2", "expect": "higher", "text": "A2 above W2"},
    ]
    lower, higher = paired_comparisons(res, claims, x="method").paragraphs
    assert lower.startswith("**A2 below W2** — not resolved (points the expected way, within noise):")
    assert higher.startswith("**A2 above W2** — not resolved (points the other way, within noise):")
    assert "mean A2 − W2 over 6 pair(s) -0.95 points" in lower
    assert lower.endswith("(2 seeds: the mean difference is within twice its paired standard error).")


def test_cells_clear_on_their_own_are_named_when_the_pooled_mean_is_not(tmp_path):
    """The same differences by model: d8 +2.0/+2.1 and d44 −5.0/−4.9 are each clear; d20 0.0/+0.1 is not."""
    res = _run(tmp_path)
    sec = paired_comparisons(res, [{"method": "A2", "against": "W2", "expect": "lower"}], x="model", heading="Ours")
    assert sec.heading == "Ours"  # a study checking its own claims, not a paper's
    (para,) = sec.paragraphs
    assert para.startswith(
        "**A2 − W2** — holds in part (clear at model=d44; clearly the other way at model=d8; pooled, within noise):"
    )


def test_claims_are_checked_before_any_job_runs():
    import tomllib

    raw = tomllib.loads(SPEC.replace('scale = "default"\n', ""))
    claim = {"method": "W3", "against": "float", "expect": "rises"}
    raw["report"] = {"extras": {"paired_comparisons": {"claims": [claim]}}}
    with pytest.raises(SpecError, match=r"report.extras.paired_comparisons: claim method = 'W3': not a method"):
        parse_spec(raw, None, "s.toml")
    raw["report"]["extras"]["paired_comparisons"]["claims"] = [{"method": "W2", "against": "float", "expect": "up"}]
    with pytest.raises(SpecError, match="expect \\(one of higher, lower, rises, falls\\)"):
        parse_spec(raw, None, "s.toml")


def test_a_claim_on_a_method_the_scale_does_not_run_is_not_evaluated(tmp_path):
    res = _run(tmp_path, seeds=(0,))
    res.spec.raw["methods"]["W4"] = {"kind": "qat", "parent": "float"}  # defined in the spec, not in this grid
    for expect in ("higher", "rises"):
        sec = paired_comparisons(res, [{"method": "W4", "against": "float", "expect": expect}])
        assert sec.paragraphs == ["**W4 − float** — not evaluated (no pair of runs at this scale)."]


def test_a_figure_panel_with_no_pairs_draws_and_the_legend_sits_on_a_panel_with_lines(tmp_path):
    """A claim with no pairs at this scale leaves its panel empty: the figure is still written, with no matplotlib
    warning (an empty legend warns), and the legend goes on the last panel that drew lines."""
    import warnings

    res = _run(tmp_path, seeds=(0,))
    res.spec.raw["methods"]["W4"] = {"kind": "qat", "parent": "float"}
    claims = [
        {"method": "W2", "against": "float", "expect": "rises"},
        {"method": "W4", "against": "float", "expect": "rises"},
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sec = paired_comparisons(res, claims, x_param="depth", group="block", figure="change")
    assert [f.path for f in sec.figures] == ["figures/change.png"]
    assert (tmp_path / "figures" / "change.png").stat().st_size > 1000


def test_a_float_parent_pairs_with_each_bit_width_and_same_axes_pair_exactly(tmp_path):
    spec = SPEC.replace("seed = [0, 1]", "seed = [0]\nbits = [2, 4]").replace("bits = 2 } }", 'bits = "${bits}" } }')
    (tmp_path / "spec.toml").write_text(spec)
    rows = [("float", {}, 90.0), ("W2", {"bits": 2}, 85.0), ("W2", {"bits": 4}, 89.0)]
    rows += [("A2", {"bits": 2}, 80.0), ("A2", {"bits": 4}, 88.5)]
    with Store(tmp_path) as s:
        for method, extra, acc in rows:
            recipe = {"kind": "float"} if method == "float" else {"kind": "qat", "quant": {}}
            cfg = {"model": {"name": "cifar_resnet", "block": "basic", "depth": 8}, "recipe": recipe}
            s.add_job(
                f"{method}{extra}",
                {"accuracy": acc},
                {"model": "d8", "method": method, "seed": 0, **extra},
                cfg,
                1.0,
                None,
            )
    res = RunResults(tmp_path)
    claims = [
        {"method": "W2", "against": "float", "expect": "lower"},
        {"method": "A2", "against": "W2", "expect": "lower"},
    ]
    sec = paired_comparisons(res, claims, x="bits")
    assert [r[1:] for r in sec.tables[0].rows] == [["-5.00", "-5.00"], ["-1.00", "-0.50"]]
