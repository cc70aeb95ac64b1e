"""Small data files in the real formats, written by tests into tmp_path and read back through the real loaders:
FSDD (WAV) and TIMIT (WAV/SPHERE + .phn/.wrd) speech folders, ISBI 2012 TIFF stacks, GlaS BMP folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from lowbit.data import fsdd


def write_fsdd(root, speakers=fsdd.SPEAKERS, takes=2, sr=8000):
    """Tiny FSDD: digit d is a 0.15 s tone at 300 + 100 d Hz (with quiet padding that trim removes)."""
    root.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(0.15 * sr)) / sr
    for s in speakers:
        for d in range(10):
            for k in range(takes):
                tone = 0.5 * np.sin(2 * np.pi * (300 + 100 * d) * t)
                sf.write(root / f"{d}_{s}_{k}.wav", np.concatenate([np.zeros(200), tone, np.zeros(200)]), sr)
    return root


def sphere_bytes(samples: np.ndarray, sr: int = 16000, order: str = "01", extra: str = "") -> bytes:
    """A NIST SPHERE file written by hand: 1024-byte header, then 16-bit PCM."""
    head = (
        f"NIST_1A\n   1024\nsample_count -i {len(samples)}\nsample_rate -i {sr}\nchannel_count -i 1\n"
        f"sample_n_bytes -i 2\nsample_byte_format -s2 {order}\n{extra}end_head\n"
    ).encode()
    pcm = samples.astype("<i2" if order == "01" else ">i2").tobytes()
    return head + b" " * (1024 - len(head)) + pcm


def write_timit(root, speakers=("dr1-fa", "dr1-mb", "dr8-fbcg1", "dr8-mbcg0"), sphere=False):
    rng = np.random.default_rng(0)
    for s in speakers:
        (root / s).mkdir(parents=True)
        for u in ("sa1", "si2"):
            pcm = (rng.standard_normal(4800) * 3000).astype(np.int16)
            if sphere:
                (root / s / f"{u}.wav").write_bytes(sphere_bytes(pcm))
            else:
                sf.write(root / s / f"{u}.wav", pcm, 16000, subtype="PCM_16")
            (root / s / f"{u}.phn").write_text(
                "0 800 h#\n800 1600 sh\n1600 2400 ix\n2400 3200 q\n3200 4000 bcl\n4000 4800 h#\n"
            )
            (root / s / f"{u}.wrd").write_text("800 2400 she\n")
            (root / s / f"{u}.txt").write_text("0 4800 She.\n")
    return root


def write_glas(root: Path, name: str, h: int, w: int, n_glands: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB").save(root / f"{name}.bmp")
    ids = np.zeros((h, w), dtype=np.uint8)
    for g in range(1, n_glands + 1):
        ids[2 * g : 2 * g + 2, 1 : w - 1] = g
    Image.fromarray(ids, "L").save(root / f"{name}_anno.bmp")
    return ids


def write_isbi(root: Path, side: int = 32, seed: int = 0) -> None:
    """30 labelled images in the shipped layout: train/image/<i>.png, train/label/<i>.png (0 = membrane)."""
    rng = np.random.default_rng(seed)
    (root / "train" / "image").mkdir(parents=True)
    (root / "train" / "label").mkdir(parents=True)
    for i in range(30):
        lab = np.full((side, side), 255, np.uint8)
        lab[:, (i % 7) + 3] = 0  # a vertical membrane
        lab[side // 2, :] = 0  # a horizontal membrane
        img = np.where(lab == 0, 40, 200).astype(np.uint8) + rng.integers(0, 10, (side, side), dtype=np.uint8)
        Image.fromarray(img, "L").save(root / "train" / "image" / f"{i}.png")
        Image.fromarray(lab, "L").save(root / "train" / "label" / f"{i}.png")


def write_imagenet(root: Path, classes=("n01440764", "n01443537"), per_class=2, seed=0) -> Path:
    """ILSVRC-2012 folders: train/<wnid>/<wnid>_<k>.JPEG and val/<wnid>/ILSVRC2012_val_<k>.JPEG, of various sizes."""
    rng = np.random.default_rng(seed)
    sizes = [(300, 260), (180, 400), (256, 256), (500, 333)]
    for split in ("train", "val"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for k in range(per_class):
                w, h = sizes[(k + len(c)) % len(sizes)]
                img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                name = f"{c}_{k}.JPEG" if split == "train" else f"ILSVRC2012_val_{k:08d}_{c}.JPEG"
                Image.fromarray(img, "RGB").save(root / split / c / name, quality=90)
    return root


def write_timit_corpus(root: Path) -> Path:
    """The LDC layout: TRAIN/DR1/FCJF0 (SA1, SI648), TEST/DR1/MDAB0 (a core-test speaker: SA1, SI1039, SX139) and
    TEST/DR2/MXYZ0 (not in the core test: SI1), upper-case names, NIST SPHERE audio."""
    rng = np.random.default_rng(0)
    layout = {
        "TRAIN/DR1/FCJF0": ("SA1", "SI648"),
        "TEST/DR1/MDAB0": ("SA1", "SI1039", "SX139"),
        "TEST/DR2/MXYZ0": ("SI1",),
    }
    for folder, utts in layout.items():
        (root / folder).mkdir(parents=True)
        for u in utts:
            pcm = (rng.standard_normal(4800) * 3000).astype(np.int16)
            (root / folder / f"{u}.WAV").write_bytes(sphere_bytes(pcm))
            (root / folder / f"{u}.PHN").write_text("0 800 h#\n800 1600 sh\n1600 2400 ix\n2400 4800 h#\n")
    return root


VOC_PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [0, 0, 0] * 251 + [224, 224, 192]


def write_voc(root: Path, ids=("2007_000032", "2007_000039", "2007_000063"), val=("2007_000063",)) -> Path:
    """A VOC2012 devkit folder: JPEGImages/<id>.jpg, SegmentationClass/<id>.png (palette mode, class ids 0-2 and
    255 borders), ImageSets/Segmentation/{train,val}.txt."""
    rng = np.random.default_rng(0)
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True)
    for k, i in enumerate(ids):
        h, w = 40 + 10 * k, 60 - 5 * k
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB").save(root / "JPEGImages" / f"{i}.jpg")
        m = np.zeros((h, w), np.uint8)
        m[5:20, 5:30] = 1 + k % 2
        m[4, 5:30] = 255  # an object border
        png = Image.fromarray(m, "P")
        png.putpalette(VOC_PALETTE)
        png.save(root / "SegmentationClass" / f"{i}.png")
    train = [i for i in ids if i not in val]
    (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(train) + "\n")
    (root / "ImageSets/Segmentation/val.txt").write_text("\n".join(val) + "\n")
    return root
