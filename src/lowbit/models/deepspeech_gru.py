"""A stronger speech model beside the paper's Deep Speech (issue 30, item 1): the same front and back, with the
shared-input clipped-ReLU recurrence replaced by a stacked bidirectional GRU.

    h1_t  = g(W1 x_t + b1)                                         clipped ReLU, min(max(z, 0), 20)
    h2    = BiGRU^L(h1)                                            L layers, H per direction, concatenated (2H)
    h5_t  = g(W5 h2_t + b5);   logits_t = W6 h5_t + b6             softmax over {blank} ∪ alphabet (blank = 0)

Why: on FSDD connected digits with four training speakers, the plain recurrence of Deep Speech (no gates) stays
far from a usable word error rate within CPU minutes, while gated recurrences are the usual CTC acoustic model
(Graves et al. 2013; Amodei et al. 2016 use GRUs in Deep Speech 2). The GRU runs on packed sequences, so the
backward direction starts at each utterance's true end. Every weight (W1, W5, W6 and the GRU's W_ih, W_hh)
is a Linear or a GRU weight, which ``lowbit.quantize_`` and ``lowbit.INQ`` quantize (nn/recurrent.py).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .deepspeech import RELU_CLIP, clipped_relu
from .registry import SPEECH, register_model


class DeepSpeechGRU(nn.Module):
    def __init__(
        self, n_input: int = 494, n_hidden: int = 128, n_classes: int = 29, layers: int = 2, dropout: float = 0.1
    ):
        super().__init__()
        for name, v in (("n_input", n_input), ("n_hidden", n_hidden), ("layers", layers)):
            if int(v) < 1:
                raise ValueError(f"DeepSpeechGRU: {name}={v} is not accepted; expected >= 1")
        if n_classes < 2:
            raise ValueError(f"DeepSpeechGRU: n_classes={n_classes} must count the blank and >= 1 label")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"DeepSpeechGRU: dropout={dropout} is not accepted; expected 0 <= p < 1")
        self.fc1 = nn.Linear(n_input, n_hidden)
        self.rnn = nn.GRU(
            n_hidden, n_hidden, layers, batch_first=True, bidirectional=True, dropout=dropout if layers > 1 else 0.0
        )
        self.fc5 = nn.Linear(2 * n_hidden, n_hidden)
        self.out = nn.Linear(n_hidden, n_classes)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"DeepSpeechGRU expects (batch, time, features), got shape {tuple(x.shape)}")
        h = self.drop(clipped_relu(self.fc1(x), RELU_CLIP))
        t = h.shape[1]
        if lengths is None:
            h, _ = self.rnn(h)
        else:
            packed = pack_padded_sequence(h, lengths.cpu(), batch_first=True, enforce_sorted=False)
            h, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=t)
        h = self.drop(clipped_relu(self.fc5(h), RELU_CLIP))
        return self.out(h)


@register_model("deepspeech_gru", test_kwargs={"n_input": 12, "n_hidden": 8, "n_classes": 5}, **SPEECH)
def deepspeech_gru(
    n_input: int = 494, n_hidden: int = 128, n_classes: int = 29, layers: int = 2, dropout: float = 0.1
) -> DeepSpeechGRU:
    """Deep Speech with a stacked bidirectional GRU in place of its plain recurrence (FC1 + BiGRU + FC5 + out)."""
    return DeepSpeechGRU(n_input, n_hidden, n_classes, layers, dropout)
