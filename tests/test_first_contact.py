"""Issue 9 item 3, first-contact defects: packed files in `summary`/`export`, comparable byte figures, the
catalogue's default bits, fcdnn's input size, `--version`, the quantizer figure, and mixed-precision rules that
inherit what they do not set."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lowbit as lb
from lowbit import tomlio
from lowbit.cli import main
from lowbit.deploy import read_packed, save_packed
from lowbit.quantizers.catalogue import REQUIRED, catalogue, default_bits, transfer
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


def test_catalogue_default_bits_exist_or_say_required():
    for row in catalogue():
        n = row["name"]
        if row["default_bits"] == REQUIRED:
            with pytest.raises(ValueError, match="bits"):
                lb.quantizers.get(n)
        else:
            assert lb.quantizers.get(n).bits == row["default_bits"]
            assert lb.QuantConfig.from_dict({"weight" if row["kind"] != "act" else "act": {"name": n}})


def test_quantizer_figure_shows_the_levels():
    """Each panel's grid reaches its quantizer's levels (PACT at the uncalibrated α = 10 showed only 0)."""
    for n in lb.quantizers.names():
        t = transfer(n)
        levels = lb.quantizers.get(n, bits=default_bits(n)).max_levels()
        assert t["y"].unique().numel() >= min(levels, 4), n
    assert transfer("pact")["kwargs"] == {"alpha": 1.5}


def test_fcdnn_input_size_mismatch_is_one_clear_error():
    m = lb.models.create_model("fcdnn", **KW)
    with pytest.raises(ValueError, match=r"input has 64 features .* in_features=2; build it with in_features=64"):
        m(torch.randn(3, 64))
    assert lb.models.create_model("fcdnn", in_features=64, **KW)(torch.randn(3, 64)).shape == (3, 2)
    torch.fx.symbolic_trace(m)  # the check does not break tracing (ONNX export traces the model)


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"lowbit {lb.__version__}"


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))


def test_layer_rule_keeps_the_default_for_what_it_does_not_set():
    u = lb.quantizers.get
    rules = {"2": lb.LayerRule(weight=u("uniform", bits=4))}
    cfg = lb.QuantConfig(weight=u("uniform", bits=2), act=u("pact", bits=2), rules=rules)
    m = lb.quantize_(_mlp(), cfg)
    q = lb.quantization_map(m)
    assert q["2"]["weight"]["bits"] == 4 and q["2"]["act"]["name"] == "pact"  # act inherited, not float
    assert q["4"]["weight"]["bits"] == 2 and q["4"]["act"]["name"] == "pact"
    # explicit None is float
    cfg = lb.QuantConfig(weight=u("uniform", bits=2), act=u("pact", bits=2), rules={"2": lb.LayerRule(act=None)})
    q = lb.quantization_map(lb.quantize_(_mlp(), cfg))
    assert q["2"]["act"] is None and q["2"]["weight"]["bits"] == 2  # weight inherited


def test_layer_rule_round_trips_inherit_and_float_through_toml():
    u = lb.quantizers.get
    cfg = lb.QuantConfig(
        weight=u("uniform", bits=2),
        act=u("pact", bits=2),
        rules={"2": lb.LayerRule(weight=u("uniform", bits=4)), "4": lb.LayerRule(act=None)},
    )
    d = cfg.to_dict()
    assert "act" not in d["rules"]["2"] and d["rules"]["4"] == {"act": "float"}
    back = lb.QuantConfig.from_dict(tomlio.tomllib.loads(tomlio.dumps(d)))
    assert back.to_dict() == d
    q = lb.quantization_map(lb.quantize_(_mlp(), back))
    assert q["2"]["act"]["name"] == "pact" and q["4"]["act"] is None
