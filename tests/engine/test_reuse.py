"""`--reuse DIR`: a run extended to more seeds and methods takes the jobs another run folder finished (same config,
same job id) byte for byte, trains only the rest — including children of a taken parent, from its copied model —
and ends with the results of a run that trained everything."""

from __future__ import annotations

import sqlite3

import pytest
from safetensors.torch import load_file
from support.specs import DIGITS

from lowbit.cli import main

BASE = DIGITS.replace('[methods.E2]\nkind = "ensemble"\nparent = "float"\nmembers = 2\n', "")
SMALL = BASE.replace('method = ["float", "W4A4", "INQ"]', 'method = ["float"]').replace("seed = [0, 1]", "seed = [0]")
WIDER = BASE.replace('method = ["float", "W4A4", "INQ"]', 'method = ["float", "W4A4"]')


def _rows(out):
    with sqlite3.connect(out / "results.sqlite") as db:
        return {(r[0], r[1]): r for r in db.execute("SELECT * FROM results")}


def _sweep(tmp_path, text, out, *extra):
    spec = tmp_path / f"{out.name}.toml"
    spec.write_text(text)
    return main(["sweep", str(spec), "--scale", "tiny", "--out", str(out), "--workers", "1", "--no-progress", *extra])


@pytest.mark.slow
def test_reuse_takes_finished_jobs_and_gives_the_full_runs_results(tmp_path, capsys):
    small, full, extended = tmp_path / "small", tmp_path / "full", tmp_path / "extended"
    assert _sweep(tmp_path, SMALL, small) == 0  # 2 models x float x seed 0
    assert _sweep(tmp_path, WIDER, full) == 0  # 2 models x (float, W4A4) x seeds 0, 1: everything trained
    capsys.readouterr()
    assert _sweep(tmp_path, WIDER, extended, "--reuse", str(small)) == 0
    assert f"reused 2 finished jobs from {small}" in capsys.readouterr().out

    old, new, ref = _rows(small), _rows(extended), _rows(full)
    assert set(new) == set(ref) and len({k[0] for k in ref}) == 8
    for key, row in old.items():
        assert new[key] == row  # byte for byte: value, code version, wall time, finish time, digest
    for key, row in ref.items():
        assert new[key][2] == row[2], key  # every value equals the run that trained everything
    # the taken float models came along, and the W4A4 children of seed 0 retrained from them
    for row in old.values():
        a, b = load_file(small / row[7]), load_file(extended / row[7])
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    ran_here = {k[0] for k, r in new.items() if k not in old}
    assert len(ran_here) == 6


@pytest.mark.slow
def test_reuse_skips_other_configs_and_missing_models(tmp_path, capsys):
    small = tmp_path / "small"
    assert _sweep(tmp_path, SMALL, small) == 0
    rows = _rows(small)
    lost = next(iter(rows.values()))
    (small / lost[7]).unlink()  # one float model is gone: that job is trained again, not taken without it
    capsys.readouterr()
    out = tmp_path / "again"
    assert _sweep(tmp_path, SMALL, out, "--reuse", str(small)) == 0
    assert f"reused 1 finished job from {small}" in capsys.readouterr().out
    assert (out / lost[7]).is_file() and lost[:2] in _rows(out)  # trained here: its model exists again
    # another learning rate is another job: nothing is taken
    other = tmp_path / "other"
    assert _sweep(tmp_path, SMALL.replace("lr = 0.01", "lr = 0.02"), other, "--reuse", str(small)) == 0
    assert f"reused 0 finished jobs from {small}" in capsys.readouterr().out


def test_reuse_refuses_a_folder_that_is_not_a_run_before_writing_anything(tmp_path, capsys):
    out = tmp_path / "run"
    assert _sweep(tmp_path, SMALL, out, "--reuse", str(tmp_path / "nowhere")) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "not a run folder" in err and not out.exists()
    assert _sweep(tmp_path, SMALL, out) == 0
    capsys.readouterr()
    assert _sweep(tmp_path, SMALL, out, "--resume", "--reuse", str(out)) == 2
    assert "is the run folder itself" in capsys.readouterr().err


def test_dry_run_says_what_reuse_would_take_and_writes_nothing(tmp_path, capsys):
    small = tmp_path / "small"
    assert _sweep(tmp_path, SMALL, small) == 0
    capsys.readouterr()
    out = tmp_path / "planned"
    assert _sweep(tmp_path, WIDER, out, "--dry-run", "--reuse", str(small)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-3:-1] == ["8 jobs", f"2 of them finished in {small} (--reuse takes them)"] and not out.exists()
