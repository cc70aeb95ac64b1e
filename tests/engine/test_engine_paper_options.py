"""Two spec options the paper scales use: a report table's ``aggregate = "max"`` (the seed paper's best of 4 runs)
next to the default mean ± std, and a scale's table naming another data set or model replacing the table."""

from __future__ import annotations

import tomllib

from support.specs import DIGITS

from lowbit.engine.run import sweep
from lowbit.engine.spec import parse_spec
from lowbit.engine.store import Store

TWO_TABLES = """
[[report.tables]]
title = "Best of the seeds"
rows = "model"
columns = "method"
value = "accuracy"
aggregate = "max"
where = { method = "float" }

[[report.tables]]
title = "Mean of the seeds"
rows = "model"
columns = "method"
value = "accuracy"
where = { method = "float" }
"""


def test_aggregate_max_shows_the_best_run_and_mean_the_mean(tmp_path):
    text = DIGITS.replace('method = ["float", "W4A4", "INQ"]', 'method = ["float"]').split("[[report.tables]]")[0]
    spec = parse_spec(tomllib.loads(text + TWO_TABLES), None, "agg.toml")
    report = sweep(spec, tmp_path / "run", workers=1, progress=False).read_text()
    with Store(tmp_path / "run") as store:
        acc = [r.value for r in store.rows() if r.metric == "accuracy" and r.axes["model"] == "narrow"]
    assert len(acc) == 2 and acc[0] != acc[1]
    best, mean = report.split("Best of the seeds")[1], report.split("Mean of the seeds")[1]
    line = next(x for x in best.splitlines() if x.startswith("| narrow"))
    assert f"{max(acc):.2f}" in line and "±" not in line
    assert "the best (max) of n = 2" in best.split("Mean of the seeds")[0]
    line = next(x for x in mean.splitlines() if x.startswith("| narrow"))
    assert f"{sum(acc) / 2:.2f} ±" in line


def test_a_scale_naming_another_data_set_replaces_the_table():
    raw = tomllib.loads(DIGITS)
    raw["scales"]["other"] = {"data": {"name": "spirals", "noise": "std"}, "models": {"wide": {"width": 8}}}
    spec = parse_spec(raw, "other", "replace.toml")
    assert spec.data == {"name": "spirals", "noise": "std"}  # digits' subset = 300 does not leak into spirals
    assert spec.models["wide"] == {"name": "fcdnn", "width": 8, "depth": 2}  # same name: merged key by key
    raw["scales"]["same"] = {"data": {"name": "digits", "seed": 1}}
    assert parse_spec(raw, "same", "replace.toml").data == {"name": "digits", "subset": 300, "seed": 1}
