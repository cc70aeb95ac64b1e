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
