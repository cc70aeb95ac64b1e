"""The GlaS (MICCAI 2015 Gland Segmentation challenge) folder format, as the challenge ships it:

    <root>/train_1.bmp, train_1_anno.bmp, ..., testA_1.bmp, testA_1_anno.bmp, ..., testB_1.bmp, ...

``*.bmp`` are RGB H&E images (sizes differ between images); ``*_anno.bmp`` are 8-bit annotations holding
instance ids (0 = background, 1..n = the glands of that image). The part is the file-name prefix before the
first "_" ("train": 85 images, "testA": 60, "testB": 20 in the real set). Images are returned one by one
(different sizes), in numeric order of the index after the prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

PARTS = ("train", "testA", "testB")
_NAME = re.compile(r"^(train|testA|testB)_(\d+)\.bmp$")


@dataclass(frozen=True)
class GlasItem:
    name: str  # e.g. "testA_12"
    image: torch.Tensor  # (3, H, W) float in [0, 1]
    instances: torch.Tensor  # (H, W) int64: 0 = background, 1..n = gland ids

    @property
    def mask(self) -> torch.Tensor:
        """(H, W) int64 in {0, 1}: 1 = gland."""
        return (self.instances > 0).long()


def glas_files(root: str | Path, part: str) -> list[tuple[str, Path, Path]]:
    """(name, image path, annotation path) of one part, sorted by index; an error names a missing annotation."""
    if part not in PARTS:
        raise ValueError(f"GlaS: part={part!r} is not accepted; expected one of {PARTS}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"GlaS: folder {str(root)!r} does not exist")
    found = []
    for p in root.iterdir():
        m = _NAME.match(p.name)
        if m and m.group(1) == part:
            anno = p.with_name(f"{p.stem}_anno.bmp")
            if not anno.is_file():
                raise FileNotFoundError(f"GlaS: {p.name} has no annotation {anno.name} in {str(root)!r}")
            found.append((int(m.group(2)), p.stem, p, anno))
    if not found:
        raise FileNotFoundError(f"GlaS: no {part}_<n>.bmp files in {str(root)!r}")
    return [(name, img, anno) for _, name, img, anno in sorted(found)]


def load_glas_item(name: str, image_path: Path, anno_path: Path) -> GlasItem:
    with Image.open(image_path) as im:
        img = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    with Image.open(anno_path) as an:
        if an.mode not in ("L", "P", "I", "I;16"):
            raise ValueError(f"GlaS: annotation {anno_path.name} has mode {an.mode!r}; expected 8/16-bit instance ids")
        ids = np.asarray(an, dtype=np.int64)
    if ids.shape != img.shape[:2]:
        raise ValueError(f"GlaS: {anno_path.name} is {ids.shape} but its image is {img.shape[:2]}")
    return GlasItem(name, torch.from_numpy(img).permute(2, 0, 1).contiguous(), torch.from_numpy(ids.copy()))


class GlasDataset(torch.utils.data.Dataset):
    """One part of a GlaS folder; ``ds[i]`` is a ``GlasItem`` (read from disk on access)."""

    def __init__(self, root: str | Path, part: str = "train"):
        self.part = part
        self.files = glas_files(root, part)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> GlasItem:
        return load_glas_item(*self.files[i])

    @property
    def names(self) -> list[str]:
        return [n for n, _, _ in self.files]
