"""The classification study: a tiny end-to-end run on a tiny image folder, memory accounting, resume, config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from lowbit import INQ, tomlio
from lowbit.experiments import classification as C
from lowbit.experiments.registry import get_study, study_names
from lowbit.models import create_model
from lowbit.serialize import load_model

REPO = Path(__file__).resolve().parents[1]


def _folder(root: Path, n_train: int = 16, n_test: int = 10) -> None:
    """Two separable classes of 32x32 RGB PNGs: bright top half (class 'a') or bright bottom half ('b')."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for k, c in enumerate(("a", "b")):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
                img[(slice(0, 16) if k == 0 else slice(16, 32))] += 150
                Image.fromarray(img).save(root / split / c / f"{i}.png")


def test_registered():
    assert "classification" in study_names()
    assert get_study("classification").scales == ("tiny", "default", "paper")


def test_weight_memory_hand_count():
    m = create_model("vgg_small5", width=1 / 16, fc_hidden=32)
    params = sum(p.numel() for p in m.parameters())
    assert C.weight_memory(m) == {"params": params, "bits": 32 * params, "float_bits": 32 * params}
    for _ in INQ(m, bits=4):
        pass
    qw = sum(x.weight.numel() for x in m.modules() if isinstance(x, (torch.nn.Conv2d, torch.nn.Linear)))
    assert C.weight_memory(m)["bits"] == 4 * qw + 32 * (params - qw)


def test_tiny_end_to_end(tmp_path):
    data = tmp_path / "data"
    _folder(data)
    out = tmp_path / "run"
    report = C.run(out, scale="tiny", workers=1, progress=False, root=data)
    sc = C.SCALES["tiny"]
    assert report == out / "report.md" and report.is_file() and (out / "report.html").is_file()
    assert (out / "figures" / "accuracy_vs_bits.png").is_file()
    assert (out / "figures" / "accuracy_vs_members.png").is_file()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    n_vgg = sc.members + len(sc.bits) * sc.sweep_seeds + len(sc.ensemble_bits) * (sc.members - sc.sweep_seeds)
    n_small = len(sc.small_models) * sc.small_seeds * (1 + len(sc.small_bits))
    assert len(rows) == n_vgg + n_small
    for r in rows:
        assert 0 <= r["accuracy"] <= 100 and abs(r["accuracy"] + r["error"] - 100) < 1e-9
        assert 0 <= r["train_accuracy"] <= 100
        if r["precision"] == "float":
            assert r["bits"] == 32 * r["params"]
        else:
            assert r["inq_on_codebook"] and r["bits"] < 32 * r["params"]
            job = out / "jobs" / f"{r['model']}_{r['precision']}_s{r['seed']}"
            net, _ = load_model(job / "model.safetensors")  # the saved quantized model reproduces its score
            assert C.weight_memory(net)["bits"] == r["bits"]
            probs = C.test_probs(net, C.prepared(sc, str(data))[1], sc.test_batch)
            stored = load_file(str(job / "probs.safetensors"))["probs"].float()
            assert torch.allclose(probs, stored, atol=2e-3)
    # ensembles: N = 1 with rotation r equals member r's own accuracy (probabilities stored as float16)
    ens = [json.loads(line) for line in (out / "ensembles.jsonl").read_text().splitlines()]
    single = {r["seed"]: r["accuracy"] for r in rows if r["model"] == "vgg16" and r["precision"] == "float"}
    for e in ens:
        if e["precision"] == "float" and e["n"] == 1:
            assert abs(e["accuracy"] - single[e["rotation"]]) < 1e-6
    assert {e["n"] for e in ens} == set(range(1, sc.members + 1))
    text = report.read_text()
    for title in ("Table 5", "Table 6", "Table 7", "Quantized ensembles against one float model"):
        assert title in text
    assert tomlio.load(out / "config.toml")["study"] == "classification"
    # resume: every job has a result, so nothing is retrained and the same rows come back
    mtime = (out / "jobs" / "vgg16_float_s0" / "model.safetensors").stat().st_mtime_ns
    C.run(out, scale="tiny", workers=1, progress=False, root=data, resume=True)
    assert (out / "jobs" / "vgg16_float_s0" / "model.safetensors").stat().st_mtime_ns == mtime
    assert [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()] == rows


def test_resume_refuses_other_config(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.toml").write_text('study = "classification"\nscale = "other"\n')
    with pytest.raises(ValueError, match="different configuration"):
        C.run(out, scale="tiny", resume=True, workers=1, progress=False, root=tmp_path)


def test_bad_scale(tmp_path):
    with pytest.raises(ValueError, match="scale"):
        C.run(tmp_path, scale="huge")


def test_config_file_is_the_default_scale():
    import tomllib

    expected = tomllib.loads(tomlio.dumps(C.study_config("default")))
    assert tomlio.load(REPO / "configs" / "classification.toml") == expected
