"""The ISBI 2012 EM membrane segmentation set (Arganda-Carreras et al. 2015), as shipped in
``<shared data>/isbi2012-em/``:

    train/image/{0..29}.png   512x512 8-bit grayscale serial-section TEM images
    train/label/{0..29}.png   masks: 255 = cell interior, 0 = membrane
    test/{0..29}.png          30 images without labels (not used: no ground truth)

Only the 30 labelled images can be scored, so lowbit holds out a fixed split: images 0-19 train, 20-29 test
(consecutive sections: the test sections are a different part of the stack, not interleaved neighbours).
Targets: class 1 = membrane (the foreground of interest, scored by Dice), class 0 = cell interior. Objects
for the detection F1 are the cells: connected components of the interior (4-connectivity).

``downsample`` (1, 2, 4, ...) averages f x f pixel blocks of the image and takes the majority label of
each block (membrane where at least half of the block is membrane), for CPU-scale runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import TensorDataset

N_LABELLED = 30
TRAIN_IDS = tuple(range(20))
TEST_IDS = tuple(range(20, 30))
SPLITS = {"train": TRAIN_IDS, "test": TEST_IDS, "all": tuple(range(N_LABELLED))}


def default_root() -> Path:
    """``<shared data>/isbi2012-em`` (``LOWBIT_DATA`` or ``<repo>/../shared/data``); a clear error if absent."""
    from .paths import require_shared

    return require_shared("isbi2012-em")


def _read_gray(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"ISBI 2012: {str(path)!r} does not exist")
    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.uint8)


def _downsample(img: np.ndarray, mem: np.ndarray, f: int) -> tuple[np.ndarray, np.ndarray]:
    if f == 1:
        return img.astype(np.float32), mem
    h, w = img.shape
    if h % f or w % f:
        raise ValueError(f"ISBI 2012: downsample={f} does not divide the image size {h}x{w}")
    img = img.reshape(h // f, f, w // f, f).astype(np.float32).mean(axis=(1, 3))
    mem = (mem.reshape(h // f, f, w // f, f).mean(axis=(1, 3)) >= 0.5).astype(np.uint8)
    return img, mem


@dataclass
class SegmentationImages:
    """Whole images: ``images`` (N, 1, H, W) float in [0, 1], ``masks`` (N, H, W) int64 in {0, 1}
    (1 = foreground), ``ids`` the file ids."""

    images: torch.Tensor
    masks: torch.Tensor
    ids: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.ids)


def load_isbi(root: str | Path | None = None, split: str = "train", downsample: int = 1) -> SegmentationImages:
    """Load a split ("train": ids 0-19, "test": 20-29, "all") of the labelled ISBI 2012 images."""
    if split not in SPLITS:
        raise ValueError(f"ISBI 2012: split={split!r} is not accepted; expected one of {tuple(SPLITS)}")
    if not isinstance(downsample, int) or downsample < 1:
        raise ValueError(f"ISBI 2012: downsample={downsample!r} is not accepted; expected a whole number >= 1")
    root = Path(root) if root is not None else default_root()
    imgs, masks = [], []
    for i in SPLITS[split]:
        img = _read_gray(root / "train" / "image" / f"{i}.png")
        lab = _read_gray(root / "train" / "label" / f"{i}.png")
        if img.shape != lab.shape:
            raise ValueError(f"ISBI 2012: image {i} is {img.shape} but its label is {lab.shape}")
        img, mem = _downsample(img, (lab < 128).astype(np.uint8), downsample)  # label 0 = membrane
        imgs.append(img / 255.0)
        masks.append(mem)
    return SegmentationImages(
        torch.from_numpy(np.stack(imgs)).float().unsqueeze(1),
        torch.from_numpy(np.stack(masks)).long(),
        tuple(SPLITS[split]),
    )


def random_tiles(data: SegmentationImages, tile: int, per_image: int, seed: int = 0) -> TensorDataset:
    """A fixed, seeded set of ``per_image`` random ``tile`` x ``tile`` crops of every image, each with a random
    flip/rotation (one of the 8 symmetries of the square). Fixed once, so every epoch and a resumed run see the
    same tiles. Items: (image (1, t, t) float, mask (t, t) int64)."""
    n, _, h, w = data.images.shape
    if not isinstance(tile, int) or not 1 <= tile <= min(h, w):
        raise ValueError(f"random_tiles: tile={tile!r} is not accepted; expected a whole number in 1..{min(h, w)}")
    if not isinstance(per_image, int) or per_image < 1:
        raise ValueError(f"random_tiles: per_image={per_image!r} is not accepted; expected a whole number >= 1")
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for i in range(n):
        for _ in range(per_image):
            r = int(torch.randint(0, h - tile + 1, (1,), generator=g))
            c = int(torch.randint(0, w - tile + 1, (1,), generator=g))
            k, flip = int(torch.randint(0, 4, (1,), generator=g)), bool(torch.randint(0, 2, (1,), generator=g))
            x = data.images[i, :, r : r + tile, c : c + tile]
            y = data.masks[i, r : r + tile, c : c + tile]
            if flip:
                x, y = x.flip(-1), y.flip(-1)
            xs.append(torch.rot90(x, k, (-2, -1)))
            ys.append(torch.rot90(y, k, (-2, -1)))
    return TensorDataset(torch.stack(xs).contiguous(), torch.stack(ys).contiguous())
