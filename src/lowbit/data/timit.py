"""TIMIT folder loader: audio in RIFF WAV or NIST SPHERE, ``.phn``/``.wrd``/``.txt`` labels, 61 -> 39 folding.

Layout: any folder tree holding ``<utt>.wav`` next to ``<utt>.phn`` (and optionally ``.wrd``, ``.txt``); the
speaker is the parent folder name (``dr1-fvmh0`` in the NLTK sample, ``DR1/FVMH0`` in the LDC release).

SPHERE (the LDC distribution): a text header ``NIST_1A\\n<header bytes>\\n`` then ``name -type value`` lines up
to ``end_head``; uncompressed PCM follows at byte <header bytes>. ``sample_byte_format`` 01 = little endian,
10 = big endian. Shorten-compressed files are refused with a clear error.

Phone folding for PER (spec §7.3; Lee & Hon 1989, as in Kaldi's ``phones.60-48-39.map``): the 61 TIMIT phones
map to 39 classes; ``q`` (glottal stop) is deleted; closures, ``pau``, ``epi`` and ``h#`` become ``sil``. Our
scoring recipe [R, stated]: the utterance-boundary ``h#`` is removed from references (and never predicted,
because training targets leave it out: 60 training labels + blank); everything else is folded and scored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..extras import require

PHONES61 = (
    "aa ae ah ao aw ax ax-h axr ay b bcl ch d dcl dh dx eh el em en eng epi er ey f g gcl h# hh hv ih ix iy jh k "
    "kcl l m n ng nx ow oy p pau pcl q r s sh t tcl th uh uw ux v w y z zh"
).split()
_FOLD = {
    "ao": "aa",
    "ax": "ah",
    "ax-h": "ah",
    "axr": "er",
    "hv": "hh",
    "ix": "ih",
    "el": "l",
    "em": "m",
    "en": "n",
    "nx": "n",
    "eng": "ng",
    "zh": "sh",
    "ux": "uw",
    **{s: "sil" for s in ("pcl", "tcl", "kcl", "bcl", "dcl", "gcl", "h#", "pau", "epi")},
    "q": None,  # deleted
}
FOLD61_39: dict[str, str | None] = {p: _FOLD.get(p, p) for p in PHONES61}
PHONES39 = tuple(sorted({v for v in FOLD61_39.values() if v is not None}))
TRAIN_PHONES = tuple(p for p in PHONES61 if p != "h#")  # 60 CTC labels, ids 1..60 (0 = blank)


def fold39(phones: list[str]) -> list[str]:
    """Map 61-set phones to the 39-set; ``q`` is deleted; unknown phones raise."""
    bad = [p for p in phones if p not in FOLD61_39]
    if bad:
        raise ValueError(f"fold39: {sorted(set(bad))} are not TIMIT phones; accepted: the 61-phone set")
    return [f for f in (FOLD61_39[p] for p in phones) if f is not None]


def read_sphere(path: str | Path) -> tuple[np.ndarray, int]:
    """(float32 samples in [-1, 1), sample rate) of an uncompressed 16-bit NIST SPHERE file (first channel)."""
    data = Path(path).read_bytes()
    if not data.startswith(b"NIST_1A"):
        raise ValueError(f"{path}: not a NIST SPHERE file (no 'NIST_1A' magic)")
    lines = data[:1024].split(b"\n")
    try:
        hsize = int(lines[1].strip())
    except (IndexError, ValueError):
        raise ValueError(f"{path}: malformed SPHERE header size line {lines[1:2]!r}") from None
    fields: dict[str, str] = {}
    for line in data[:hsize].decode("ascii", "replace").split("\n")[2:]:
        if line.strip() == "end_head":
            break
        parts = line.split(None, 2)
        if len(parts) == 3:
            fields[parts[0]] = parts[2].strip()
    coding = fields.get("sample_coding", "pcm")
    if coding != "pcm":
        raise ValueError(f"{path}: SPHERE sample_coding {coding!r} is not supported; expected uncompressed 'pcm'")
    width = int(fields.get("sample_n_bytes", "2"))
    if width != 2:
        raise ValueError(f"{path}: sample_n_bytes={width} is not supported; expected 2 (16-bit PCM)")
    order = fields.get("sample_byte_format", "01")
    if order not in ("01", "10"):
        raise ValueError(f"{path}: sample_byte_format {order!r} is not accepted; expected '01' or '10'")
    channels = int(fields.get("channel_count", "1"))
    sr = int(fields["sample_rate"]) if "sample_rate" in fields else 16000
    pcm = np.frombuffer(data[hsize:], dtype="<i2" if order == "01" else ">i2")
    if "sample_count" in fields:
        pcm = pcm[: int(fields["sample_count"]) * channels]
    pcm = pcm[: len(pcm) // channels * channels].reshape(-1, channels)[:, 0]
    return pcm.astype(np.float32) / 32768.0, sr


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """(mono float32 samples, rate) from RIFF WAV (soundfile) or NIST SPHERE (our parser), chosen by magic bytes."""
    with open(path, "rb") as f:
        magic = f.read(7)
    if magic == b"NIST_1A":
        return read_sphere(path)
    sf = require("soundfile", f"reading {str(path)!r}")

    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return audio.mean(1), sr


def read_segments(path: str | Path) -> list[tuple[int, int, str]]:
    """``start end label`` lines of a ``.phn`` / ``.wrd`` file."""
    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3:
            raise ValueError(f"{path}:{n}: expected 'start end label', got {line!r}")
        out.append((int(parts[0]), int(parts[1]), parts[2]))
    return out


def read_text(path: str | Path) -> str:
    """The sentence of a ``.txt`` file (its leading 'start end' sample numbers dropped)."""
    return re.sub(r"^\s*\d+\s+\d+\s+", "", Path(path).read_text().strip())


@dataclass
class TimitUtterance:
    id: str  # "<speaker>/<utt>"
    speaker: str
    wav: Path
    phones: list[str]  # 61-set, as in the .phn file (h# included)
    words: list[str]
    text: str


def scan(root: str | Path) -> list[TimitUtterance]:
    """Every ``*.wav`` (any case) with a ``.phn`` beside it under ``root``, sorted by id."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"TIMIT folder {str(root)!r} does not exist")
    out = []
    for wav in sorted(p for p in root.rglob("*") if p.suffix.lower() == ".wav"):
        side = {s: wav.with_suffix(s) for s in (".phn", ".wrd", ".txt")}
        side |= {s: wav.with_suffix(s.upper()) for s, p in side.items() if not p.exists()}
        if not side[".phn"].exists():
            continue
        phones = [lab for _, _, lab in read_segments(side[".phn"])]
        words = [lab for _, _, lab in read_segments(side[".wrd"])] if side[".wrd"].exists() else []
        text = read_text(side[".txt"]) if side[".txt"].exists() else " ".join(words)
        spk = wav.parent.name
        out.append(TimitUtterance(f"{spk}/{wav.stem}", spk, wav, phones, words, text))
    if not out:
        raise FileNotFoundError(f"no '<utt>.wav' with a '.phn' beside it under {str(root)!r}")
    return out


def phone_targets(phones: list[str]) -> list[int]:
    """CTC targets over ``TRAIN_PHONES`` (ids 1..60), ``h#`` left out."""
    bad = [p for p in phones if p not in PHONES61]
    if bad:
        raise ValueError(f"phone_targets: {sorted(set(bad))} are not TIMIT phones")
    return [TRAIN_PHONES.index(p) + 1 for p in phones if p != "h#"]


def score_phones(ids: list[int]) -> list[str]:
    """Decoded ids (1..60) -> folded 39-set phones for PER."""
    return fold39([TRAIN_PHONES[i - 1] for i in ids])


def reference_phones(phones: list[str]) -> list[str]:
    """A ``.phn`` sequence as scored: ``h#`` removed, then folded to the 39-set."""
    return fold39([p for p in phones if p != "h#"])
