"""``deepspeech_gru``: per-utterance outputs independent of the batch's padding (packed sequences), and INQ
quantizes every weight, the GRU's included (issue 30, item 1's stronger speech model)."""

from __future__ import annotations

import pytest
import torch

import lowbit as lb
from lowbit.deploy.summary import memory_metrics
from lowbit.models import create_model
from lowbit.models.deepspeech import ctc_loss


def _model():
    torch.manual_seed(0)
    return create_model("deepspeech_gru", n_input=6, n_hidden=8, n_classes=4, dropout=0.0).eval()


def test_padding_does_not_change_an_utterance():
    m = _model()
    a, b = torch.randn(1, 5, 6), torch.randn(1, 9, 6)
    batch = torch.zeros(2, 9, 6)
    batch[0, :5], batch[1] = a[0], b[0]
    out = m(batch, torch.tensor([5, 9]))
    assert out.shape == (2, 9, 4)
    torch.testing.assert_close(out[0, :5], m(a, torch.tensor([5]))[0])  # the backward GRU starts at frame 5
    torch.testing.assert_close(out[1], m(b)[0])
    with pytest.raises(ValueError, match="layers=0"):
        create_model("deepspeech_gru", layers=0)


def test_inq_puts_every_weight_on_the_codebook_and_trains():
    m = _model().train()
    w_numel = sum(p.numel() for n, p in m.named_parameters() if "weight" in n)
    inq = lb.INQ(m, bits=4, portions=(0.5, 1.0))
    x, xl = torch.randn(2, 7, 6), torch.tensor([7, 5])
    y, yl = torch.tensor([1, 2, 3]), torch.tensor([2, 1])
    for _ in inq:
        loss = ctc_loss(m, (x, xl, y, yl))
        loss.backward()
    assert inq.check()
    quantized = [mod for mod in m.modules() if hasattr(mod, "quantized_weight")]
    assert any(isinstance(mod, torch.nn.GRU) or "GRU" in type(mod).__name__ for mod in quantized)
    # memory: every weight at 4 bits (plus exponents), biases float: well under a quarter of float32
    assert memory_metrics(m)["memory_reduction"] > 2.5 and w_numel > 0
