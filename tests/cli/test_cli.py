"""The command line on tiny configurations, and its errors: one line, exit 2, nothing half-written."""

import shutil

import pytest

import lowbit as lb
from lowbit.cli import main

TINY = """
name = "tiny"
[data]
name = "spirals"
subset = 600
test_resolution = 31
[model]
name = "fcdnn"
width = 8
depth = 3
[train]
epochs = 2
batch_size = 64
[quant]
weight = { name = "uniform", bits = 2 }
act = { name = "pact", bits = 2 }
keep_float = ["first"]
[retrain]
epochs = 1
batch_size = 64
"""


def test_reproduce_list(capsys):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    assert "spirals" in out and "[scales: default, l2act, paper, tiny]" in out


@pytest.mark.slow
def test_reproduce_spirals_tiny_then_lose_a_job_and_resume(tmp_path, capsys):
    import sqlite3

    out = tmp_path / "sp"
    args = ["reproduce", "spirals", "--scale", "tiny", "--out", str(out), "--workers", "1", "--no-progress"]
    assert main(args) == 0
    for f in ("report.md", "report.html", "spec.toml", "results.sqlite", "figures/decision_maps.png"):
        assert (out / f).exists(), f
    with sqlite3.connect(out / "results.sqlite") as db:
        before = sorted(db.execute("SELECT job_id, metric, value FROM results"))
        # lose one job's results and its folder, as after a crash: --resume redoes only that one
        (job,) = db.execute(
            "SELECT job_id FROM results WHERE axes LIKE '%\"W2A2\"%' AND axes LIKE '%\"128-3\"%' LIMIT 1"
        ).fetchone()
        db.execute("DELETE FROM results WHERE job_id = ?", (job,))
    shutil.rmtree(out / "jobs" / job)
    assert main([*args, "--resume"]) == 0
    with sqlite3.connect(out / "results.sqlite") as db:
        assert sorted(db.execute("SELECT job_id, metric, value FROM results")) == before  # same seed, same result
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0 and (out / "report.md").exists()


def test_run_a_config_and_its_errors(tmp_path, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    md = (out / "report.md").read_text()
    assert "| model | float | quantized |" in md and len(list(out.glob("jobs/*/model.safetensors"))) == 2
    capsys.readouterr()
    assert main(["run", str(cfg), "--out", str(out)]) == 2  # refuses to overwrite a finished run
    assert "already holds a run with results" in capsys.readouterr().err
    cases = [
        (TINY.replace("bits = 2 }\nact", "bits = 0 }\nact"), "quant.weight.bits = 0: expected a whole number"),
        (TINY.replace("bits = 2 }\nact", "bits = 2.5 }\nact"), "quant.weight.bits = 2.5: expected a whole number"),
        (TINY.replace("bits = 2 }\nact", "bits = 33 }\nact"), "quant.weight.bits = 33"),
        (TINY.replace('name = "uniform"', 'name = "unifrom"'), "quant.weight.name = 'unifrom': unknown quantizer"),
        (TINY.replace("epochs = 2", "epochz = 2"), "train.epochz: unknown key"),
        (TINY.replace("keep_float", "keep_flaot"), "quant.keep_flaot: unknown key"),
        (TINY.replace('keep_float = ["first"]', 'keep_float = ["head.*"]'), "'head.*' matches no quantizable layer"),
        (TINY.replace("width = 8", "width = 8\nin_features = 3"), "does not fit data 'spirals'"),
        ("name = [", "not valid TOML"),
    ]
    for i, (text, msg) in enumerate(cases):
        bad = tmp_path / f"bad{i}.toml"
        bad.write_text(text)
        dest = tmp_path / f"bad{i}"
        assert main(["run", str(bad), "--out", str(dest), "--no-progress"]) == 2, msg
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err and err.count("\n") == 1, err
        assert not dest.exists()  # nothing half-written
    assert main(["run", str(tmp_path / "missing.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_every_config_file_runs_its_dry_run(capsys):
    from pathlib import Path

    owned = ["spirals-w2a2.toml"]  # the configs of studies still written as Python modules are not specs yet
    for name in owned:
        assert main(["run", str(Path(__file__).parents[2] / "configs" / name), "--dry-run"]) == 0
        assert capsys.readouterr().out.splitlines()[-2] == "2 jobs"


def test_reproduce_errors(tmp_path, capsys):
    assert main(["reproduce", "nope"]) == 2
    assert "unknown study 'nope'" in capsys.readouterr().err
    assert main(["reproduce", "spirals", "--scale", "huge", "--out", str(tmp_path / "x")]) == 2
    assert "--scale 'huge' is not defined; accepted: default, l2act, paper, tiny" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path / "none.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["reproduce", "spirals", "--backend", "slurm", "--out", str(tmp_path / "x")]) == 2
    assert "--backend 'slurm' is not accepted; expected one of local" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # nothing written


def test_help_for_every_command(capsys):
    from lowbit.cli import COMMANDS

    assert {"sweep", "results", "run", "reproduce", "report"} <= set(COMMANDS.names())
    for name in COMMANDS.names():
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0
        assert "usage: lowbit" in capsys.readouterr().out


def test_resume_from_a_corrupted_checkpoint_is_a_clear_error(tmp_path, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    for ck in out.glob("jobs/*/train/checkpoints/last.safetensors"):
        ck.write_bytes(ck.read_bytes()[:100])  # truncated, as by a full disk
    (out / "results.sqlite").unlink()  # as if the run had been killed before any job finished
    capsys.readouterr()
    # the job whose checkpoint is corrupted fails (a row of the store, listed in the report), status 1, one line
    assert main(["run", str(cfg), "--out", str(out), "--resume", "--workers", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "CheckpointError: checkpoint" in err and "last.safetensors" in err and "corrupted" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"lowbit {lb.__version__}"
