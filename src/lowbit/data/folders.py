"""Image folders ``root/<split>/<class>/*.jpg|*.png`` (decoded with Pillow), and the shared CIFAR-10 JPEGs.

``load_image_folder(root, split, size=None, channels=3)`` decodes every image of one split; the class names are
the sorted sub-folder names, shared by all splits (a class missing from a split keeps its index).

The shared archive ``<LOWBIT_DATA>/cifar10-jpeg.tar.gz`` (``cifar10-jpeg/{train,test}/<class>/*.jpg``) is
extracted once into ``<cache>/cifar10-jpeg`` (``LOWBIT_CACHE`` or ``~/.cache/lowbit``) after every member is
checked (regular files and folders only, relative paths inside ``cifar10-jpeg/``, no ``..``, no links), and
each split's decoded arrays are cached as ``<cache>/cifar10-jpeg-<split>.npz`` (uint8 images, int64 labels,
class names), so 60,000 JPEGs are decoded once. A cache file is written atomically (temp file + rename).
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image

from .paths import cache_dir, require_shared
from .transforms import ImageSet

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
CIFAR10_ARCHIVE = "cifar10-jpeg.tar.gz"
CIFAR10_TOP = "cifar10-jpeg"


def folder_classes(root: str | Path) -> tuple[str, ...]:
    """Sorted class names: every sub-folder of any split folder of ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder root {str(root)!r} does not exist")
    names = {c.name for s in root.iterdir() if s.is_dir() for c in s.iterdir() if c.is_dir()}
    if not names:
        raise ValueError(f"image folder root {str(root)!r} has no <split>/<class>/ folders")
    return tuple(sorted(names))


def load_image_folder(root: str | Path, split: str, size: int | None = None, channels: int = 3) -> ImageSet:
    """Decode ``root/split/<class>/*`` into uint8 (N, channels, H, W); ``size`` resizes to size x size."""
    if channels not in (1, 3):
        raise ValueError(f"channels={channels} is not accepted; expected 1 (grayscale) or 3 (RGB)")
    root = Path(root)
    classes = folder_classes(root)
    sdir = root / split
    if not sdir.is_dir():
        raise FileNotFoundError(f"image folder split {str(sdir)!r} does not exist")
    imgs, labels = [], []
    shape = None
    for k, c in enumerate(classes):
        cdir = sdir / c
        if not cdir.is_dir():
            continue
        for f in sorted(cdir.iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES or not f.is_file():
                continue
            with Image.open(f) as im:
                im = im.convert("L" if channels == 1 else "RGB")
                if size is not None:
                    im = im.resize((size, size), Image.BILINEAR)
                a = np.asarray(im, dtype=np.uint8)
            a = a[None] if channels == 1 else a.transpose(2, 0, 1)
            if shape is None:
                shape = a.shape
            elif a.shape != shape:
                raise ValueError(f"{str(f)!r} is {a.shape[1:]} but earlier images are {shape[1:]}; pass size=")
            imgs.append(a)
            labels.append(k)
    if not imgs:
        raise ValueError(f"no {'/'.join(IMAGE_SUFFIXES)} images under {str(sdir)!r}")
    return ImageSet(torch.from_numpy(np.stack(imgs)), torch.tensor(labels, dtype=torch.int64), classes)


def _check_member(m: tarfile.TarInfo, top: str) -> None:
    p = PurePosixPath(m.name)
    if p.is_absolute() or ".." in p.parts or not p.parts or p.parts[0] != top:
        raise ValueError(f"archive member {m.name!r} is outside {top}/; refusing to extract")
    if not (m.isfile() or m.isdir()):
        raise ValueError(f"archive member {m.name!r} is not a regular file or folder; refusing to extract")


def safe_extract(archive: str | Path, dest: str | Path, top: str) -> Path:
    """Extract ``archive`` into ``dest`` once (every member checked first); returns ``dest/top``.

    Extraction goes to a temporary sibling folder renamed into place at the end, so an interrupted
    extraction never looks finished.
    """
    dest = Path(dest)
    final = dest / top
    if final.is_dir():
        return final
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / f".{top}.partial-{os.getpid()}"
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for m in members:
            _check_member(m, top)
        tmp.mkdir()
        for m in members:
            target = tmp / m.name
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(m)
            assert src is not None  # regular files always have data
            target.write_bytes(src.read())
    try:
        (tmp / top).rename(final)
    except OSError:  # another process finished first
        if not final.is_dir():
            raise
    for p in sorted(tmp.rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    tmp.rmdir()
    return final


def _save_npz(path: Path, s: ImageSet) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, images=s.images.numpy(), labels=s.labels.numpy(), classes=np.array(s.classes))
    os.replace(tmp, path)


def _load_npz(path: Path) -> ImageSet:
    with np.load(path, allow_pickle=False) as z:
        return ImageSet(
            torch.from_numpy(z["images"]), torch.from_numpy(z["labels"]), tuple(str(c) for c in z["classes"])
        )


def load_cifar10_jpeg(split: str, archive: str | Path | None = None, cache: str | Path | None = None) -> ImageSet:
    """CIFAR-10 from the shared JPEG archive (extracted and decoded once, then read from the cache)."""
    if split not in ("train", "test"):
        raise ValueError(f"CIFAR-10 split {split!r} is not accepted; expected 'train' or 'test'")
    cache = Path(cache) if cache is not None else cache_dir()
    npz = cache / f"{CIFAR10_TOP}-{split}.npz"
    if npz.is_file():
        return _load_npz(npz)
    archive = Path(archive) if archive is not None else require_shared(CIFAR10_ARCHIVE)
    root = safe_extract(archive, cache, CIFAR10_TOP)
    s = load_image_folder(root, split, channels=3)
    _save_npz(npz, s)
    return s
