"""Tabular data sets: the spirals of Boo et al. (spec §8, the main job's data) and scikit-learn's 8x8 digits."""

from __future__ import annotations

from typing import Literal

import torch
from torch.utils.data import TensorDataset

from ...arguments import Count, Fraction, Positive
from ...extras import require
from . import Data, register_dataset
from .sizes import F32, I64, DataSizes


def _take(train: TensorDataset, n: int, seed: int) -> TensorDataset:
    if not n or n >= len(train):
        return train
    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n]
    return TensorDataset(*(t[idx] for t in train.tensors))


def _spirals_sizes(a: dict) -> DataSizes:
    """20,000 training points (a subset is drawn from them) and a test grid of test_resolution² points."""
    points = 20_000 + a["test_resolution"] ** 2
    return DataSizes({"in_features": 2, "num_classes": 2}, 2 * F32, (), points * (2 * F32 + I64), ("test_resolution",))


@register_dataset(
    "spirals", gives="(N, 2) points", targets="class labels (2)", task="classification", sizes=_spirals_sizes
)
def spirals(
    noise: Literal["std", "literal"] = "std", subset: Count = 0, test_resolution: Positive = 201, seed: Count = 0
) -> Data:
    """Boo et al. two spirals (spec §8): 20,000 training samples (or a random ``subset``); the band-rule grid."""
    from .. import spirals as sp

    train = _take(sp.train_set(seed=seed, noise=noise), subset, seed)
    desc = f"spirals (r={sp.R}, noise {noise}, {len(train):,} training samples)"
    return Data(train, sp.test_set(test_resolution), {"in_features": 2, "num_classes": 2}, desc)


def _digits_sizes(a: dict) -> DataSizes:
    return DataSizes({"in_features": 64, "num_classes": 10}, 64 * F32, (), 1797 * (64 * F32 + I64), ())


@register_dataset(
    "digits", gives="(N, 64) vectors", targets="class labels (10)", task="classification", sizes=_digits_sizes
)
def digits(test_fraction: Fraction = 0.25, seed: Count = 0, subset: Count = 0) -> Data:
    """scikit-learn's bundled 8x8 digits (1,797 images), flattened to 64 features in [0, 1]."""
    load_digits = require("sklearn.datasets", "data set 'digits'").load_digits
    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16.0
    y = torch.tensor(d.target)
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_test = int(len(x) * test_fraction)
    train = _take(TensorDataset(x[idx[n_test:]], y[idx[n_test:]]), subset, seed)
    test = TensorDataset(x[idx[:n_test]], y[idx[:n_test]])
    return Data(train, test, {"in_features": 64, "num_classes": 10}, f"digits ({len(train):,} training images)")
