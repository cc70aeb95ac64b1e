"""The CTC speech task (seed §3.3, spec §7): CTC loss, frame posteriors, greedy decoding, error rates.

``predict`` gives every test utterance's frame posteriors, zero-padded to the longest: (N, T_max, C); an
ensemble averages them frame by frame and decodes the average (the members see the same frames, so the
padding lines up). ``metrics`` decodes greedily (argmax, collapse repeats, drop blanks) up to each utterance's
length and lets the test set score the token sequences: a data set for this task is an ``Utterances`` set
(``lowbit.data.sets.speech``) whose ``score`` says what the tokens are (words -> WER, phones -> PER, spec §7.3).

An ensemble reports four combination rules (``ensemble_metrics``; why: tasks/ctc_decode.py): the seed's rule
(frame posteriors averaged, greedy: ``wer``), the same average decoded by CTC prefix beam search
(``wer_avgbeam``), log-posterior averaging decoded by prefix beam search (``wer_beam``) and a ROVER-style vote
over the members' greedy word sequences (``wer_rover``); an ensemble of one member gives that member under each
decoding, the row the larger ensembles are compared with.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from ..data.speech_collate import speech_collate
from ..models.deepspeech import ctc_loss, greedy_decode
from ..train.ensemble import average_probs
from . import register_task
from .base import Task
from .ctc_decode import beam_decode, log_average, rover_vote

BEAM = 8
RULES = ("", "_avgbeam", "_beam", "_rover")  # the suffix of each ensemble rule's metrics (seed's rule: none)


@torch.no_grad()
def frame_posteriors(model: torch.nn.Module, data: Dataset, batch: int = 64) -> torch.Tensor:
    """(N, T_max, C) softmax posteriors, zero after each utterance's end, in data order."""
    model.eval()
    device = next(model.parameters()).device
    lengths = [int(data[i][0].shape[0]) for i in range(len(data))]
    order = sorted(range(len(data)), key=lambda i: lengths[i])  # similar lengths pad less
    out = None
    for s in range(0, len(order), batch):
        idx = order[s : s + batch]
        x, xl, _, _ = speech_collate([data[i] for i in idx])
        p = torch.softmax(model(x.to(device), xl.to(device)), -1).cpu()
        if out is None:
            out = torch.zeros(len(data), max(lengths), p.shape[-1])
        for j, i in enumerate(idx):
            out[i, : lengths[i]] = p[j, : lengths[i]]
    return out


def _lengths(data) -> torch.Tensor:
    return torch.tensor([int(data[i][0].shape[0]) for i in range(len(data))])


def _metrics(probs: torch.Tensor, data) -> dict[str, float]:
    return data.score(greedy_decode(probs, _lengths(data)))


def ensemble_metrics(probs: list[torch.Tensor], data) -> dict[str, float]:
    """The seed's rule (mean posteriors, greedy), the mean decoded by prefix beam search (``_avgbeam``),
    log-mean posteriors + prefix beam search (``_beam``), and a ROVER vote over each member's greedy decoding
    (``_rover``)."""
    lengths = _lengths(data)
    mean = average_probs(probs)
    out = data.score(greedy_decode(mean, lengths))
    avgbeam = data.score(beam_decode(torch.log(mean.double() + 1e-12), lengths, BEAM))
    beam = data.score(beam_decode(log_average(probs), lengths, BEAM))
    each = [greedy_decode(p, lengths) for p in probs]
    rover = data.score([rover_vote([h[i] for h in each]) for i in range(len(data))])
    out |= {f"{k}_avgbeam": v for k, v in avgbeam.items()} | {f"{k}_beam": v for k, v in beam.items()}
    return out | {f"{k}_rover": v for k, v in rover.items()}


def _calibration(data: Dataset, n: int) -> list:
    """The first ``n`` training utterances as one zero-padded batch of features."""
    return [speech_collate([data[i] for i in range(min(n, len(data)))])[0]]


CTC = register_task(
    Task(
        name="ctc",
        loss=ctc_loss,
        predict=frame_posteriors,
        metrics=_metrics,
        calibration=_calibration,
        metric_names=tuple(f"{m}{r}" for r in RULES for m in ("wer", "per", "mean_hyp_len")),
        collate=speech_collate,
        ensemble_metrics=ensemble_metrics,
    )
)
