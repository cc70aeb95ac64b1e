"""``lowbit design --precision mixed --bytes B`` (issue 26 item 4): each candidate's bits per layer under B bytes."""

from __future__ import annotations

import copy

import pytest

import lowbit as lb
from lowbit.cli import main
from lowbit.engine.plan import plan
from lowbit.engine.spec import parse_spec
from lowbit.mixed import layer_costs
from lowbit.models import create_model
from lowbit.studies.design import Candidate, design_spec, enumerate_candidates
from lowbit.studies.design_mixed import min_bytes, mixed_method, mixed_quant


def test_min_bytes_is_lowbit_summary_at_two_bits():
    c = Candidate("basic", 8, 4, 0)
    model = create_model("cifar_resnet", block="basic", depth=8, width=4)
    cfg = lb.QuantConfig.from_dict(mixed_quant(None))
    q = lb.quantize_(copy.deepcopy(model), cfg)
    assert min_bytes(c, None) == lb.summary(q).totals["model_bytes"]
    # first conv and FC stay float: they are not allocated
    assert "stem.0" not in layer_costs(model, cfg, (2,)).layers and "fc" not in layer_costs(model, cfg, (2,)).layers


def test_generated_spec_has_a_mixed_method_under_the_budget():
    cands = enumerate_candidates(2e4, 0.3, ("basic",), max_depth=14, all_depths=True)
    raw = design_spec(cands, 2e4, 0, None, {"name": "cifar10_jpeg", "subset": 10}, method=mixed_method(9000, 2, 64))
    spec = parse_spec(raw, None, "design")
    assert spec.grid["method"] == ["float", "mixed"]
    jobs = [j for j in plan(spec) if j.kind == "mixed"]
    assert len(jobs) == len(cands) and all(j.config["recipe"]["budget"] == 9000 for j in jobs)
    assert jobs[0].config["recipe"]["quant"]["rules"]  # --act-bits 2: PACT at the QA/QRA points


def test_cli_dry_run_and_errors(capsys):
    args = ["design", "--params", "2e4", "--budget-tolerance", "0.3", "--blocks", "basic", "--all-depths"]
    args += ["--max-depth", "14", "--dry-run"]
    assert main([*args, "--precision", "mixed", "--bytes", str(10**6)]) == 0
    out = capsys.readouterr().out
    assert "2 candidate(s)" in out and "left out" not in out
    assert main([*args, "--precision", "mixed", "--bytes", "100"]) == 2
    assert "no candidate fits even at 2 bits" in capsys.readouterr().err
    assert main([*args, "--precision", "mixed"]) == 2
    assert "needs --bytes" in capsys.readouterr().err
    assert main([*args, "--precision", "W2A2", "--bytes", "1000"]) == 2
    assert "--bytes is the budget of --precision mixed" in capsys.readouterr().err


def test_a_budget_between_candidates_leaves_the_big_one_out(capsys):
    cands = enumerate_candidates(2e4, 0.3, ("basic",), max_depth=14, all_depths=True)
    need = sorted(min_bytes(c, None) for c in cands)
    assert need[0] < need[-1]
    args = ["design", "--params", "2e4", "--budget-tolerance", "0.3", "--blocks", "basic", "--all-depths"]
    assert main([*args, "--max-depth", "14", "--dry-run", "--precision", "mixed", "--bytes", str(need[0])]) == 0
    out = capsys.readouterr().out
    assert "left out" in out and "1 candidate(s)" in out


@pytest.mark.slow
def test_tiny_end_to_end_ranks_mixed_candidates(tmp_path):
    import json

    import numpy as np
    from PIL import Image

    from lowbit.engine.report import RunResults
    from lowbit.studies.design_report import rank

    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("test", 6)):
        for k in range(3):
            d = tmp_path / "data" / split / f"c{k}"
            d.mkdir(parents=True)
            for i in range(n):
                a = rng.integers(0, 120, (16, 16, 3))
                a[..., k] += 120
                Image.fromarray(a.astype(np.uint8)).save(d / f"{i}.png")
    cands = enumerate_candidates(2e4, 0.3, ("basic",), max_depth=14, all_depths=True, num_classes=3)
    budget = max(min_bytes(c, None, num_classes=3) for c in cands) + 2000
    out = tmp_path / "run"
    args = ["design", "--params", "2e4", "--precision", "mixed", "--bytes", str(budget), "--data", "image-folder"]
    args += ["--data-root", str(tmp_path / "data"), "--blocks", "basic", "--all-depths", "--max-depth", "14"]
    args += ["--budget-tolerance", "0.3", "--proxy-epochs", "1", "--subset", "0", "--validation", "30"]
    args += ["--workers", "1", "--no-progress", "--batch-size", "32", "--out", str(out)]
    assert main(args) == 0
    ranked = rank(out, cands, "mixed")
    assert len(ranked) == len(cands) == 2
    assert "Pick:" in (out / "design.md").read_text()
    res = RunResults(out)
    for j in res.select({"method": "mixed"}):
        alloc = json.loads((res.job_dir(j) / "mixed.json").read_text())["allocation"]
        assert alloc["predicted_bytes"] <= budget == alloc["budget_bytes"]
        assert j.metrics["weight_kib"] * 1024 == pytest.approx(alloc["predicted_bytes"])
