"""``segmentation_folder``: a segmentation set of one's own as ``root/{train,test}/{images,masks}/<name>.png``,
read through the registry's loader from small files written here; values, tiles, options and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lowbit.data.sets import load_data
from lowbit.data.sets.segmentation import SegmentationSet
from lowbit.tasks import get_task


def _write(root, split: str, name: str, image: np.ndarray, mask: np.ndarray, mask_suffix: str = ".png") -> None:
    (root / split / "images").mkdir(parents=True, exist_ok=True)
    (root / split / "masks").mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(root / split / "images" / f"{name}.png")
    Image.fromarray(mask).save(root / split / "masks" / f"{name}{mask_suffix}")


def _folder(root, side: int = 16, n_train: int = 2, n_test: int = 2, rgb: bool = True) -> dict:
    rng = np.random.default_rng(0)
    made = {}
    for split, n in (("train", n_train), ("test", n_test)):
        for i in range(n):
            shape = (side, side, 3) if rgb else (side, side)
            img = rng.integers(0, 256, shape, dtype=np.uint8)
            mask = np.zeros((side, side), dtype=np.uint8)
            mask[2 : 6 + i, 3:9] = 255 if i % 2 else 1  # 0/255 and 0/1 masks both mean foreground
            _write(root, split, f"img{i}", img, mask)
            made[(split, i)] = (img, mask)
    return made


def test_images_and_masks_are_read_as_written(tmp_path):
    made = _folder(tmp_path)
    data = load_data({"name": "segmentation_folder", "root": str(tmp_path), "tile": 8, "tiles_per_image": 3})
    assert data.info == {"in_channels": 3} and "6 training tiles 8x8; 2 test images 16x16" in data.description
    test = data.test
    assert isinstance(test, SegmentationSet) and test.objects_of == 1
    img, mask = made[("test", 1)]
    x, y = test.tensors[0][1], test.tensors[1][1]  # sorted names: img0, img1
    assert torch.allclose(x, torch.from_numpy(img).permute(2, 0, 1).float() / 255.0)
    assert y.dtype == torch.int64 and torch.equal(y, torch.from_numpy((mask != 0).astype(np.int64)))
    tx, ty = data.train.tensors
    assert tx.shape == (6, 3, 8, 8) and ty.shape == (6, 8, 8) and set(ty.unique().tolist()) <= {0, 1}
    again = load_data(
        {"name": "segmentation_folder", "root": str(tmp_path), "tile": 8, "tiles_per_image": 3, "seed": 0}
    )
    assert torch.equal(again.train.tensors[0], tx)  # fixed, seeded tiles
    probs = test.tensors[1].float()  # a perfect prediction scores 100 with the segmentation task
    assert get_task("segmentation").metrics(probs, test)["dice"] == 100.0


def test_grey_images_invert_resize_and_objects_of(tmp_path):
    made = _folder(tmp_path, side=12, rgb=False)
    cfg = {"name": "segmentation_folder", "root": str(tmp_path), "channels": 1, "tile": 4, "tiles_per_image": 1}
    inv = load_data({**cfg, "invert": True, "objects_of": 0})
    mask = made[("test", 0)][1]
    assert inv.info == {"in_channels": 1} and inv.test.objects_of == 0
    assert torch.equal(inv.test.tensors[1][0], torch.from_numpy((mask == 0).astype(np.int64)))
    small = load_data({**cfg, "size": 6})
    assert small.test.tensors[0].shape == (2, 1, 6, 6) and small.test.tensors[1].shape == (2, 6, 6)
    assert torch.equal(small.test.tensors[1][0], torch.from_numpy((mask[::2, ::2] != 0).astype(np.int64)))


def test_errors_name_the_file(tmp_path):
    _folder(tmp_path)
    (tmp_path / "train" / "masks" / "img1.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"train/images/img1.png has no mask train/masks/img1.png"):
        load_data({"name": "segmentation_folder", "root": str(tmp_path)})
    other = tmp_path / "other"
    _folder(other)
    rng = np.random.default_rng(1)
    _write(other, "test", "big", rng.integers(0, 256, (20, 20, 3), dtype=np.uint8), np.zeros((20, 20), np.uint8))
    with pytest.raises(ValueError, match=r"test/images/img0.png is 16x16 pixels but big.png is 20x20; give size = N"):
        load_data({"name": "segmentation_folder", "root": str(other), "tile": 8})
    assert (
        load_data({"name": "segmentation_folder", "root": str(other), "tile": 8, "size": 16}).test.tensors[0].shape[0]
        == 3
    )  # resized, all three test images
    with pytest.raises(ValueError, match=r"segmentation_folder: random_tiles: tile=64 is not accepted"):
        load_data({"name": "segmentation_folder", "root": str(other), "size": 16})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_data({"name": "segmentation_folder", "root": str(tmp_path / "missing")})
    (tmp_path / "train" / "images" / "img1.png").unlink()
    (tmp_path / "train" / "masks" / "img0.png").rename(tmp_path / "train" / "masks" / "orphan.png")
    with pytest.raises(FileNotFoundError, match=r"train/images/img0.png has no mask"):
        load_data({"name": "segmentation_folder", "root": str(tmp_path)})


@pytest.mark.slow  # a training and a report: a few seconds
def test_a_study_trains_on_a_segmentation_folder(tmp_path, capsys):
    from lowbit.cli import main
    from lowbit.engine.report.results import RunResults

    _folder(tmp_path / "seg", side=16)
    spec = tmp_path / "seg.toml"
    spec.write_text(
        f"""
name = "my-segmentation"
task = "segmentation"
[data]
name = "segmentation_folder"
root = "{tmp_path / "seg"}"
tile = 16
tiles_per_image = 2
[grid]
model = ["fcn"]
method = ["float"]
seed = [0]
[models.fcn]
name = "fcn_sa"
width = 0.03125
depth = 2
[train]
epochs = 1
batch_size = 2
[methods.float]
kind = "float"
"""
    )
    out = tmp_path / "run"
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "1", "--no-progress"]) == 0, capsys.readouterr()
    (job,) = RunResults(out).jobs.values()
    assert 0 <= job.metrics["dice"] <= 100 and job.metrics["tp"] + job.metrics["fn"] >= 1
