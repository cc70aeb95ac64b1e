"""Edge cases of the core found in review: each of these failed (or misbehaved) before its fix."""

from __future__ import annotations

import pytest
import torch

import lowbit as lb
from lowbit.serialize import save_model


def _w4(**kw):
    return lb.QuantConfig(weight=lb.quantizers.get("uniform", bits=4), **kw)


def test_inq_refuses_layers_with_folded_batchnorm():
    m = lb.models.create_model("vgg_small5")
    lb.quantize_(m, _w4(fold_bn=True))
    with pytest.raises(ValueError, match="BatchNorm folded"):
        lb.INQ(m, bits=5)


def test_save_model_refuses_a_frozen_model(tmp_path):
    m = lb.models.create_model("fcdnn", width=8, depth=2)
    lb.quantize_(m, _w4())
    m(torch.randn(4, 2))
    lb.freeze(m)
    with pytest.raises(ValueError, match="frozen.*save_packed"):
        save_model(tmp_path / "m.safetensors", m, "fcdnn", width=8, depth=2)
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.parametrize("signed", [True, False])
def test_uniform_on_an_empty_tensor(signed):
    assert lb.quantizers.get("uniform", bits=2, signed=signed)(torch.empty(0)).shape == (0,)


def test_ttq_official_scales_survive_recalibration():
    q = lb.quantizers.get("ttq")
    w = torch.randn(16, 8)
    q.calibrate(w)
    with torch.no_grad():
        q.wp.fill_(0.07)
        q.wn.fill_(0.05)
    q.calibrate(w)
    assert q.wp.item() == pytest.approx(0.07) and q.wn.item() == pytest.approx(0.05)


def test_export_keeps_the_callers_mode_and_float_form_needs_a_float_model(tmp_path):
    pytest.importorskip("onnx")
    from lowbit.deploy import export_onnx

    m = lb.models.create_model("fcdnn", width=8, depth=2).train()
    export_onnx(m, tmp_path / "f.onnx", torch.randn(1, 2), form="float")
    assert m.training
    lb.quantize_(m, _w4())
    with pytest.raises(ValueError, match="form='float' needs a float model"):
        export_onnx(m, tmp_path / "q.onnx", torch.randn(1, 2), form="float")


def test_export_of_a_module_lowbit_has_no_writer_for_is_not_refused(tmp_path):
    """Anything PyTorch's exporter knows exports (the old hand-written writer refused this ResNet's ops)."""
    pytest.importorskip("onnx")
    from lowbit.deploy import export_onnx
    from lowbit.deploy.onnx_check import compare

    m = lb.models.create_model("resnet20", width_mult=0.25)
    act = {"act": lb.quantizers.get("pact", bits=4, alpha=2.0)}
    lb.quantize_(m, lb.QuantConfig(weight=lb.quantizers.get("uniform", bits=4), rules={"*qa?": act, "*qra": act}))
    m(torch.randn(2, 3, 32, 32))
    lb.freeze(m.eval())
    x = torch.randn(2, 3, 32, 32)
    assert compare(m, export_onnx(m, tmp_path / "r.onnx", x, form="qdq"), x).max_abs < 1e-4
