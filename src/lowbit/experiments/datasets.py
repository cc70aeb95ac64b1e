"""Data sets that ``lowbit run`` can name in a config: ``[data] name = "spirals"``.

A builder returns (train, test) map-style datasets of (input, label) pairs for classification.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import Dataset, TensorDataset

_DATASETS: dict[str, Callable[..., tuple[Dataset, Dataset]]] = {}


def register_dataset(name: str):
    def deco(fn):
        _DATASETS[name] = fn
        return fn

    return deco


def dataset_names() -> list[str]:
    return sorted(_DATASETS)


def build_dataset(name: str, **kwargs: Any) -> tuple[Dataset, Dataset]:
    if name not in _DATASETS:
        raise ValueError(f"unknown data set {name!r}; available: {', '.join(dataset_names())}")
    try:
        return _DATASETS[name](**kwargs)
    except TypeError as e:
        raise ValueError(f"data set {name!r}: {e}") from None


@register_dataset("spirals")
def spirals(noise: str = "std", subset: int = 0, test_resolution: int = 201, seed: int = 0):
    """Boo et al. two spirals (spec §8): 20,000 training samples; the band-rule test grid."""
    from ..data import spirals as sp

    train = sp.train_set(seed=seed, noise=noise)
    if subset:
        idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:subset]
        train = TensorDataset(*(t[idx] for t in train.tensors))
    return train, sp.test_set(test_resolution)


@register_dataset("digits")
def digits(test_fraction: float = 0.25, seed: int = 0):
    """scikit-learn's bundled 8x8 digits (1,797 images), flattened to 64 features in [0, 1]."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ValueError("data set 'digits' needs scikit-learn (pip install 'lowbit[audio]' brings it)") from None
    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16.0
    y = torch.tensor(d.target)
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_test = int(len(x) * test_fraction)
    return TensorDataset(x[idx[n_test:]], y[idx[n_test:]]), TensorDataset(x[idx[:n_test]], y[idx[:n_test]])
