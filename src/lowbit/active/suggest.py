"""Suggestive annotation (Yang et al., MICCAI 2017; Xu et al., CVPR 2018), spec §6.1-6.3.

One round: train M FCNs on bootstrap samples of the annotated set (§6.1); score every unannotated image by
its uncertainty (§6.2), keep the top K as candidates, then pick k of them greedily to cover the whole
unannotated set by descriptor similarity (§6.3):

    u(x)  = (1/M) Σ_m (p_m(x) − p̄(x))²              population variance of the foreground probability
    U(I)  = mean_x u(x)                               (multi-class: mean over classes of the per-class variance)
    S_c   = top-K of S_u by U                         ties -> lower image index; |S_u| < K -> S_c = S_u
    sim   = (1/M) Σ_m cos(d_m(I_i), d_m(I_j))        cos = 0 when a descriptor has norm 0
    F(S_a) = Σ_{x ∈ S_u} max_{s ∈ S_a} sim(s, x)
    greedy: k times, add argmax_{I ∈ S_c \\ S_a} F(S_a ∪ {I}); ties -> higher U, then lower index;
            |S_c| < k -> all of S_c.

Indices are positions in the unannotated list given (0..|S_u|-1). The greedy ranks candidates by their gain
F(S_a ∪ {I}) − F(S_a) = Σ_x max(0, sim(I, x) − f(S_a, x)) in float64; gains within a relative 1e-9 of the
best are ties (equal gains summed in a different order differ by rounding, e.g. two candidates that cover
each other symmetrically), so the spec's tie rules decide them, not rounding noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

TIE_TOL = 1e-9  # relative tolerance under which two greedy gains are a tie


def bootstrap_indices(n: int, m: int, seed: int = 0) -> list[torch.Tensor]:
    """M samples of size n drawn with replacement from range(n) (spec §6.1), one generator per seed."""
    if n < 1 or m < 1:
        raise ValueError(f"bootstrap_indices: n={n!r}, m={m!r}; expected both >= 1")
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, n, (n,), generator=g) for _ in range(m)]


def image_uncertainty(probs: torch.Tensor) -> float:
    """U(I) from the M models' outputs: (M, H, W) foreground probabilities, or (M, C, H, W) class
    probabilities (then the mean over classes of the per-class variance, spec §6.2)."""
    if probs.dim() not in (3, 4) or probs.shape[0] < 1:
        raise ValueError(f"image_uncertainty: expected (M, H, W) or (M, C, H, W), got shape {tuple(probs.shape)}")
    p = probs.double()
    return float(p.var(dim=0, unbiased=False).mean())  # mean over pixels (and classes): spec §6.2


def top_k_uncertain(uncertainty: Sequence[float] | torch.Tensor, k: int) -> list[int]:
    """Indices of the K largest U, largest first; ties -> lower index; all of them when fewer than K."""
    if k < 1:
        raise ValueError(f"top_k_uncertain: K={k!r} is not accepted; expected >= 1")
    u = [float(v) for v in uncertainty]
    return sorted(range(len(u)), key=lambda i: (-u[i], i))[:k]


def ensemble_similarity(descriptors: torch.Tensor) -> torch.Tensor:
    """(N, N) similarity = mean over models of the cosine of the descriptors; descriptors (M, N, C).
    A zero-norm descriptor has cosine 0 with everything (itself included), spec §6.3."""
    if descriptors.dim() != 3:
        raise ValueError(f"ensemble_similarity: expected (M, N, C) descriptors, got shape {tuple(descriptors.shape)}")
    d = descriptors.double()
    norm = d.norm(dim=2, keepdim=True)  # (M, N, 1)
    unit = torch.where(norm > 0, d / norm.clamp_min(1e-300), torch.zeros_like(d))
    return (unit @ unit.transpose(1, 2)).mean(0)


def max_cover_greedy(sim: torch.Tensor, candidates: Sequence[int], k: int, uncertainty: Sequence[float]) -> list[int]:
    """Greedy max-cover (spec §6.3): ``sim`` is (|S_u|, |S_u|) over ALL unannotated images, ``candidates``
    indexes S_c into it; returns the k picked, in pick order."""
    if sim.dim() != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"max_cover_greedy: sim must be square, got shape {tuple(sim.shape)}")
    if k < 1:
        raise ValueError(f"max_cover_greedy: k={k!r} is not accepted; expected >= 1")
    n = sim.shape[0]
    if len(set(candidates)) != len(candidates) or any(not 0 <= c < n for c in candidates):
        raise ValueError(f"max_cover_greedy: candidates {list(candidates)} must be distinct indices in 0..{n - 1}")
    s = sim.double()
    best: torch.Tensor | None = None  # f(S_a, x) for every x in S_u; None while S_a is empty
    picked: list[int] = []
    left = list(candidates)
    for _ in range(min(k, len(left))):
        # F(S_a ∪ {I}) = F(S_a) + gain(I): ranking by the gain is the same ranking, and a candidate that
        # covers nothing new gains exactly 0.0
        gains = {i: float(s[i].sum() if best is None else (s[i] - best).clamp_min(0).sum()) for i in left}
        top = max(gains.values())
        tied = [i for i in left if gains[i] >= top - TIE_TOL * max(1.0, abs(top))]
        i_star = min(tied, key=lambda i: (-float(uncertainty[i]), i))  # ties: higher U, then lower index
        best = s[i_star].clone() if best is None else torch.maximum(best, s[i_star])
        picked.append(i_star)
        left.remove(i_star)
    return picked


def suggest(
    uncertainty: Sequence[float] | torch.Tensor, descriptors: torch.Tensor, n_candidates: int = 16, n_pick: int = 8
) -> list[int]:
    """One suggestion round from per-image U (|S_u|,) and descriptors (M, |S_u|, C): the k = ``n_pick``
    images to annotate next, chosen among the K = ``n_candidates`` most uncertain (spec §6.2-6.3)."""
    u = [float(v) for v in uncertainty]
    if descriptors.dim() != 3 or descriptors.shape[1] != len(u):
        raise ValueError(
            f"suggest: descriptors shape {tuple(descriptors.shape)} must be (M, {len(u)}, C) for {len(u)} images"
        )
    if not u:
        return []
    cand = top_k_uncertain(u, n_candidates)
    return max_cover_greedy(ensemble_similarity(descriptors), cand, n_pick, u)


@torch.no_grad()
def score_images(
    models: Sequence[nn.Module], images: Sequence[torch.Tensor], foreground: int = 1
) -> tuple[list[float], torch.Tensor]:
    """Run the M models on each (C, H, W) image (sizes may differ): returns U per image and the descriptors
    (M, N, C_desc). Each model must give (1, n_classes, H, W) logits and have ``descriptor(x)``."""
    if not models:
        raise ValueError("score_images: need at least one model")
    for m in models:
        m.eval()
    us, descs = [], []
    for img in images:
        x = img.unsqueeze(0)
        fg = torch.stack([torch.softmax(m(x), 1)[0, foreground] for m in models])  # (M, H, W)
        us.append(image_uncertainty(fg))
        descs.append(torch.stack([m.descriptor(x)[0] for m in models]))  # (M, C)
    return us, torch.stack(descs, 1)
