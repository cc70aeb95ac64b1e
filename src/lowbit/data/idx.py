"""MNIST / Fashion-MNIST idx files (LeCun's format), plain or gzip-compressed.

An idx file is a big-endian header ``0x00 0x00 <type code> <ndim>``, then ``ndim`` uint32 sizes, then the
data in C order. Type codes: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64.
A folder holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``, each optionally with ``.gz``.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from ..fileio import atomic_write_bytes
from .transforms import ImageSet

_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"
)  # fmt: skip
MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
_STEMS = {"train": "train", "test": "t10k"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one idx file (``.gz`` decompressed by its magic bytes, whatever the name)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"idx file {str(path)!r} does not exist")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise ValueError(f"{str(path)!r} is not an idx file (magic bytes {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{str(path)!r}: truncated idx header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[raw[2]])
    need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != need:
        raise ValueError(f"{str(path)!r}: shape {shape} needs {need} data bytes, file has {len(raw) - header}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an idx file (gzip when the name ends with .gz); used by tests and tools."""
    codes = {np.dtype(v).newbyteorder("="): k for k, v in _DTYPES.items()}
    a = np.ascontiguousarray(array)
    if a.dtype not in codes:
        raise ValueError(f"write_idx: dtype {a.dtype} has no idx type code")
    head = bytes([0, 0, codes[a.dtype], a.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in a.shape)
    body = head + a.astype(a.dtype.newbyteorder(">")).tobytes()
    atomic_write_bytes(path, gzip.compress(body) if str(path).endswith(".gz") else body)


def _find(root: Path, name: str) -> Path:
    for cand in (root / name, root / f"{name}.gz"):
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"idx set: neither {name} nor {name}.gz in {str(root)!r}")


def load_idx_split(root: str | Path, split: str, classes: tuple[str, ...] = MNIST_CLASSES) -> ImageSet:
    """One split ("train" or "test") of an MNIST-format folder as uint8 (N, 1, 28, 28) images."""
    if split not in _STEMS:
        raise ValueError(f"idx split {split!r} is not accepted; expected one of {tuple(_STEMS)}")
    root = Path(root)
    x = read_idx(_find(root, f"{_STEMS[split]}-images-idx3-ubyte"))
    y = read_idx(_find(root, f"{_STEMS[split]}-labels-idx1-ubyte"))
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"idx set {str(root)!r} {split}: images {x.shape} and labels {y.shape} do not match")
    if x.dtype != np.uint8:
        raise ValueError(f"idx set {str(root)!r} {split}: images must be uint8, got {x.dtype}")
    if len(y) and (y.min() < 0 or y.max() >= len(classes)):
        raise ValueError(f"idx set {str(root)!r} {split}: labels outside 0..{len(classes) - 1}")
    return ImageSet(torch.from_numpy(x.copy()).unsqueeze(1), torch.from_numpy(y.astype(np.int64)), classes)


def fashion_mnist_root() -> Path:
    """Fashion-MNIST's folder: ``<shared data>/fashion-mnist`` if present, else Debian's system copy."""
    from .paths import shared_data_dir

    for cand in (shared_data_dir() / "fashion-mnist", FASHION_MNIST_SYSTEM_DIR):
        if cand.is_dir():
            return cand
    raise FileNotFoundError(
        "Fashion-MNIST not found in <LOWBIT_DATA>/fashion-mnist nor /usr/share/datasets/fashion-mnist; "
        "install it with `apt-get install -y dataset-fashion-mnist` or set LOWBIT_DATA"
    )


def load_fashion_mnist(split: str, root: str | Path | None = None) -> ImageSet:
    return load_idx_split(root or fashion_mnist_root(), split, FASHION_CLASSES)
