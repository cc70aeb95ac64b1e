"""`lowbit results --where`: a key or value the run does not have is an error listing what it has (it printed
"0 rows" with exit status 0); filters that each match but not together give 0 rows; failed jobs apart."""

from __future__ import annotations

import json

from lowbit.cli import main
from lowbit.engine.store import FailedJob, Store


def _fill(d, failed: bool = True):
    with Store(d) as s:
        s.add_job("a1", {"accuracy": 91.5}, {"model": "m", "method": "W2", "seed": 0}, {}, 1.25, None)
        s.add_job("b2", {"accuracy": 93.0}, {"model": "m", "method": "INQ", "seed": 1, "bits": 3}, {}, 2.5, None)
        if failed:
            s.add_failures(
                [
                    FailedJob(
                        "c3", "failed", {"model": "m", "method": "W4A4", "seed": 0}, {}, "RuntimeError", "boom", 0.5
                    )
                ]
            )


def test_an_unknown_key_is_an_error_naming_the_keys(tmp_path, capsys):
    _fill(tmp_path, failed=False)
    assert main(["results", str(tmp_path), "--where", "mthod=W2A2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "lowbit results: error: --where mthod=W2A2: unknown key 'mthod'; keys of this run: job, model, method, "
        "seed, metric, value, wall_s, model_path, code_version, bits"
    )
    _fill(tmp_path)
    assert main(["results", str(tmp_path), "--where", "mthod=W2A2"]) == 2
    assert capsys.readouterr().err.strip().endswith("code_version, bits, status, error")  # failure columns too


def test_a_value_no_row_has_is_an_error_listing_the_values(tmp_path, capsys):
    _fill(tmp_path, failed=False)
    assert main(["results", str(tmp_path), "--where", "method=W2A2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("--where method=W2A2: matches nothing; method values in this run: W2, INQ")
    assert main(["results", str(tmp_path), "--where", "bits=2"]) == 2
    assert "bits values in this run: 3" in capsys.readouterr().err


def test_filters_that_match_apart_but_not_together_give_zero_rows(tmp_path, capsys):
    _fill(tmp_path)
    assert main(["results", str(tmp_path), "--where", "method=W2", "--where", "seed=1"]) == 0
    assert "0 rows" in capsys.readouterr().out
    assert main(["results", str(tmp_path), "--where", "job_id=b2", "--where", "value=93.0", "--json"]) == 0
    assert [r["job"] for r in json.loads(capsys.readouterr().out)] == ["b2"]


def test_failed_jobs_are_listed_apart_and_their_values_are_known(tmp_path, capsys):
    _fill(tmp_path)
    assert main(["results", str(tmp_path), "--where", "method=W4A4"]) == 0  # a value of a failed job: known
    out = capsys.readouterr().out
    assert "0 rows; 1 job failed: `lowbit results" in out and "--failed` lists them" in out
    assert main(["results", str(tmp_path), "--failed", "--where", "method=W4A4", "--csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["job,model,method,seed,status,error,wall_s,code_version", lines[1]]
    assert lines[1].startswith("c3,m,W4A4,0,failed,RuntimeError: boom,0.5,lowbit ")
    assert main(["results", str(tmp_path), "--failed", "--where", "method=W2"]) == 0  # W2 did not fail
    assert "0 failed or not run jobs" in capsys.readouterr().out


def test_an_empty_store_has_no_values_to_match(tmp_path, capsys):
    Store(tmp_path).close()
    (tmp_path / "spec.toml").write_text(
        'name = "x"\n[grid]\nmodel = ["m"]\nmethod = ["float"]\nseed = [0]\nbits = [2]\n'
    )
    assert main(["results", str(tmp_path)]) == 0 and "0 rows" in capsys.readouterr().out
    assert main(["results", str(tmp_path), "--where", "bits=2"]) == 2  # an axis of the spec: a known key
    assert "--where bits=2: matches nothing; no row of this run has a bits" in capsys.readouterr().err
