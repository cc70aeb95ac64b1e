"""A segmentation data set of one's own, as two folders of images per split:

    <root>/train/images/<name>.png    the images (PNG, JPEG, BMP or TIFF; grayscale or colour)
    <root>/train/masks/<name>.png     one mask per image, same file stem: 0 = background, any other value =
    <root>/test/images/<name>.png     foreground (so 0/1 and 0/255 masks both work); lossless formats only
    <root>/test/masks/<name>.png      (a JPEG's compression noise would move the mask's border)

Every image must have a mask and every mask an image (a missing one is named). Images are read as ``channels``
(1: grayscale, 3: RGB) floats in [0, 1]; masks as int64 in {0, 1} (``invert`` swaps them, for masks that mark the
foreground with 0, like the ISBI 2012 membranes). Files are read in sorted name order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")


def _files(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"segmentation folder: {str(folder)!r} does not exist")
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in suffixes:
            if p.stem in out:
                raise ValueError(
                    f"segmentation folder: {p.name} and {out[p.stem].name} in {str(folder)!r} share a name"
                )
            out[p.stem] = p
    return out


def segmentation_files(root: str | Path, split: str) -> list[tuple[str, Path, Path]]:
    """(name, image path, mask path) of one split, sorted by name; an unpaired file is one line naming it."""
    base = Path(root) / split
    if not Path(root).is_dir():
        raise FileNotFoundError(f"segmentation folder {str(root)!r} does not exist")
    images = _files(base / "images", SUFFIXES)
    masks = _files(base / "masks", MASK_SUFFIXES)
    for name, path in images.items():
        if name not in masks:
            raise FileNotFoundError(
                f"segmentation folder: {split}/images/{path.name} has no mask {split}/masks/{name}.png"
            )
    for name, path in masks.items():
        if name not in images:
            raise FileNotFoundError(f"segmentation folder: {split}/masks/{path.name} has no image in {split}/images/")
    if not images:
        raise FileNotFoundError(f"segmentation folder: no images in {str(base / 'images')!r}")
    return [(name, images[name], masks[name]) for name in sorted(images)]


def read_pair(image: Path, mask: Path, channels: int, invert: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(image (channels, H, W) float in [0, 1], mask (H, W) int64 in {0, 1})."""
    with Image.open(image) as im:
        x = np.asarray(im.convert("L" if channels == 1 else "RGB"), dtype=np.float32) / 255.0
    with Image.open(mask) as m:
        y = np.asarray(m.convert("L"), dtype=np.uint8) != 0
    if y.shape != x.shape[:2]:
        raise ValueError(
            f"segmentation folder: mask {mask.name} is {y.shape[1]}x{y.shape[0]} pixels but its image is "
            f"{x.shape[1]}x{x.shape[0]}"
        )
    x = x[None] if channels == 1 else x.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy((y != invert).astype(np.int64))
