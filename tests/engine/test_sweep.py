"""A spec written here (2 models x 3 methods x 2 seeds on digits) through `lowbit sweep`, and the run-folder rules."""

from __future__ import annotations

import shutil

import pytest
from support.specs import DIGITS, one_cell

from lowbit.cli import main
from lowbit.engine.report.results import RunResults
from lowbit.runlock import RunLock


@pytest.mark.slow
def test_sweep_a_user_spec_then_resume_report_and_refusals(tmp_path, capsys):
    spec = tmp_path / "digits.toml"
    spec.write_text(DIGITS)
    out = tmp_path / "run"
    assert main(["sweep", str(spec), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2] == "12 jobs" and lines[-1].startswith("checked: data 'digits' loaded; every model fits it")
    assert not out.exists()  # a dry run writes nothing
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    res = RunResults(out)
    assert len(res.jobs) == 12
    for j in res.jobs.values():
        assert 0 <= j.metrics["accuracy"] <= 100
        assert (out / j.model_path).is_file()
    inq = [j for j in res.jobs.values() if j.axes["method"] == "INQ"]
    assert all(j.metrics["on_codebook"] == 1.0 for j in inq)
    assert all("accuracy_before" in j.metrics for j in res.jobs.values() if j.axes["method"] == "W4A4")
    md = (out / "report.md").read_text()
    # pivot: rows in the spec's model order, columns in its method order, mean ± std over the 2 seeds, paper column
    header = next(line for line in md.splitlines() if line.startswith("| model"))
    assert header == "| model | float | float (paper) | W4A4 | INQ bits=3 |"
    narrow = next(line for line in md.splitlines() if line.startswith("| narrow"))
    assert narrow.count("±") == 3 and "| 90.00 |" in narrow
    assert "n = 2 run(s)" in md and "seeds 0, 1" in md and (out / "figures" / "accuracy_vs_method_0.png").is_file()
    assert (out / "spec.toml").read_text().startswith('name = "digits-grid"')

    capsys.readouterr()
    # a finished run: a fresh run into it is refused, --resume runs nothing and gives the same results
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "1", "--no-progress"]) == 2
    assert "already holds a run with results; pass --resume" in capsys.readouterr().err
    before = {k: j.metrics for k, j in res.jobs.items()}
    assert main(["sweep", str(spec), "--out", str(out), "--resume", "--workers", "1", "--no-progress"]) == 0
    assert {k: j.metrics for k, j in RunResults(out).jobs.items()} == before
    # resuming with another scale is refused, naming the first differing key
    capsys.readouterr()
    assert main(["sweep", str(spec), "--scale", "tiny", "--out", str(out), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "different spec (first difference: scale)" in err and err.count("\n") == 1
    # a second writer is refused while the folder is held, naming the holder
    with RunLock(out):
        assert main(["sweep", str(spec), "--out", str(out), "--resume", "--workers", "1", "--no-progress"]) == 2
    assert "in use by another lowbit process (pid" in capsys.readouterr().err


@pytest.mark.slow
def test_a_folder_with_a_spec_but_no_results_is_not_held_hostage(tmp_path, capsys):
    spec = tmp_path / "digits.toml"
    spec.write_text(one_cell())
    out = tmp_path / "run"
    out.mkdir()
    (out / "spec.toml").write_text('name = "something else"\n')  # a run that never produced a result
    assert main(["sweep", str(spec), "--scale", "tiny", "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    assert len(RunResults(out).jobs) == 3
    # the report is rebuilt from spec.toml + results.sqlite alone
    shutil.rmtree(out / "figures")
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0 and (out / "report.md").is_file()


@pytest.mark.slow
def test_run_a_one_cell_spec_and_refuse_a_grid(tmp_path, capsys):
    spec = tmp_path / "digits.toml"
    spec.write_text(DIGITS)
    assert main(["run", str(spec), "--out", str(tmp_path / "r")]) == 2
    assert "grid has 2 model x 2 seed x 1 bits; `lowbit run` runs one cell" in capsys.readouterr().err
    spec.write_text(one_cell())
    assert (
        main(["run", str(spec), "--scale", "tiny", "--out", str(tmp_path / "r"), "--workers", "1", "--no-progress"])
        == 0
    )
    assert len(RunResults(tmp_path / "r").jobs) == 3


@pytest.mark.slow
def test_an_ensemble_averages_its_members_probabilities(tmp_path):
    import torch

    from lowbit.data.sets import load_data
    from lowbit.engine.spec import load_spec
    from lowbit.serialize import load_model

    spec = tmp_path / "digits.toml"
    spec.write_text(
        DIGITS.replace('model = ["narrow", "wide"]', 'model = ["narrow"]').replace(
            'method = ["float", "W4A4", "INQ"]', 'method = ["float", "E2"]'
        )
    )
    out = tmp_path / "run"
    assert main(["sweep", str(spec), "--scale", "tiny", "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    res = RunResults(out)
    (ens,) = [j for j in res.jobs.values() if j.axes["method"] == "E2"]
    members = [j for j in res.jobs.values() if j.axes["method"] == "float"]
    assert "seed" not in ens.axes and ens.model_path is None and len(members) == 2
    test = load_data(load_spec(out / "spec.toml").data).test  # an independent re-statement of the average
    x, y = test.tensors
    with torch.no_grad():
        p = sum(torch.softmax(load_model(out / m.model_path)[0].eval()(x), 1) for m in members) / 2
    assert ens.metrics["accuracy"] == pytest.approx(float((p.argmax(1) == y).double().mean()) * 100)
