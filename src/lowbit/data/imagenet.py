"""ILSVRC-2012 (ImageNet) in its usual folder layout, read image by image (1.28 M JPEGs do not fit in memory):

    <root>/train/<wnid>/*.JPEG      1,000 class folders (n01440764 ...), ~1.28 M images
    <root>/val/<wnid>/*.JPEG        the 50,000 validation images sorted into the same class folders (the layout
                                    PyTorch's ImageNet example and torchvision's ImageFolder read)

The class index is the rank of the folder name among the sorted training folders. The standard preprocessing
(He et al. 2016 / PyTorch's ImageNet example, the one torchvision's pretrained weights use):
- train: random-resized-crop to 224 (area 8-100 %, aspect 3/4-4/3, ten tries then a center crop; bilinear), then a
  horizontal flip with probability 1/2, drawn from torch's global generator (``fit`` seeds it), in the same order
  of draws as torchvision's ``RandomResizedCrop`` + ``RandomHorizontalFlip``, so a seeded run matches theirs;
- val: resize the shorter side to 256 (bilinear), center crop 224;
- both: to [0, 1], then the ImageNet channel mean / std.
``__getitems__`` decodes a batch on a thread pool (PIL releases the GIL while decoding), so the training loop's
batches (``lowbit.train.loop.epoch_batches``) are read in parallel without worker processes.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CROP, RESIZE = 224, 256
SCALE, RATIO = (0.08, 1.0), (3.0 / 4.0, 4.0 / 3.0)
EXTENSIONS = (".jpeg", ".jpg", ".png")


def class_folders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def image_files(
    root: str | Path, split: str, classes: list[str] | None = None
) -> tuple[list[Path], list[int], list[str]]:
    """(paths, labels, class names) of ``root/split/<class>/*``; the classes are the training folders."""
    folder = Path(root) / split
    if not folder.is_dir():
        raise FileNotFoundError(
            f"ILSVRC-2012: no folder {str(folder)!r}; expected {split}/<wnid>/*.JPEG under the root"
        )
    classes = classes if classes is not None else class_folders(folder)
    paths, labels = [], []
    for k, c in enumerate(classes):
        sub = folder / c
        if sub.is_dir():
            files = sorted(p for p in sub.iterdir() if p.suffix.lower() in EXTENSIONS)
            paths += files
            labels += [k] * len(files)
    if not paths:
        raise FileNotFoundError(
            f"ILSVRC-2012: no images in {str(folder)!r}/<wnid>/ (the validation images must be sorted into class "
            "folders, e.g. with the valprep.sh script of PyTorch's ImageNet example)"
        )
    return paths, labels, classes


def rrc_params(width: int, height: int) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random-resized crop: torchvision's ``RandomResizedCrop.get_params`` restated, with the
    same draws from torch's global generator in the same order."""
    area = height * width
    log_ratio = torch.log(torch.tensor(RATIO))
    for _ in range(10):
        target = area * torch.empty(1).uniform_(SCALE[0], SCALE[1]).item()
        aspect = torch.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1])).item()
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, size=(1,)).item())
            left = int(torch.randint(0, width - w + 1, size=(1,)).item())
            return top, left, h, w
    ratio = width / height  # fallback: the central crop at the nearest accepted aspect
    if ratio < min(RATIO):
        w, h = width, int(round(width / min(RATIO)))
    elif ratio > max(RATIO):
        h, w = height, int(round(height * max(RATIO)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def to_normalized(img: Image.Image) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)


def train_transform(img: Image.Image) -> torch.Tensor:
    top, left, h, w = rrc_params(*img.size)
    img = img.crop((left, top, left + w, top + h)).resize((CROP, CROP), Image.BILINEAR)
    if torch.rand(1).item() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return to_normalized(img)


def val_transform(img: Image.Image) -> torch.Tensor:
    w, h = img.size
    if w <= h:  # the shorter side to RESIZE, the other in proportion (torchvision's Resize(int) rule)
        size = (RESIZE, int(RESIZE * h / w))
    else:
        size = (int(RESIZE * w / h), RESIZE)
    img = img.resize(size, Image.BILINEAR)
    w, h = img.size
    top, left = int(round((h - CROP) / 2.0)), int(round((w - CROP) / 2.0))
    return to_normalized(img.crop((left, top, left + CROP, top + CROP)))


class ImageNetFolder(Dataset):
    """One split; items ``(image (3, 224, 224) normalised, class index)``; ``targets`` holds every label (no
    decoding needed to read them)."""

    def __init__(self, root: str | Path, split: str, classes: list[str] | None = None, threads: int = 0):
        self.paths, labels, self.classes = image_files(root, split, classes)
        self.targets = torch.tensor(labels, dtype=torch.int64)
        self.transform = train_transform if split == "train" else val_transform
        self.threads = threads or min(16, os.cpu_count() or 1)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.paths[i]) as im:
            return self.transform(im.convert("RGB")), int(self.targets[i])

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, int]]:
        """A batch decoded on threads. The random crops are drawn first, in index order, from torch's global
        generator (as a one-by-one read would), so the batch does not depend on the number of threads."""
        if self.transform is val_transform or self.threads <= 1:
            with ThreadPoolExecutor(self.threads) as pool:
                return list(pool.map(self.__getitem__, indices))
        images = []
        for i in indices:  # sizes need the header only; the crop and flip draws stay in order
            with Image.open(self.paths[i]) as im:
                images.append((i, rrc_params(*im.size), torch.rand(1).item() < 0.5))

        def load(item):
            i, (top, left, h, w), flip = item
            with Image.open(self.paths[i]) as im:
                img = im.convert("RGB").crop((left, top, left + w, top + h)).resize((CROP, CROP), Image.BILINEAR)
            if flip:
                img = img.transpose(Image.FLIP_LEFT_RIGHT)
            return to_normalized(img), int(self.targets[i])

        with ThreadPoolExecutor(self.threads) as pool:
            return list(pool.map(load, images))
