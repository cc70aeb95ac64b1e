"""GlaS folder loader and ISBI 2012 loader: generated files in each real format, then the real ISBI set."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from support.data_files import write_glas, write_isbi

from lowbit.data.glas import GlasDataset, glas_files
from lowbit.data.isbi import TEST_IDS, TRAIN_IDS, default_root, load_isbi, random_tiles
from lowbit.data.paths import shared_data_dir


def test_glas_parts_order_and_instances(tmp_path):
    ann = {}
    for name, (h, w, n) in {
        "train_10": (12, 9, 3),
        "train_2": (10, 8, 2),
        "testA_1": (14, 11, 4),
        "testB_3": (12, 12, 1),
    }.items():
        ann[name] = write_glas(tmp_path, name, h, w, n, seed=len(name))
    (tmp_path / "Grade.csv").write_text("name,grade\n")  # other files in the folder are ignored
    ds = GlasDataset(tmp_path, "train")
    assert ds.names == ["train_2", "train_10"]  # numeric order, not string order
    item = ds[1]
    assert item.image.shape == (3, 12, 9) and item.image.dtype == torch.float32
    assert 0.0 <= float(item.image.min()) and float(item.image.max()) <= 1.0
    assert torch.equal(item.instances, torch.from_numpy(ann["train_10"].astype(np.int64)))
    assert set(item.instances.unique().tolist()) == {0, 1, 2, 3}
    assert torch.equal(item.mask, (item.instances > 0).long())
    assert GlasDataset(tmp_path, "testA").names == ["testA_1"]
    assert GlasDataset(tmp_path, "testB")[0].instances.max() == 1
    raw = np.asarray(Image.open(tmp_path / "testA_1.bmp").convert("RGB"), dtype=np.float32) / 255
    assert torch.allclose(GlasDataset(tmp_path, "testA")[0].image, torch.from_numpy(raw).permute(2, 0, 1))


def test_glas_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="part='val'"):
        glas_files(tmp_path, "val")
    with pytest.raises(FileNotFoundError, match="no testA"):
        glas_files(tmp_path, "testA")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8), "RGB").save(tmp_path / "train_1.bmp")
    with pytest.raises(FileNotFoundError, match="train_1_anno.bmp"):
        glas_files(tmp_path, "train")
    Image.fromarray(np.zeros((5, 4), np.uint8), "L").save(tmp_path / "train_1_anno.bmp")
    with pytest.raises(ValueError, match="train_1_anno.bmp is"):
        GlasDataset(tmp_path, "train")[0]


def test_isbi_split_masks_and_downsample(tmp_path):
    write_isbi(tmp_path)
    tr, te = load_isbi(tmp_path, "train"), load_isbi(tmp_path, "test")
    assert tr.ids == TRAIN_IDS == tuple(range(20)) and te.ids == TEST_IDS == tuple(range(20, 30))
    assert tr.images.shape == (20, 1, 32, 32) and te.masks.shape == (10, 32, 32)
    lab = np.asarray(Image.open(tmp_path / "train" / "label" / "21.png"))
    assert torch.equal(te.masks[1], torch.from_numpy((lab == 0).astype(np.int64)))  # membrane = 1
    img = np.asarray(Image.open(tmp_path / "train" / "image" / "21.png"), dtype=np.float32) / 255
    assert torch.allclose(te.images[1, 0], torch.from_numpy(img))
    d = load_isbi(tmp_path, "test", downsample=2)
    assert d.images.shape == (10, 1, 16, 16)
    assert torch.allclose(d.images[1, 0, 0, 0], torch.from_numpy(img[:2, :2]).mean())
    # 2x2 majority: a block that is half membrane (one column of two) counts as membrane
    mem = (lab == 0).reshape(16, 2, 16, 2).mean(axis=(1, 3)) >= 0.5
    assert torch.equal(d.masks[1], torch.from_numpy(mem.astype(np.int64)))
    with pytest.raises(ValueError, match="split='val'"):
        load_isbi(tmp_path, "val")
    with pytest.raises(ValueError, match="downsample=3"):
        load_isbi(tmp_path, "train", downsample=3)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_isbi(tmp_path / "nowhere", "train")


def test_random_tiles_are_fixed_crops_of_the_images(tmp_path):
    write_isbi(tmp_path, side=16)
    data = load_isbi(tmp_path, "train")
    a, b = random_tiles(data, 8, 3, seed=1), random_tiles(data, 8, 3, seed=1)
    assert len(a) == 60 and a.tensors[0].shape == (60, 1, 8, 8) and a.tensors[1].shape == (60, 8, 8)
    assert all(torch.equal(x, y) for x, y in zip(a.tensors, b.tensors))
    # every tile is one of the 8 symmetries of some crop of its image, with its mask moved the same way
    x, y = a.tensors[0][5, 0], a.tensors[1][5]
    img, msk = data.images[1, 0], data.masks[1]
    found = False
    for r in range(9):
        for c in range(9):
            for k in range(4):
                for flip in (False, True):
                    ci, cm = img[r : r + 8, c : c + 8], msk[r : r + 8, c : c + 8]
                    if flip:
                        ci, cm = ci.flip(-1), cm.flip(-1)
                    if torch.equal(torch.rot90(ci, k), x) and torch.equal(torch.rot90(cm, k), y):
                        found = True
    assert found
    with pytest.raises(ValueError, match="tile=17"):
        random_tiles(data, 17, 1)


def shared_isbi() -> Path:
    root = shared_data_dir() / "isbi2012-em"
    if not (root / "train" / "label" / "29.png").exists():
        pytest.skip(f"the real ISBI 2012 set is not at {root} (set LOWBIT_DATA to the shared data folder)")
    return root


@pytest.mark.slow
def test_real_isbi_set():
    root = shared_isbi()
    assert default_root() == root
    tr = load_isbi(None, "train", downsample=4)
    te = load_isbi(root, "test", downsample=4)
    assert tr.images.shape == (20, 1, 128, 128) and te.images.shape == (10, 1, 128, 128)
    frac = float(tr.masks.float().mean())
    assert 0.1 < frac < 0.4  # membranes are a minority of the pixels
    assert set(te.masks.unique().tolist()) == {0, 1}
    assert 0.0 <= float(tr.images.min()) and float(tr.images.max()) <= 1.0 and float(tr.images.std()) > 0.05
