"""Deep Speech (Hannun et al. 2014; spec §7.2) with a quantizable shared-input bidirectional recurrence.

    g(z)  = min(max(z, 0), 20)                                   clipped ReLU
    h1..3 = g(W_k h_{k-1} + b_k)                                  time-distributed FC (``deepspeech_small``: h1 only)
    u_t   = W4 h3_t + b4                                          computed once, SHARED by both directions
    hf_t  = g(u_t + Wf hf_{t-1}),  hf_0 = 0                        forward scan
    hb_t  = g(u_t + Wb hb_{t+1}),  hb_{len} = 0                    backward scan from each sequence's true length
    h4_t  = hf_t + hb_t                                           summed, not concatenated
    h5_t  = g(W5 h4_t + b5);   logits_t = W6 h5_t + b6            softmax over {blank} ∪ alphabet (blank = 0)

Every weight matrix (W1..W6, Wf, Wb) lives in an ``nn.Linear`` (Wf, Wb without bias), so ``lowbit.quantize_``
and ``lowbit.INQ`` swap and quantize them like any Linear. The scans read each recurrent module's (quantized)
weight once per forward and apply its input quantizer at every step, so the quantized forward is exact.
Dropout (default 5 %, Mozilla) acts on the feed-forward layers 1-3 and 5 only.

The small model of seed §3.3.1 removes the second and third FC layers before the recurrence.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import SPEECH, register_model

RELU_CLIP = 20.0


def clipped_relu(x: torch.Tensor, clip: float = RELU_CLIP) -> torch.Tensor:
    return torch.clamp(x, 0.0, clip)


def _weight_and_input(lin: nn.Linear):
    """(W as the forward sees it, input transform): the quantized weight for quantized twins, else the float one."""
    if hasattr(lin, "quantized_weight"):
        return lin.quantized_weight("weight"), lin.quantize_input
    return lin.weight, lambda h: h


class SharedBiRecurrence(nn.Module):
    """The bidirectional clipped-ReLU recurrence with shared input weights W4 and summed directions."""

    def __init__(self, hidden: int, clip: float = RELU_CLIP):
        super().__init__()
        self.clip = clip
        self.w4 = nn.Linear(hidden, hidden)  # shared input weights and bias b4
        self.wf = nn.Linear(hidden, hidden, bias=False)
        self.wb = nn.Linear(hidden, hidden, bias=False)

    def forward(self, h3: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, H) -> (B, T, H); ``lengths`` (B,) are the true frame counts (None: all T)."""
        b, t, hdim = h3.shape
        u = self.w4(h3)  # u_t = W4 h3_t + b4, once for both directions
        wf, qf = _weight_and_input(self.wf)
        wb, qb = _weight_and_input(self.wb)
        h = h3.new_zeros(b, hdim)
        fwd = []
        for k in range(t):
            h = clipped_relu(u[:, k] + qf(h) @ wf.t(), self.clip)
            fwd.append(h)
        if lengths is None:
            lengths = torch.full((b,), t, dtype=torch.long, device=h3.device)
        h = h3.new_zeros(b, hdim)
        bwd = [None] * t
        for k in range(t - 1, -1, -1):
            new = clipped_relu(u[:, k] + qb(h) @ wb.t(), self.clip)
            # frames at or past a sequence's length stay 0, so its backward scan starts at its true end
            h = torch.where((k < lengths).unsqueeze(1), new, torch.zeros_like(new))
            bwd[k] = h
        return torch.stack(fwd, 1) + torch.stack(bwd, 1)


class DeepSpeech(nn.Module):
    """Deep Speech over (B, T, n_input) frames; returns (B, T, n_classes) logits (softmax/log-softmax outside)."""

    def __init__(
        self,
        n_input: int = 494,
        n_hidden: int = 2048,
        n_classes: int = 29,
        small: bool = False,
        dropout: float = 0.05,
        clip: float = RELU_CLIP,
    ):
        super().__init__()
        for name, v in (("n_input", n_input), ("n_hidden", n_hidden), ("n_classes", n_classes)):
            if int(v) < 1:
                raise ValueError(f"DeepSpeech: {name}={v} is not accepted; expected >= 1")
        if n_classes < 2:
            raise ValueError(f"DeepSpeech: n_classes={n_classes} must count the blank and >= 1 label")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"DeepSpeech: dropout={dropout} is not accepted; expected 0 <= p < 1")
        self.small, self.clip = small, clip
        self.fc1 = nn.Linear(n_input, n_hidden)
        if not small:
            self.fc2 = nn.Linear(n_hidden, n_hidden)
            self.fc3 = nn.Linear(n_hidden, n_hidden)
        self.rnn = SharedBiRecurrence(n_hidden, clip)
        self.fc5 = nn.Linear(n_hidden, n_hidden)
        self.out = nn.Linear(n_hidden, n_classes)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"DeepSpeech expects (batch, time, features), got shape {tuple(x.shape)}")
        h = self.drop(clipped_relu(self.fc1(x), self.clip))
        if not self.small:
            h = self.drop(clipped_relu(self.fc2(h), self.clip))
            h = self.drop(clipped_relu(self.fc3(h), self.clip))
        h = self.rnn(h, lengths)
        h = self.drop(clipped_relu(self.fc5(h), self.clip))
        return self.out(h)


def ctc_loss(model: nn.Module, batch, reduction: str = "mean") -> torch.Tensor:
    """CTC loss of a ``speech_collate`` batch: ``nn.CTCLoss(blank=0, zero_infinity=True)`` on (T, B, C) log-probs.

    reduction "mean" (our default): each utterance's loss divided by its target length, then averaged over the
    batch (PyTorch's definition); Deep Speech sums over the batch instead.
    """
    x, x_lens, y, y_lens = batch
    logp = F.log_softmax(model(x, x_lens), dim=-1).transpose(0, 1)
    return F.ctc_loss(logp, y, x_lens, y_lens, blank=0, reduction=reduction, zero_infinity=True)


def greedy_decode(logits_or_probs: torch.Tensor, lengths: torch.Tensor | None = None) -> list[list[int]]:
    """Best path: argmax per frame, collapse repeats, drop blanks (0). Input (B, T, C) scores of any monotone kind."""
    best = logits_or_probs.argmax(-1)
    out = []
    for i in range(best.shape[0]):
        n = int(lengths[i]) if lengths is not None else best.shape[1]
        seq, prev = [], -1
        for s in best[i, :n].tolist():
            if s != prev and s != 0:
                seq.append(s)
            prev = s
        out.append(seq)
    return out


@register_model("deepspeech", test_kwargs={"n_input": 12, "n_hidden": 16, "n_classes": 5}, **SPEECH)
def deepspeech(
    n_input: int = 494, n_hidden: int = 2048, n_classes: int = 29, dropout: float = 0.05, clip: float = RELU_CLIP
) -> DeepSpeech:
    """Deep Speech: 3 FC + shared bidirectional clipped-ReLU recurrence + FC + output (spec §7.2)."""
    return DeepSpeech(n_input, n_hidden, n_classes, small=False, dropout=dropout, clip=clip)


@register_model("deepspeech_small", test_kwargs={"n_input": 12, "n_hidden": 16, "n_classes": 5}, **SPEECH)
def deepspeech_small(
    n_input: int = 494, n_hidden: int = 2048, n_classes: int = 29, dropout: float = 0.05, clip: float = RELU_CLIP
) -> DeepSpeech:
    """Seed §3.3.1's small Deep Speech: the second and third FC layers before the recurrence removed."""
    return DeepSpeech(n_input, n_hidden, n_classes, small=True, dropout=dropout, clip=clip)
