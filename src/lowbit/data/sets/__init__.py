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

from torch.utils.data import Dataset, TensorDataset

from ...registry import Registry, resolve_target


@dataclass
class Data:
    """What a data-set builder returns: a registered one, or a user's own named in a spec as
    ``[data] target = "my_pkg.data:build"`` (called with the entry's other keys as keyword arguments).

    train, test: map-style datasets whose items the spec's task reads.
        classification tasks: ``(input tensor, class index)``, e.g. ``TensorDataset(x, y)`` with ``y`` int64 (N,);
        inputs (N, F) vectors, (N, C, H, W) images (flattened for a model that takes vectors when both sets are
        ``TensorDataset(x, y)``), or anything the model takes;
        ``segmentation``: train ``(image (C, h, w), mask (h, w) int64 in {0, 1})``, test a
        ``segmentation.SegmentationSet`` of whole images; ``ctc``: ``speech.Utterances``.
    info: the model arguments the data determines, filled into every model that takes them and the spec does
        not set: ``num_classes``, ``in_features`` (vectors), ``in_channels`` and ``input_size`` (images).
    description: one line for report captions.
    """

    train: Dataset
    test: Dataset
    info: dict[str, Any] = field(default_factory=dict)
    description: str = ""


DATASETS: Registry[Callable[..., Data]] = Registry(
    "data set",
    modules=[f"lowbit.data.sets.{m}" for m in ("tabular", "images", "segmentation", "speech")],
    entry_points="lowbit.datasets",
)


def register_dataset(name: str, **meta: Any):
    """Decorator for a builder ``fn(**kwargs) -> Data`` a spec names as ``[data] name = NAME``.

    meta: facts ``lowbit datasets`` shows: ``gives`` (the inputs: "(N, C, H, W) images", "(N, T, D) sequences",
    "(N, F) vectors"), ``targets`` ("class labels", "(N, H, W) masks", ...), ``task`` (the task that scores it)."""
    return DATASETS.register(name, **meta)


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
    if "target" in d:  # a user's builder "package.module:function" (imports its module: a spec naming code is code)
        target = d.pop("target")
        data = resolve_target(target, "data target")(**d)
        if not isinstance(data, Data):
            raise ValueError(f"data target {target!r} returned {type(data).__name__}; expected lowbit.data.sets.Data")
        return data
    return build_dataset(d.pop("name"), **d)


# The arguments of the built-in data sets that name files or folders to read (a test checks every registered data
# set's string arguments against it): a stored spec from someone else may point them anywhere (engine/report).
FILE_ARGS = ("root", "archive")


def named_files(cfg: dict) -> list[str]:
    """The files and folders a spec's [data] table names explicitly (empty: the data comes from $LOWBIT_DATA)."""
    return [f"{k} = {cfg[k]!r}" for k in FILE_ARGS if isinstance(cfg.get(k), str) and cfg[k]]


def load_data(cfg: dict) -> Data:
    """``build_dataset`` for a spec's [data] table (``name`` or ``target`` + arguments), cached per process
    (workers run many jobs on one set)."""
    return _cached(json.dumps(cfg, sort_keys=True))


def flatten_images(data: Data) -> Data:
    """Image classification data -> flat vectors for a model that takes them: items (C, H, W) -> (C*H*W,), and
    ``info`` says ``in_features`` instead of ``in_channels`` / ``input_size``. Vectors are returned as they are;
    anything else (sequences, segmentation masks, sets that are not tensors) cannot be flattened: one line."""
    sets = (data.train, data.test)
    if all(isinstance(s, TensorDataset) and s.tensors[0].dim() == 2 for s in sets):
        return data  # already vectors (spirals, digits, a set flattened by its own `flatten = true`)
    if not all(isinstance(s, TensorDataset) and len(s.tensors) == 2 and s.tensors[1].dim() == 1 for s in sets):
        x = data.train[0][0]
        shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise ValueError(
            f"data {data.description or '(unnamed)'!r} (items of shape {shape}) cannot be flattened for a model that "
            "takes vectors: only image classification sets (images + class labels) are flattened"
        )
    train, test = (TensorDataset(s.tensors[0].flatten(1), s.tensors[1]) for s in sets)
    info = {k: v for k, v in data.info.items() if k not in ("in_channels", "input_size")}
    info["in_features"] = train.tensors[0].shape[1]
    return Data(train, test, info, data.description)


__all__ = [
    "DATASETS",
    "Data",
    "build_dataset",
    "dataset_builder",
    "dataset_names",
    "flatten_images",
    "load_data",
    "register_dataset",
]
