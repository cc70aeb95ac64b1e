"""`lowbit summary` handed a file of another format says what the file is (it said "corrupted or not a safetensors
file" for an ONNX model), and still reads lowbit's own model files."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from lowbit.cli import main
from lowbit.models import create_model
from lowbit.serialize import save_model

READS = "this command reads lowbit's model files: a packed .lowbit file"


def _error(capsys, path) -> str:
    assert main(["summary", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"lowbit summary: error: {str(path)!r} is "), err
    return err


def test_an_onnx_model_is_named(tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]))
    path = tmp_path / "model.bin"  # told apart by its bytes, not its name
    onnx.save(model, path)
    err = _error(capsys, path)
    assert "is an ONNX model (protobuf); " + READS in err and "corrupted" not in err
    (tmp_path / "m.onnx").write_bytes(b"\x00\x01garbage" * 10)
    assert "is an ONNX file (by its name; its bytes are not an ONNX model's)" in _error(capsys, tmp_path / "m.onnx")


def test_pytorch_files_are_named(tmp_path, capsys):
    net = torch.nn.Linear(2, 2)
    torch.save(net.state_dict(), tmp_path / "zip.pt")
    assert "is a PyTorch checkpoint, a zip archive written by torch; " in _error(capsys, tmp_path / "zip.pt")
    torch.save(net.state_dict(), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    assert "is a Python pickle (e.g. a PyTorch checkpoint in torch.save's legacy format)" in _error(
        capsys, tmp_path / "legacy.pt"
    )
    torch.jit.save(torch.jit.script(net), tmp_path / "script.pt")
    assert "is a TorchScript model (torch.jit.save), a zip archive" in _error(capsys, tmp_path / "script.pt")


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"\x89HDF\r\n\x1a\n" + bytes(100), "an HDF5 file (e.g. a Keras .h5 model)"),
        (b"", "an empty file (0 bytes)"),
        (b"name = 'not a model'\nwidth = 3\n", "a text file"),
        (b"GGUF" + bytes(60), "a GGUF model (llama.cpp)"),
    ],
)
def test_other_formats_are_named(tmp_path, capsys, data, what):
    (tmp_path / "f").write_bytes(data)
    assert f"is {what}; {READS}" in _error(capsys, tmp_path / "f")


def test_lowbits_own_files_still_load_and_other_safetensors_say_what_they_lack(tmp_path, capsys):
    save_model(tmp_path / "m.safetensors", create_model("fcdnn", in_features=2, width=4, depth=2), "fcdnn",
               in_features=2, width=4, depth=2)  # fmt: skip
    assert main(["summary", str(tmp_path / "m.safetensors")]) == 0 and "compression" in capsys.readouterr().out
    save_file({"w": torch.zeros(2)}, str(tmp_path / "hf.safetensors"))
    assert main(["summary", str(tmp_path / "hf.safetensors")]) == 2
    assert "safetensors file without lowbit metadata" in capsys.readouterr().err
    assert main(["summary", str(tmp_path)]) == 2 and "is a folder; expected a model file" in capsys.readouterr().err
