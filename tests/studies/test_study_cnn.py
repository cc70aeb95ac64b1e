"""The CNN study specs of Boo et al. (issue 13): every scale parses, plans, and builds its models; QA/QRA rules fit.

The end-to-end runs at the tiny scale take minutes on a shared CPU (CIFAR-10 decoding, ResNet training), so they
are run with ``lowbit sweep SPEC --scale tiny`` rather than here.
"""

from __future__ import annotations

import pytest
import torch

import lowbit as lb
from lowbit.engine.models import build_model
from lowbit.engine.plan import plan
from lowbit.engine.spec import load_spec
from lowbit.studies import study_names, study_path

CNN_STUDIES = ("cnn_width", "cnn_depth", "cnn_mobilenet", "cnn_blocks", "cnn_retrain")
CIFAR_INFO = {"num_classes": 10, "in_channels": 3, "input_size": 32}


def test_studies_are_listed():
    assert set(CNN_STUDIES) <= set(study_names())


@pytest.mark.parametrize("scale", ["tiny", "default", "paper"])
@pytest.mark.parametrize("name", CNN_STUDIES)
def test_spec_scales_parse_and_plan(name, scale):
    spec = load_spec(study_path(name), scale)
    jobs = plan(spec)
    assert {j.kind for j in jobs} == {"float", "qat"}
    devices = {j.config["recipe"]["train"].get("device", "cpu") for j in jobs}
    if scale == "paper":  # the paper's recipe on the full CIFAR-10, on a GPU
        assert devices == {"auto"} and spec.data.get("subset", 0) == 0 and spec.data.get("test_subset", 0) == 0
    else:
        assert devices == {"cpu"}


@pytest.mark.parametrize("name", CNN_STUDIES)
def test_tiny_jobs_quantize_their_models(name):
    """Every QAT job's QuantConfig fits its model (a rule that matches no layer raises) and gives every QA/QRA
    point an activation quantizer when the method quantizes activations."""
    for job in plan(load_spec(study_path(name), "tiny")):
        if job.kind != "qat":
            continue
        model, _ = build_model(job.config["model"], CIFAR_INFO)
        cfg = lb.QuantConfig.from_dict(job.config["recipe"]["quant"])
        lb.quantize_(model, cfg)
        points = [x for x in model.modules() if isinstance(x, lb.nn.QuantActPoint)]
        assert points and all((p.act_quant is not None) == bool(cfg.rules) for p in points), job.label
        assert all(x.act_quant is None for x in model.modules() if isinstance(x, lb.nn.QuantConv2d)), job.label
        with torch.no_grad():
            assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10), job.label
