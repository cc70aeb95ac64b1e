"""``lowbit design`` (issue 13 item 4): candidates under a parameter budget, the generated spec, a tiny end-to-end
ranking with its table and plot."""

from __future__ import annotations

import shutil
import sqlite3

import numpy as np
import pytest
import torch

import lowbit as lb
from lowbit.cli import main
from lowbit.engine.plan import plan
from lowbit.engine.spec import parse_spec
from lowbit.models import create_model
from lowbit.models.resnet_cifar import TABLE5
from lowbit.models.resnet_cifar import param_count as real_count
from lowbit.studies.design import (
    Candidate,
    design_spec,
    enumerate_candidates,
    param_count,
    parse_precision,
)
from lowbit.studies.design_report import rank


def _real(c: Candidate, **kw) -> int:
    return real_count(create_model("cifar_resnet", block=c.block, depth=c.depth, width=c.width, **kw))


@pytest.mark.parametrize(
    "block,depth,width,classes,channels",
    [("basic", 8, 4, 10, 3), ("preact", 14, 5, 7, 1), ("depthwise", 11, 4, 10, 3), ("depthwise", 20, 3, 3, 1)],
)
def test_param_count_matches_the_built_model(block, depth, width, classes, channels):
    m = create_model("cifar_resnet", block=block, depth=depth, width=width, num_classes=classes, in_channels=channels)
    assert param_count(block, depth, width, classes, channels) == real_count(m)
    assert param_count(block, depth, width, classes, channels, bn_stats=True) == real_count(m, bn_stats=True)


def test_table5_configurations_counted_like_the_paper():
    """Table 5's (block, L, D_init) rows: the closed form equals the built model, and with BN statistics counted
    (the paper's Keras convention) it is within 2 % of the printed millions."""
    for block, depth, width, _, millions in TABLE5[::4]:
        n = param_count(block, depth, width, bn_stats=True)
        assert n == real_count(create_model("cifar_resnet", block=block, depth=depth, width=width), bn_stats=True)
        assert abs(n / 1e6 - millions) / millions < 0.02


def test_candidates_fit_the_budget():
    cands = enumerate_candidates(1e6, 0.15)
    assert {c.label for c in cands} >= {"basic-14", "preact-20", "dw-38", "dw-110"}
    assert len(cands) == 17  # Table 5's depth grid: 6 basic, 6 preact, 5 depthwise
    for c in cands[::3]:  # checked against the models' real parameter counts
        assert _real(c) == c.params and abs(c.params - 1e6) <= 0.15e6
    for c in cands:  # the width is the one closest to the budget
        for w in (c.width - 1, c.width + 1):
            assert abs(param_count(c.block, c.depth, w) - 1e6) >= abs(c.params - 1e6)
    small = enumerate_candidates(2e4, 0.05, ("basic", "depthwise"), max_depth=20, all_depths=True)
    assert all(abs(_real(c) - 2e4) <= 0.05 * 2e4 for c in small)
    assert {c.label for c in small} < {"basic-8", "basic-14", "basic-20", "dw-11", "dw-20"}  # some cannot hit it
    with pytest.raises(ValueError, match="budget-tolerance"):
        enumerate_candidates(1e6, 1.5)
    with pytest.raises(ValueError, match="'wide'"):
        enumerate_candidates(1e6, 0.1, ("wide",))


def test_parse_precision():
    assert parse_precision("W2A2") == (2, 2) and parse_precision("w4a8") == (4, 8)
    for bad in ("W2", "A2W2", "W2A2x", "2/2", "W2 A2"):
        with pytest.raises(ValueError, match="expected W<bits>A<bits>"):
            parse_precision(bad)
    with pytest.raises(ValueError, match="weight bits 1 is not accepted"):
        parse_precision("W1A2")


def test_generated_spec_validates_and_quantizes():
    cands = enumerate_candidates(2e4, 0.3, ("basic", "depthwise"), max_depth=14, all_depths=True)
    raw = design_spec(cands, 2e4, 2, 4, {"name": "cifar10_jpeg", "subset": 100, "test_subset": 100}, proxy_epochs=1)
    spec = parse_spec(raw, None, "design")
    jobs = plan(spec)
    assert len(jobs) == 2 * len(cands) and {j.kind for j in jobs} == {"float", "qat"}
    qat = next(j for j in jobs if j.kind == "qat")
    assert qat.axes["method"] == "W2A4" and qat.config["recipe"]["train"]["epochs"] == 1
    model = create_model("cifar_resnet", **{k: v for k, v in qat.config["model"].items() if k != "name"})
    lb.quantize_(model, lb.QuantConfig.from_dict(qat.config["recipe"]["quant"]))
    points = [x for x in model.modules() if isinstance(x, lb.nn.QuantActPoint)]
    assert points and all(p.act_quant.bits == 4 for p in points)
    convs = [x for x in model.modules() if isinstance(x, lb.nn.QuantConv2d)]
    assert convs and all(c.weight_quant.bits == 2 for c in convs)
    with pytest.raises(ValueError, match="no architecture fits"):
        design_spec([], 1e6, 2, 2, {"name": "cifar10_jpeg"})


def test_cli_dry_run_and_errors(capsys):
    assert main(["design", "--params", "1e6", "--precision", "W2A2", "--data", "cifar10", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "17 candidate(s)" in out and "basic-14" in out and "dw-38" in out and "1,055,274" not in out
    assert main(["design", "--params", "1e6", "--precision", "W2A2", "--weight-bits", "2", "--dry-run"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["design", "--params", "1e6", "--precision", "W2A", "--dry-run"]) == 2
    assert "'W2A' is not accepted" in capsys.readouterr().err
    assert main(["design", "--params", "1e6", "--precision", "W2A2", "--data", "image-folder", "--dry-run"]) == 2
    assert "--data image-folder needs --data-root" in capsys.readouterr().err


def _image_folder(root, classes=3, train=40, test=12, size=32):
    """Tiny learnable images: class k brightens channel k; PNG files read back through the real loader."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("test", test)):
        for k in range(classes):
            d = root / split / f"c{k}"
            d.mkdir(parents=True)
            for i in range(n):
                a = rng.integers(0, 120, (size, size, 3))
                a[..., k] += 120
                Image.fromarray(a.astype(np.uint8)).save(d / f"{i}.png")


@pytest.mark.slow
def test_tiny_end_to_end_ranks_and_writes_table_and_plot(tmp_path, capsys):
    from PIL import Image

    torch.manual_seed(0)
    _image_folder(tmp_path / "data")
    out = tmp_path / "run"
    args = ["design", "--params", "2e4", "--precision", "W2A2", "--data", "image-folder", "--data-root"]
    args += [str(tmp_path / "data"), "--blocks", "basic", "depthwise", "--all-depths", "--max-depth", "14"]
    args += ["--budget-tolerance", "0.3", "--proxy-epochs", "1", "--subset", "0", "--validation", "30"]
    args += ["--workers", "1", "--no-progress", "--batch-size", "32", "--out", str(out)]
    assert main(args) == 0
    cands = enumerate_candidates(2e4, 0.3, ("basic", "depthwise"), max_depth=14, all_depths=True, num_classes=3)
    assert [c.label for c in cands] == ["basic-8", "basic-14", "dw-11"]
    assert all(f"{c.params:,}" in (out / "design.md").read_text() for c in cands)  # counted with the 3 classes
    ranked = rank(out, cands, "W2A2")
    assert len(ranked) == 3 and [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)
    assert all(0 <= r.score <= 100 and r.float_acc is not None and r.runs == 1 for r in ranked)
    text = (out / "design.md").read_text()
    assert f"Pick: **{ranked[0].candidate.label}**" in text
    for i, r in enumerate(ranked, 1):
        assert f"| {i} | {r.candidate.label} |" in text and f"{r.score:.2f}" in text
    assert "not meaningful" in text or "says little" in text
    assert "validation (30 held-out training images, never trained on; the test set is not read)" in text
    assert "How sure: each score is an accuracy on 30 images" in text and "within noise of the pick |" in text
    with Image.open(out / "figures" / "proxy_score_vs_depth.png") as im:
        assert im.size[0] > 200
    assert "Pick:" in capsys.readouterr().out
    # --resume re-runs nothing and ranks the same
    before = {j: p.stat().st_mtime_ns for j, p in ((p.name, p) for p in (out / "jobs").iterdir())}
    assert main([*args, "--resume"]) == 0
    assert {j: p.stat().st_mtime_ns for j, p in ((p.name, p) for p in (out / "jobs").iterdir())} == before
    assert [r.candidate.label for r in rank(out, cands, "W2A2")] == [r.candidate.label for r in ranked]
    # a candidate whose job fails: the others are ranked, the failure is one line, exit status 1
    from lowbit.engine.report import RunResults

    job = RunResults(out).select({"model": ranked[-1].candidate.label, "method": "W2A2"})[0].id
    db = sqlite3.connect(out / "results.sqlite")
    db.execute("DELETE FROM results WHERE job_id = ?", (job,))  # as if it had not finished
    db.commit()
    db.close()
    shutil.rmtree(out / "jobs" / job)
    (out / "jobs" / job).write_text("a file where the job's folder goes")
    capsys.readouterr()
    assert main([*args, "--resume"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("lowbit design: 1 of ") and "FileExistsError" in err and "leaves out" in err
    assert [r.candidate.label for r in rank(out, cands, "W2A2")] == [r.candidate.label for r in ranked[:-1]]


def test_noise_band_and_the_paper_check_say_how_sure():
    """Two binomial standard errors of a difference of accuracies, by hand; the check names the paper's depth as
    within noise of the best one, or beyond it, or agreeing."""
    from lowbit.studies.design_report import Ranked, n_scored, noise_band, paper_check, within_noise

    assert noise_band(33.2, 31.0, 1000) == pytest.approx(200 * ((0.332 * 0.668 + 0.31 * 0.69) / 1000) ** 0.5)
    assert noise_band(50.0, 50.0, 100) == pytest.approx(200 * (0.5 / 100) ** 0.5)  # 14.1 points on 100 images
    assert n_scored({"validation": 1000, "test_subset": 2000}) == 1000 and n_scored({"test_subset": 500}) == 500
    assert n_scored({"validation": 0, "test_subset": 0}) is None
    assert n_scored({"validation": 900, "test_subset": 300}) == 300  # the test subset cuts the held-out images

    def r(block, depth, score):
        return Ranked(Candidate(block, depth, 8, 1000), score, None, 1)

    ranked = [r("depthwise", 29, 33.2), r("basic", 8, 32.8), r("basic", 14, 31.5), r("depthwise", 38, 20.0)]
    assert within_noise(ranked[0], ranked[2], 1000) and not within_noise(ranked[0], ranked[3], 1000)
    assert not within_noise(ranked[0], ranked[2], None)  # no band without n
    text = paper_check(ranked, "2 epochs", meaningful=False, n=1000)
    assert "basic: best depth here 8 (32.80 %) vs the paper's 14 (31.50 %; differs, but within noise" in text
    assert "depthwise: best depth here 29 (33.20 %) vs the paper's 38 (20.00 %; differs, beyond noise" in text
    assert "says little" in text
    agree = paper_check([r("basic", 14, 40.0), r("depthwise", 38, 39.0)], "full", meaningful=True, n=1000)
    assert "14 (40.00 %), as the paper's (agrees)" in agree and "says little" not in agree
    assert "the paper's depth 38 did not run" in paper_check([r("depthwise", 29, 30.0)], "x", True, 1000)
