"""What kind of file a model file is, from its first bytes: so a command handed the wrong kind says which kind
it got ("an ONNX model") instead of calling it corrupted.

lowbit reads two model formats: its packed ``.lowbit`` files (magic ``LOWBITPK``, ``deploy/packed.py``) and
safetensors model files with lowbit's metadata (``serialize.save_model``; a safetensors file starts with the
8-byte little-endian length of its JSON header, then ``{``). ``foreign_format`` names the common others.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

# protobuf field tags that follow ``ir_version`` (field 1) in an ONNX ModelProto: producer_name, producer_version,
# domain, model_version, doc_string, graph, opset_import (onnx.proto)
_ONNX_NEXT = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42}
_SIGNATURES = [
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file (e.g. a Keras .h5 model)"),
    (b"GGUF", "a GGUF model (llama.cpp)"),
    (b"\x93NUMPY", "a NumPy array file (.npy)"),
    (b"\x1f\x8b", "a gzip-compressed file"),
]


def foreign_format(path: str | Path) -> str | None:
    """A phrase naming the format of ``path`` when it is a model (or other) file lowbit does not read — "an ONNX
    model (protobuf)", "a PyTorch checkpoint (torch.save)", ... — else None (lowbit's own formats, or unknown)."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        return "an empty file (0 bytes)"
    if _is_safetensors(head, path.stat().st_size) or head.startswith(b"LOWBITPK"):
        return None
    if len(head) >= 3 and head[0] == 0x08 and 0 < head[1] < 0x20 and head[2] in _ONNX_NEXT:
        return "an ONNX model (protobuf)"
    if path.suffix.lower() == ".onnx":
        return "an ONNX file (by its name; its bytes are not an ONNX model's)"
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(path)
    if head[0] == 0x80 and 2 <= head[1] <= 5:
        return "a Python pickle (e.g. a PyTorch checkpoint in torch.save's legacy format)"
    if head[4:8] == b"TFL3":
        return "a TensorFlow Lite model"
    for magic, what in _SIGNATURES:
        if head.startswith(magic):
            return what
    text = head.decode("utf-8", errors="ignore")  # (a character cut at byte 64 is dropped)
    if len(text.encode()) >= len(head) - 3 and all(c.isprintable() or c in "\n\r\t" for c in text):
        return "a text file"
    return None


def _is_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    (n,) = struct.unpack_from("<Q", head, 0)
    return 0 < n <= size - 8 and head[8:9] == b"{"


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return "a ZIP archive (damaged)"
    if any(n.endswith("data.pkl") for n in names):  # torch.save's zip format: <name>/data.pkl + tensor records
        kind = "a TorchScript model (torch.jit.save)" if any("/code/" in n for n in names) else "a PyTorch checkpoint"
        return f"{kind}, a zip archive written by torch"
    return "a ZIP archive"
