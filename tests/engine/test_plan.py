"""The plan: the same spec gives the same job ids (also in a fresh process); parents first; axes only where used."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from support.specs import DIGITS

from lowbit.engine.plan import describe, plan
from lowbit.engine.spec import parse_spec


def _spec(text: str = DIGITS, scale: str | None = None):
    return parse_spec(tomllib.loads(text), scale, "digits.toml")


def test_jobs_parents_and_axes():
    jobs = plan(_spec())
    by = {j.id: j for j in jobs}
    kinds = [j.kind for j in jobs]
    # 2 models x 2 seeds x (float, W4A4, INQ bits=3); E2 is not in the grid, so it is not planned
    assert len(jobs) == 12 and kinds.count("float") == 4 and kinds.count("qat") == 4 and kinds.count("inq") == 4
    seen: set[str] = set()
    for j in jobs:
        assert all(p in seen for p in j.parents)  # parents first
        seen.add(j.id)
        if j.kind != "float":
            (p,) = j.parents
            assert by[p].kind == "float" and by[p].axes["seed"] == j.axes["seed"]
            assert by[p].axes["model"] == j.axes["model"]
    inq = [j for j in jobs if j.kind == "inq"]
    assert all(j.axes["bits"] == 3 and j.config["recipe"]["bits"] == 3 for j in inq)
    assert all("bits" not in j.axes for j in jobs if j.kind != "inq")  # float is not trained once per bit width
    assert all(j.config["recipe"]["train"]["seed"] == j.axes["seed"] for j in jobs)
    assert describe(jobs).splitlines()[-1] == "12 jobs"


def test_bits_axis_shares_the_float_parent_and_ensembles_use_the_first_seeds():
    text = DIGITS.replace("bits = [3]", "bits = [2, 3, 4]").replace(
        'method = ["float", "W4A4", "INQ"]', 'method = ["float", "INQ", "E2"]'
    )
    jobs = plan(_spec(text))
    floats = [j for j in jobs if j.kind == "float"]
    assert len(floats) == 4 and len([j for j in jobs if j.kind == "inq"]) == 12
    ens = [j for j in jobs if j.kind == "ensemble"]
    assert len(ens) == 2 and all("seed" not in j.axes for j in ens)  # one per model, over seeds 0 and 1
    for e in ens:
        assert sorted(next(f for f in floats if f.id == p).axes["seed"] for p in e.parents) == [0, 1]


@pytest.mark.slow
def test_ids_are_stable_across_processes_and_change_with_the_config():
    ids = [j.id for j in plan(_spec())]
    assert ids == [j.id for j in plan(_spec())]
    code = (
        f"import sys, json, tomllib; sys.path.insert(0, {str(Path(__file__).parents[1])!r})\n"
        "from support.specs import DIGITS\n"
        "from lowbit.engine.plan import plan\n"
        "from lowbit.engine.spec import parse_spec\n"
        "print(json.dumps([j.id for j in plan(parse_spec(tomllib.loads(DIGITS), None, 'd'))]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == ids
    tiny = [j.id for j in plan(_spec(scale="tiny"))]  # fewer epochs: other jobs
    assert not set(tiny) & set(ids)
    lr = [j.id for j in plan(_spec(DIGITS.replace("train = { epochs = 1, lr = 0.001 }", "train = { epochs = 1 }")))]
    changed = {a for a, b in zip(ids, lr) if a != b}
    assert len(changed) == 4  # only the W4A4 jobs (their lr) changed
