"""The synthetic two-spiral data set of Boo et al. §3.1 (Eqs. 5-7), spec §8.

With r = 0.1 and i = 0..4, each label has two half circles per i (upper: centre (0,0); lower: centre (r,0)):
    label 0: upper radius (2i+1)r, lower radius (2i+2)r;   label 1: upper (2i+2)r, lower (2i+1)r
100 points per half circle at linearly increasing angle -> 1,000 core samples per label. Nine noisy copies
s + ε, ε ~ N(0, σ²I) per core sample -> 10,000 training samples per label, 20,000 in all.
Noise (spec §8 ambiguity): σ = r/3 by default ("std"); "literal" reads N(0, (1/3)·r·I) as a covariance,
σ = sqrt(r/3) ≈ 0.18, which washes the spirals out. Every report says which was used.
The correct-answer labels come from the band rule: ρ = |(x, y)| for y > 0, |(x - r, y)| for y <= 0,
k = round(ρ/r) >= 1; upper half: odd k -> 0, even k -> 1; lower half: even k -> 0, odd k -> 1; ρ > 10.5r is
outside the spirals.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import TensorDataset

R = 0.1
TURNS = 5  # i = 0..4
POINTS_PER_HALF = 100
COPIES = 9
NOISES = ("std", "literal")


def core_samples(r: float = R) -> tuple[torch.Tensor, torch.Tensor]:
    """(2000, 2) points and (2000,) labels; each label's points trace one continuous spiral, in order."""
    up = torch.linspace(0.0, math.pi, POINTS_PER_HALF, dtype=torch.float64)
    low = torch.linspace(math.pi, 2 * math.pi, POINTS_PER_HALF, dtype=torch.float64)
    pts, labels = [], []
    for label in (0, 1):
        for i in range(TURNS):
            r_up = (2 * i + 1) * r if label == 0 else (2 * i + 2) * r
            r_low = (2 * i + 2) * r if label == 0 else (2 * i + 1) * r
            upper = torch.stack([r_up * torch.cos(up), r_up * torch.sin(up)], 1)
            lower = torch.stack([r + r_low * torch.cos(low), r_low * torch.sin(low)], 1)
            # label 0 runs upper -> lower, label 1 lower -> upper: then the half circles join end to end
            pts += [upper, lower] if label == 0 else [lower, upper]
            labels += [label] * (2 * POINTS_PER_HALF)
    return torch.cat(pts).float(), torch.tensor(labels)


def noise_sigma(noise: str = "std", r: float = R) -> float:
    if noise not in NOISES:
        raise ValueError(f"spirals: noise={noise!r} is not accepted; expected one of {NOISES}")
    return r / 3 if noise == "std" else math.sqrt(r / 3)


def train_set(seed: int = 0, noise: str = "std", r: float = R) -> TensorDataset:
    """Core samples plus nine noisy copies each: 20,000 samples (the fixed seed gives every model the same data)."""
    x, y = core_samples(r)
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(COPIES, *x.shape, generator=g) * noise_sigma(noise, r)
    xs = torch.cat([x, (x.unsqueeze(0) + eps).reshape(-1, 2)])
    ys = torch.cat([y, y.repeat(COPIES)])
    return TensorDataset(xs, ys)


def band_label(points: torch.Tensor, r: float = R) -> torch.Tensor:
    """True label of each point by the band rule; -1 where undefined (k < 1 or ρ > 10.5r)."""
    x, y = points[:, 0].double(), points[:, 1].double()
    upper = y > 0
    rho = torch.where(upper, torch.hypot(x, y), torch.hypot(x - r, y))
    k = torch.floor(rho / r + 0.5)  # round half up; a tie sits exactly on a band boundary
    odd = (k % 2) == 1
    label = torch.where(upper, (~odd).long(), odd.long())
    valid = (k >= 1) & (rho <= 10.5 * r)
    return torch.where(valid, label, torch.full_like(label, -1))


def test_set(resolution: int = 201, r: float = R) -> TensorDataset:
    """The correct-answer set: a regular grid over the spirals' square, labelled by the band rule."""
    xs = torch.linspace(-1.1, 1.2, resolution)
    ys = torch.linspace(-1.1, 1.1, resolution)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    lab = band_label(pts, r)
    keep = lab >= 0
    return TensorDataset(pts[keep], lab[keep])


def quarter_grid(resolution: int = 200) -> tuple[torch.Tensor, int]:
    """Regular mesh over 0 < x < 1, 0 < y < 1 (the paper's picture quarter); returns (points, side)."""
    v = (torch.arange(resolution, dtype=torch.float32) + 0.5) / resolution
    gx, gy = torch.meshgrid(v, v, indexing="xy")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], 1), resolution
