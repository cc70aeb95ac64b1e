"""Rounding rules and straight-through helpers (spec §0: each method states its own tie rule)."""

from __future__ import annotations

import torch


def round_half_up(x: torch.Tensor) -> torch.Tensor:
    """floor(x + 0.5): ties go toward +inf (Boo uniform, spec §2.1)."""
    return torch.floor(x + 0.5)


def round_half_even(x: torch.Tensor) -> torch.Tensor:
    """torch.round: ties to even (DoReFa, PACT, LSQ)."""
    return torch.round(x)


def round_half_away(x: torch.Tensor) -> torch.Tensor:
    """sign(x)·floor(|x| + 0.5), C round() (Theano BinaryNet)."""
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


def sgn(x: torch.Tensor) -> torch.Tensor:
    """+1 for x >= 0, else -1 (spec §0: sgn(0) = +1 for the binary methods)."""
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


def ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Forward exactly q, backward identity to x.

    Written as q + (x - x.detach()) rather than x + (q - x).detach(): the latter can land an ulp away from q.
    """
    return q + (x - x.detach())


def ste_clipped(x: torch.Tensor, q: torch.Tensor, lo: torch.Tensor | float, hi: torch.Tensor | float) -> torch.Tensor:
    """Forward q, backward 1_{lo <= x <= hi} (torch.clamp passes the gradient on the closed interval)."""
    xc = torch.clamp(x, lo, hi)
    return q + (xc - xc.detach())
