"""``lowbit design --precision mixed --bytes B`` (issue 26 item 4): each candidate's bits per layer under B bytes."""

from __future__ import annotations

import copy

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
