"""Every shipped spec's ``paper`` scale holds the papers' numbers (recipe, schedule parameters, bits, quantizer
placement, data, model), pinned against the table in ``support/paper_values.py`` with the sentence each comes from;
and ``--dry-run`` of a paper scale without its data says, one line per set, what to put where."""

from __future__ import annotations

import pytest
from support.paper_values import CHECKS, NO_PAPER_SCALE, NOT_FROM_A_PAPER, SPIRALS_PACT

from lowbit.cli import main
from lowbit.engine.plan import plan
from lowbit.engine.spec import load_spec
from lowbit.studies import study_listing, study_path

_PLANS: dict[str, list] = {}


def _jobs(study: str) -> list:
    if study not in _PLANS:
        _PLANS[study] = plan(load_spec(study_path(study), "paper"))
    return _PLANS[study]


def _get(job, path: str):
    if path.startswith("axes."):
        return job.axes.get(path[5:])
    cur = job.config
    parts = path.split(".")
    i = 0
    while i < len(parts):  # rule names hold dots and stars ("*qa?", "blocks.[1-9]*.qra"): match the longest key
        for j in range(len(parts), i, -1):
            key = ".".join(parts[i:j])
            if isinstance(cur, dict) and key in cur:
                cur, i = cur[key], j
                break
        else:
            return KeyError(path)
    return cur


def _matches(job, selector: dict) -> bool:
    for k, v in selector.items():
        if k == "kind":
            if job.kind != v:
                return False
        elif k == "schedule":
            if job.config["recipe"].get("train", {}).get("schedule") != v:
                return False
        elif job.axes.get(k) != v:
            return False
    return True


def _equal(got, want) -> bool:
    if isinstance(want, dict) and isinstance(got, dict):
        return set(got) == set(want) and all(w == "*" or _equal(got[k], w) for k, w in want.items())
    return got == want


def _check(study, selector, path, want, ref):
    jobs = [j for j in _jobs(study) if _matches(j, selector)]
    if path.startswith("recipe."):  # an ensemble trains nothing: no recipe to pin
        jobs = [j for j in jobs if j.kind != "ensemble"]
    assert jobs, f"{study}: no paper-scale job matches {selector} ({ref})"
    if path.startswith("axes."):  # a set of axis values over the selected jobs, in the spec's order
        got = sorted({_get(j, path) for j in jobs}, key=lambda v: (str(type(v)), v))
        want_sorted = sorted(want, key=lambda v: (str(type(v)), v))
        assert got == want_sorted, f"{study} {selector} {path}: {got} != {want} — {ref}"
        return
    for j in jobs:
        got = _get(j, path)
        assert _equal(got, want), f"{study} {j.label} {path}: {got!r} != {want!r} — {ref}"


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: f"{c[0]}:{c[2]}:{c[1]}")
def test_paper_scale_value(check):
    _check(*check)


@pytest.mark.parametrize("check", SPIRALS_PACT, ids=lambda c: f"{c[0]}:{c[2]}:{c[1]}")
def test_spirals_paper_scale_pact_and_device(check):
    _check(*check)


def test_every_shipped_spec_has_a_pinned_paper_scale():
    pinned = {c[0] for c in CHECKS}
    for name, _desc, scales in study_listing():
        if name in NO_PAPER_SCALE:
            assert "paper" not in scales, f"{name} now has a paper scale: pin it"
            continue
        if name in NOT_FROM_A_PAPER:  # no paper to pin; it still runs on a GPU unchanged
            devices = {j.config["recipe"].get("train", {}).get("device") for j in _jobs(name) if j.kind != "ensemble"}
            assert devices == {"auto"}, f"{name}: paper-scale devices {devices}"
            continue
        assert "paper" in scales and name in pinned, name


def test_the_pins_can_fail():
    """A wrong value in the table fails (the checks compare, they do not just run)."""
    with pytest.raises(AssertionError):
        _check("cnn_segmentation", {"method": "W4"}, "recipe.train.lr", 2e-3, "a wrong value")
    with pytest.raises(AssertionError):
        _check("classification", {"method": "INQ"}, "recipe.max_value", 2.0, "a wrong value")


@pytest.mark.slow  # counts each model's step on the meta device (VGG-16 at 224 px, Deep Speech over 800 frames)
@pytest.mark.parametrize(
    ("study", "needs"),
    [
        ("classification", ["'imagenet'"]),
        ("speech", ["'timit'"]),
        ("segmentation", ["'glas'"]),
        ("cnn_segmentation", ["'voc2012'", "backbone of model 'mnv2'"]),
    ],  # fmt: skip
)
def test_dry_run_without_the_data_says_what_to_put_where(study, needs, tmp_path, capsys):
    rc = main(["reproduce", study, "--scale", "paper", "--dry-run", "--data-root", str(tmp_path)])
    out = capsys.readouterr().out.splitlines()
    missing = [line for line in out if line.startswith("missing ")]
    assert rc == 1 and len(missing) == len(needs)
    for line, what in zip(missing, needs):
        assert what in line and str(tmp_path) in line and "put " in line
    assert any(line.startswith("device: ") and "'auto' resolves to" in line for line in out)
    assert any(line.startswith("memory: ") and "GiB per training step" in line for line in out)
    assert any(line.startswith("estimated GPU time: ") and "TFLOP/s" in line for line in out)
