"""The classification study spec (seed §3.2) at tiny scale through `lowbit reproduce`, on a generated CIFAR-10
JPEG archive; its report rebuilt from the store alone in a fresh process."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from support.app_studies import reproduce_and_rebuild, write_cifar_jpeg

from lowbit.cli import main
from lowbit.engine.report.results import RunResults
from lowbit.metrics.classification import top1_accuracy


@pytest.mark.slow
def test_plan_counts_follow_the_old_module_at_every_scale(capsys):
    # default: VGG-16 float 7 + INQ (5 seeds x 8 bits + 2 seeds x 8 bits only) 42; small VGGs 2 x (5 float + 10 INQ);
    # ensembles 7 sizes x 7 rotations x (float, INQ 8); paper: the quantized ensembles at 4 and 8 bits
    for scale, n in (("tiny", 29), ("default", 177), ("paper", 151)):
        assert main(["reproduce", "classification", "--scale", scale, "--plan-only"]) == 0
        assert capsys.readouterr().out.splitlines()[-1] == f"{n} jobs"


@pytest.fixture
def cifar(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    write_cifar_jpeg(data)
    env = {"LOWBIT_DATA": str(data), "LOWBIT_CACHE": str(tmp_path / "cache")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@pytest.mark.slow
def test_tiny_end_to_end_and_report_from_the_store(tmp_path, cifar):
    out = tmp_path / "run"
    md, _ = reproduce_and_rebuild("classification", out, cifar)
    res = RunResults(out)
    jobs = list(res.jobs.values())
    assert len(jobs) == 29
    inq = [j for j in jobs if j.axes["method"] == "INQ"]
    assert sorted((j.axes["model"], j.axes["seed"], j.axes["bits"]) for j in inq) == [
        ("small5", 0, 4),
        ("small8", 0, 4),
        ("vgg16", 0, 2),
        ("vgg16", 0, 8),
        ("vgg16", 1, 8),
        ("vgg16", 2, 8),
    ]
    for j in inq:
        b = j.axes["bits"]
        assert j.metrics["on_codebook"] == 1.0
        assert 1 < j.metrics["memory_reduction"] < 32 / b  # BN and biases stay 32-bit
        assert j.config["recipe"]["train"]["lr"] == 0.0002 and j.config["recipe"]["portions"][-1] == 1.0
    for j in jobs:
        if j.axes["method"] in ("float", "INQ"):
            assert j.metrics["error"] == pytest.approx(100 - j.metrics["accuracy"])
            assert 0 <= j.metrics["train_accuracy"] <= 100
    assert res.spec.task == "image_classification_crop_flip"  # the tiny scale augments, like the old module
    # an ensemble is the average of its members' saved probabilities, members = seeds r..r+N-1 (mod 3)
    e = next(j for j in jobs if j.axes["method"] == "E_INQ" and j.axes["members"] == 2 and j.axes["rotation"] == 2)
    members = [res.jobs[p] for p in e.config["parents"]]
    assert [m.axes["seed"] for m in members] == [2, 0] and all(m.axes["bits"] == 8 for m in members)
    probs = torch.stack([load_file(str(out / "jobs" / m.id / "probs.safetensors"))["probs"] for m in members]).mean(0)
    labels = torch.tensor([int(y) for y in _test_labels(res)])
    assert e.metrics["accuracy"] == pytest.approx(top1_accuracy(probs, labels))
    one = next(j for j in jobs if j.axes["method"] == "E_float" and j.axes["members"] == 1 and j.axes["rotation"] == 0)
    float0 = next(j for j in jobs if j.axes["method"] == "float" and j.axes["model"] == "vgg16" and j.axes["seed"] == 0)
    assert one.metrics["accuracy"] == float0.metrics["accuracy"]
    kib = sum(m.metrics["weight_kib"] for m in members)  # the ensemble stores its members' weights
    assert f"| E_INQ bits=8 members=2 | {kib:.1f} |" in md and "Ensembles against memory" in md
    assert "Table 5 (seed)" in md and "Table 6 (seed)" in md and "| vgg16 |" in md and "| small5 |" in md
    assert (out / "figures" / "accuracy_vs_bits.png").is_file() and (
        out / "figures" / "accuracy_vs_members.png"
    ).is_file()


def _test_labels(res: RunResults):
    from lowbit.data.sets import load_data

    return load_data(res.spec.data).test.tensors[1]
