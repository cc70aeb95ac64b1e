"""Data sets a spec can name: ``[data] name = "digits"`` plus the builder's keyword arguments.

A builder returns ``Data(train, test, info, description)``: map-style datasets, ``info`` = the model arguments
the data determines (``in_features``, ``num_classes``, ``in_channels``, ``input_size``: a model that takes one
gets it from here), and a one-line description for figure captions. The built-in sets live in this package, one
module per family (``tabular``: spirals, digits; ``images``: idx / Fashion-MNIST, CIFAR, image folders;
``segmentation``: ISBI 2012, GlaS, segmentation folders; ``speech``: FSDD, TIMIT) and register themselves with
``register_dataset`` when ``DATASETS`` first looks a name up. A user's own set registers the same way from a
module a spec lists in ``plugins``, or is named directly with ``[data] target = "pkg.module:build"``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from torch.utils.data import Dataset

from ...registry import Registry


@dataclass
class Data:
    train: Dataset
    test: Dataset
    info: dict[str, Any] = field(default_factory=dict)
    description: str = ""


DATASETS: Registry[Callable[..., Data]] = Registry(
    "data set",
    modules=[f"lowbit.data.sets.{m}" for m in ("tabular", "images", "segmentation", "speech")],
    entry_points="lowbit.datasets",
)


def register_dataset(name: str):
    """Decorator for a builder ``fn(**kwargs) -> Data`` a spec names as ``[data] name = NAME``."""
    return DATASETS.register(name)


def dataset_names() -> list[str]:
    return DATASETS.names()


def dataset_builder(name: str) -> Callable[..., Data]:
    return DATASETS.get(name)


def build_dataset(name: str, **kwargs: Any) -> Data:
    fn = dataset_builder(name)
    try:
        return fn(**kwargs)
    except TypeError as e:
        raise ValueError(f"data set {name!r}: {e}") from None


@lru_cache(maxsize=4)
def _cached(key: str) -> Data:
    d = json.loads(key)
    return build_dataset(d.pop("name"), **d)


def load_data(cfg: dict) -> Data:
    """``build_dataset`` for a spec's [data] table, cached per process (workers run many jobs on one set)."""
    return _cached(json.dumps(cfg, sort_keys=True))


__all__ = ["DATASETS", "Data", "build_dataset", "dataset_builder", "dataset_names", "load_data", "register_dataset"]
