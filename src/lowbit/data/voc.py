"""PASCAL VOC 2012 semantic segmentation, as the devkit ships it (Everingham et al. 2015):

    <root>/JPEGImages/<id>.jpg
    <root>/SegmentationClass/<id>.png          palette ("P") PNGs whose pixel values are class ids: 0 background,
                                               1..20 the object classes, 255 the object borders ("void": ignored)
    <root>/ImageSets/Segmentation/train.txt    1,464 ids
    <root>/ImageSets/Segmentation/val.txt      1,449 ids

The preprocessing is DeepLab's (Chen et al. 2017, the recipe Boo et al. §5.1 follow; the TF DeepLab defaults):
- train: scale the image and mask by a random factor in {0.5, 0.75, ..., 2.0} (image bilinear, mask nearest), pad
  to at least ``crop`` x ``crop`` (image with the mean pixel, i.e. 0 after normalisation; mask with 255), take a
  random ``crop`` x ``crop`` window and flip it horizontally with probability 1/2 (torch's global generator);
- val: the whole image, padded to ``crop`` x ``crop`` the same way (VOC images are at most 500 x 500), so the
  ignored padding never counts;
- both: to [0, 1], then the ImageNet mean / std (the backbone's pretraining).
Masks are int64 with 255 kept as "ignore" (the mIoU task and its loss skip it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from .imagenet import MEAN, STD

IGNORE = 255
CLASSES = (
    "background aeroplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse motorbike person "
    "pottedplant sheep sofa train tvmonitor"
).split()
SCALES = tuple(0.5 + 0.25 * k for k in range(7))  # 0.5 .. 2.0, DeepLab's min/max scale factor and step
CROP = 513


def voc_ids(root: str | Path, split: str) -> list[str]:
    lst = Path(root) / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not lst.is_file():
        raise FileNotFoundError(f"VOC 2012: no {str(lst)!r}; expected the devkit's ImageSets/Segmentation/{split}.txt")
    ids = [line.split()[0] for line in lst.read_text().splitlines() if line.strip()]
    for sub, ext in (("JPEGImages", ".jpg"), ("SegmentationClass", ".png")):
        missing = [i for i in ids if not (Path(root) / sub / f"{i}{ext}").is_file()]
        if missing:
            raise FileNotFoundError(f"VOC 2012: {sub}/{missing[0]}{ext} is listed in {split}.txt but missing")
    return ids


def read_pair(root: Path, image_id: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(image (3, H, W) normalised, mask (H, W) int64 class ids with 255 = ignore)."""
    with Image.open(root / "JPEGImages" / f"{image_id}.jpg") as im:
        x = torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
    with Image.open(root / "SegmentationClass" / f"{image_id}.png") as m:
        if m.mode not in ("P", "L"):
            raise ValueError(f"VOC 2012: SegmentationClass/{image_id}.png has mode {m.mode!r}; expected a palette PNG")
        y = torch.from_numpy(np.asarray(m, dtype=np.int64).copy())  # palette indices are the class ids
    if y.shape != x.shape[1:]:
        raise ValueError(f"VOC 2012: {image_id}.png is {tuple(y.shape)} but its image is {tuple(x.shape[1:])}")
    x = (x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    return x, y


def pad_to(x: torch.Tensor, y: torch.Tensor, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad on the bottom and right to at least ``side`` x ``side``: image 0 (the mean pixel), mask 255."""
    h, w = y.shape
    ph, pw = max(0, side - h), max(0, side - w)
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), value=0.0)
        y = F.pad(y, (0, pw, 0, ph), value=IGNORE)
    return x, y


def train_item(x: torch.Tensor, y: torch.Tensor, crop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """DeepLab's training augmentation (module docstring), drawn from torch's global generator."""
    s = SCALES[int(torch.randint(len(SCALES), (1,)))]
    h, w = y.shape
    size = (max(1, int(h * s + 0.5)), max(1, int(w * s + 0.5)))
    x = F.interpolate(x[None], size=size, mode="bilinear", align_corners=False)[0]
    y = F.interpolate(y[None, None].float(), size=size, mode="nearest")[0, 0].long()
    x, y = pad_to(x, y, crop)
    h, w = y.shape
    top = int(torch.randint(h - crop + 1, (1,)))
    left = int(torch.randint(w - crop + 1, (1,)))
    x, y = x[:, top : top + crop, left : left + crop], y[top : top + crop, left : left + crop]
    if float(torch.rand(1)) < 0.5:
        x, y = x.flip(-1), y.flip(-1)
    return x.contiguous(), y.contiguous()


class VOCSegmentation(Dataset):
    """One split: ``train`` items are augmented crops (a new draw at every read), ``val`` items whole images padded
    to ``crop`` x ``crop``; ``classes`` the 21 class names."""

    classes = CLASSES

    def __init__(self, root: str | Path, split: str = "train", crop: int = CROP, augment: bool | None = None):
        self.root, self.split, self.crop = Path(root), split, crop
        self.ids = voc_ids(root, split)
        self.augment = split == "train" if augment is None else augment

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = read_pair(self.root, self.ids[i])
        if self.augment:
            return train_item(x, y, self.crop)
        return pad_to(x, y, self.crop)
