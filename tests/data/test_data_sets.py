"""The data registry builds every classification loader from small files in each format, and a model named in a
spec takes its input size and class count from the data."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from lowbit.data.idx import write_idx
from lowbit.data.sets import build_dataset, dataset_names
from lowbit.engine.models import build_model, check_fit, model_kwargs
from lowbit.models import TEST_KWARGS, model_names

CLASSIFICATION_SETS = {
    "spirals",
    "digits",
    "fashion_mnist",
    "idx",
    "cifar10",
    "cifar100",
    "cifar10_jpeg",
    "image_folder",
}


def test_every_classification_loader_is_registered():
    assert CLASSIFICATION_SETS <= set(dataset_names())


def _idx(root):
    rng = np.random.default_rng(0)
    for stem, n in (("train", 12), ("t10k", 4)):
        write_idx(root / f"{stem}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(root / f"{stem}-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8))


def _cifar(root):
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), b"labels": [1, 7]}
        (root / name).write_bytes(pickle.dumps(batch, protocol=2))
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]}))


def _folder(root):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in ("cat", "dog", "eel"):
            (root / split / c).mkdir(parents=True)
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / split / c / "0.png")


@pytest.mark.parametrize(
    "name, write, info",
    [
        ("idx", _idx, {"num_classes": 10, "in_channels": 1, "input_size": 28}),
        ("cifar10", _cifar, {"num_classes": 10, "in_channels": 3, "input_size": 32}),
        ("image_folder", _folder, {"num_classes": 3, "in_channels": 3, "input_size": 8}),
    ],
)
def test_image_sets_from_files_normalised_and_flattened(tmp_path, name, write, info):
    write(tmp_path)
    data = build_dataset(name, root=str(tmp_path))
    assert data.info == info and str(len(data.train)) in data.description.replace(",", "")
    x = data.train.tensors[0]
    assert x.shape[1:] == (info["in_channels"], info["input_size"], info["input_size"])
    mean = x.mean(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.zeros_like(mean), atol=1e-5)  # the training set's channel statistics
    flat = build_dataset(name, root=str(tmp_path), flatten=True)
    n_in = info["in_channels"] * info["input_size"] ** 2
    assert flat.info == {"num_classes": info["num_classes"], "in_features": n_in}
    model, kwargs = build_model({"name": "fcdnn", "width": 8, "depth": 2}, flat.info)
    assert kwargs == {"width": 8, "depth": 2, "num_classes": info["num_classes"], "in_features": n_in}
    assert model(flat.test.tensors[0]).shape == (len(flat.test), info["num_classes"])


@pytest.mark.slow
def test_a_model_that_does_not_fit_its_data_is_one_line(tmp_path):
    data = build_dataset("digits", subset=50)
    check_fit("small", {"name": "fcdnn", "width": 8}, data, "digits")  # in_features 64 from the data
    with pytest.raises(ValueError) as e:
        check_fit("small", {"name": "fcdnn", "width": 8, "in_features": 3}, data, "digits")
    msg = str(e.value)
    assert "models.small (fcdnn" in msg and "does not fit data 'digits' (inputs of shape (64,))" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("name", model_names())
def test_every_registered_model_takes_the_sizes_it_accepts(name):
    info = {"num_classes": 3, "in_features": 5, "in_channels": 1, "input_size": 16}
    kwargs = model_kwargs({"name": name, **TEST_KWARGS[name]}, info)
    for k, v in TEST_KWARGS[name].items():
        assert kwargs[k] == v  # what the spec says wins over the data
    assert set(kwargs) - set(TEST_KWARGS[name]) <= {
        "num_classes",
        "n_classes",
        "in_features",
        "n_input",
        "in_channels",
        "input_size",
    }
