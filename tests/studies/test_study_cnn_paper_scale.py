"""The CNN studies' ``paper`` scale is the paper's recipe (Boo et al. §5.2), resolved from the shipped specs: every
float job trains 200 epochs of SGD 0.9 from lr 0.1 (÷10 at 100 and 150, L2 5e-4), every plain retraining 100 epochs
from 0.01 (÷10 at 50 and 80, no L2), on all of CIFAR-10 with crop + flip, on the GPU where there is one
(device "auto")."""

from __future__ import annotations

import pytest

from lowbit.engine.plan import plan
from lowbit.engine.spec import load_spec
from lowbit.studies import study_path

CLASSIFICATION = ["cnn_width", "cnn_depth", "cnn_mobilenet", "cnn_blocks", "cnn_retrain"]


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_paper_scale_is_the_papers_recipe(name):
    jobs = plan(load_spec(study_path(name), "paper"))
    assert jobs
    for j in jobs:
        c, t = j.config, j.config["recipe"]["train"]
        assert c["task"] == "image_classification_crop_flip"
        assert (c["data"]["subset"], c["data"]["test_subset"]) == (0, 0)
        assert (t["device"], t["optimizer"], t["momentum"], t["batch_size"]) == ("auto", "sgd", 0.9, 128)
        if j.kind == "float":
            assert (t["epochs"], t["lr"], t["milestones"], t["weight_decay"]) == (200, 0.1, [100, 150], 5e-4)
        elif t["schedule"] != "cyclical":  # plain retraining (CLR fine-tuning has its own cycle, spec §5.1)
            assert (t["epochs"], t["lr"], t["milestones"], t["weight_decay"]) == (100, 0.01, [50, 80], 0.0)
        else:
            assert (t["epochs"], t["lr"]) == (40, 1e-3)  # Table 4: 40 epochs between 1e-3 and 1e-5


def _strip(config: dict, *keys: str) -> dict:
    return {k: v for k, v in config.items() if k not in ("parents", *keys)}


def _schedule(config: dict) -> str:
    return config["recipe"]["train"]["schedule"]


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_crop_flip_scale_is_the_cosine_scale_with_augmentation_only(name):
    """``--scale crop_flip`` (the recipe probe the README compares, seed by seed, with the former default, now
    ``--scale cosine``) plans the same jobs as ``cosine`` except for the task, so each pair shares model, data,
    recipe, seed and parents' recipe."""
    cosine = {j.label: j for j in plan(load_spec(study_path(name), "cosine"))}
    probe = {j.label: j for j in plan(load_spec(study_path(name), "crop_flip"))}
    assert set(probe) == set(cosine)
    for label, j in probe.items():
        d = cosine[label]
        assert (d.config["task"], j.config["task"]) == ("classification", "image_classification_crop_flip")
        assert _strip(j.config, "task") == _strip(d.config, "task"), label


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_default_is_one_cycle_and_cosine_is_the_same_grid_with_cosine_only(name):
    """The ``default`` scale trains and retrains with one-cycle (measured the stronger schedule in ``cnn_recipe``);
    ``--scale cosine`` is the former default: the same jobs with cosine in its place, and CLR fine-tuning keeps its
    own cycle in both. ``seeds_cosine`` is ``cosine`` over three seeds, as ``seeds`` is ``default``."""
    default = {j.label: j for j in plan(load_spec(study_path(name), "default"))}
    cosine = {j.label: j for j in plan(load_spec(study_path(name), "cosine"))}
    assert set(default) == set(cosine)
    for label, j in default.items():
        c = cosine[label]
        expected = ("cyclical", "cyclical") if _schedule(j.config) == "cyclical" else ("onecycle", "cosine")
        assert (_schedule(j.config), _schedule(c.config)) == expected, label
        c.config["recipe"]["train"]["schedule"] = j.config["recipe"]["train"]["schedule"]
        assert _strip(c.config) == _strip(j.config), label
        assert j.id != c.id
    if name != "cnn_retrain":  # two seeds in its default already: no seeds scale
        seeds = plan(load_spec(study_path(name), "seeds"))
        seeds_cosine = plan(load_spec(study_path(name), "seeds_cosine"))
        assert {j.axes["seed"] for j in seeds} == {j.axes["seed"] for j in seeds_cosine} == {0, 1, 2}
        assert {j.id for j in seeds} >= set(j.id for j in default.values())
        assert {j.id for j in seeds_cosine} >= set(j.id for j in cosine.values())
