"""The CNN studies' ``paper`` scale is the paper's recipe (Boo et al. §5.2), resolved from the shipped specs: every
float job trains 200 epochs of SGD 0.9 from lr 0.1 (÷10 at 100 and 150, L2 5e-4), every plain retraining 100 epochs
from 0.01 (÷10 at 50 and 80, no L2), on all of CIFAR-10 with crop + flip, on the GPU."""

from __future__ import annotations

import pytest

from lowbit.experiments.plan import plan
from lowbit.experiments.spec import load_spec
from lowbit.experiments.studies import study_path

CLASSIFICATION = ["cnn_width", "cnn_depth", "cnn_mobilenet", "cnn_blocks", "cnn_retrain"]


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_paper_scale_is_the_papers_recipe(name):
    jobs = plan(load_spec(study_path(name), "paper"))
    assert jobs
    for j in jobs:
        c, t = j.config, j.config["recipe"]["train"]
        assert c["task"] == "image_classification_crop_flip"
        assert (c["data"]["subset"], c["data"]["test_subset"]) == (0, 0)
        assert (t["device"], t["optimizer"], t["momentum"], t["batch_size"]) == ("cuda", "sgd", 0.9, 128)
        if j.kind == "float":
            assert (t["epochs"], t["lr"], t["milestones"], t["weight_decay"]) == (200, 0.1, [100, 150], 5e-4)
        elif t["schedule"] != "cyclical":  # plain retraining (CLR fine-tuning has its own cycle, spec §5.1)
            assert (t["epochs"], t["lr"], t["milestones"], t["weight_decay"]) == (100, 0.01, [50, 80], 0.0)
        else:
            assert (t["epochs"], t["lr"]) == (40, 1e-3)  # Table 4: 40 epochs between 1e-3 and 1e-5


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_crop_flip_scale_is_the_default_with_augmentation_only(name):
    """``--scale crop_flip`` (the recipe probe the README compares with the default, seed by seed) plans the same
    jobs as ``default`` except for the task, so each pair shares model, data, recipe, seed and parents' recipe."""

    def strip(config: dict) -> dict:
        return {k: v for k, v in config.items() if k not in ("task", "parents")}

    default = {j.label: j for j in plan(load_spec(study_path(name), "default"))}
    probe = {j.label: j for j in plan(load_spec(study_path(name), "crop_flip"))}
    assert set(probe) == set(default)
    for label, j in probe.items():
        d = default[label]
        assert (d.config["task"], j.config["task"]) == ("classification", "image_classification_crop_flip")
        assert strip(j.config) == strip(d.config), label
