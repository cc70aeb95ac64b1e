"""The segmentation study: memory accounting, config file, and a tiny end-to-end run on generated ISBI files."""

import json
from pathlib import Path

import pytest
import tomllib
import torch
from test_data_segmentation import write_isbi

import lowbit as lb
from lowbit import tomlio
from lowbit.experiments.registry import get_study
from lowbit.experiments.segmentation import SCALES, score, study_config, weight_memory
from lowbit.models import create_model

REPO = Path(__file__).resolve().parents[1]


def test_weight_memory_counts_inq_bits_and_float_params():
    m = create_model("fcn_sa", width=1 / 32, depth=2)
    params = sum(p.numel() for p in m.parameters())
    assert weight_memory(m) == {"params": params, "bits": 32 * params, "float_bits": 32 * params}
    conv_w = sum(x.weight.numel() for x in m.modules() if isinstance(x, torch.nn.Conv2d))
    lb.INQ(m, bits=5)
    assert weight_memory(m)["bits"] == 5 * conv_w + 32 * (params - conv_w)


def test_score_uses_membrane_dice_and_cell_objects():
    masks = torch.zeros(1, 4, 6, dtype=torch.long)
    masks[0, :, 2] = 1  # one membrane column splits two cells
    perfect = masks.float()
    r = score(perfect, masks)
    assert r["dice"] == 100.0 and r["f1"] == 100.0 and (r["tp"], r["fp"], r["fn"]) == (2, 0, 0)
    r = score(torch.zeros(1, 4, 6), masks)  # no membrane predicted: one merged cell covering both
    assert r["dice"] == 0.0
    assert (r["tp"], r["fp"], r["fn"]) == (1, 0, 1)  # it covers all of the bigger cell -> TP, the other is missed


def test_config_file_is_the_default_scale():
    text = (REPO / "configs" / "segmentation.toml").read_text()
    assert tomllib.loads(text) == tomllib.loads(tomlio.dumps(study_config("default")))


def test_study_is_registered():
    s = get_study("segmentation")
    assert s.scales == tuple(SCALES) == ("tiny", "default", "paper")


def test_tiny_end_to_end_run(tmp_path):
    root = tmp_path / "isbi2012-em"
    write_isbi(root, side=512)
    out = tmp_path / "run"
    report = get_study("segmentation").run(out=out, scale="tiny", resume=False, workers=1, progress=False, root=root)
    assert report == out / "report.md" and report.exists() and (out / "report.html").exists()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    sc = SCALES["tiny"]
    precs = {(r["model"], r["precision"]) for r in rows}
    assert precs == {("full", "float"), *(("full", f"INQ{b}") for b in sc.bits)} | {
        ("half", "float"),
        *(("half", f"INQ{b}") for b in sc.half_bits),
    }
    for r in rows:
        assert 0.0 <= r["dice"] <= 100.0 and 0.0 <= r["f1"] <= 100.0
        if r["precision"].startswith("INQ"):
            b = int(r["precision"][3:])
            assert r["inq_on_codebook"] and r["bits"] < r["float_bits"]
            assert r["float_bits"] / r["bits"] < 32 / b  # BN and biases stay 32-bit
    ens = [json.loads(line) for line in (out / "ensembles.jsonl").read_text().splitlines()]
    assert {e["n"] for e in ens} == set(range(1, sc.members + 1))
    md = report.read_text()
    assert "Bit sweep" in md and "Ensembles" in md and "Half the filters" in md
    for fig in ("score_vs_bits.png", "score_vs_members.png"):
        assert (out / "figures" / fig).stat().st_size > 1000
    assert tomllib.loads((out / "config.toml").read_text())["scale"] == "tiny"
    # resume: every job has its result, nothing is retrained, the report is rebuilt identically
    before = (out / "metrics.jsonl").read_text()
    get_study("segmentation").run(out=out, scale="tiny", resume=True, workers=1, progress=False, root=root)
    assert (out / "metrics.jsonl").read_text() == before
    with pytest.raises(ValueError, match="different configuration"):
        get_study("segmentation").run(out=out, scale="default", resume=True, workers=1, progress=False, root=root)
