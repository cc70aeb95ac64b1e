"""Speech metrics against hand-computed cases (spec §7.3)."""

from __future__ import annotations

import itertools

import pytest

from lowbit.metrics.speech import edit_distance, error_rate, normalise_text, per, wer


def slow_lev(a, b):
    """Reference: the textbook recursion, memoised."""
    from functools import lru_cache

    @lru_cache(None)
    def d(i, j):
        if i == 0 or j == 0:
            return i + j
        return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))

    return d(len(a), len(b))


def test_hand_cases():
    assert edit_distance([], []) == 0
    assert edit_distance("abc", "") == 3  # 3 insertions
    assert edit_distance("", "abc") == 3  # 3 deletions
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("a b c".split(), "a x c".split()) == 1  # one substitution
    assert edit_distance("one two".split(), "two".split()) == 1


def test_against_slow_reference():
    for a, b in itertools.product(["", "a", "ab", "ba", "aab", "abcab"], repeat=2):
        assert edit_distance(a, b) == slow_lev(a, b)


def test_wer_is_corpus_ratio_not_mean_of_ratios():
    # utt1: ref 1 word, 1 error (100 %); utt2: ref 4 words, 0 errors. Corpus: 1/5 = 20 %; mean of ratios: 50 %.
    assert wer(["two", "one two three four"], ["one", "one two three four"]) == pytest.approx(20.0)
    # S + D + I: ref "a b c d", hyp "a x c d e" -> 1 sub + 1 ins = 2 / 4
    assert wer(["a x c d e"], ["a b c d"]) == pytest.approx(50.0)
    assert wer([""], ["one two"]) == pytest.approx(100.0)
    assert wer(["one one one"], ["one"]) == pytest.approx(200.0)  # insertions can exceed 100 %


def test_normalisation():
    assert normalise_text("  Hello,  WORLD!  It's\tfine. ") == "hello world it's fine"
    assert wer(["hello world"], ["Hello, World."]) == 0.0


def test_per_and_errors():
    assert per([["sh", "iy"]], [["sh", "ih", "iy"]]) == pytest.approx(100 / 3)
    with pytest.raises(ValueError, match="hypotheses"):
        error_rate([["a"]], [])
    with pytest.raises(ValueError, match="undefined"):
        error_rate([["a"]], [[]])
