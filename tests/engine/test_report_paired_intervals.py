"""The ``paired_intervals`` report extra: each INQ model against its own float parent, mean difference, 95 % t
interval and n, checked against a hand computation on a store written by hand."""

from __future__ import annotations

import math

import pytest

from lowbit.engine.report.paired_intervals import paired_interval, paired_intervals, reading, t_quantile
from lowbit.engine.report.results import RunResults
from lowbit.engine.store import Store

SPEC = """
name = "pairs"
task = "classification"
scale = "default"
[data]
name = "spirals"
[grid]
model = ["m"]
method = ["float", "INQ"]
seed = [0, 1, 2, 3, 4]
bits = [2, 4]
[models.m]
name = "fcdnn"
width = 8
depth = 2
[methods.float]
kind = "float"
[methods.INQ]
kind = "inq"
parent = "float"
bits = "${bits}"
"""

FLOAT = [10.0, 20.0, 30.0, 25.0, 15.0]  # seed-to-seed spread much larger than the INQ effect: it must cancel
EFFECT = {2: [1.0, 2.0, 3.0, 4.0, 5.0], 4: [0.5, -0.5, 0.25, -0.25, 0.0]}  # INQ − its own float parent


def _run(tmp_path):
    (tmp_path / "spec.toml").write_text(SPEC)
    with Store(tmp_path) as s:
        model = {"name": "fcdnn", "width": 8, "depth": 2}
        for seed, f in enumerate(FLOAT):
            cfg = {"model": model, "recipe": {"kind": "float"}}
            s.add_job(f"float-{seed}", {"wer": f}, {"model": "m", "method": "float", "seed": seed}, cfg, 1.0, None)
            for b, eff in EFFECT.items():
                axes = {"model": "m", "method": "INQ", "seed": seed, "bits": b}
                cfg = {"model": model, "recipe": {"kind": "inq", "bits": b}}
                s.add_job(f"inq{b}-{seed}", {"wer": f + eff[seed]}, axes, cfg, 1.0, None)
    return RunResults(tmp_path)


def test_t_quantiles_match_the_tables():
    # two-sided 95 % critical values of Student's t (any statistics table)
    for nu, q in ((1, 12.7062), (2, 4.3027), (4, 2.7764), (10, 2.2281), (30, 2.0423)):
        assert t_quantile(0.95, nu) == pytest.approx(q, abs=2e-4)
    assert t_quantile(0.99, 4) == pytest.approx(4.6041, abs=2e-4)
    with pytest.raises(ValueError, match="nu=0"):
        t_quantile(0.95, 0)


def test_interval_by_hand():
    m, lo, hi, n = paired_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    sd = math.sqrt(sum((d - 3.0) ** 2 for d in (1, 2, 3, 4, 5)) / 4)  # 1.5811
    half = 2.776445 * sd / math.sqrt(5)  # 1.9632
    assert (m, n) == (3.0, 5)
    assert lo == pytest.approx(3.0 - half, abs=1e-5) and hi == pytest.approx(3.0 + half, abs=1e-5)
    assert paired_interval([2.5]) == (2.5, None, None, 1)
    assert reading("INQ", "float", 3.0, 1.04, 4.96, 5, lower_is_better=True) == "INQ worse than float (n = 5)"
    assert reading("INQ", "float", 3.0, 1.04, 4.96, 5, lower_is_better=False) == "INQ better than float (n = 5)"
    assert reading("INQ", "float", 0.1, -0.5, 0.7, 5, True) == "no difference detectable at n = 5"


def test_section_pairs_each_inq_model_with_its_own_float_parent(tmp_path):
    res = _run(tmp_path)
    sec = paired_intervals(res, [{"method": "INQ", "against": "float"}], metric="wer", lower_is_better=True)
    rows = {r[1]: r for r in sec.tables[0].rows}
    assert rows[2][:5] == ["INQ − float", 2, 5, "+3.00", "[+1.04, +4.96]"]  # the hand computation above
    assert rows[2][5] == "INQ worse than float (n = 5)"
    # bits 4: mean 0, sd sqrt(0.625/4) = 0.3953, half 2.7764 * 0.3953 / sqrt(5) = 0.4909
    assert rows[4][:5] == ["INQ − float", 4, 5, "+0.00", "[-0.49, +0.49]"]
    assert rows[4][5] == "no difference detectable at n = 5"
    (sentence,) = sec.paragraphs
    assert "INQ is worse than float at bits=2" in sentence and "no difference is detectable at bits=4" in sentence
    assert "n = 5..5 seeds per cell" in sentence and "fewer than" not in sentence
