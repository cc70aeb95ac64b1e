"""Segmentation data sets a spec can name (task ``segmentation``): ISBI 2012 EM membranes and GlaS glands.

Training items are fixed, seeded random tiles (one of the 8 symmetries each, ``lowbit.data.isbi.random_tiles``),
so every epoch and a resumed run see the same tiles; test items are the whole held-out images. Masks are int64
in {0, 1} with 1 = the foreground (the membrane; the gland).
"""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from . import Data, register_dataset


class SegmentationSet(TensorDataset):
    """Test images and masks, plus which class's connected components are the objects of the object F1
    (``objects_of``: 0 for the ISBI cells between membranes, 1 for the GlaS glands)."""

    def __init__(self, images: torch.Tensor, masks: torch.Tensor, objects_of: int):
        super().__init__(images, masks)
        self.objects_of = objects_of


@register_dataset("isbi2012")
def isbi2012(root: str = "", downsample: int = 1, tile: int = 64, tiles_per_image: int = 16, seed: int = 0) -> Data:
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


@register_dataset("glas")
def glas(
    root: str = "", size: int = 256, test_part: str = "testA", tile: int = 64, tiles_per_image: int = 16, seed: int = 0
) -> Data:
    """GlaS 2015 gland segmentation (``lowbit.data.glas``; ``root`` or the shared ``glas`` folder): every image
    resized to ``size`` x ``size`` (bilinear; masks nearest), train on tiles of the train part, test on
    ``test_part`` ("testA" | "testB")."""
    from ..glas import GlasDataset
    from ..isbi import SegmentationImages, random_tiles
    from ..paths import require_shared

    base = root or require_shared("glas")
    parts = {p: GlasDataset(base, p) for p in ("train", test_part)}
    sets = {}
    for p, ds in parts.items():
        items = [ds[i] for i in range(len(ds))]
        x, y = _resize([it.image for it in items], [it.mask for it in items], size)
        sets[p] = SegmentationImages(x, y, tuple(range(len(items))))
    tiles = random_tiles(sets["train"], tile, tiles_per_image, seed=seed)
    test = sets[test_part]
    desc = f"GlaS ({len(tiles)} training tiles {tile}x{tile}; {len(test)} {test_part} images {size}x{size})"
    return Data(tiles, SegmentationSet(test.images, test.masks, 1), {"in_channels": 3}, desc)
