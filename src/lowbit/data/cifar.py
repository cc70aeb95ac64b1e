"""CIFAR-10 / CIFAR-100 in the original "python version" format (Krizhevsky 2009).

CIFAR-10: ``data_batch_1`` … ``data_batch_5`` and ``test_batch``, each a pickled dict with ``data`` (uint8
(N, 3072), the 1024 red, then green, then blue values of a 32x32 image in row order) and ``labels``;
``batches.meta`` has ``label_names``. CIFAR-100: ``train`` and ``test`` with ``fine_labels`` /
``coarse_labels``; ``meta`` has ``fine_label_names``.

Safety: a pickle can run arbitrary code when loaded. These files are read with a restricted unpickler that
resolves only the few globals a numpy array needs (``numpy.core.multiarray._reconstruct`` and ``scalar``,
``numpy.ndarray``, ``numpy.dtype``, ``numpy.core.numeric._frombuffer`` for protocol 5, and the codecs helper
numpy uses for byte strings); anything else raises ``pickle.UnpicklingError`` before it can run.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import torch

from .transforms import ImageSet

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"CIFAR file refers to {module}.{name}; only numpy arrays are allowed")


def safe_load_pickle(path: str | Path) -> dict:
    """Unpickle a CIFAR batch file without running code (see module doc); keys decoded to str."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR batch {str(path)!r} does not exist")
    obj = _SafeUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    if not isinstance(obj, dict):
        raise ValueError(f"{str(path)!r} is not a CIFAR batch (a pickled dict), got {type(obj).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _names(values) -> tuple[str, ...]:
    return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in values)


def _to_images(data, path: Path) -> torch.Tensor:
    a = np.asarray(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    if a.ndim != 2 or a.shape[1] != 3072:
        raise ValueError(f"{str(path)!r}: 'data' must be (N, 3072) uint8, got {a.shape}")
    return torch.from_numpy(a.astype(np.uint8).reshape(-1, 3, 32, 32).copy())


def load_cifar10(root: str | Path, split: str) -> ImageSet:
    """CIFAR-10 ``split`` ("train" = the 5 data batches, "test" = test_batch) as uint8 (N, 3, 32, 32)."""
    root = Path(root)
    files = {"train": CIFAR10_TRAIN, "test": ("test_batch",)}
    if split not in files:
        raise ValueError(f"CIFAR-10 split {split!r} is not accepted; expected 'train' or 'test'")
    meta = root / "batches.meta"
    classes = _names(safe_load_pickle(meta)["label_names"]) if meta.is_file() else tuple(str(i) for i in range(10))
    xs, ys = [], []
    for name in files[split]:
        d = safe_load_pickle(root / name)
        xs.append(_to_images(d["data"], root / name))
        ys.append(torch.as_tensor(np.asarray(d["labels"], dtype=np.int64)))
    return _checked(ImageSet(torch.cat(xs), torch.cat(ys), classes), root)


def load_cifar100(root: str | Path, split: str, label: str = "fine") -> ImageSet:
    """CIFAR-100 ``split`` ("train"/"test") with ``label`` "fine" (100 classes) or "coarse" (20)."""
    root = Path(root)
    if split not in ("train", "test"):
        raise ValueError(f"CIFAR-100 split {split!r} is not accepted; expected 'train' or 'test'")
    if label not in ("fine", "coarse"):
        raise ValueError(f"CIFAR-100 label {label!r} is not accepted; expected 'fine' or 'coarse'")
    d = safe_load_pickle(root / split)
    meta = root / "meta"
    n = 100 if label == "fine" else 20
    classes = (
        _names(safe_load_pickle(meta)[f"{label}_label_names"]) if meta.is_file() else tuple(str(i) for i in range(n))
    )
    y = torch.as_tensor(np.asarray(d[f"{label}_labels"], dtype=np.int64))
    return _checked(ImageSet(_to_images(d["data"], root / split), y, classes), root)


def _checked(s: ImageSet, root: Path) -> ImageSet:
    if len(s) and (int(s.labels.min()) < 0 or int(s.labels.max()) >= len(s.classes)):
        raise ValueError(f"CIFAR set {str(root)!r}: labels outside 0..{len(s.classes) - 1}")
    return s
