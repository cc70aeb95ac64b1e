"""Speech recognition metrics (spec §7.3): Levenshtein distance, corpus-level WER and PER.

    Lev(h, r) = min #substitutions + #deletions + #insertions (unit costs) turning r into h
    WER = 100 * Σ_utt Lev(words_hyp, words_ref) / Σ_utt |words_ref|       (corpus ratio, not a mean of ratios)
    PER = the same on phone sequences (folded to the 39-set by the caller, ``lowbit.data.timit``)

Text normalisation for WER: lower-case, punctuation removed (apostrophes inside words kept), whitespace collapsed.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence

_PUNCT = re.compile(r"[^\w\s']|(?<!\w)'|'(?!\w)")


def edit_distance(hyp: Sequence[Hashable], ref: Sequence[Hashable]) -> int:
    """Levenshtein distance with unit substitution/deletion/insertion costs (two-row dynamic programme)."""
    prev = list(range(len(ref) + 1))
    for i, h in enumerate(hyp, 1):
        cur = [i] + [0] * len(ref)
        for j, r in enumerate(ref, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (h != r))
        prev = cur
    return prev[-1]


def normalise_text(text: str) -> str:
    """Lower-case, strip punctuation, collapse whitespace."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def error_rate(hyps: Sequence[Sequence[Hashable]], refs: Sequence[Sequence[Hashable]]) -> float:
    """100 * Σ Lev / Σ |ref| over token sequences; raises on a length mismatch or an all-empty reference."""
    if len(hyps) != len(refs):
        raise ValueError(f"error_rate: {len(hyps)} hypotheses but {len(refs)} references")
    total = sum(len(r) for r in refs)
    if total == 0:
        raise ValueError("error_rate: the references hold no tokens; the rate is undefined")
    return 100.0 * sum(edit_distance(h, r) for h, r in zip(hyps, refs)) / total


def wer(hyps: Sequence[str], refs: Sequence[str]) -> float:
    """Corpus word error rate (%) of hypothesis and reference strings after ``normalise_text``."""
    return error_rate([normalise_text(h).split() for h in hyps], [normalise_text(r).split() for r in refs])


def per(hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[str]]) -> float:
    """Corpus phone error rate (%) of (already folded) phone sequences."""
    return error_rate(hyps, refs)
