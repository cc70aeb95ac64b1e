"""Data sets a spec can name: ``[data] name = "digits"`` plus the builder's keyword arguments.

A builder returns ``Data(train, test, info, description)``: map-style datasets, ``info`` = the model arguments
the data determines (``in_features``, ``num_classes``, ``in_channels``, ``input_size``: a model that takes one
gets it from here, see ``models.py``), and a one-line description for figure captions. Image sets are
normalised with the training set's channel statistics; ``flatten = true`` gives vectors for FCDNNs.
Segmentation and speech sets register here too, with the task that reads them (``tasks.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch
from torch.utils.data import Dataset, TensorDataset

from ..extras import require

_DATASETS: dict[str, Callable[..., Data]] = {}
# Modules that register more data sets when imported (loaded on first lookup, in every worker process too).
BUILTIN_DATASET_MODULES: list[str] = []


def _load_builtin() -> None:
    import importlib

    for mod in BUILTIN_DATASET_MODULES:
        importlib.import_module(mod)


@dataclass
class Data:
    train: Dataset
    test: Dataset
    info: dict[str, Any] = field(default_factory=dict)
    description: str = ""


def register_dataset(name: str):
    def deco(fn: Callable[..., Data]):
        if name in _DATASETS and _DATASETS[name] is not fn:
            raise ValueError(f"data set {name!r} is already registered")
        _DATASETS[name] = fn
        return fn

    return deco


def dataset_names() -> list[str]:
    _load_builtin()
    return sorted(_DATASETS)


def dataset_builder(name: str) -> Callable[..., Data]:
    _load_builtin()
    if name not in _DATASETS:
        raise ValueError(f"unknown data set {name!r}; available: {', '.join(dataset_names())}")
    return _DATASETS[name]


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


def _take(train: TensorDataset, n: int, seed: int) -> TensorDataset:
    if not n or n >= len(train):
        return train
    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n]
    return TensorDataset(*(t[idx] for t in train.tensors))


@register_dataset("spirals")
def spirals(noise: str = "std", subset: int = 0, test_resolution: int = 201, seed: int = 0) -> Data:
    """Boo et al. two spirals (spec §8): 20,000 training samples (or a random ``subset``); the band-rule grid."""
    from ..data import spirals as sp

    train = _take(sp.train_set(seed=seed, noise=noise), subset, seed)
    desc = f"spirals (r={sp.R}, noise {noise}, {len(train):,} training samples)"
    return Data(train, sp.test_set(test_resolution), {"in_features": 2, "num_classes": 2}, desc)


@register_dataset("digits")
def digits(test_fraction: float = 0.25, seed: int = 0, subset: int = 0) -> Data:
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


def _images(
    name: str, train, test, subset: int, test_subset: int, flatten: bool, seed: int, validation: int = 0
) -> Data:
    """ImageSets -> normalised TensorDatasets (train statistics), optional stratified subsets and flattening.

    ``validation`` > 0 holds that many stratified training images out (never trained on) and evaluates on them
    instead of the test set, which is then not read at all (model selection without touching the test set)."""
    from ..data import transforms as T

    if validation:
        train, test = T.holdout(train, validation, seed)
        name = f"{name}, validation: {validation:,} held-out training images"
    train, test = T.subset(train, subset, seed), T.subset(test, test_subset, seed)
    mean, std = T.channel_stats(train.images)
    tr, te = T.to_tensor_dataset(train, mean, std), T.to_tensor_dataset(test, mean, std)
    _, c, h, w = train.images.shape
    info = {"num_classes": len(train.classes), "in_channels": c, "input_size": h}
    if flatten:
        tr = TensorDataset(tr.tensors[0].flatten(1), tr.tensors[1])
        te = TensorDataset(te.tensors[0].flatten(1), te.tensors[1])
        info = {"num_classes": len(train.classes), "in_features": c * h * w}
    return Data(tr, te, info, f"{name} ({len(train):,} training images {c}x{h}x{w})")


@register_dataset("fashion_mnist")
def fashion_mnist(
    root: str = "", subset: int = 0, test_subset: int = 0, flatten: bool = False, seed: int = 0, validation: int = 0
):
    """Fashion-MNIST in idx format (``root`` or the shared/system copy)."""
    from ..data.idx import load_fashion_mnist

    r = root or None
    tr, te = load_fashion_mnist("train", r), load_fashion_mnist("test", r)
    return _images("Fashion-MNIST", tr, te, subset, test_subset, flatten, seed, validation)


@register_dataset("idx")
def idx(root: str, subset: int = 0, test_subset: int = 0, flatten: bool = False, seed: int = 0, validation: int = 0):
    """Any MNIST-format idx folder (``train-images-idx3-ubyte`` ...; ``.gz`` accepted)."""
    from ..data.idx import load_idx_split

    tr, te = load_idx_split(root, "train"), load_idx_split(root, "test")
    return _images(f"idx {root}", tr, te, subset, test_subset, flatten, seed, validation)


@register_dataset("cifar10")
def cifar10(root: str, subset: int = 0, test_subset: int = 0, flatten: bool = False, seed: int = 0, validation=0):
    """CIFAR-10 in the original python format (read with a restricted unpickler)."""
    from ..data.cifar import load_cifar10

    tr, te = load_cifar10(root, "train"), load_cifar10(root, "test")
    return _images("CIFAR-10", tr, te, subset, test_subset, flatten, seed, validation)


@register_dataset("cifar100")
def cifar100(
    root: str, label: str = "fine", subset: int = 0, test_subset: int = 0, flatten: bool = False, seed=0, validation=0
):
    """CIFAR-100 in the original python format (``label`` = "fine" | "coarse")."""
    from ..data.cifar import load_cifar100

    tr, te = load_cifar100(root, "train", label), load_cifar100(root, "test", label)
    return _images("CIFAR-100", tr, te, subset, test_subset, flatten, seed, validation)


@register_dataset("cifar10_jpeg")
def cifar10_jpeg(
    archive: str = "", subset: int = 0, test_subset: int = 0, flatten: bool = False, seed: int = 0, validation: int = 0
):
    """The real CIFAR-10 as JPEG folders (the shared archive, extracted and decoded once into the cache)."""
    from ..data.folders import load_cifar10_jpeg

    a = archive or None
    tr, te = load_cifar10_jpeg("train", a), load_cifar10_jpeg("test", a)
    return _images("CIFAR-10 (JPEG)", tr, te, subset, test_subset, flatten, seed, validation)


@register_dataset("image_folder")
def image_folder(
    root: str,
    size: int = 0,
    channels: int = 3,
    subset: int = 0,
    test_subset: int = 0,
    flatten: bool = False,
    seed=0,
    validation: int = 0,
):
    """Images in ``root/{train,test}/<class>/*.jpg|png`` (resized to ``size`` when given)."""
    from ..data.folders import load_image_folder

    tr = load_image_folder(root, "train", size or None, channels)
    te = load_image_folder(root, "test", size or None, channels)
    return _images(f"image folder {root}", tr, te, subset, test_subset, flatten, seed, validation)


# The application studies' data sets register themselves (ISBI 2012, GlaS, FSDD, TIMIT).
from . import datasets_segmentation, datasets_speech  # noqa: E402, F401
