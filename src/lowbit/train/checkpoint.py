"""Checkpoints: safetensors + JSON metadata under one checksum, written atomically (``lowbit.fileio``).

Format version 2: the safetensors ``__metadata__`` holds ``format``, ``version``, ``meta`` (JSON text) and
``sha256``, a digest over the format, the version, the metadata text and every tensor (name, dtype, shape,
bytes). Any altered byte that changes what a reader would get (a tensor value, a shape, a metadata value such
as ``"bits": 2`` -> ``3``) fails the checksum and raises ``CheckpointError``; nothing loads silently.

Version 1 files (older lowbit) checksummed the tensors only, so their metadata cannot be trusted: they are
refused with an error that says so, rather than read without a check.

The file is read once, as bytes, and parsed from memory (no second open that could see a newer file).
Nothing a user hands in is unpickled: tensors come from safetensors, everything else from JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import time
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save
from safetensors.torch import save_file

from ..fileio import atomic_write

FORMAT = "lowbit-checkpoint"
VERSION = 2
_MAX_HEADER = 100_000_000


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupted, written by another lowbit version, or not a lowbit checkpoint."""


def _digest(tensors: dict[str, torch.Tensor], meta_text: str, version: str) -> str:
    h = hashlib.sha256()
    for part in (FORMAT, version, meta_text):
        b = part.encode()
        h.update(len(b).to_bytes(8, "little") + b)
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        head = f"{k}\0{t.dtype}\0{tuple(t.shape)}".encode()
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        h.update(len(head).to_bytes(8, "little") + head + len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


def _prepare(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta_text = json.dumps(meta, sort_keys=True)
    header = {
        "format": FORMAT,
        "version": str(VERSION),
        "meta": meta_text,
        "sha256": _digest(tensors, meta_text, str(VERSION)),
    }
    return tensors, header


def encode_checkpoint(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> bytes:
    """The bytes of a checkpoint holding ``tensors`` and JSON-able ``meta`` (what ``save_checkpoint`` writes)."""
    return _st_save(*_prepare(tensors, meta))


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write ``tensors`` and JSON-able ``meta`` to ``path`` atomically (complete or absent)."""
    tensors, header = _prepare(tensors, meta)
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=header))


def _header(blob: bytes, name: str) -> dict[str, Any]:
    if len(blob) < 8:
        raise CheckpointError(f"checkpoint {name} is corrupted or not a safetensors file: only {len(blob)} bytes")
    (n,) = struct.unpack_from("<Q", blob, 0)
    if n > min(len(blob) - 8, _MAX_HEADER):
        raise CheckpointError(
            f"checkpoint {name} is corrupted or not a safetensors file: its header length {n} runs past the end "
            f"of the {len(blob)}-byte file (truncated?)"
        )
    try:
        head = json.loads(blob[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        msg = f"checkpoint {name} is corrupted or not a safetensors file: its header is not JSON ({e})"
        raise CheckpointError(msg) from None
    meta = head.get("__metadata__") if isinstance(head, dict) else None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{name} is a safetensors file without lowbit metadata (not a lowbit checkpoint)")
    return meta


def parse_checkpoint(blob: bytes, path: str | Path = "<bytes>") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Check and decode a checkpoint's bytes; raise CheckpointError naming ``path`` and the problem."""
    name = repr(str(path))
    header = _header(blob, name)
    if header.get("format") != FORMAT:
        raise CheckpointError(
            f"{name} is a safetensors file but not a lowbit checkpoint "
            f"(format={header.get('format')!r}, expected {FORMAT!r})"
        )
    version = header.get("version")
    if version == "1":
        raise CheckpointError(
            f"checkpoint {name} was written by an older lowbit (checkpoint version 1, whose checksum does not cover "
            f"its metadata); this lowbit reads version {VERSION}: re-create it (re-run the training or save the "
            "model again)"
        )
    if version != str(VERSION):
        raise CheckpointError(f"checkpoint {name} has version {version!r}; this lowbit reads version {VERSION}")
    meta_text, digest = header.get("meta"), header.get("sha256")
    if not isinstance(meta_text, str) or not isinstance(digest, str):
        raise CheckpointError(f"checkpoint {name} is corrupted: its metadata or checksum field is missing")
    try:
        tensors = _st_load(bytes(blob))
    except (SafetensorError, ValueError, RuntimeError, TypeError, OverflowError, MemoryError) as e:
        raise CheckpointError(f"checkpoint {name} is corrupted or not a safetensors file: {e}") from None
    if digest != _digest(tensors, meta_text, version):
        raise CheckpointError(f"checkpoint {name} is corrupted: its checksum does not match its tensors and metadata")
    try:
        meta = json.loads(meta_text)
    except (ValueError, RecursionError) as e:  # only reachable for a file written with a forged checksum
        raise CheckpointError(f"checkpoint {name} has corrupted metadata: {e}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {name} has metadata of type {type(meta).__name__}, expected an object")
    return tensors, meta


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint; raise CheckpointError naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not exist (expected a .safetensors file written by lowbit)"
        )
    try:
        blob = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {e.strerror or e}") from None
    return parse_checkpoint(blob, path)


CHECKPOINT_SECONDS_ENV = "LOWBIT_CHECKPOINT_SECONDS"
DEFAULT_CHECKPOINT_SECONDS = 5.0


class CheckpointClock:
    """When a training loop writes its checkpoint (and the ``metrics.jsonl`` lines since the last one): after the
    last epoch always, otherwise at the end of an epoch once ``every`` seconds have passed since the last write
    (``$LOWBIT_CHECKPOINT_SECONDS``, default 5; 0 = after every epoch).

    Why: a small model's epoch can take a few milliseconds, and writing its checkpoint every epoch was most of the
    engine's overhead over a bare loop (benchmarks/engine_throughput.py). Which epochs are written changes nothing
    a job computes: the checkpoint holds the whole training state (weights, optimizer, RNG, history), so a resume
    from any of them ends bitwise where the uninterrupted run ends; a crash loses at most ``every`` seconds of work.
    """

    def __init__(self, every: float | None = None):
        if every is None:
            text = os.environ.get(CHECKPOINT_SECONDS_ENV, "")
            try:
                every = float(text) if text else DEFAULT_CHECKPOINT_SECONDS
            except ValueError:
                raise ValueError(
                    f"{CHECKPOINT_SECONDS_ENV}={text!r}: not a number; accepted: seconds >= 0 (0 = every epoch)"
                ) from None
        if not every >= 0:
            raise ValueError(f"checkpoint interval {every!r}: accepted: seconds >= 0 (0 = every epoch)")
        self.every = every
        self.last = time.monotonic()

    def due(self, last_epoch: bool) -> bool:
        """Whether to write now (and restart the clock if so)."""
        now = time.monotonic()
        if last_epoch or self.every == 0 or now - self.last >= self.every:
            self.last = now
            return True
        return False
