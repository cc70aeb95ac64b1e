"""The CTC speech task (seed §3.3, spec §7): CTC loss, frame posteriors, greedy decoding, error rates.

``predict`` gives every test utterance's frame posteriors, zero-padded to the longest: (N, T_max, C); an
ensemble averages them frame by frame and decodes the average (the members see the same frames, so the
padding lines up). ``metrics`` decodes greedily (argmax, collapse repeats, drop blanks) up to each utterance's
length and lets the test set score the token sequences: a data set for this task is an ``Utterances`` set
(``lowbit.data.sets.speech``) whose ``score`` says what the tokens are (words -> WER, phones -> PER, spec §7.3).
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from ..data.speech_collate import speech_collate
from ..models.deepspeech import ctc_loss, greedy_decode
from . import register_task
from .base import Task


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


def _metrics(probs: torch.Tensor, data) -> dict[str, float]:
    lengths = torch.tensor([int(data[i][0].shape[0]) for i in range(len(data))])
    return data.score(greedy_decode(probs, lengths))


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
        metric_names=("wer", "per", "mean_hyp_len"),
        collate=speech_collate,
    )
)
