"""The suggestive-annotation study (seed §3.1 Table 1, spec §6) at tiny scale through `lowbit reproduce`, on generated
ISBI 2012 files: random / SA / QSA selection, NT and QNT scores, member diversity, the selection saved per job; the
report rebuilt from the store alone in a fresh process."""

from __future__ import annotations

import json

import pytest
from support.app_studies import reproduce_and_rebuild
from support.data_files import write_isbi

from lowbit.cli import main
from lowbit.engine.report.results import RunResults


def test_plan_counts(capsys):
    # 3 selectors x bits x budgets x seeds, no parents
    for scale, n in (("tiny", 3 * 1 * 2 * 2), ("quick", 3 * 1 * 2 * 5), ("default", 3 * 2 * 2 * 5)):
        assert main(["reproduce", "suggestive_annotation", "--scale", scale, "--plan-only"]) == 0
        assert capsys.readouterr().out.splitlines()[-1] == f"{n} jobs"


@pytest.mark.slow
def test_tiny_end_to_end_and_report_from_the_store(tmp_path, monkeypatch):
    data = tmp_path / "data"
    write_isbi(data / "isbi2012-em", side=512)
    monkeypatch.setenv("LOWBIT_DATA", str(data))
    out = tmp_path / "run"
    md, _ = reproduce_and_rebuild("suggestive_annotation", out, {"LOWBIT_DATA": str(data)})
    jobs = list(RunResults(out).jobs.values())
    assert len(jobs) == 12
    for j in jobs:
        m = j.metrics
        assert m["annotated"] == j.axes["budget"]
        assert 0 <= m["score"] <= 100 and 0 <= m["score_qnt"] <= 100
        assert m["memory_reduction"] == 1.0 and m["memory_reduction_qnt"] > 2.0  # NT float, QNT at 4 bits
        sel = json.loads((out / "jobs" / j.id / "selection.json").read_text())
        assert len(sel["annotated"]) == j.axes["budget"] and len(set(sel["annotated"])) == j.axes["budget"]
        assert [r["annotated"] for r in sel["rounds"]] == list(range(6, j.axes["budget"] + 1, 2))
        assert ("diversity" in m) == (j.axes["method"] != "random")
        if "diversity" in m:
            assert 0 <= m["diversity"] <= 1
    # a smaller budget replays the first rounds of a larger one (same seed, same picks)
    for method in ("random", "SA", "QSA"):
        sel = {
            j.axes["budget"]: json.loads((out / "jobs" / j.id / "selection.json").read_text())["annotated"]
            for j in jobs
            if j.axes["method"] == method and j.axes["seed"] == 0
        }
        assert sel[8][:6] == sel[6]
    assert "Table 1 (seed), NT" in md and "Table 1 (seed), QNT" in md and "Member diversity" in md
    assert "SA vs random" in md and (out / "figures" / "score_vs_budget.png").is_file()
