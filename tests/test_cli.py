"""The command line on tiny configurations, and its errors: one line, exit 2, nothing half-written."""

import json
import shutil

import pytest

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
    assert "spirals" in capsys.readouterr().out


def test_reproduce_spirals_tiny_then_resume_and_report(tmp_path, capsys):
    out = tmp_path / "sp"
    assert main(["reproduce", "spirals", "--scale", "tiny", "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    for f in (
        "report.md",
        "report.html",
        "config.toml",
        "metrics.jsonl",
        "figures/decision_maps.png",
        "figures/decision_maps_inq.png",
    ):
        assert (out / f).exists(), f
    md = (out / "report.md").read_text()
    assert "| 128-3 |" in md and "| res 128-4 |" in md and "INQ4" in md
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 7 and all(0 <= r["accuracy"] <= 100 for r in rows)
    assert all(r["inq_on_codebook"] for r in rows if r["precision"].startswith("INQ"))
    # lose one precision's results, as after a crash: --resume redoes only that one
    shutil.rmtree(out / "jobs" / "128-3" / "W2A2")
    (out / "jobs" / "128-3" / "result.json").unlink()
    before = {r["precision"]: r["accuracy"] for r in rows if r["model"] == "128-3"}
    assert (
        main(
            [
                "reproduce",
                "spirals",
                "--scale",
                "tiny",
                "--out",
                str(out),
                "--resume",
                "--workers",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    after = {r["precision"]: r["accuracy"] for r in rows if r["model"] == "128-3"}
    assert after == before  # same seed, same result
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0 and (out / "report.md").exists()


def test_run_a_config_and_its_errors(tmp_path, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out), "--no-progress"]) == 0
    assert (out / "model.safetensors").exists() and "quantized" in (out / "report.md").read_text()
    capsys.readouterr()
    assert main(["run", str(cfg), "--out", str(out)]) == 2  # refuses to overwrite a finished run
    assert "already holds a run" in capsys.readouterr().err
    cases = [
        (TINY.replace("bits = 2 }\nact", "bits = 0 }\nact"), "bits=0"),
        (TINY.replace("bits = 2 }\nact", "bits = 2.5 }\nact"), "bits=2.5"),
        (TINY.replace("bits = 2 }\nact", "bits = 33 }\nact"), "bits=33"),
        (TINY.replace('name = "uniform"', 'name = "unifrom"'), "unknown quantizer 'unifrom'"),
        (TINY.replace("epochs = 2", "epochz = 2"), "unknown field(s) ['epochz']"),
        (TINY.replace("keep_float", "keep_flaot"), "unknown field(s) ['keep_flaot']"),
        (TINY.replace('keep_float = ["first"]', 'keep_float = ["head.*"]'), "'head.*' matches no quantizable layer"),
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


def test_reproduce_errors(tmp_path, capsys):
    assert main(["reproduce", "nope"]) == 2
    assert "unknown study 'nope'" in capsys.readouterr().err
    assert main(["reproduce", "spirals", "--scale", "huge", "--out", str(tmp_path / "x")]) == 2
    assert "--scale 'huge'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # nothing written


def test_help_for_every_command(capsys):
    from lowbit.cli import _MODULES

    for name in _MODULES:
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0
        assert "usage: lowbit" in capsys.readouterr().out


def test_resume_from_a_corrupted_checkpoint_is_a_clear_error(tmp_path, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out), "--no-progress"]) == 0
    ck = out / "float" / "checkpoints" / "last.safetensors"
    ck.write_bytes(ck.read_bytes()[:100])  # truncated, as by a full disk
    capsys.readouterr()
    assert main(["run", str(cfg), "--out", str(out), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "last.safetensors" in err and "corrupted" in err and "Traceback" not in err
