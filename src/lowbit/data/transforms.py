"""Image sets as tensors, and the per-batch transforms the classification study uses.

An ``ImageSet`` holds ``images`` as uint8 (N, C, H, W) and ``labels`` as int64 (N,), plus the class names.
Training reads float tensors: ``to_tensor_dataset`` scales to [0, 1] and normalises per channel,
``x' = (x / 255 - mean_c) / std_c``, with mean/std measured on the training images (``channel_stats``).
Augmentation (``augment``) is applied per batch on tensors: random crop with zero padding and a random
horizontal flip, drawn from torch's global generator (which ``fit`` seeds and checkpoints, so a resumed
run draws the same crops).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import TensorDataset


@dataclass
class ImageSet:
    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor  # int64 (N,)
    classes: tuple[str, ...]

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"ImageSet.images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"ImageSet.labels shape {tuple(self.labels.shape)} does not match {self.images.shape[0]} images"
            )
        self.labels = self.labels.long()

    def __len__(self) -> int:
        return int(self.labels.numel())


def _draw(data: ImageSet, n: int, seed: int, stratified: bool) -> torch.Tensor:
    """Sorted indices of ``n`` images drawn without replacement (stratified: round-robin over the classes)."""
    g = torch.Generator().manual_seed(seed)
    if not stratified:
        return torch.randperm(len(data), generator=g)[:n].sort().values
    k = len(data.classes)
    per = [torch.nonzero(data.labels == c).flatten() for c in range(k)]
    per = [p[torch.randperm(len(p), generator=g)] for p in per]
    # round-robin over classes so that every prefix is as balanced as the data allow
    take: list[int] = []
    i = 0
    while len(take) < n:
        for p in per:
            if i < len(p) and len(take) < n:
                take.append(int(p[i]))
        i += 1
    return torch.tensor(sorted(take))


def subset(data: ImageSet, n: int, seed: int = 0, stratified: bool = True) -> ImageSet:
    """``n`` images drawn without replacement (0 or n >= len: all); stratified keeps the classes balanced."""
    if n < 0:
        raise ValueError(f"subset size n={n} is not accepted; expected 0 (all) or a positive count")
    if n == 0 or n >= len(data):
        return data
    idx = _draw(data, n, seed, stratified)
    return ImageSet(data.images[idx], data.labels[idx], data.classes)


def holdout(data: ImageSet, n: int, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """(rest, held): ``n`` stratified images held out of ``data`` (a validation set) and every other image.

    The two never share an image; the draw depends only on ``seed`` and the data.
    """
    if not isinstance(n, int) or n < 1 or n >= len(data):
        raise ValueError(f"validation={n!r} is not accepted; expected a number of images from 1 to {len(data) - 1}")
    held = _draw(data, n, seed, stratified=True)
    keep = torch.ones(len(data), dtype=torch.bool)
    keep[held] = False
    rest = torch.nonzero(keep).flatten()
    return (
        ImageSet(data.images[rest], data.labels[rest], data.classes),
        ImageSet(data.images[held], data.labels[held], data.classes),
    )


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 (N, C, H, W) images scaled to [0, 1]."""
    x = images.float().div_(255)
    return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).clamp_min(1e-6).tolist()


def normalize(images: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 ``(x / 255 - mean_c) / std_c``."""
    c = images.shape[1]
    if len(mean) != c or len(std) != c:
        raise ValueError(f"normalize: {c} channels but mean={mean} std={std}")
    m = torch.tensor(mean).view(1, c, 1, 1)
    s = torch.tensor(std).view(1, c, 1, 1)
    return (images.float() / 255 - m) / s


def to_tensor_dataset(data: ImageSet, mean: list[float], std: list[float]) -> TensorDataset:
    return TensorDataset(normalize(data.images, mean, std), data.labels)


def augment(x: torch.Tensor, pad: int = 4, flip: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop of the zero-padded batch (shift in [-pad, pad] per image) and horizontal flip (p = 1/2).

    x: float (B, C, H, W), already normalised (padding with 0 = padding with the channel mean).
    """
    if pad < 0:
        raise ValueError(f"augment: pad={pad} is not accepted; expected >= 0")
    b, _, h, w = x.shape
    out = x
    if pad:
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        # offsets drawn on the CPU (the generator's device), then moved to the batch's device
        dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
        dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
        rows = (dy.view(b, 1) + torch.arange(h, device=x.device).view(1, h)).view(b, 1, h, 1)  # (B, 1, H, 1)
        cols = (dx.view(b, 1) + torch.arange(w, device=x.device).view(1, w)).view(b, 1, 1, w)  # (B, 1, 1, W)
        bi = torch.arange(b, device=x.device).view(b, 1, 1, 1)
        out = padded.permute(0, 2, 3, 1)[bi, rows, cols].squeeze(1).permute(0, 3, 1, 2)
    if flip:
        f = (torch.rand(b, generator=generator) < 0.5).to(x.device)
        out = torch.where(f.view(b, 1, 1, 1), out.flip(3), out)
    return out.contiguous()
