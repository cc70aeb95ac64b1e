"""The segmentation study of Boo et al. (issue 13 item 3): MobileNetV2 segmentation on ISBI 2012, W4 / A4 / W4A4 with
plain retraining, CLR fine-tuning and L_Lip; the model, the spec at every scale, the Fig. 5 extra, tiny end to end."""

from __future__ import annotations

import pytest
import torch

import lowbit as lb
from lowbit.data.paths import shared_data_dir
from lowbit.engine.models import build_model
from lowbit.engine.plan import plan
from lowbit.engine.spec import load_spec
from lowbit.models import create_model
from lowbit.models.blocks import DepthwiseBlock
from lowbit.studies import study_names, study_path
from lowbit.studies.segmentation_masks import image_dice

ISBI_INFO = {"in_channels": 1}
PRECISIONS = ("W4", "A4", "W4A4")


def test_model_shapes_points_and_float_ends():
    torch.manual_seed(0)
    m = create_model("mobilenetv2_seg", width_mult=0.25, stages=5, decoder_channels=16)
    for shape in ((2, 1, 64, 64), (1, 1, 40, 56)):
        assert m.eval()(torch.randn(shape)).shape == (shape[0], 2, *shape[2:])
    blocks = [b for b in m.blocks if isinstance(b, DepthwiseBlock)]
    assert len(blocks) == 1 + 2 + 3 + 4 + 3  # bottleneck rows 1-5 of MobileNetV2
    assert [b.qra.signed for b in blocks] == [False] + [True] * (len(blocks) - 1)  # after the stem: a ReLU
    assert m.qra.signed and m.low_qra.signed and not (m.qa1.signed or m.qa2.signed or m.qa3.signed)
    # output stride 16: the deep stream of a 64x64 tile is 4x4, the low-level one (end of the 24-ch stage) 16x16
    feats = {}
    m.reduce.register_forward_hook(lambda mod, i, o: feats.update(deep=o.shape))
    m.low.register_forward_hook(lambda mod, i, o: feats.update(low=o.shape))
    m(torch.randn(1, 1, 64, 64))
    assert feats["deep"][-2:] == (4, 4) and feats["low"][-2:] == (16, 16)
    m0 = create_model("mobilenetv2_seg", width_mult=0.25, stages=5, decoder_channels=16, low_level_stage=0)
    m0.low.register_forward_hook(lambda mod, i, o: feats.update(low0=o.shape))
    assert m0(torch.randn(1, 1, 64, 64)).shape == (1, 2, 64, 64) and feats["low0"][-2:] == (32, 32)
    names = [n for n, _ in lb.api.quantizable_layers(m)]
    assert names[0] == "stem.0" and names[-1] == "classifier"
    with pytest.raises(ValueError, match="output_stride=12"):
        create_model("mobilenetv2_seg", output_stride=12)


def test_study_is_listed():
    assert "cnn_segmentation" in study_names()


def test_paper_scale_is_tables_2_and_3_on_voc():
    """The paper scale (values pinned in tests/studies/test_studies_paper_scales.py): float, Table 2's W4 / A4 rows
    and Table 3's W/A grid at 8/6/4/3 bits, one run per cell, on the device "auto"."""
    jobs = plan(load_spec(study_path("cnn_segmentation"), "paper"))
    assert len(jobs) == 1 + 6 + 3 * 4
    assert {j.config["recipe"]["train"]["device"] for j in jobs} == {"auto"}
    wa = {(j.axes["method"], j.axes["bits"]) for j in jobs if j.axes["method"].startswith("WA")}
    assert wa == {(m, b) for m in ("WA", "WA+Lip", "WA+Lip+CLR") for b in (8, 6, 4, 3)}


@pytest.mark.parametrize("scale", ["tiny", "default"])
def test_spec_scales_parse_and_plan(scale):
    spec = load_spec(study_path("cnn_segmentation"), scale)
    jobs = plan(spec)
    assert len(jobs) == 11 * len(spec.grid["seed"])
    assert {j.kind for j in jobs} == {"float", "qat"}
    devices = {j.config["recipe"]["train"].get("device", "cpu") for j in jobs}
    assert devices == {"cpu"}
    by_method = {j.axes["method"]: j for j in jobs if j.axes["seed"] == spec.grid["seed"][0]}
    parent = {j.id: j.axes["method"] for j in jobs}
    for p in PRECISIONS:
        clr, lip = by_method[f"{p}+CLR"].config["recipe"]["train"], by_method[f"{p}+Lip"].config["recipe"]["train"]
        assert clr["schedule"] == "cyclical" and clr["lipschitz"] == 0 and lip["lipschitz"] == 1e-4
        assert lip["schedule"] != "cyclical" and by_method[p].config["recipe"]["train"]["lipschitz"] == 0
        assert parent[by_method[f"{p}+CLR"].parents[0]] == p  # CLR fine-tunes the plain retrained model
        assert parent[by_method[f"{p}+Lip"].parents[0]] == "float"
    last = by_method["W4A4+Lip+CLR"]
    assert parent[last.parents[0]] == "W4A4+Lip" and last.config["recipe"]["train"]["schedule"] == "cyclical"


def test_quant_configs_fit_the_model():
    """W4: every conv but the stem and classifier quantized, no activation quantizer; A4: every QA/QRA point
    quantized, PACT where the stream is post-ReLU and a signed quantizer on the linear-bottleneck streams."""
    jobs = {j.axes["method"]: j for j in plan(load_spec(study_path("cnn_segmentation"), "tiny"))}
    for method in PRECISIONS:
        model, _ = build_model(jobs[method].config["model"], ISBI_INFO)
        lb.quantize_(model, lb.QuantConfig.from_dict(jobs[method].config["recipe"]["quant"]))
        convs = {n: x for n, x in model.named_modules() if isinstance(x, lb.nn.QuantConv2d)}
        points = [x for x in model.modules() if isinstance(x, lb.nn.QuantActPoint)]
        assert "stem.0" not in convs and "classifier" not in convs
        assert all((c.weight_quant is not None) == ("W" in method) and c.act_quant is None for c in convs.values())
        assert len(points) == sum(isinstance(x, lb.nn.ActPoint) for x in model.modules())
        for p in points:
            if "A" not in method:
                assert p.act_quant is None
            else:
                assert p.act_quant.bits == 4
                assert type(p.act_quant).__name__ == ("UniformQuantizer" if p.signed else "PACTQuantizer")
        with torch.no_grad():
            assert model.eval()(torch.rand(2, 1, 32, 32)).shape == (2, 2, 32, 32)


def test_image_dice_by_hand():
    pred = torch.tensor([[1, 1, 0], [0, 0, 0]], dtype=torch.bool)
    truth = torch.tensor([[1, 0, 0], [1, 0, 0]], dtype=torch.bool)
    assert image_dice(pred, truth) == pytest.approx(200 * 1 / 4)
    assert image_dice(torch.zeros(2, 2, dtype=torch.bool), torch.zeros(2, 2, dtype=torch.bool)) == 100.0


@pytest.mark.slow
def test_tiny_end_to_end(tmp_path):
    if not (shared_data_dir() / "isbi2012-em").is_dir():
        pytest.skip(f"the real ISBI 2012 set is not at {shared_data_dir() / 'isbi2012-em'}")
    from PIL import Image

    from lowbit.engine.report import RunResults
    from lowbit.engine.run import sweep

    out = tmp_path / "run"
    report = sweep(load_spec(study_path("cnn_segmentation"), "tiny"), out, workers=1, progress=False)
    res = RunResults(out)
    assert len(res.jobs) == 11
    for j in res.jobs.values():
        assert 0 <= j.metrics["score"] <= 100 and 0 <= j.metrics["dice"] <= 100
        if j.axes["method"] != "float":
            assert j.metrics["score_before"] is not None
    text = report.read_text()
    assert "Tables 2-3" in text and "76.97" in text and "W4A4+Lip+CLR" in text
    assert "bits float, W4, A4, W4A4;" in text  # captions read activation bits from the per-point rules too
    fig = out / "figures" / "segmentation_masks.png"
    assert "figures/segmentation_masks.png" in text
    with Image.open(fig) as im:  # 2 test images x (input, truth, float, W4, A4)
        w, h = im.size
        assert w > 2 * h
