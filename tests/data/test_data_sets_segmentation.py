"""The segmentation data sets of the registry (isbi2012, glas): tiles for training, whole test images with the
object class the segmentation task scores, and models that take their channel count from the data."""

from __future__ import annotations

import torch
from support.data_files import write_glas, write_isbi

from lowbit.data.sets import build_dataset
from lowbit.engine.models import build_model, check_fit


def test_isbi2012_tiles_and_test_images(tmp_path):
    write_isbi(tmp_path, side=128)
    d = build_dataset("isbi2012", root=str(tmp_path), downsample=2, tile=32, tiles_per_image=3)
    assert len(d.train) == 20 * 3 and d.train[0][0].shape == (1, 32, 32) and d.train[0][1].shape == (32, 32)
    assert d.test.tensors[0].shape == (10, 1, 64, 64) and d.test.objects_of == 0  # the cells between membranes
    again = build_dataset("isbi2012", root=str(tmp_path), downsample=2, tile=32, tiles_per_image=3)
    assert torch.equal(d.train.tensors[0], again.train.tensors[0])  # fixed, seeded tiles
    check_fit("full", {"name": "fcn_sa", "width": 1 / 32, "depth": 2}, d, "isbi2012")


def test_glas_resized_rgb_and_gland_objects(tmp_path):
    for i in range(1, 4):
        write_glas(tmp_path, f"train_{i}", 40, 50, 2, seed=i)
        write_glas(tmp_path, f"testA_{i}", 44, 36, 1, seed=10 + i)
    d = build_dataset("glas", root=str(tmp_path), size=32, tile=16, tiles_per_image=2)
    assert len(d.train) == 6 and d.test.tensors[0].shape == (3, 3, 32, 32) and d.test.objects_of == 1
    assert set(d.test.tensors[1].unique().tolist()) <= {0, 1} and d.info == {"in_channels": 3}
    model, kwargs = build_model({"name": "fcn_sa", "width": 1 / 32, "depth": 2}, d.info)
    assert kwargs["in_channels"] == 3 and model(d.test.tensors[0][:1]).shape == (1, 2, 32, 32)
