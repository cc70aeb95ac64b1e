"""The speech study specs (seed §3.3) at tiny scale through `lowbit reproduce`, on generated FSDD and TIMIT
folders; reports rebuilt from the store alone in a fresh process; memory and CTC scoring by hand."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from support.app_studies import reproduce_and_rebuild
from support.data_files import write_fsdd, write_timit

from lowbit.cli import main
from lowbit.engine.report.results import RunResults
from lowbit.tasks import get_task


def test_ctc_metrics_decode_each_utterance_up_to_its_length():
    from lowbit.data.sets.speech import Utterances

    seen = []
    data = Utterances([(torch.zeros(3, 2), torch.tensor([1])), (torch.zeros(2, 2), torch.tensor([2]))], seen.append)
    probs = torch.zeros(2, 3, 3)
    probs[0, :, 1] = 1  # 1 1 1 -> [1]
    probs[1, 0, 2], probs[1, 1, 0], probs[1, 2, 1] = 1, 1, 1  # 2 blank | padding frame (label 1) is cut off
    get_task("ctc").metrics(probs, data)
    assert seen == [[[1], [2]]]


def test_plan_counts_follow_the_old_module_at_every_scale(capsys):
    # default: 7 float + INQ (5 seeds x 8 bits + 2 seeds x 9 bits only) + small (5 float + 10 INQ) + 7 FT members
    # + 3 x 7 ensembles; quick: 5 float + 15 INQ + 5 FT + 2 x 5 ensembles
    counts = (("tiny", 15), ("quick", 35), ("default", 92), ("paper", 58), ("loso_george", 15))
    for name, scale, n in (("speech", sc, k) for sc, k in counts):
        assert main(["reproduce", name, "--scale", scale, "--plan-only"]) == 0
        assert capsys.readouterr().out.splitlines()[-1] == f"{n} jobs"


@pytest.fixture
def speech_data(tmp_path, monkeypatch):
    data = tmp_path / "data"
    write_fsdd(data / "fsdd" / "recordings", takes=1)
    write_timit(data / "timit-sample")
    monkeypatch.setenv("LOWBIT_DATA", str(data))
    return {"LOWBIT_DATA": str(data)}


@pytest.mark.slow
def test_tiny_end_to_end_and_report_from_the_store(tmp_path, speech_data):
    out = tmp_path / "run"
    md, _ = reproduce_and_rebuild("speech", out, speech_data)
    res = RunResults(out)
    jobs = list(res.jobs.values())
    inq = sorted((j.axes["model"], j.axes["seed"], j.axes["bits"]) for j in jobs if j.axes["method"] == "INQ")
    assert inq == [("full", 0, 2), ("full", 0, 9), ("full", 1, 9), ("small", 0, 4)]
    by = {(j.axes["model"], j.axes["method"], j.axes.get("seed"), j.axes.get("bits")): j for j in jobs}
    assert by["full", "INQ", 0, 2].metrics["weight_kib"] < by["full", "INQ", 0, 9].metrics["weight_kib"]
    assert by["full", "INQ", 0, 9].metrics["weight_kib"] < by["full", "float", 0, None].metrics["weight_kib"]
    assert all(j.metrics["on_codebook"] == 1.0 for j in jobs if j.axes["method"] == "INQ")
    assert all(j.metrics["wer"] >= 0 for j in jobs)
    # the 2-member ensemble decodes the average of seeds 0 and 1's saved frame posteriors
    e = next(j for j in jobs if j.axes["method"] == "E_float" and j.axes["members"] == 2)
    assert [res.jobs[p].axes["seed"] for p in e.config["parents"]] == [0, 1]
    probs = torch.stack([load_file(str(out / "jobs" / p / "probs.safetensors"))["probs"] for p in e.config["parents"]])
    from lowbit.data.sets import load_data

    test = load_data(res.spec.data).test
    assert e.metrics["wer"] == pytest.approx(get_task("ctc").metrics(probs.mean(0), test)["wer"])
    # every ensemble reports the four rules; one member under ROVER is that member decoded greedily
    assert all({"wer_avgbeam", "wer_beam", "wer_rover"} <= set(j.metrics) for j in jobs if "E_" in j.axes["method"])
    one = next(j for j in jobs if j.axes["method"] == "E_float" and j.axes["members"] == 1)
    assert one.metrics["wer_rover"] == by["full", "float", 0, None].metrics["wer"] == one.metrics["wer"]
    # the FT members all start from float seed 0
    ft = [j for j in jobs if j.axes["method"] == "FT"]
    assert len(ft) == 2 and {res.jobs[j.config["parents"][0]].axes["seed"] for j in ft} == {0}
    assert "Bit sweep (seed Table 8)" in md and "Ensembles (seed Table 9)" in md and "ROVER" in md
    assert "Seed-paired differences" in md
    assert (out / "figures" / "wer_vs_bits.png").is_file() and (out / "figures" / "wer_vs_members.png").is_file()


@pytest.mark.slow
def test_timit_tiny_end_to_end(tmp_path, speech_data):
    out = tmp_path / "timit"
    md, _ = reproduce_and_rebuild("speech_timit", out, speech_data)
    res = RunResults(out)
    assert sorted(j.axes["method"] for j in res.jobs.values()) == ["INQ", "float"]
    assert all(j.metrics["per"] >= 0 and j.metrics["mean_hyp_len"] >= 0 for j in res.jobs.values())
    assert "TIMIT sample: PER (%)" in md
