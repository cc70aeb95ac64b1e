"""The speech study: a tiny end-to-end run on tiny FSDD/TIMIT folders, memory accounting, config file, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_data_speech import write_fsdd, write_timit

from lowbit import INQ, tomlio
from lowbit.experiments import speech as S
from lowbit.experiments.registry import get_study, study_names
from lowbit.models import create_model

REPO = Path(__file__).resolve().parents[1]


def test_registered():
    assert "speech" in study_names()
    assert get_study("speech").scales == ("tiny", "default", "paper")


def test_weight_memory_hand_count():
    m = create_model("deepspeech", n_input=4, n_hidden=3, n_classes=2)
    # weights: 4*3 + 3*3 + 3*3 + (w4, wf, wb) 3*3*3 + 3*3 + 3*2 = 72; biases: 3+3+3+3+3+2 = 17
    assert S.weight_memory(m) == {"params": 89, "bits": 89 * 32, "float_bits": 89 * 32}
    INQ(m, bits=5)
    assert S.weight_memory(m) == {"params": 89, "bits": 72 * 5 + 17 * 32, "float_bits": 89 * 32}


def test_config_file_matches_default_scale():
    import tomllib

    cfg = tomlio.load(REPO / "configs" / "speech.toml")
    assert cfg == tomllib.loads(tomlio.dumps(S.study_config("default")))  # the file documents what runs
    assert cfg["study"] == "speech" and cfg["scale"] == "default"
    assert cfg["scale_params"]["bits"] == [2, 3, 4, 5, 6, 7, 8, 9]


def test_tiny_end_to_end(tmp_path, monkeypatch):
    data = tmp_path / "data"
    write_fsdd(data / "fsdd" / "recordings", takes=1)
    write_timit(data / "timit-sample")
    monkeypatch.setenv("LOWBIT_DATA", str(data))
    torch.set_num_threads(1)
    out = tmp_path / "run"
    md = S.run(out, "tiny", workers=1, progress=False)
    text = md.read_text()
    assert "Bit sweep" in text and "Ensembles" in text and "Small Deep Speech" in text and "TIMIT sample" in text
    for f in ("config.toml", "report.html", "metrics.jsonl", "figures/wer_vs_bits.png", "figures/wer_vs_members.png"):
        assert (out / f).is_file(), f
    r = json.loads((out / "jobs" / "member0" / "result.json").read_text())
    assert set(r["results"]) == {"float", "inq2", "inq9"}
    assert all(v["on_codebook"] for k, v in r["results"].items() if k != "float")
    assert r["results"]["inq2"]["bits"] < r["results"]["inq9"]["bits"] < r["results"]["float"]["bits"]
    assert all(0 <= v["wer"] for v in r["results"].values())
    t = json.loads((out / "jobs" / "timit" / "result.json").read_text())
    assert t["test_utts"] == 4 and 0 <= t["results"]["float"]["per"]
    # resume: nothing to redo, the same report comes back
    before = (out / "jobs" / "member0" / "result.json").read_text()
    S.run(out, "tiny", resume=True, workers=1, progress=False)
    assert (out / "jobs" / "member0" / "result.json").read_text() == before
    assert S.rebuild_report(out) == md
    with pytest.raises(ValueError, match="different configuration"):
        S.run(out, "default", resume=True, workers=1, progress=False)
