"""`lowbit summary` and `lowbit export` on packed .lowbit files, and byte figures that match the file: the
summary's tensor bytes are the packed payload, its file bytes the file's size."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lowbit as lb
from lowbit.cli import main
from lowbit.deploy import read_packed, save_packed
from lowbit.serialize import save_model

KW = {"width": 16, "depth": 3}


def _model() -> nn.Module:
    torch.manual_seed(0)
    m = lb.models.create_model("fcdnn", **KW)
    cfg = lb.QuantConfig(
        weight=lb.quantizers.get("uniform", bits=2), act=lb.quantizers.get("pact", bits=2), keep_float=("first",)
    )
    lb.quantize_(m, cfg)
    m(torch.randn(16, 2))
    return m.eval()


def test_summary_bytes_are_the_packed_payload_and_the_file(tmp_path):
    m = _model()
    t = lb.summary(m, torch.randn(1, 2), model_name="fcdnn", model_kwargs=KW)
    path = save_packed(m, tmp_path / "m.lowbit", "fcdnn", KW)
    _, meta = read_packed(path)
    assert t.totals["model_bytes"] == meta["payload_bytes"]  # tensor bytes: exactly the file's payload
    assert t.totals["file_bytes"] == path.stat().st_size  # file bytes: exactly the file
    assert t.totals["file_compression_ratio"] == pytest.approx(t.totals["float32_bytes"] / path.stat().st_size)
    text = str(t)
    assert "tensors as stored" in text and f".lowbit file {path.stat().st_size} B" in text


def test_cli_summary_and_export_read_packed_files(tmp_path, capsys):
    m = _model()
    packed = save_packed(m, tmp_path / "m.lowbit", "fcdnn", KW)
    assert main(["summary", str(packed), "--input-shape", "1,2"]) == 0
    out = capsys.readouterr().out
    assert "W2/A2" in out and f".lowbit file {packed.stat().st_size} B" in out
    assert main(["summary", str(packed), "--json"]) == 0
    assert f'"file_bytes": {packed.stat().st_size}' in capsys.readouterr().out
    assert main(["export", str(packed), "--format", "packed", "--out", str(tmp_path / "again.lowbit")]) == 0
    x = torch.randn(7, 2)
    assert torch.equal(lb.deploy.load_packed(tmp_path / "again.lowbit")(x), m(x))
    # a safetensors model file still works, and its summary names the file `lowbit export` would write
    save_model(tmp_path / "m.safetensors", m, "fcdnn", **KW)
    capsys.readouterr()
    assert main(["summary", str(tmp_path / "m.safetensors")]) == 0
    assert f".lowbit file {packed.stat().st_size} B" in capsys.readouterr().out
    # a file that is neither: one line, exit 2
    (tmp_path / "junk.lowbit").write_bytes(b"LOWBITPK" + b"\0" * 10)
    assert main(["summary", str(tmp_path / "junk.lowbit")]) == 2
    assert "truncated" in capsys.readouterr().err


def test_cli_export_packed_file_to_onnx(tmp_path):
    pytest.importorskip("onnx", reason="the deploy extra")
    packed = save_packed(_model(), tmp_path / "m.lowbit", "fcdnn", KW)
    out = tmp_path / "m.onnx"
    assert main(["export", str(packed), "--format", "onnx", "--out", str(out), "--input-shape", "1,2"]) == 0
    assert out.stat().st_size > 0
