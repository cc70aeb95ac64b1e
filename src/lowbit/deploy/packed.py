"""The ``.lowbit`` packed model file: bit-packed integer codes, per-layer scales, float tensors, metadata.

Layout (little-endian):

    b"LOWBITPK"                      8 bytes, magic
    uint32 version, uint64 meta_len  12 bytes
    meta                             meta_len bytes of UTF-8 JSON (format version, model registry name +
                                     kwargs, quantizer per layer, frozen schemes, one record per tensor)
    payload                          the tensors back to back: codes packed at their bit width
                                     (ceil(n·b/8) bytes, ``packing.pack_bits``), everything else raw
    sha256                           32 bytes over everything before it

A reader error of any kind (truncation, flipped bytes, wrong version, a different model) raises
``PackedFormatError`` (a ValueError) naming what is wrong; nothing is unpickled.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..api import quantization_map
from ..fileio import atomic_write_bytes
from ..finite import require_finite
from .freeze import FrozenWeight, freeze, frozen_skeleton, is_frozen
from .packing import pack_bits, packed_nbytes, to_signed, to_unsigned, unpack_bits

MAGIC = b"LOWBITPK"
VERSION = 1
_HEAD = struct.Struct("<IQ")
_DIGEST = 32
DTYPES = {
    str(d): d
    for d in (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16)
    + (torch.int8, torch.uint8, torch.bool)
}


class PackedFormatError(ValueError):
    """A .lowbit file is truncated, corrupted, of another format version, or does not fit the model."""


def packed_codes(model: nn.Module) -> dict[str, dict[str, Any]]:
    """state_dict key of every code tensor -> its scheme description (bits, scheme, ...)."""
    out = {}
    for lname, m in model.named_modules():
        fw = getattr(m, "weight_quant", None)
        if isinstance(fw, FrozenWeight):
            for n, s in fw.schemes.items():
                if s["scheme"] != "float":
                    out[f"{lname}.weight_quant.codes_{n}" if lname else f"weight_quant.codes_{n}"] = s
    return out


def _raw_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().cpu().contiguous().reshape(-1)
    return t.view(torch.uint8).numpy().tobytes() if t.numel() else b""


def encode_state(model: nn.Module) -> tuple[list[dict[str, Any]], bytes]:
    """(tensor records, payload) of a frozen model's state_dict."""
    codes = packed_codes(model)
    records, chunks, offset = [], [], 0
    for key, t in model.state_dict().items():
        rec: dict[str, Any] = {"key": key, "shape": list(t.shape), "dtype": str(t.dtype)}
        if key in codes:
            s = codes[key]
            c = t.detach().cpu().reshape(-1).numpy().astype(np.int64)
            signed = s["scheme"] == "uniform"
            data = pack_bits(to_unsigned(c, s["bits"]) if signed else c, s["bits"])
            rec.update(kind="packed", bits=s["bits"], signed=signed)
        else:
            data = _raw_bytes(t)
            rec.update(kind="raw")
        rec.update(offset=offset, nbytes=len(data))
        records.append(rec)
        chunks.append(data)
        offset += len(data)
    return records, b"".join(chunks)


def save_packed(
    model: nn.Module, path: str | Path, model_name: str | None = None, model_kwargs: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` (frozen first, on a copy, if it is not yet) as a ``.lowbit`` file; returns the path.

    ``model_name``/``model_kwargs`` (the model registry entry) let ``load_packed(path)`` rebuild the model
    without being handed one. A NaN or inf in the model is a ValueError naming the layer (nothing is written).
    """
    require_finite(model, "save_packed")
    path = Path(path)
    atomic_write_bytes(path, packed_blob(model, model_name, model_kwargs))
    return path


def packed_blob(model: nn.Module, model_name: str | None = None, model_kwargs: dict[str, Any] | None = None) -> bytes:
    """The bytes of the ``.lowbit`` file ``save_packed`` writes (what ``summary`` measures, without writing)."""
    if not is_frozen(model):
        model = freeze(copy.deepcopy(model))
    qmap = quantization_map(model)
    frozen = {}
    for lname, e in qmap.items():
        if e["weight"] is not None and e["weight"]["name"] == "frozen":
            schemes = e["weight"]["schemes"]
            frozen[lname] = schemes
            e["weight"] = next(iter(schemes.values()))["source"]  # rebuild with the original quantizer
    records, payload = encode_state(model)
    meta = {
        "format": "lowbit-packed",
        "version": VERSION,
        "model": None if model_name is None else {"name": model_name, "kwargs": model_kwargs or {}},
        "quantization": qmap,
        "frozen": frozen,
        "tensors": records,
        "payload_bytes": len(payload),
    }
    mb = json.dumps(meta, sort_keys=True).encode()
    body = MAGIC + _HEAD.pack(VERSION, len(mb)) + mb + payload
    return body + hashlib.sha256(body).digest()


def _fail(path, msg: str) -> PackedFormatError:
    return PackedFormatError(f"{str(path)!r}: {msg}")


def parse_packed(blob: bytes, path: str | Path = "<bytes>") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Check and decode a .lowbit file's bytes into (state_dict tensors, metadata)."""
    fixed = len(MAGIC) + _HEAD.size
    if len(blob) < fixed + _DIGEST:
        raise _fail(path, f"truncated: {len(blob)} bytes is shorter than the {fixed + _DIGEST}-byte frame")
    if blob[: len(MAGIC)] != MAGIC:
        raise _fail(path, f"not a lowbit packed file (magic {blob[:8]!r}, expected {MAGIC!r})")
    version, meta_len = _HEAD.unpack_from(blob, len(MAGIC))
    if hashlib.sha256(blob[:-_DIGEST]).digest() != blob[-_DIGEST:]:
        raise _fail(path, "checksum mismatch: the file is truncated or corrupted")
    if version != VERSION:
        raise _fail(path, f"format version {version} is not supported; this lowbit reads version {VERSION}")
    if fixed + meta_len > len(blob) - _DIGEST:
        raise _fail(path, f"metadata length {meta_len} runs past the end of the file")
    try:
        meta = json.loads(blob[fixed : fixed + meta_len].decode())
        payload = blob[fixed + meta_len : -_DIGEST]
        if meta.get("version") != VERSION or meta.get("format") != "lowbit-packed":
            raise ValueError(f"metadata says format {meta.get('format')!r} version {meta.get('version')!r}")
        if meta["payload_bytes"] != len(payload):
            raise ValueError(f"payload is {len(payload)} bytes, metadata says {meta['payload_bytes']}")
        tensors = {r["key"]: _decode_record(r, payload) for r in meta["tensors"]}
    except PackedFormatError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, RuntimeError, OverflowError) as e:
        raise _fail(path, f"malformed metadata or tensor data: {e}") from None
    return tensors, meta


def _decode_record(r: dict[str, Any], payload: bytes) -> torch.Tensor:
    shape, dtype = [int(s) for s in r["shape"]], DTYPES.get(r["dtype"])
    if dtype is None or any(s < 0 for s in shape):
        raise ValueError(f"tensor {r['key']!r}: dtype {r['dtype']!r} / shape {shape} not accepted")
    n = math.prod(shape)  # exact (np.prod wraps around at 2**63)
    off, nb = int(r["offset"]), int(r["nbytes"])
    if off < 0 or off + nb > len(payload):
        raise ValueError(f"tensor {r['key']!r}: bytes [{off}, {off + nb}) lie outside the payload")
    data = payload[off : off + nb]
    if r["kind"] == "packed":
        bits = int(r["bits"])
        if nb != packed_nbytes(n, bits):
            raise ValueError(f"tensor {r['key']!r}: {nb} bytes for {n} codes of {bits} bits")
        c = unpack_bits(data, n, bits)
        c = to_signed(c, bits) if r["signed"] else c
        return torch.from_numpy(c).to(dtype).reshape(shape)
    if r["kind"] != "raw":
        raise ValueError(f"tensor {r['key']!r}: kind {r['kind']!r} is not 'packed' or 'raw'")
    size = torch.empty(0, dtype=dtype).element_size()
    if nb != n * size:
        raise ValueError(f"tensor {r['key']!r}: {nb} bytes for {n} elements of {dtype}")
    if n == 0:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).view(dtype).reshape(shape).clone()


def read_packed(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    try:
        blob = Path(path).read_bytes()
    except OSError as e:
        raise PackedFormatError(f"cannot read {str(path)!r}: {e.strerror or e}") from None
    return parse_packed(blob, path)


def load_packed(path: str | Path, model: nn.Module | None = None) -> nn.Module:
    """Rebuild a frozen model from a ``.lowbit`` file.

    ``model``: a model of the same architecture (float or quantized, not frozen) to load into; None
    rebuilds it from the model registry name the file records.
    """
    from ..models import create_model
    from ..models.size import check_saved_model
    from ..serialize import apply_quantization_map

    tensors, meta = read_packed(path)
    if model is None and isinstance(meta.get("model"), dict):  # sized on the meta device first: the file says how big
        check_saved_model(meta["model"].get("name"), meta["model"].get("kwargs", {}), repr(str(path)))
    try:
        if model is None:
            if not meta.get("model"):
                raise _fail(path, "the file names no registered model; pass model= to load_packed")
            model = create_model(meta["model"]["name"], **meta["model"].get("kwargs", {}))
        elif is_frozen(model):
            raise _fail(path, "load into an unfrozen model of the same architecture, not a frozen one")
        model = apply_quantization_map(model, meta["quantization"])
        for lname, schemes in meta["frozen"].items():
            frozen_skeleton(model.get_submodule(lname), schemes)
        model.load_state_dict(tensors, strict=True)
        _check_codes(model)
    except PackedFormatError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, RuntimeError, IndexError) as e:
        raise _fail(path, f"does not fit the model: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    return model.eval()


def _check_codes(model: nn.Module) -> None:
    for lname, m in model.named_modules():
        fw = getattr(m, "weight_quant", None)
        if not isinstance(fw, FrozenWeight):
            continue
        for n, s in fw.schemes.items():
            c = getattr(fw, f"codes_{n}")
            if list(c.shape) != list(s["shape"]):
                raise ValueError(f"{lname}.{n}: codes of shape {list(c.shape)}, expected {s['shape']}")
            book = getattr(fw, f"codebook_{n}", None)
            if s["scheme"] == "codebook" and book.dim() == 2 and book.shape[0] != (s["shape"] or [1])[0]:
                raise ValueError(f"{lname}.{n}: {book.shape[0]} row codebooks for {s['shape'][0]} rows")
            if s["scheme"] == "codebook" and c.numel() and int(c.max()) >= book.shape[-1]:
                raise ValueError(f"{lname}.{n}: code {int(c.max())} indexes past the codebook")
