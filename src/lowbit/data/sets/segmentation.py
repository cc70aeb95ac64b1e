"""Segmentation data sets a spec can name (task ``segmentation``): ISBI 2012 EM membranes, GlaS glands and a
folder of one's own images and masks (``segmentation_folder``; the format is in ``lowbit.data.segmentation_folder``).

Training items are fixed, seeded random tiles (one of the 8 symmetries each, ``lowbit.data.isbi.random_tiles``),
so every epoch and a resumed run see the same tiles; test items are the whole held-out images. Masks are int64
in {0, 1} with 1 = the foreground (the membrane; the gland).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch.utils.data import TensorDataset

from ...arguments import Count, Positive
from . import Data, register_dataset
from .sizes import DataSizes, tiled_sizes


class SegmentationSet(TensorDataset):
    """Test images and masks, plus which class's connected components are the objects of the object F1
    (``objects_of``: 0 for the ISBI cells between membranes, 1 for the GlaS glands)."""

    def __init__(self, images: torch.Tensor, masks: torch.Tensor, objects_of: int):
        super().__init__(images, masks)
        self.objects_of = objects_of


SEGMENTATION = dict(gives="(N, C, H, W) images", targets="(N, H, W) masks in {0, 1}", task="segmentation")


def _isbi_sizes(a: dict) -> DataSizes:  # 20 training and 10 test images of 512 x 512 pixels, read at full size
    side = 512 // a["downsample"]
    return tiled_sizes(20, 10, 1, max(side, 1), a["tile"], a["tiles_per_image"], ("downsample",))


@register_dataset("isbi2012", sizes=_isbi_sizes, **SEGMENTATION)
def isbi2012(
    root: str = "", downsample: Positive = 1, tile: Positive = 64, tiles_per_image: Positive = 16, seed: Count = 0
) -> Data:
    """ISBI 2012 EM (``lowbit.data.isbi``): images 0-19 train, 20-29 test, 512/``downsample`` pixels a side."""
    from ..isbi import load_isbi, random_tiles

    r = root or None
    train, test = load_isbi(r, "train", downsample), load_isbi(r, "test", downsample)
    tiles = random_tiles(train, tile, tiles_per_image, seed=seed)
    side = test.images.shape[-1]
    desc = f"ISBI 2012 EM ({len(tiles)} training tiles {tile}x{tile}; {len(test)} test images {side}x{side})"
    return Data(tiles, SegmentationSet(test.images, test.masks, 0), {"in_channels": 1}, desc)


def _resize(images: list[torch.Tensor], masks: list[torch.Tensor], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    import torch.nn.functional as F

    x = torch.stack([F.interpolate(i[None], size=(size, size), mode="bilinear")[0] for i in images])
    y = torch.stack([F.interpolate(m[None, None].float(), size=(size, size), mode="nearest")[0, 0] for m in masks])
    return x, y.long()


GLAS_WHAT = "the GlaS 2015 challenge folder (train_<n>.bmp, testA_<n>.bmp, testB_<n>.bmp and their *_anno.bmp)"


def _glas_sizes(a: dict) -> DataSizes:  # 85 training images; testA 60, testB 20, test both 80 (resized)
    n_test = {"testA": 60, "testB": 20, "test": 80}[a["test_part"]]
    return tiled_sizes(85, n_test, 3, a["size"], a["tile"], a["tiles_per_image"], ("size",))


def _glas_locate(a: dict) -> list[tuple[str, str, str]]:
    return [("glas", GLAS_WHAT, a["root"])]


@register_dataset(
    "glas",
    sizes=_glas_sizes,
    locate=_glas_locate,
    counts=lambda a: (85 * a["tiles_per_image"], {"testA": 60, "testB": 20, "test": 80}[a["test_part"]]),
    **SEGMENTATION,
)
def glas(
    root: str = "",
    size: Positive = 256,
    test_part: Literal["testA", "testB", "test"] = "testA",
    tile: Positive = 64,
    tiles_per_image: Positive = 16,
    seed: Count = 0,
) -> Data:
    """GlaS 2015 gland segmentation (``lowbit.data.glas``; ``root`` or the shared ``glas`` folder): every image
    resized to ``size`` x ``size`` (bilinear; masks nearest), train on tiles of the train part, test on
    ``test_part`` ("testA" | "testB" | "test": both, the 80 test images of the seed paper's 85 / 80 split)."""
    from ..glas import GlasDataset
    from ..isbi import SegmentationImages, random_tiles
    from ..paths import require_data

    base = require_data("glas", GLAS_WHAT, root)
    both = test_part == "test"
    parts = {p: GlasDataset(base, p) for p in ("train", *(("testA", "testB") if both else (test_part,)))}
    sets = {}
    for p, ds in parts.items():
        items = [ds[i] for i in range(len(ds))]
        x, y = _resize([it.image for it in items], [it.mask for it in items], size)
        sets[p] = SegmentationImages(x, y, tuple(range(len(items))))
    if both:
        a, b = sets.pop("testA"), sets.pop("testB")
        x, y = torch.cat([a.images, b.images]), torch.cat([a.masks, b.masks])
        sets["test"] = SegmentationImages(x, y, tuple(range(len(x))))
    tiles = random_tiles(sets["train"], tile, tiles_per_image, seed=seed)
    test = sets[test_part]
    desc = f"GlaS ({len(tiles)} training tiles {tile}x{tile}; {len(test)} {test_part} images {size}x{size})"
    return Data(tiles, SegmentationSet(test.images, test.masks, 1), {"in_channels": 3}, desc)


def _folder_sizes(a: dict) -> DataSizes:
    """One training and one test image at least (size x size when given, else only the tiles are known)."""
    return tiled_sizes(1, 1, a["channels"], a["size"], a["tile"], a["tiles_per_image"], ("size",))


@register_dataset("segmentation_folder", sizes=_folder_sizes, **SEGMENTATION)
def segmentation_folder(
    root: str,
    channels: Literal[1, 3] = 3,
    size: Count = 0,
    invert: bool = False,
    objects_of: Literal[0, 1] = 1,
    tile: Positive = 64,
    tiles_per_image: Positive = 16,
    seed: Count = 0,
) -> Data:
    """Images and masks in ``root/{train,test}/{images,masks}/<name>.png`` (``lowbit.data.segmentation_folder``):
    mask 0 = background, anything else = foreground (``invert = true`` swaps them). Every image is resized to
    ``size`` x ``size`` when given (bilinear; masks nearest), else all images must have one size. Training items
    are ``tiles_per_image`` seeded random ``tile`` x ``tile`` crops of each training image (one of the 8
    symmetries each); the test items are the whole test images. ``objects_of``: which class's connected
    components the object F1 counts (1: foreground objects, e.g. glands or nuclei; 0: the regions the
    foreground separates, e.g. cells between membranes)."""
    from ..isbi import SegmentationImages, random_tiles
    from ..segmentation_folder import read_pair, segmentation_files

    sets = {}
    for split in ("train", "test"):
        files = segmentation_files(root, split)
        pairs = [read_pair(img, mask, channels, invert) for _, img, mask in files]
        if size:
            x, y = _resize([p[0] for p in pairs], [p[1] for p in pairs], size)
        else:
            shape = pairs[0][1].shape
            for (_name, img, _), (_, m) in zip(files, pairs):
                if m.shape != shape:
                    raise ValueError(
                        f"segmentation_folder: {split}/images/{img.name} is {m.shape[1]}x{m.shape[0]} pixels but "
                        f"{files[0][1].name} is {shape[1]}x{shape[0]}; give size = N to resize every image to N x N"
                    )
            x, y = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
        sets[split] = SegmentationImages(x, y, tuple(range(len(files))))
    try:
        tiles = random_tiles(sets["train"], tile, tiles_per_image, seed=seed)
    except ValueError as e:
        raise ValueError(f"segmentation_folder: {e}") from None
    test = sets["test"]
    h, w = test.images.shape[-2:]
    desc = f"segmentation folder {root} ({len(tiles)} training tiles {tile}x{tile}; {len(test)} test images {h}x{w})"
    return Data(tiles, SegmentationSet(test.images, test.masks, objects_of), {"in_channels": channels}, desc)


VOC_WHAT = (
    "PASCAL VOC 2012 (the devkit's VOC2012 folder: JPEGImages/, SegmentationClass/, ImageSets/Segmentation/"
    "{train,val}.txt)"
)


def _voc_sizes(a: dict) -> DataSizes:
    """Read image by image: the set holds the ids; items are 3 x crop x crop (val padded to it)."""
    return DataSizes({"in_channels": 3, "num_classes": 21}, 3 * a["crop"] ** 2 * 4, ("crop",), (1464 + 1449) * 64, ())


def _voc_locate(a: dict) -> list[tuple[str, str, str]]:
    return [("VOCdevkit/VOC2012", VOC_WHAT, a["root"])]


@register_dataset(
    "voc2012",
    gives="(N, 3, crop, crop) images",
    targets="(N, crop, crop) class ids 0..20, 255 = ignore",
    task="segmentation_miou",
    sizes=_voc_sizes,
    locate=_voc_locate,
    counts=lambda a: (1464, 1449),
)
def voc2012(
    root: str = "",
    train_split: Literal["train", "val", "trainval"] = "train",
    test_split: Literal["train", "val", "trainval"] = "val",
    crop: Positive = 513,
) -> Data:
    """PASCAL VOC 2012 segmentation (``root`` or ``<data root>/VOCdevkit/VOC2012``; ``lowbit.data.voc``): train on
    ``train_split`` (1,464 images; DeepLab's random scale 0.5-2, crop ``crop``, flip), score mIoU on ``test_split``
    (1,449 val images, padded to ``crop``, 255 = ignore) over the 21 classes."""
    from ..paths import require_data
    from ..voc import CLASSES, VOCSegmentation

    base = require_data("VOCdevkit/VOC2012", VOC_WHAT, root)
    train, test = VOCSegmentation(base, train_split, crop), VOCSegmentation(base, test_split, crop)
    desc = f"PASCAL VOC 2012 ({len(train):,} {train_split} / {len(test):,} {test_split} images, crop {crop})"
    return Data(train, test, {"in_channels": 3, "num_classes": len(CLASSES)}, desc)
