"""Summary numbers by hand, ONNX export run by ONNX Runtime, and the summary/export CLI commands."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from test_deploy_pack import _inq_model, _spirals, small_cnn
from torch import nn

import lowbit as lb
from lowbit.cli import main
from lowbit.deploy import freeze, load_packed
from lowbit.deploy.onnx_export import export_onnx, run_onnx
from lowbit.models import create_model
from lowbit.serialize import save_model


def test_summary_hand_computed():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3), nn.BatchNorm1d(3))
    cfg = lb.QuantConfig(
        weight=lb.quantizers.get("uniform", bits=2),
        act=lb.quantizers.get("pact", bits=4),
        keep_float=("last",),
        quantize_input=True,
    )
    lb.quantize_(m, cfg).eval()
    t = lb.summary(m, torch.randn(5, 4))
    r0, r2, r3 = t.rows
    # layer 0: 32 weights x 2 bits = 8 B, step 4 B, 8 biases 32 B, PACT alpha 4 B
    assert (r0["params"], r0["weight_bits"], r0["act_bits"], r0["memory_bytes"]) == (40, 2, 4, 48)
    assert r0["macs"] == {"W2/A4": 32}
    assert (r2["params"], r2["weight_bits"], r2["memory_bytes"], r2["macs"]) == (27, 32, 108, {"W32/A32": 24})
    # BN: weight, bias, running mean/var (4 x 3 floats) + num_batches_tracked (int64)
    assert (r3["params"], r3["memory_bytes"]) == (6, 4 * 3 * 4 + 8)
    assert t.totals["model_bytes"] == 48 + 108 + 56
    assert t.totals["float32_bytes"] == 160 + 108 + 56
    assert t.totals["compression_ratio"] == pytest.approx(324 / 212)
    assert "compression" in str(t) and t.to_dict()["totals"]["macs"] == {"W2/A4": 32, "W32/A32": 24}


def test_summary_conv_macs():
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, stride=2), nn.Conv2d(4, 4, 3, groups=4), nn.Flatten())
    t = lb.summary(m, torch.randn(2, 3, 8, 8))
    # conv 1: 4x4x4 outputs x 3·9 MACs; depthwise: 4x2x2 outputs x 1·9 MACs
    assert [r["macs"] for r in t.rows[:2]] == [{"W32/A32": 64 * 27}, {"W32/A32": 16 * 9}]
    assert t.totals["compression_ratio"] == 1.0


@pytest.mark.parametrize("make,shape", [(_spirals, (16, 2)), (_inq_model, (16, 2)), (small_cnn, (4, 3, 6, 6))])
def test_onnx_matches_pytorch(tmp_path, make, shape):
    m = make()
    x = torch.randn(shape)
    with torch.no_grad():
        y0 = m(x).numpy()
    f = freeze(copy.deepcopy(m))
    y, ops = run_onnx(export_onnx(f, tmp_path / "m.onnx", x, form="qdq"), x.numpy(), profile=True)
    # ONNX rounds activation ties to even, PACT half up: a tie moves one output by <= one step; random
    # inputs hit no exact tie, so the float difference is accumulation order only
    np.testing.assert_allclose(y, y0, rtol=1e-4, atol=1e-4)
    if make is not _inq_model:
        assert "QuantizeLinear" in ops and "DequantizeLinear" in ops


def test_onnx_int8_uses_integer_kernels(tmp_path):
    torch.manual_seed(5)
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 4))
    cfg = lb.QuantConfig(
        weight=lb.quantizers.get("uniform", bits=8),
        act=lb.quantizers.get("pact", bits=8, alpha=3.0),
        quantize_input=True,
    )
    lb.quantize_(m, cfg).eval()
    x = torch.randn(3, 3, 6, 6)
    with torch.no_grad():
        y0 = m(x).numpy()
    freeze(m)
    y, ops = run_onnx(export_onnx(m, tmp_path / "i8.onnx", x, integer=True), x.numpy(), profile=True)
    assert {"ConvInteger", "MatMulInteger"} <= set(ops)
    np.testing.assert_allclose(y, y0, rtol=1e-4, atol=1e-4)


def test_cli_summary_and_export(tmp_path, capsys):
    m = _spirals()
    m(torch.randn(8, 2))
    ck = tmp_path / "model.safetensors"
    save_model(ck, m, "fcdnn", width=32, depth=3)
    assert main(["summary", str(ck), "--input-shape", "1,2"]) == 0
    out = capsys.readouterr().out
    assert "W2/A2" in out and "compression" in out
    assert main(["export", str(ck), "--format", "packed", "--out", str(tmp_path / "m.lowbit")]) == 0
    g = load_packed(tmp_path / "m.lowbit")
    x = torch.randn(10, 2)
    with torch.no_grad():
        assert torch.equal(g(x), m.eval()(x))
    assert main(["export", str(ck), "--format", "onnx", "--out", str(tmp_path / "m.onnx"), "--input-shape", "1,2"]) == 0
    assert (tmp_path / "m.onnx").stat().st_size > 0
    assert main(["summary", str(tmp_path / "nope.safetensors")]) == 2
    assert main(["export", str(ck), "--format", "onnx", "--out", str(tmp_path / "x.onnx")]) == 2
    assert main(["summary", str(ck), "--input-shape", "a,b"]) == 2
    assert create_model("fcdnn", width=32, depth=3) is not None


def _w4(**kw):
    return lb.QuantConfig(weight=lb.quantizers.get("uniform", bits=4), **kw)


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
