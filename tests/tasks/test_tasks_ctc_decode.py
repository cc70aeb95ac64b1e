"""CTC decoding and ensemble rules on hand-made posteriors (issue 30, item 3): prefix beam search against a
brute-force sum over every alignment, ROVER votes worked by hand, and two members whose spikes are one frame apart
(the seed's rule deletes the words; log-averaging + beam search and the ROVER vote decode them)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from lowbit.data.sets.speech import Utterances
from lowbit.models.deepspeech import greedy_decode
from lowbit.tasks.ctc import ensemble_metrics
from lowbit.tasks.ctc_decode import log_average, prefix_beam_search, rover_vote
from lowbit.train.ensemble import average_probs


def _collapse(path):
    out, prev = [], None
    for s in path:
        if s != prev and s != 0:
            out.append(s)
        prev = s
    return tuple(out)


def _brute_force_best(probs: torch.Tensor) -> list[int]:
    """argmax over label sequences of Σ over all frame paths collapsing to it of Π p_t(path_t)."""
    t, c = probs.shape
    score: dict[tuple, float] = {}
    for path in itertools.product(range(c), repeat=t):
        p = math.prod(float(probs[i, s]) for i, s in enumerate(path))
        key = _collapse(path)
        score[key] = score.get(key, 0.0) + p
    return list(max(score, key=score.get))


def test_beam_search_sums_alignments_where_greedy_takes_one_path():
    # blank 0.6 / "a" 0.4 on two frames: best path is blank-blank (0.36); "a" collects 0.16 + 0.24 + 0.24 = 0.64
    probs = torch.tensor([[0.6, 0.4], [0.6, 0.4]])
    assert greedy_decode(probs[None])[0] == []
    assert prefix_beam_search(probs.log()) == [1]
    # a repeated label needs a blank between its copies
    peaky = torch.tensor([[0.05, 0.9, 0.05], [0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.9, 0.05]])
    assert prefix_beam_search(peaky.log()) == [1, 1]


@pytest.mark.parametrize("seed", range(6))
def test_beam_search_equals_brute_force_on_small_random_posteriors(seed):
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(2 * torch.randn(5, 3, generator=g), -1)
    assert prefix_beam_search(probs.log(), beam=64) == _brute_force_best(probs)


def test_rover_votes_by_hand():
    assert rover_vote([[1, 2, 3], [1, 2, 3], [1, 4, 3]]) == [1, 2, 3]  # substitution outvoted
    assert rover_vote([[1, 2, 3], [1, 3], [1, 2, 3]]) == [1, 2, 3]  # deletion outvoted
    assert rover_vote([[1, 2], [1, 5, 2], [1, 5, 2]]) == [1, 5, 2]  # an insertion most members make is kept
    assert rover_vote([[1, 2], [1, 2], [1, 5, 2]]) == [1, 2]  # one member's insertion is dropped
    assert rover_vote([[7, 8]]) == [7, 8]
    with pytest.raises(ValueError, match="no hypotheses"):
        rover_vote([])


def _spikes(frames: int, at: dict[int, int], classes: int = 6) -> torch.Tensor:
    """(T, C) posteriors: blank 0.9 on every frame but the spikes, where label ``at[t]`` has 0.6 and blank 0.3;
    the rest spread evenly over the other labels."""
    p = torch.empty(frames, classes)
    for t in range(frames):
        if t in at:
            p[t] = 0.1 / (classes - 2)
            p[t, 0], p[t, at[t]] = 0.3, 0.6
        else:
            p[t] = 0.1 / (classes - 1)
            p[t, 0] = 0.9
    return p


def test_members_one_frame_apart_decode_under_beam_and_rover_but_not_the_seed_rule():
    a = _spikes(8, {1: 3, 5: 5})
    b = _spikes(8, {2: 3, 6: 5})  # the same words, every spike one frame later
    lengths = torch.tensor([8])
    assert greedy_decode(a[None])[0] == [3, 5] and greedy_decode(b[None])[0] == [3, 5]
    # the seed's rule: at frames 1 and 2 the mean posterior of label 3 is 0.31, of blank 0.6: both words deleted
    assert greedy_decode(average_probs([a, b])[None], lengths)[0] == []
    # the same mean decoded by prefix beam search: "3" over frames 1-2 collects 0.31² + 2·0.31·0.6 = 0.47 > 0.36
    assert prefix_beam_search(average_probs([a, b]).log()) == [3, 5]
    # ROVER over each member's own decoding
    assert rover_vote([greedy_decode(a[None])[0], greedy_decode(b[None])[0]]) == [3, 5]
    # the product of experts (log-averaging) is harsher: each member's 0.9 blank vetoes the other's spike
    # (normalised geometric means: label 0.17, blank 0.71 per frame), so misaligned members lose the words
    assert prefix_beam_search(log_average([a, b])) == []


def test_members_of_one_parent_keep_aligned_spikes_and_log_averaging_decodes_them():
    # fine-tuned from one float parent: spikes in the same frames, heights differ
    a = _spikes(8, {1: 3, 5: 5})
    b = _spikes(8, {1: 3, 5: 5})
    b[5] = torch.tensor([0.52, 0.0025, 0.0025, 0.0025, 0.0025, 0.47])
    assert greedy_decode(b[None])[0] == [3]  # b alone loses "5" (blank wins its frame by a hair)
    assert prefix_beam_search(log_average([a, b])) == [3, 5]
    assert greedy_decode(average_probs([a, b])[None])[0] == [3, 5]


def test_ensemble_metrics_report_the_four_rules():
    a = _spikes(8, {1: 3, 5: 5})
    b = _spikes(8, {2: 3, 6: 5})
    refs = [[3, 5]]

    def score(tokens):  # an error count per reference token, as the data sets' WER does
        from lowbit.metrics.speech import error_rate

        return {"wer": error_rate(tokens, refs)}

    data = Utterances([(torch.zeros(8, 2), torch.tensor([3, 5]))], score)
    out = ensemble_metrics([a[None], b[None]], data)
    assert out == {"wer": 100.0, "wer_avgbeam": 0.0, "wer_beam": 100.0, "wer_rover": 0.0}
    one = ensemble_metrics([a[None]], data)  # one member: its own decoding under each rule
    assert one == {"wer": 0.0, "wer_avgbeam": 0.0, "wer_beam": 0.0, "wer_rover": 0.0}
