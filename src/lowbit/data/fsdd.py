"""Free Spoken Digit Dataset (FSDD) as a connected-digit recognition task for CTC.

FSDD holds isolated digits: ``recordings/<digit>_<speaker>_<index>.wav`` (8 kHz mono, 5 speakers x 10 digits
x 50 takes). An utterance here is 1-7 digits of ONE speaker, each a random take of that digit, trimmed of
leading/trailing silence (librosa ``trim``, 30 dB) and joined with 50-250 ms of near-silence (Gaussian noise,
std 1e-4), everything drawn from ``numpy.random.default_rng(seed)``: the same seed gives the same utterances.
The transcript is the digit words ("three one four"); CTC targets are word tokens, ``blank = 0`` and
``zero..nine = 1..10`` (a small vocabulary that trains in a few CPU minutes; characters would need a longer run).

Speaker-independent split (default): train on george, lucas, nicolas, yweweler; test on jackson.

Training-set augmentation (``Augment``; off by default, never applied to the test set), drawn per utterance from
``numpy.random.default_rng(seed + index)``, so a set is the same in every process and a resumed run sees the same
items: speed perturbation (resampling by a factor in [1 − speed, 1 + speed]: tempo and pitch together, Ko et al.
2015), additive Gaussian noise (std up to ``noise`` times the utterance's peak), and SpecAugment-style masks
(Park et al. 2019) fixed once per item: ``mask`` frequency bands of up to 4 bins and ``mask`` time spans of up to
8 frames set to 0 in the normalised features before the context window.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..extras import require
from .features import FeatureConfig, utterance_features
from .paths import require_shared

SAMPLE_RATE = 8000
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
VOCAB = ("<blank>", *DIGIT_WORDS)  # token id = index; blank = 0
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "yweweler")
TEST_SPEAKERS = ("jackson",)
TRAIN_SPEAKERS = tuple(s for s in SPEAKERS if s not in TEST_SPEAKERS)
_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")


def default_root() -> Path:
    """``<LOWBIT_DATA>/fsdd/recordings`` (a clear error when absent)."""
    return require_shared("fsdd/recordings")


def index_recordings(root: str | Path) -> dict[tuple[str, int], list[Path]]:
    """{(speaker, digit): sorted paths} of every ``<digit>_<speaker>_<index>.wav`` under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"FSDD recordings folder {str(root)!r} does not exist")
    out: dict[tuple[str, int], list[tuple[int, Path]]] = {}
    for p in root.iterdir():
        m = _NAME.match(p.name)
        if m:
            out.setdefault((m.group(2), int(m.group(1))), []).append((int(m.group(3)), p))
    if not out:
        raise FileNotFoundError(f"no '<digit>_<speaker>_<index>.wav' files in {str(root)!r}")
    return {k: [p for _, p in sorted(v)] for k, v in out.items()}


@lru_cache(maxsize=4096)
def _load(path: str) -> np.ndarray:
    librosa = require("librosa", "FSDD audio loading")
    sf = require("soundfile", "FSDD audio loading")

    audio, sr = sf.read(path, dtype="float32", always_2d=True)
    if sr != SAMPLE_RATE:
        raise ValueError(f"{path}: sample rate {sr} Hz, expected {SAMPLE_RATE} Hz (FSDD)")
    audio = audio.mean(1)
    trimmed, _ = librosa.effects.trim(audio, top_db=30)
    return trimmed if len(trimmed) else audio


def encode(words: Sequence[str]) -> torch.Tensor:
    """Digit words -> token ids (1..10)."""
    bad = [w for w in words if w not in DIGIT_WORDS]
    if bad:
        raise ValueError(f"encode: {bad} are not digit words; accepted: {DIGIT_WORDS}")
    return torch.tensor([DIGIT_WORDS.index(w) + 1 for w in words], dtype=torch.long)


def decode(tokens: Sequence[int]) -> str:
    """Token ids (no blanks) -> transcript text."""
    return " ".join(VOCAB[int(t)] for t in tokens if int(t) != 0)


@dataclass
class Utterance:
    speaker: str
    digits: list[int]
    files: list[str]
    text: str


def make_utterances(
    index: dict[tuple[str, int], list[Path]],
    speakers: Sequence[str],
    n: int,
    seed: int,
    min_digits: int = 1,
    max_digits: int = 7,
) -> list[Utterance]:
    """Draw ``n`` utterance recipes (speaker, digits, takes) deterministically from ``seed``."""
    if not 1 <= min_digits <= max_digits:
        raise ValueError(f"digits range {min_digits}..{max_digits} is not accepted; expected 1 <= min <= max")
    have = sorted({s for s, _ in index})
    missing = [s for s in speakers if s not in have]
    if missing or not speakers:
        raise ValueError(f"speakers {list(speakers)} not all in the recordings; available: {have}")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        spk = speakers[int(rng.integers(len(speakers)))]
        digits = [int(d) for d in rng.integers(0, 10, size=int(rng.integers(min_digits, max_digits + 1)))]
        files = []
        for d in digits:
            takes = index.get((spk, d))
            if not takes:
                raise ValueError(f"speaker {spk!r} has no recording of digit {d}")
            files.append(str(takes[int(rng.integers(len(takes)))]))
        out.append(Utterance(spk, digits, files, " ".join(DIGIT_WORDS[d] for d in digits)))
    return out


def synthesize(utt: Utterance, seed: int) -> np.ndarray:
    """The waveform of one utterance: takes joined by 50-250 ms of near-silence (also at both ends)."""
    rng = np.random.default_rng(seed)

    def gap() -> np.ndarray:
        return (rng.standard_normal(int(rng.integers(400, 2001))) * 1e-4).astype(np.float32)

    parts = [gap()]
    for f in utt.files:
        parts += [_load(f), gap()]
    return np.concatenate(parts)


@dataclass(frozen=True)
class Augment:
    speed: float = 0.0  # max relative speed change (0: none)
    noise: float = 0.0  # max noise std relative to the utterance's peak amplitude
    mask: int = 0  # SpecAugment masks: this many frequency bands and this many time spans

    def __post_init__(self):
        if not 0 <= self.speed < 0.5 or self.noise < 0 or self.mask < 0:
            raise ValueError(f"Augment {self} is not accepted: 0 <= speed < 0.5, noise >= 0, mask >= 0")

    @property
    def active(self) -> bool:
        return bool(self.speed or self.noise or self.mask)


def augmented_features(audio: np.ndarray, features: FeatureConfig, aug: Augment, seed: int) -> torch.Tensor:
    """The network input of one training utterance under ``aug`` (see the module docstring)."""
    from .features import add_context, frames, normalise

    rng = np.random.default_rng(seed)
    if aug.speed:
        f = float(rng.uniform(1 - aug.speed, 1 + aug.speed))
        audio = np.interp(np.arange(0, len(audio) - 1, f), np.arange(len(audio)), audio).astype(np.float32)
    if aug.noise:
        std = float(rng.uniform(0, aug.noise)) * float(np.abs(audio).max())
        audio = (audio + rng.standard_normal(len(audio)) * std).astype(np.float32)
    x = normalise(torch.from_numpy(frames(audio, SAMPLE_RATE, features)))
    t, d = x.shape
    for _ in range(aug.mask):
        w = int(rng.integers(0, 5))
        s = int(rng.integers(0, max(1, d - w)))
        x[:, s : s + w] = 0
        w = int(rng.integers(0, max(1, min(9, t // 8))))
        s = int(rng.integers(0, max(1, t - w)))
        x[s : s + w] = 0
    return add_context(x, features.context)


class ConnectedDigits(Dataset):
    """Items ``(features (T, D) float32, targets (L,) long)``; ``texts[i]`` is the reference transcript."""

    def __init__(
        self, utterances: list[Utterance], features: FeatureConfig, seed: int = 0, augment: Augment | None = None
    ):
        self.utterances, self.features = utterances, features
        self.texts = [u.text for u in utterances]
        self.items = []
        for i, u in enumerate(utterances):
            audio = synthesize(u, seed * 1_000_003 + i)
            if augment is not None and augment.active:
                x = augmented_features(audio, features, augment, seed * 1_000_003 + i + 17)
            else:
                x = utterance_features(audio, SAMPLE_RATE, features)
            self.items.append((x, encode(u.text.split())))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


def connected_digits(
    split: str,
    n: int,
    features: FeatureConfig,
    seed: int = 0,
    root: str | Path | None = None,
    speakers: Sequence[str] | None = None,
    min_digits: int = 1,
    max_digits: int = 7,
    augment: Augment | None = None,
) -> ConnectedDigits:
    """The train or test connected-digit set: ``n`` utterances of the split's speakers, fixed by ``seed``
    (``augment``: training sets only)."""
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r} is not accepted; expected 'train' or 'test'")
    if speakers is None:
        speakers = TRAIN_SPEAKERS if split == "train" else TEST_SPEAKERS
    index = index_recordings(root if root is not None else default_root())
    salt = 0 if split == "train" else 7919  # train and test draw different recipes from one seed
    utts = make_utterances(index, tuple(speakers), n, seed + salt, min_digits, max_digits)
    if augment is not None and augment.active and split != "train":
        raise ValueError(f"augment={augment} is not accepted for the {split!r} split; augment training sets only")
    return ConnectedDigits(utts, features, seed + salt, augment)
