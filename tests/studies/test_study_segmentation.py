"""The segmentation study spec (seed §3.1) at tiny scale through `lowbit reproduce`, on generated ISBI 2012 files;
its report rebuilt from the store alone in a fresh process; the Dice/F1 score against hand-counted cases."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from support.app_studies import reproduce_and_rebuild
from support.data_files import write_isbi

from lowbit.cli import main
from lowbit.engine.report.results import RunResults
from lowbit.tasks.segmentation import score


def test_score_uses_membrane_dice_and_cell_objects():
    masks = torch.zeros(1, 4, 6, dtype=torch.long)
    masks[0, :, 2] = 1  # one membrane column splits two cells
    r = score(masks.float(), masks)
    assert r["dice"] == 100.0 and r["f1"] == 100.0 and (r["tp"], r["fp"], r["fn"]) == (2, 0, 0)
    r = score(torch.zeros(1, 4, 6), masks)  # no membrane predicted: one merged cell covering both
    assert r["dice"] == 0.0
    assert (r["tp"], r["fp"], r["fn"]) == (1, 0, 1)  # it covers all of the bigger cell -> TP, the other is missed
    glands = torch.zeros(1, 4, 6, dtype=torch.long)
    glands[0, 1:3, 1:3] = 1
    glands[0, 1:3, 4:6] = 1
    r = score(glands.float(), glands, objects_of=1)  # GlaS: the objects are the foreground glands
    assert (r["tp"], r["fp"], r["fn"]) == (2, 0, 0) and r["score"] == 100.0
    with pytest.raises(ValueError, match="objects_of=2"):
        score(glands.float(), glands, objects_of=2)


@pytest.mark.slow
def test_plan_counts_follow_the_old_module_at_every_scale(capsys):
    # default: full 7 float + 56 INQ, half 5 float + 10 INQ (five seed pairs), ensembles 9 x 7 sizes x 7 rotations
    for scale, n in (("tiny", 21), ("default", 519), ("paper", 516)):
        assert main(["reproduce", "segmentation", "--scale", scale, "--plan-only"]) == 0
        assert capsys.readouterr().out.splitlines()[-1] == f"{n} jobs"


@pytest.mark.slow
def test_tiny_end_to_end_and_report_from_the_store(tmp_path, monkeypatch):
    data = tmp_path / "data"
    write_isbi(data / "isbi2012-em", side=512)
    monkeypatch.setenv("LOWBIT_DATA", str(data))
    out = tmp_path / "run"
    md, _ = reproduce_and_rebuild("segmentation", out, {"LOWBIT_DATA": str(data)})
    res = RunResults(out)
    jobs = list(res.jobs.values())
    assert len(jobs) == 21
    inq = sorted((j.axes["model"], j.axes["seed"], j.axes["bits"]) for j in jobs if j.axes["method"] == "INQ")
    assert inq == [("full", 0, 2), ("full", 0, 4), ("full", 1, 2), ("full", 1, 4), ("half", 0, 4), ("half", 0, 8)]
    for j in jobs:
        if j.axes["method"] == "INQ":
            assert j.metrics["on_codebook"] == 1.0 and 1 < j.metrics["memory_reduction"] < 32 / j.axes["bits"]
        assert 0 <= j.metrics["dice"] <= 100 and 0 <= j.metrics["f1"] <= 100
        assert j.metrics["score"] == pytest.approx((j.metrics["dice"] + j.metrics["f1"]) / 2)
    # an ensemble thresholds the mean of its members' saved foreground probabilities
    e = next(j for j in jobs if j.axes["method"] == "E_INQ" and j.axes["members"] == 2 and j.axes["bits"] == 4)
    probs = torch.stack([load_file(str(out / "jobs" / p / "probs.safetensors"))["probs"] for p in e.config["parents"]])
    from lowbit.data.isbi import load_isbi

    masks = load_isbi(data / "isbi2012-em", "test", res.spec.data["downsample"]).masks
    assert e.metrics["score"] == pytest.approx(score(probs.mean(0), masks)["score"])
    assert "Bit sweep (seed Tables 1 and 4)" in md and "Ensembles (seed Tables 2-3)" in md
    floats = [j.metrics["score"] for j in jobs if j.axes["model"] == "full" and j.axes["method"] == "float"]
    assert f"full, score: float {sum(floats) / 2:.2f}" in md  # the claims checked on the measured rows
    assert (out / "figures" / "score_vs_bits.png").is_file() and (out / "figures" / "score_vs_members.png").is_file()
