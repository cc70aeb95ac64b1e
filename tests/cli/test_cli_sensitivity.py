"""``lowbit sensitivity`` and ``lowbit allocate`` end to end on a tiny saved model."""

from __future__ import annotations

import json
import tomllib

import torch

import lowbit as lb
from lowbit.cli import main
from lowbit.mixed import Sensitivity
from lowbit.models import create_model
from lowbit.serialize import load_model, save_model


def test_sensitivity_then_allocate_on_a_saved_model(tmp_path, capsys):
    torch.manual_seed(0)
    model = create_model("fcdnn", in_features=2, num_classes=2, width=8, depth=3)
    ckpt = tmp_path / "model.safetensors"
    save_model(ckpt, model, "fcdnn", in_features=2, num_classes=2, width=8, depth=3)
    out = tmp_path / "sens"
    args = ["sensitivity", str(ckpt), "--data", "spirals", "--data-arg", "subset=400", "--data-arg"]
    args += ["test_resolution=11", "--subset", "200", "--candidates", "2", "4", "--samples", "2", "--out", str(out)]
    assert main([*args, "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "loss_delta b=2" in text and "hutchinson b=4" in text
    sens = Sensitivity.from_json(out / "sensitivity.json")
    assert sens.candidates == [2, 4] and sens.num_samples == 200
    assert {r["role"] for r in sens.rows} == {"weight", "act"}
    assert (out / "sensitivity.png").read_bytes()[:4] == b"\x89PNG"

    alloc = tmp_path / "alloc"
    cmd = ["allocate", str(ckpt), "--sensitivity", str(out / "sensitivity.json"), "--budget", "W2"]
    assert main([*cmd, "--out", str(alloc)]) == 0
    assert "bytes as stored" in capsys.readouterr().out
    record = json.loads((alloc / "allocation.json").read_text())
    assert set(record["bits"].values()) == {2}  # W2 memory: only 2 bits everywhere fits
    quant = tomllib.loads((alloc / "quant.toml").read_text())
    float_model, _ = load_model(ckpt)
    q = lb.quantize_(float_model, lb.QuantConfig.from_dict(quant))
    assert lb.summary(q).totals["model_bytes"] == record["predicted_bytes"] == record["budget_bytes"]

    assert main([*cmd[:-1], "W4", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["predicted_bytes"] <= record["uniform_bytes"]["4"]


def test_bad_arguments_are_one_line(tmp_path, capsys):
    torch.manual_seed(0)
    ckpt = tmp_path / "model.safetensors"
    save_model(
        ckpt,
        create_model("fcdnn", in_features=2, num_classes=2, width=4, depth=2),
        "fcdnn",
        in_features=2,
        num_classes=2,
        width=4,
        depth=2,
    )
    assert main(["sensitivity", str(ckpt), "--data", "nope"]) == 2
    assert "unknown data set" in capsys.readouterr().err
    assert main(["allocate", str(ckpt), "--sensitivity", str(tmp_path / "missing.json"), "--budget", "W2"]) == 2
    assert "does not exist" in capsys.readouterr().err
