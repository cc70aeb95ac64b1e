"""Deep Speech (spec §7.2): shapes, the scan against a slow reference, gradients through time, quantized forward."""

from __future__ import annotations

import pytest
import torch

from lowbit import INQ, QuantConfig, quantize_, quantizers
from lowbit.api import quantizable_layers
from lowbit.models import create_model
from lowbit.models.deepspeech import DeepSpeech, ctc_loss, greedy_decode


def slow_forward(m: DeepSpeech, x: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """One utterance at a time, straight from the equations (no batching, no masking)."""
    g = lambda z: torch.clamp(z, 0, 20)  # noqa: E731
    outs = []
    for i, n in enumerate(lengths):
        h = g(m.fc1(x[i, :n]))
        if not m.small:
            h = g(m.fc3(g(m.fc2(h))))
        u = h @ m.rnn.w4.weight.t() + m.rnn.w4.bias
        hf, hb = [None] * n, [None] * n
        prev = torch.zeros(u.shape[1])
        for t in range(n):
            prev = g(u[t] + m.rnn.wf.weight @ prev)
            hf[t] = prev
        prev = torch.zeros(u.shape[1])
        for t in reversed(range(n)):
            prev = g(u[t] + m.rnn.wb.weight @ prev)
            hb[t] = prev
        h4 = torch.stack(hf) + torch.stack(hb)
        outs.append(m.out(g(m.fc5(h4))))
    return outs


@pytest.mark.parametrize("name", ["deepspeech", "deepspeech_small"])
def test_matches_slow_reference_with_padding(name):
    torch.manual_seed(0)
    m = create_model(name, n_input=6, n_hidden=8, n_classes=4, dropout=0.0).eval()
    x = torch.randn(3, 7, 6) * 3
    lengths = [7, 4, 1]
    for i, n in enumerate(lengths):
        x[i, n:] = 5.0  # garbage in the padding must not leak into the backward scan
    y = m(x, torch.tensor(lengths))
    assert y.shape == (3, 7, 4)
    for i, (ref, n) in enumerate(zip(slow_forward(m, x, lengths), lengths)):
        torch.testing.assert_close(y[i, :n], ref, rtol=1e-5, atol=1e-5)


def test_structure_and_clip():
    big, small = (
        create_model("deepspeech", n_input=5, n_hidden=7, n_classes=3),
        create_model("deepspeech_small", n_input=5, n_hidden=7, n_classes=3),
    )
    names = {n for n, _ in quantizable_layers(big)}
    assert {"fc1", "fc2", "fc3", "rnn.w4", "rnn.wf", "rnn.wb", "fc5", "out"} <= names
    assert big.rnn.wf.bias is None and big.rnn.wb.bias is None  # b4 is shared, in w4
    assert not hasattr(small, "fc2") and not hasattr(small, "fc3")
    assert sum(p.numel() for p in big.parameters()) - sum(p.numel() for p in small.parameters()) == 2 * (7 * 7 + 7)
    with torch.no_grad():  # clipped ReLU: the recurrent state never exceeds 20
        h = big.rnn(torch.full((1, 5, 7), 100.0))
    assert float(h.max()) <= 40.0 and float(h.min()) >= 0.0  # sum of two directions, each in [0, 20]
    with pytest.raises(ValueError, match="batch, time"):
        big(torch.zeros(5, 5))
    with pytest.raises(ValueError, match="n_classes"):
        DeepSpeech(n_classes=1)


def test_gradient_through_time():
    torch.manual_seed(1)
    m = create_model("deepspeech", n_input=4, n_hidden=6, n_classes=3, dropout=0.0)
    x = torch.rand(1, 6, 4, requires_grad=True)
    m(x)[0, -1].sum().backward()  # the last frame's output depends on the first frame via the forward scan
    assert x.grad[0, 0].abs().sum() > 0
    assert m.rnn.wf.weight.grad.abs().sum() > 0
    assert m.rnn.wb.weight.grad.abs().sum() == 0  # hb_T = g(u_T + Wb * 0): Wb cannot reach the last frame
    x.grad = None
    m.zero_grad()
    m(x)[0, 0].sum().backward()  # ...and the first frame's output on the last frame via the backward scan
    assert x.grad[0, -1].abs().sum() > 0
    assert m.rnn.wb.weight.grad.abs().sum() > 0 and m.rnn.wf.weight.grad.abs().sum() == 0


@pytest.mark.slow
def test_ctc_loss_trains_a_tiny_problem():
    torch.manual_seed(0)
    m = create_model("deepspeech", n_input=3, n_hidden=16, n_classes=3, dropout=0.0)
    x = torch.zeros(2, 8, 3)
    x[:, :, 2] = 1.0  # a constant input keeps the clipped ReLUs alive
    x[0, 2:5, 0] = 3.0
    x[1, 2:5, 1] = 3.0
    batch = (x, torch.tensor([8, 8]), torch.tensor([1, 2]), torch.tensor([1, 1]))
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    first = float(ctc_loss(m, batch).detach())
    for _ in range(300):
        opt.zero_grad()
        ctc_loss(m, batch).backward()
        opt.step()
    assert float(ctc_loss(m, batch).detach()) < first / 5
    assert greedy_decode(m(x, batch[1])) == [[1], [2]]


def test_greedy_decode_hand_case():
    best = torch.tensor([[0, 1, 1, 0, 1, 2, 2, 0, 0]])
    scores = torch.nn.functional.one_hot(best, 3).float()
    assert greedy_decode(scores) == [[1, 1, 2]]  # repeats collapse, a blank separates the two 1s
    assert greedy_decode(scores, torch.tensor([3])) == [[1]]
    assert greedy_decode(torch.nn.functional.one_hot(torch.zeros(1, 4, dtype=torch.long), 3).float()) == [[]]


def test_quantized_forward_inq_and_uniform():
    torch.manual_seed(0)
    m = create_model("deepspeech", n_input=5, n_hidden=8, n_classes=4, dropout=0.0).eval()
    inq = INQ(m, bits=4)
    for _ in inq:
        pass
    assert inq.check()
    assert {n for n, _ in quantizable_layers(m)} >= {"rnn.wf", "rnn.wb"}
    assert type(m.rnn.wf).__name__ == "QuantLinear"
    x = torch.randn(2, 5, 5)
    y = m(x)
    lv = m.rnn.wf.weight_quant.levels(name="weight")
    assert torch.isin(m.rnn.wf.weight.detach(), lv).all()
    assert torch.isfinite(y).all() and y.shape == (2, 5, 4)
    # uniform 2-bit weights: the forward uses the quantized recurrent matrices (the float ones give another output)
    torch.manual_seed(0)
    f = create_model("deepspeech", n_input=5, n_hidden=8, n_classes=4, dropout=0.0).eval()
    q = create_model("deepspeech", n_input=5, n_hidden=8, n_classes=4, dropout=0.0).eval()
    q.load_state_dict(f.state_dict())
    quantize_(q, QuantConfig(weight=quantizers.get("uniform", bits=2)))
    yq = q(x)
    wq = q.rnn.wf.quantized_weight("weight")
    assert len(torch.unique(wq)) <= 4
    assert not torch.allclose(yq, f(x))
