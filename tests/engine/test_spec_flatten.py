"""Flat inputs are a property of the model entry: an MLP (fcdnn registers as taking vectors) and a CNN share one
study on image data; the engine flattens the images per job. ``[data] flatten`` keeps working for old specs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lowbit.cli import main
from lowbit.data.idx import write_idx
from lowbit.data.sets import Data, flatten_images
from lowbit.engine.models import check_fit, model_data
from lowbit.engine.report.results import RunResults
from lowbit.models.fcdnn import FCDNN
from lowbit.serialize import load_model

SPEC = """
name = "mlp-and-cnn"
[data]
name = "idx"
root = "{root}"
[grid]
model = ["mlp", "cnn"]
method = ["float"]
seed = [0]
[models.mlp]
name = "fcdnn"
width = 16
depth = 2
[models.cnn]
name = "cifar_resnet"
depth = 8
width = 4
[train]
epochs = 1
batch_size = 8
[methods.float]
kind = "float"
"""


def _idx(root):
    rng = np.random.default_rng(0)
    for stem, n in (("train", 20), ("t10k", 10)):
        write_idx(root / f"{stem}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(root / f"{stem}-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8))


@pytest.mark.slow  # two trainings and a report: ~6 s on one core
def test_an_mlp_and_a_cnn_share_one_study_on_images(tmp_path, capsys):
    _idx(tmp_path / "idx")
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.format(root=tmp_path / "idx"))
    out = tmp_path / "run"
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "1", "--no-progress"]) == 0, capsys.readouterr()
    res = RunResults(out)
    kwargs = {}
    for j in res.jobs.values():
        assert 0 <= j.metrics["accuracy"] <= 100
        kwargs[j.axes["model"]] = load_model(out / j.model_path)[1]["model"]["kwargs"]
    assert kwargs["mlp"]["in_features"] == 784 and "in_channels" not in kwargs["mlp"]  # flat 1x28x28 images
    assert kwargs["cnn"]["in_channels"] == 1 and kwargs["cnn"]["num_classes"] == 10


def test_flatten_on_the_entry_overrides_the_model_and_data_flatten_still_works(tmp_path, capsys):
    _idx(tmp_path / "idx")
    text = SPEC.format(root=tmp_path / "idx")
    data = {"name": "idx", "root": str(tmp_path / "idx")}
    mlp = {"name": "fcdnn", "width": 16, "depth": 2}
    assert model_data(data, mlp).train[0][0].shape == (784,)  # fcdnn takes vectors: flattened for it
    assert model_data(data, {"name": "cifar_resnet"}).train[0][0].shape == (1, 28, 28)  # not for a CNN
    images = model_data(data, {**mlp, "flatten": False})
    with pytest.raises(ValueError) as e:
        check_fit("mlp", {**mlp, "flatten": False}, images, "idx")
    msg = str(e.value)  # the hint used to say "build it with in_features=28"
    assert "fcdnn takes (N, in_features) vectors but got inputs of shape (2, 1, 28, 28)" in msg
    assert "flatten them to (N, 784)" in msg and "in_features=28" not in msg
    # [data] flatten = true (the old way) flattens for every model: an MLP runs; a CNN is told where flatten went
    old = text.replace('model = ["mlp", "cnn"]', 'model = ["mlp"]').replace("[grid]", "flatten = true\n[grid]")
    spec = tmp_path / "old.toml"
    spec.write_text(old)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "old"), "--workers", "1", "--no-progress"]) == 0
    spec.write_text(text.replace("[grid]", "flatten = true\n[grid]"))
    capsys.readouterr()
    assert main(["sweep", str(spec), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "models.cnn (cifar_resnet" in err and "[data] flatten = true flattens the images for every model" in err


def test_an_fcdnn_given_images_says_to_flatten_them():
    with pytest.raises(ValueError, match=r"flatten them to \(N, 784\) first") as e:
        FCDNN(in_features=784)(torch.zeros(2, 1, 28, 28))
    assert "in_features=28" not in str(e.value)
    with pytest.raises(ValueError, match="build it with in_features=3"):
        FCDNN(in_features=2)(torch.zeros(2, 3))


def test_only_image_classification_data_is_flattened():
    from torch.utils.data import TensorDataset

    seg = TensorDataset(torch.zeros(2, 1, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long))  # masks, not labels
    with pytest.raises(ValueError, match=r"items of shape \(1, 4, 4\)\) cannot be flattened"):
        flatten_images(Data(seg, seg, {"in_channels": 1}, "tiles"))
    img = TensorDataset(torch.arange(2 * 3 * 2 * 2.0).reshape(2, 3, 2, 2), torch.tensor([0, 1]))
    flat = flatten_images(Data(img, img, {"num_classes": 2, "in_channels": 3, "input_size": 2}, "x"))
    assert flat.info == {"num_classes": 2, "in_features": 12}
    assert torch.equal(flat.train.tensors[0][1], torch.arange(12.0, 24.0))  # C, H, W order, one row per item
    assert flatten_images(flat) is flat  # vectors stay as they are
