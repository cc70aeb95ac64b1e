"""Checkpoints: safetensors + JSON metadata, a checksum, written atomically (temp file + rename).

Nothing a user hands in is unpickled: tensors come from safetensors, everything else from JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

FORMAT = "lowbit-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupted, or not a lowbit checkpoint."""


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(k.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def atomic_write_bytes(path: str | Path, write) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: readers see the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    def write(tmp):
        Path(tmp).write_text(text)

    atomic_write_bytes(path, write)


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write ``tensors`` and JSON-able ``meta`` to ``path`` atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    header = {
        "format": FORMAT,
        "version": str(VERSION),
        "sha256": _digest(tensors),
        "meta": json.dumps(meta, sort_keys=True),
    }
    atomic_write_bytes(path, lambda tmp: save_file(tensors, tmp, metadata=header))


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint; raise CheckpointError naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not exist (expected a .safetensors file written by lowbit)"
        )
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupted or not a safetensors file: {e}") from None
    if header.get("format") != FORMAT:
        raise CheckpointError(
            f"{str(path)!r} is a safetensors file but not a lowbit checkpoint "
            f"(format={header.get('format')!r}, expected {FORMAT!r})"
        )
    if header.get("version") != str(VERSION):
        raise CheckpointError(
            f"checkpoint {str(path)!r} has version {header.get('version')!r}; this lowbit reads version {VERSION}"
        )
    if header.get("sha256") != _digest(tensors):
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupted: its checksum does not match its tensors")
    try:
        meta = json.loads(header.get("meta", "{}"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"checkpoint {str(path)!r} has corrupted metadata: {e}") from None
    return tensors, meta
