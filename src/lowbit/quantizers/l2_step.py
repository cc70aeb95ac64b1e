"""The L2-optimal step Δ of the uniform quantizer (spec §2.2, §2.3), on sorted values, all starts at once.

    Δ* = argmin_Δ Σ_i (x_i - Δ·z_i)²,   z_i = clamp(floor(x_i/Δ + 0.5), lo, hi)

Spec §2.2's solver is alternating least squares with a multi-start (c ∈ linspace(0.05, 1, 20), Δ₀ = c·a/hi):
the z-step assigns each value its nearest level for the current Δ, the Δ-step is Δ = Σxz/Σz². Written as a loop
over the values it costs O(n) per iteration and per start (~35 s for a small CNN's weights). Here the values are
sorted once (O(n log n)); for a given Δ the level of every value is fixed by the hi - lo thresholds
(k - 1/2)·Δ, so ``searchsorted`` on the sorted values and prefix sums of x give, per level, the count and the sum
of its values, hence Σxz, Σz² and E(Δ) = Σx² - 2Δ·Σxz + Δ²·Σz² in O((hi - lo)·log n). All starts iterate
together as one batch. Each start follows the same iterates as the spec's loop (same updates, same stopping
rules: |Δ_new - Δ| <= tol·Δ, Σz² = 0 halves Δ, Δ_new <= 0 stops), with the levels split exactly where
floor(x/Δ + 0.5) splits them; sums come from prefix sums instead of a running sum (differences of ~1 ulp).
The start with the smallest E wins (the first one on ties, as the loop's strict '<'). Small tensors (per-channel
rows, small layers: starts × values <= 2^18) skip the sort and evaluate all starts on a (starts, n) grid.
"""

from __future__ import annotations

import torch


def _grid(bits: int, signed: bool) -> tuple[int, int]:
    return (-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)


class _Sorted:
    """Sorted values with prefix sums: per-level counts and sums for a batch of steps."""

    def __init__(self, w: torch.Tensor, lo: int, hi: int):
        self.v, _ = torch.sort(w)
        zero = self.v.new_zeros(1)
        self.csum = torch.cat([zero, torch.cumsum(self.v, 0)])
        self.sq = float((self.v * self.v).sum())
        self.n = self.v.numel()
        self.levels = torch.arange(lo, hi + 1, dtype=self.v.dtype, device=self.v.device)  # (K,)
        self.half = self.levels[1:] - 0.5  # thresholds / Δ, (K - 1,)

    def level(self, v: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        """floor(v/Δ + 0.5), the quantizer's own rounding (unclamped)."""
        return torch.floor(v / step[:, None] + 0.5)

    def boundaries(self, step: torch.Tensor) -> torch.Tensor:
        """(S, K - 1): index of the first sorted value whose level is >= k, for k = lo + 1 .. hi.

        ``searchsorted`` at (k - 1/2)·Δ finds it up to values within an ulp of the threshold; since
        floor(v/Δ + 0.5) is monotone in v, moving past the neighbours whose rounded level disagrees makes the
        split exactly the one floor(v/Δ + 0.5) gives (ties included).
        """
        k = self.half + 0.5  # (K - 1,)
        thr = (step[:, None] * self.half[None, :]).contiguous()
        idx = torch.searchsorted(self.v, thr, side="left")
        last = self.n - 1
        for _ in range(8):  # a value within an ulp of a threshold is rare; a handful of rounds always suffices
            below = self.v[(idx - 1).clamp(0, last)]
            down = (idx > 0) & (self.level(below, step) >= k)
            at = self.v[idx.clamp(0, last)]
            up = (idx < self.n) & (self.level(at, step) < k)
            if not bool(down.any() or up.any()):
                break
            idx = torch.where(down, torch.searchsorted(self.v, below.contiguous(), side="left"), idx)
            idx = torch.where(up, torch.searchsorted(self.v, at.contiguous(), side="right"), idx)
        return idx

    def moments(self, step: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Σ x·z, Σ z²) for each step of a (S,) batch: level k holds x in [(k - 1/2)Δ, (k + 1/2)Δ)."""
        s = step.numel()
        idx = self.boundaries(step)
        edges = torch.cat([idx.new_zeros(s, 1), idx, idx.new_full((s, 1), self.n)], dim=1)  # (S, K + 1)
        count = (edges[:, 1:] - edges[:, :-1]).to(self.v.dtype)
        total = self.csum[edges[:, 1:]] - self.csum[edges[:, :-1]]
        return (total * self.levels).sum(dim=1), (count * self.levels * self.levels).sum(dim=1)

    def error(self, step: torch.Tensor) -> torch.Tensor:
        xz, zz = self.moments(step)
        return self.sq - 2 * step * xz + step * step * zz


class _Dense:
    """Small tensors: every start against every value at once, a (S, n) grid, with the spec's own arithmetic."""

    def __init__(self, w: torch.Tensor, lo: int, hi: int):
        self.w, self.lo, self.hi = w[None, :], lo, hi

    def codes(self, step: torch.Tensor) -> torch.Tensor:
        return torch.clamp(torch.floor(self.w / step[:, None] + 0.5), self.lo, self.hi)

    def moments(self, step: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.codes(step)
        return (self.w * z).sum(dim=1), (z * z).sum(dim=1)

    def error(self, step: torch.Tensor) -> torch.Tensor:
        return ((self.w - step[:, None] * self.codes(step)) ** 2).sum(dim=1)


DENSE_MAX = 1 << 18  # starts × values up to which the (S, n) grid is cheaper than sorting


def l2_opt_step(
    x: torch.Tensor, bits: int, signed: bool = True, n_starts: int = 20, iters: int = 100, tol: float = 1e-9
) -> float:
    """Δ* = argmin_Δ Σ (x - Q_Δ(x))², spec §2.2 (signed) and §2.3 (unsigned, on activations).

    Alternating minimisation never increases the error; the multi-start guards against local minima.
    Returns 1.0 for an all-zero tensor (any Δ gives Q = 0, spec §2.4), mean|x| for signed 1 bit (§2.1).
    """
    w = x.detach().reshape(-1).to(torch.float64)
    lo, hi = _grid(bits, signed)
    a = (float(w.abs().max()) if signed else float(w.clamp_min(0).max())) if w.numel() else 0.0
    if a == 0.0:
        return 1.0
    if hi == 0:  # signed 1-bit: the binary special case
        return float(w.abs().mean())
    data = _Dense(w, lo, hi) if w.numel() * n_starts <= DENSE_MAX else _Sorted(w, lo, hi)
    # the same starting points as the loop: c from a float32 linspace, times a/hi in float64
    cs = torch.linspace(0.05, 1.0, n_starts).tolist()
    step = torch.tensor([c * a / hi for c in cs], dtype=torch.float64, device=w.device)
    active = torch.ones(n_starts, dtype=torch.bool, device=w.device)
    for _ in range(iters):
        if not bool(active.any()):
            break
        xz, zz = data.moments(step)
        empty = active & (zz == 0)  # every value on level 0: halve Δ and try again
        new = torch.where(zz > 0, xz / torch.where(zz > 0, zz, 1.0), step)
        stop = active & ~empty & (new <= 0)  # the loop breaks keeping the current Δ
        move = active & ~empty & ~stop
        converged = move & ((new - step).abs() <= tol * step)
        step = torch.where(empty, step / 2, torch.where(move, new, step))
        active = active & ~stop & ~converged
    err = data.error(step)
    return float(step[int(torch.argmin(err))])


__all__ = ["l2_opt_step"]
