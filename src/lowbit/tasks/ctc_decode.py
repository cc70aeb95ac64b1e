"""CTC decoding beyond best path, and the combination rules of CTC ensembles (issue 30, item 3).

Why: members trained apart put their label spikes in different frames (CTC fixes the order of the labels, not
their frames). Averaging their frame posteriors then spreads each spike over two frames at half height, blank
wins the argmax on both and greedy decoding deletes the word: the seed's rule decodes to nothing. Two rules
that are sound for CTC:

- **prefix beam search** over the (log-)averaged posteriors: it scores a label sequence by the sum over every
  frame alignment that collapses to it (Graves 2006; Hannun et al. 2014 §3), so half a spike in frame t and
  half in frame t+1 still add up to the word;
- **ROVER-style vote** (Fiscus 1997): decode each member on its own, align every hypothesis to a pivot (the
  hypothesis with the least total edit distance to the others) by Levenshtein alignment, and take the
  majority in each pivot slot (a word, or nothing) and in each gap between slots (the inserted words).

Log-posterior averaging (a normalised geometric mean of the members' frame posteriors) is the product-of-experts
rule; members fine-tuned from one float parent keep the parent's spike frames, so their averages stay peaked.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence

import torch

NEG = -math.inf


def _lse(a: float, b: float) -> float:
    if a == NEG:
        return b
    if b == NEG:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


def _adder(nxt: dict[tuple, list[float]]):
    """Accumulate (log-sum-exp) the blank-ending and label-ending scores of a prefix in ``nxt``."""

    def add(prefix: tuple, pb: float = NEG, pnb: float = NEG) -> None:
        cur = nxt.setdefault(prefix, [NEG, NEG])
        cur[0], cur[1] = _lse(cur[0], pb), _lse(cur[1], pnb)

    return add


def prefix_beam_search(log_probs: torch.Tensor, beam: int = 8, blank: int = 0) -> list[int]:
    """The most probable label sequence of one utterance's (T, C) frame log-posteriors under CTC, searched with
    a beam of ``beam`` prefixes; each prefix keeps two scores, ending in blank (pb) and ending in its last label
    (pnb), so that a repeated label needs a blank between its two copies."""
    if log_probs.dim() != 2:
        raise ValueError(f"prefix_beam_search: expected (T, C) log-posteriors, got shape {tuple(log_probs.shape)}")
    if beam < 1:
        raise ValueError(f"prefix_beam_search: beam={beam} is not accepted; expected >= 1")
    lp = log_probs.double().tolist()
    beams: dict[tuple, tuple[float, float]] = {(): (0.0, NEG)}
    for row in lp:
        nxt: dict[tuple, list[float]] = {}
        add = _adder(nxt)

        for prefix, (pb, pnb) in beams.items():
            total = _lse(pb, pnb)
            add(prefix, pb=total + row[blank])
            for c, lc in enumerate(row):
                if c == blank or lc == NEG:
                    continue
                if prefix and prefix[-1] == c:
                    add(prefix + (c,), pnb=pb + lc)  # a second copy: only after a blank
                    add(prefix, pnb=pnb + lc)  # the same label held over frames collapses
                else:
                    add(prefix + (c,), pnb=total + lc)
        best = sorted(nxt.items(), key=lambda kv: -_lse(kv[1][0], kv[1][1]))[:beam]
        beams = {k: (v[0], v[1]) for k, v in best}
    return list(max(beams.items(), key=lambda kv: _lse(*kv[1]))[0])


def beam_decode(log_probs: torch.Tensor, lengths: torch.Tensor, beam: int = 8) -> list[list[int]]:
    """``prefix_beam_search`` of each utterance of a (N, T, C) batch up to its length."""
    return [prefix_beam_search(log_probs[i, : int(lengths[i])], beam) for i in range(log_probs.shape[0])]


def log_average(probs: Sequence[torch.Tensor], eps: float = 1e-8) -> torch.Tensor:
    """Normalised geometric mean of the members' frame posteriors, as log-probabilities:
    log p(c) = mean_k log p_k(c) − log Σ_c' exp(mean_k log p_k(c'))."""
    mean = torch.stack([torch.log(p.double() + eps) for p in probs]).mean(0)
    return mean - torch.logsumexp(mean, dim=-1, keepdim=True)


def _align(hyp: Sequence[Hashable], pivot: Sequence[Hashable]) -> tuple[list, list[list]]:
    """Levenshtein alignment of ``hyp`` to ``pivot``: (the hyp's token or None in each pivot slot, the hyp's
    inserted tokens in each of the len(pivot) + 1 gaps)."""
    n, m = len(hyp), len(pivot)
    d = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        d[i][0] = i
    for j in range(m + 1):
        d[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (hyp[i - 1] != pivot[j - 1]))
    slots: list = [None] * m
    gaps: list[list] = [[] for _ in range(m + 1)]
    i, j = n, m
    while i > 0 or j > 0:  # trace back; prefer match/substitution, then deletion of a pivot word, then insertion
        if i > 0 and j > 0 and d[i][j] == d[i - 1][j - 1] + (hyp[i - 1] != pivot[j - 1]):
            slots[j - 1] = hyp[i - 1]
            i, j = i - 1, j - 1
        elif j > 0 and d[i][j] == d[i][j - 1] + 1:
            j -= 1  # slot j-1 stays None: the hyp lacks this pivot word
        else:
            gaps[j].insert(0, hyp[i - 1])
            i -= 1
    return slots, gaps


def rover_vote(hyps: Sequence[Sequence[Hashable]]) -> list:
    """Majority vote over member hypotheses aligned to a pivot (ROVER-style). Ties keep the pivot's choice in a
    slot and insert nothing in a gap."""
    from ..metrics.speech import edit_distance

    hyps = [list(h) for h in hyps]
    if not hyps:
        raise ValueError("rover_vote: no hypotheses given; expected at least 1")
    cost = [sum(edit_distance(h, g) for g in hyps) for h in hyps]
    pivot = hyps[cost.index(min(cost))]
    aligned = [_align(h, pivot) for h in hyps]
    out: list = []
    for j in range(len(pivot) + 1):
        gap = Counter(tuple(g[j]) for _, g in aligned).most_common()
        if gap[0][1] > len(hyps) / 2:  # a strict majority inserts; otherwise nothing
            out.extend(gap[0][0])
        if j < len(pivot):
            votes = Counter(s[j] for s, _ in aligned)
            top = max(votes.values())
            pick = pivot[j] if votes[pivot[j]] == top else next(t for t, v in votes.most_common() if v == top)
            if pick is not None:
                out.append(pick)
    return out
