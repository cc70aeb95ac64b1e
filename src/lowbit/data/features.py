"""Speech features (spec §7.1): log-mel or MFCC frames, per-utterance normalisation, context windows.

    x_t      = log(mel_t + 1e-6)  (or the first ``n_mfcc`` MFCCs)            one frame per hop
    x̂_t      = (x_t - mean_t(x)) / (std_t(x) + 1e-5)                         per utterance, per coefficient
    input_t  = concat(x̂_{t-C}, ..., x̂_t, ..., x̂_{t+C})                      frames outside [0, T) are zeros

The network input dimension is ``n_features * (2C + 1)``. librosa computes the filterbank (the ``audio``
extra); nothing here is hand-rolled DSP.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..extras import require

KINDS = ("logmel", "mfcc")


@dataclass(frozen=True)
class FeatureConfig:
    kind: str = "logmel"  # "logmel" | "mfcc"
    n_features: int = 26  # mel bands (logmel) or cepstral coefficients (mfcc); Mozilla uses 26
    win_ms: float = 25.0
    hop_ms: float = 10.0
    context: int = 5  # C frames on each side (spec §7.1: 5, 7 or 9)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"FeatureConfig.kind={self.kind!r} is not accepted; expected one of {KINDS}")
        if self.n_features < 1 or self.context < 0 or self.win_ms <= 0 or self.hop_ms <= 0:
            raise ValueError(f"FeatureConfig {self} is not accepted: n_features >= 1, context >= 0, win/hop > 0")

    @property
    def input_dim(self) -> int:
        return self.n_features * (2 * self.context + 1)

    def to_dict(self) -> dict:
        return asdict(self)


def frames(audio: np.ndarray, sr: int, cfg: FeatureConfig) -> np.ndarray:
    """(T, n_features) float32 log-mel or MFCC frames of a mono signal."""
    librosa = require("librosa", "audio features")

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"frames: expected a mono 1-D signal, got shape {audio.shape}")
    win = max(1, round(sr * cfg.win_ms / 1000))
    hop = max(1, round(sr * cfg.hop_ms / 1000))
    n_fft = 1 << (win - 1).bit_length()
    n_mels = cfg.n_features if cfg.kind == "logmel" else max(cfg.n_features, 26)
    mel = librosa.feature.melspectrogram(
        y=audio, sr=sr, n_fft=n_fft, win_length=win, hop_length=hop, n_mels=n_mels, center=True
    )
    out = np.log(mel + 1e-6)
    if cfg.kind == "mfcc":
        out = librosa.feature.mfcc(S=out, n_mfcc=cfg.n_features)
    return np.ascontiguousarray(out.T, dtype=np.float32)


def normalise(x: torch.Tensor) -> torch.Tensor:
    """Per-utterance mean/variance normalisation over time of a (T, F) tensor."""
    if x.shape[0] == 0:
        return x
    mean = x.mean(0, keepdim=True)
    std = x.std(0, unbiased=False, keepdim=True)
    return (x - mean) / (std + 1e-5)


def add_context(x: torch.Tensor, context: int) -> torch.Tensor:
    """(T, F) -> (T, F * (2C + 1)): row t is concat(x_{t-C}, ..., x_{t+C}), zero-padded at the edges."""
    if context < 0:
        raise ValueError(f"add_context: context={context} is not accepted; expected >= 0")
    t, f = x.shape
    padded = torch.cat([x.new_zeros(context, f), x, x.new_zeros(context, f)])
    return torch.cat([padded[k : k + t] for k in range(2 * context + 1)], dim=1)


def utterance_features(audio: np.ndarray, sr: int, cfg: FeatureConfig) -> torch.Tensor:
    """frames -> per-utterance normalisation -> context window: the network input (T, cfg.input_dim)."""
    return add_context(normalise(torch.from_numpy(frames(audio, sr, cfg))), cfg.context)
