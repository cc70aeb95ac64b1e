"""``parent_seed`` and the ``finetune`` kind: members fine-tuned from ONE float parent (issue 30, item 3: CTC
ensembles whose members keep the parent's spike frames), planned and run."""

from __future__ import annotations

import tomllib

import pytest
from support.specs import FLOAT_W2

from lowbit.cli import main
from lowbit.engine.checker import SpecError
from lowbit.engine.plan import plan
from lowbit.engine.report.results import RunResults
from lowbit.engine.spec import parse_spec
from lowbit.serialize import load_model

SPEC = (
    FLOAT_W2.replace('method = ["float", "W2"]', 'method = ["float", "FT", "E_FT"]')
    .replace("seed = [0]", "seed = [0, 1, 2]")
    .replace(
        "[methods.W2]",
        '[methods.FT]\nkind = "finetune"\nparent = "float"\nparent_seed = 0\ntrain = { epochs = 1, lr = 0.0003 }\n'
        '[methods.E_FT]\nkind = "ensemble"\nparent = "FT"\nmembers = 3\n[methods.W2]',
    )
)


def _spec(text: str = SPEC):
    return parse_spec(tomllib.loads(text), None, "ft.toml")


def test_every_seed_finetunes_the_one_parent():
    jobs = plan(_spec())
    by = {j.id: j for j in jobs}
    ft = [j for j in jobs if j.kind == "finetune"]
    assert sorted(j.axes["seed"] for j in ft) == [0, 1, 2]
    parents = {j.parents for j in ft}
    assert len(parents) == 1 and by[next(iter(parents))[0]].axes == {"model": "small", "method": "float", "seed": 0}
    assert [j.config["recipe"]["train"]["seed"] for j in ft] == [0, 1, 2]  # each its own batch order and dropout
    assert "parent_seed" not in ft[0].config["recipe"]
    (ens,) = [j for j in jobs if j.kind == "ensemble"]
    assert set(ens.parents) == {j.id for j in ft}
    # without parent_seed each seed has its own parent
    own = plan(_spec(SPEC.replace("parent_seed = 0\n", "")))
    assert len({j.parents for j in own if j.kind == "finetune"}) == 3


def test_parent_seed_must_be_a_whole_number():
    with pytest.raises(SpecError, match="parent_seed"):
        _spec(SPEC.replace("parent_seed = 0", "parent_seed = -1"))
    with pytest.raises(SpecError, match="parent_seed"):  # a float model has no parent
        _spec(SPEC.replace('[methods.float]\nkind = "float"', '[methods.float]\nkind = "float"\nparent_seed = 0'))


@pytest.mark.slow
def test_finetune_members_start_from_the_parent_and_the_ensemble_runs(tmp_path):
    spec = tmp_path / "ft.toml"
    spec.write_text(SPEC)
    out = tmp_path / "run"
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    res = RunResults(out)
    ft = res.select({"method": "FT"}, "accuracy")
    assert len(ft) == 3 and all(0 <= j.metrics["accuracy"] <= 100 for j in ft)
    # seed 1's member starts from float seed 0, not from float seed 1: its weights are far closer to the former
    float_ = {j.axes["seed"]: load_model(out / j.model_path)[0].state_dict() for j in res.select({"method": "float"})}
    (m1,) = [load_model(out / j.model_path)[0].state_dict() for j in ft if j.axes["seed"] == 1]

    def dist(a, b):
        return sum(float((a[k] - b[k]).norm()) for k in a)

    assert dist(m1, float_[0]) < 0.5 * dist(m1, float_[1])
    (ens,) = res.select({"method": "E_FT"}, "accuracy")
    assert 0 <= ens.metrics["accuracy"] <= 100
