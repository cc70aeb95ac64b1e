"""Spec additions the application studies use: ``[[exclude]]`` cells, ensemble ``rotation``, list filters in
``where``; each validated with one error line naming the path."""

from __future__ import annotations

import tomllib

import pytest
from support.specs import DIGITS, SPIRALS_TINY

from lowbit.engine.plan import plan
from lowbit.engine.spec import SpecError, parse_spec

ENSEMBLES = (
    DIGITS.replace('method = ["float", "W4A4", "INQ"]', 'method = ["float", "W4A4", "INQ", "E"]').replace(
        "seed = [0, 1]", "seed = [0, 1, 2]\nmembers = [1, 2]\nrotation = [0, 1, 2]"
    )
    + '[methods.E]\nkind = "ensemble"\nparent = "float"\nmembers = "${members}"\nrotation = "${rotation}"\n'
)

SMALL = SPIRALS_TINY.replace('method = ["float", "W2", "INQ"]', 'method = ["float"]')  # float only


def _spec(text: str, extra: str = ""):
    return parse_spec(tomllib.loads(text + extra), source="s.toml")


def test_exclude_drops_matching_cells_and_keeps_the_parents_they_need():
    full = {(j.axes["model"], j.axes["method"], j.axes.get("seed")) for j in plan(_spec(DIGITS))}
    ex = '[[exclude]]\nmodel = "wide"\nmethod = ["W4A4", "INQ", "float"]\nseed = 1\n'
    jobs = plan(_spec(DIGITS, ex))
    got = {(j.axes["model"], j.axes["method"], j.axes.get("seed")) for j in jobs}
    assert full - got == {("wide", "W4A4", 1), ("wide", "INQ", 1), ("wide", "float", 1)}
    # an entry naming an axis a job does not have never matches it (float has no bits)
    jobs = plan(_spec(DIGITS, "[[exclude]]\nbits = 3\n"))
    assert {j.axes["method"] for j in jobs} == {"float", "W4A4"}
    # the ensemble E2 keeps its float parents even when their cells are excluded
    jobs = plan(_spec(DIGITS.replace('"INQ"]', '"INQ", "E2"]'), '[[exclude]]\nmethod = "float"\n'))
    e2 = [j for j in jobs if j.axes["method"] == "E2"]
    assert e2 and all(p in {j.id for j in jobs} for e in e2 for p in e.parents)


def test_ensemble_rotation_takes_seeds_r_to_r_plus_n_minus_1_mod_the_seed_count():
    jobs = plan(_spec(ENSEMBLES))
    by_id = {j.id: j for j in jobs}
    for j in jobs:
        if j.axes["method"] == "E":
            n, r = j.axes["members"], j.axes["rotation"]
            assert [by_id[p].axes["seed"] for p in j.parents] == [(r + i) % 3 for i in range(n)]
    assert len([j for j in jobs if j.axes["method"] == "E"]) == 2 * 2 * 3  # models x members x rotations


@pytest.mark.parametrize(
    "extra, message",
    [
        ("exclude = [{ width = 2 }]\n", "s.toml: exclude[0].width = 'width': unknown grid axis"),
        ("exclude = [{}]\n", "s.toml: exclude[0] = {}: expected at least one axis"),
        ("exclude = [{ seed = [[1]] }]\n", "s.toml: exclude[0].seed = [[1]]: expected a value or a list of values"),
        ("exclude = 3\n", "s.toml: exclude = 3: expected a list of tables"),
    ],
)
def test_bad_exclude_is_one_error_naming_the_path(extra, message):
    with pytest.raises(SpecError) as e:
        _spec(extra + DIGITS)
    assert str(e.value).startswith(message)


def test_bad_rotation_names_the_path():
    with pytest.raises(SpecError, match=r"methods\.E\.rotation = 3: expected a whole number 0\.\.2"):
        _spec(ENSEMBLES.replace("rotation = [0, 1, 2]", "rotation = [0, 1, 2, 3]"))


def test_an_exclude_that_removes_everything_is_an_error():
    spec = _spec(SMALL, '[[exclude]]\nmodel = "small"\n')
    with pytest.raises(SpecError, match="removes every cell"):
        plan(spec)
