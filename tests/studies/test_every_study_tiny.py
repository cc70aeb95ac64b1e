"""Every shipped study runs end to end at its ``tiny`` scale, and its report is rebuilt from the store alone in a
fresh process: the registry is iterated, so a study is tested the day its spec lands in ``lowbit/studies/``.

Studies with a dedicated end-to-end test (which also checks their numbers and figures) are covered there; this
test runs the others on small generated data in the real on-disk formats (CIFAR-10 JPEG tarball).
"""

from __future__ import annotations

import pytest
from support.app_studies import reproduce_and_rebuild, write_cifar_jpeg

from lowbit.engine.plan import plan
from lowbit.engine.spec import load_spec
from lowbit.studies import study_names, study_path

# studies whose end-to-end test lives elsewhere (tests/studies/test_study_*.py, test_study_cnn_segmentation.py)
COVERED = {
    "spirals",
    "classification",
    "segmentation",
    "speech",
    "speech_timit",
    "cnn_segmentation",
    "mixed_precision",
    "mixed_precision_fmnist",
    "suggestive_annotation",
}
OTHERS = [n for n in study_names() if n not in COVERED]


def _epochs(spec) -> int:
    """Training epochs over the whole plan (INQ: per portion), what a scale mostly changes."""
    total = 0
    for j in plan(spec):
        r = j.config["recipe"]
        per = r.get("train", {}).get("epochs", 0)
        total += per * (len(r.get("portions", [0, 1])) - 1 if j.kind == "inq" else 1)
    return total


@pytest.mark.parametrize("name", study_names())
def test_every_study_has_a_tiny_scale_cheaper_than_its_default(name):
    assert set(COVERED) <= set(study_names())  # every study has an end-to-end test here or in its own file
    tiny, default = load_spec(study_path(name), "tiny"), load_spec(study_path(name), "default")
    assert len(plan(tiny)) <= len(plan(default))
    assert _epochs(tiny) < _epochs(default), f"{name}: the tiny scale trains as much as the default"


@pytest.mark.slow
@pytest.mark.parametrize("name", OTHERS)
def test_tiny_end_to_end_and_report_from_the_store(name, tmp_path, monkeypatch):
    spec = load_spec(study_path(name), "tiny")
    if spec.data["name"] != "cifar10_jpeg":
        pytest.fail(f"study {name!r} reads {spec.data['name']!r}: give it generated data here or its own test")
    data = tmp_path / "data"
    data.mkdir()
    write_cifar_jpeg(data, classes=3, n_train=12, n_test=6)
    env = {"LOWBIT_DATA": str(data), "LOWBIT_CACHE": str(tmp_path / "cache")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    md, _ = reproduce_and_rebuild(name, tmp_path / "run", env)
    assert "scale tiny" in md and "| " in md  # at least one table from the stored rows
