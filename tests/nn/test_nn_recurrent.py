"""Quantized recurrent twins (QuantRNN/QuantLSTM/QuantGRU): float equivalence with torch for every variant,
gradients through time, fused path == loop path, weights on their quantizer's levels, activation quantization
against an explicit cell, INQ to the power-of-two codebook, and a save/load round trip."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import lowbit as lb
from lowbit.nn import QuantGRU, QuantLSTM, QuantRNN
from lowbit.quantizers import get
from lowbit.quantizers.uniform import l2_opt_step, uniform_quantize

KINDS = {
    "lstm": lambda **kw: nn.LSTM(5, 6, **kw),
    "gru": lambda **kw: nn.GRU(5, 6, **kw),
    "rnn_tanh": lambda **kw: nn.RNN(5, 6, **kw),
    "rnn_relu": lambda **kw: nn.RNN(5, 6, nonlinearity="relu", **kw),
}
OPTIONS = {
    "plain": {},
    "bi2": {"bidirectional": True, "num_layers": 2},
    "bf_nobias": {"batch_first": True, "bias": False},
    "bi_bf": {"bidirectional": True, "batch_first": True},
}
INPUTS = ("tensor", "tensor_hx", "packed_hx", "unbatched")
LENGTHS = torch.tensor([3, 7, 1, 5])  # unsorted on purpose


def hidden_shape(m: nn.RNNBase, batch: int | None):
    d = 2 if m.bidirectional else 1
    h_out = m.proj_size if isinstance(m, nn.LSTM) and m.proj_size > 0 else m.hidden_size
    lead = (m.num_layers * d,) if batch is None else (m.num_layers * d, batch)
    return lead + (h_out,), lead + (m.hidden_size,)


def make_input(m: nn.RNNBase, mode: str, g: torch.Generator):
    """(input, hx) for the given mode; x requires grad so that gradients can be compared."""
    batch = None if mode == "unbatched" else 4
    hx = None
    if mode != "tensor":
        hs, cs = hidden_shape(m, batch)
        h = torch.randn(*hs, generator=g)
        hx = (h, torch.randn(*cs, generator=g)) if isinstance(m, nn.LSTM) else h
    if mode == "unbatched":
        return torch.randn(7, 5, generator=g).requires_grad_(), hx
    if mode == "packed_hx":
        x = torch.randn(7, 4, 5, generator=g).requires_grad_()
        return pack_padded_sequence(x, LENGTHS, enforce_sorted=False), hx
    shape = (4, 7, 5) if m.batch_first else (7, 4, 5)
    return torch.randn(*shape, generator=g).requires_grad_(), hx


def flat(out) -> list[torch.Tensor]:
    y, h = out
    y = y.data if isinstance(y, PackedSequence) else y
    return [y] + (list(h) if isinstance(h, tuple) else [h])


def assert_outputs_equal(a, b, atol: float) -> None:
    for u, v in zip(flat(a), flat(b), strict=True):
        torch.testing.assert_close(u, v, rtol=0, atol=atol)


def twin(f: nn.RNNBase, weight=None, act=None) -> nn.Module:
    return lb.nn.QUANT_TWINS[type(f)].from_float(f, weight, act)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("option", OPTIONS)
def test_float_equivalent_twin_reproduces_torch(kind, option):
    """weight/act None and a 32-bit quantizer: fused path bit-identical, loop path within float rounding."""
    f = KINDS[kind](**OPTIONS[option])
    for mode in INPUTS:
        x, hx = make_input(f, mode, torch.Generator().manual_seed(1))
        ref = f(x, hx)
        for wq in (None, get("uniform", bits=32)):
            m = twin(f, wq)
            assert_outputs_equal(m(x, hx), ref, atol=0.0)
            m.force_loop = True
            assert_outputs_equal(m(x, hx), ref, atol=1e-5)
        out = ref[0]
        if isinstance(out, PackedSequence):  # same packing layout as torch
            assert torch.equal(m(x, hx)[0].batch_sizes, out.batch_sizes)
            assert torch.equal(m(x, hx)[0].unsorted_indices, out.unsorted_indices)


def test_lstm_projection_float_equivalent():
    f = nn.LSTM(5, 6, proj_size=3, num_layers=2, bidirectional=True)
    for mode in INPUTS:
        x, hx = make_input(f, mode, torch.Generator().manual_seed(2))
        ref = f(x, hx)
        m = twin(f)
        assert_outputs_equal(m(x, hx), ref, atol=0.0)
        m.force_loop = True
        assert_outputs_equal(m(x, hx), ref, atol=1e-5)


def grads(m: nn.Module, x, hx):
    x_leaf = x
    if isinstance(x, PackedSequence):
        raise TypeError("use tensors here")
    out = m(x_leaf, hx)
    loss = sum((t * torch.linspace(-1, 1, t.numel()).reshape(t.shape)).sum() for t in flat(out))
    params = [p for _, p in sorted(m.named_parameters())]
    return torch.autograd.grad(loss, [x_leaf] + params)


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_flow_through_time_and_match_torch(kind):
    f = KINDS[kind](bidirectional=True, num_layers=2)
    x = torch.randn(9, 3, 5, generator=torch.Generator().manual_seed(3), requires_grad=True)
    ref = grads(f, x, None)
    m = twin(f)
    m.force_loop = True
    got = grads(m, x, None)
    for r, g in zip(ref, got, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)
    assert got[0][0].abs().sum() > 0  # the first time step's input receives gradient


@pytest.mark.parametrize("kind", KINDS)
def test_fused_and_loop_agree_with_quantized_weights(kind):
    f = KINDS[kind](bidirectional=True, num_layers=2)
    m = lb.quantize_(nn.Sequential(f), lb.QuantConfig(weight=get("uniform", bits=4)))[0]
    x = torch.randn(8, 3, 5, generator=torch.Generator().manual_seed(4), requires_grad=True)
    fused = grads(m, x, None)
    m.force_loop = True
    loop = grads(m, x, None)
    for a, b in zip(fused, loop, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert fused[0][0].abs().sum() > 0
    m.force_loop = False
    packed = pack_padded_sequence(x.detach(), torch.tensor([8, 2, 5]), enforce_sorted=False)
    a = m(packed)
    m.force_loop = True
    assert_outputs_equal(m(packed), a, atol=1e-5)


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU, nn.RNN])
def test_weights_on_levels_each_with_its_own_step(cls):
    f = cls(5, 6, num_layers=2, bidirectional=True)
    m = lb.quantize_(nn.Sequential(f), lb.QuantConfig(weight=get("uniform", bits=3)))[0]
    assert isinstance(m, (QuantLSTM, QuantGRU, QuantRNN))
    names = m.quant_weight_names
    assert set(names) == {n for n, _ in f.named_parameters() if n.startswith("weight")}
    assert not any(n.startswith("bias") for n in names)
    assert set(m.weight_quants) == set(names)
    x = torch.randn(4, 2, 5)
    out = m(x)[0]
    for n in names:
        w = getattr(m, n).detach()
        q = m.weight_quantizer(n)
        assert q is m.weight_quants[n] and q is not m.weight_quant
        step = l2_opt_step(w, 3, signed=True)  # independent: the L2-optimal step of this very matrix
        assert float(q.step) == pytest.approx(step, rel=1e-6)
        qw = m.quantized_weight(n).detach()
        torch.testing.assert_close(qw, uniform_quantize(w, torch.tensor(step), 3, True), rtol=0, atol=1e-7)
        assert torch.isin(qw, q.levels(w)).all()
        assert qw.unique().numel() <= 7
    # the fused forward really runs with those matrices: torch's module with the quantized weights substituted
    qparams = {n: m.quantized_weight(n).detach() for n in names}
    ref = torch.func.functional_call(f, qparams, (x,))[0]
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    assert lb.quantization_map(nn.Sequential(m))["0"]["weight"]["name"] == "uniform"


def test_activation_quantization_matches_explicit_lstm_cell():
    """x_t and h_{t-1} (the matmul operands) are quantized; gates and cell state are not."""
    torch.manual_seed(5)
    f = nn.LSTM(5, 6)
    wq, aq = get("uniform", bits=4), get("uniform", bits=3, signed=True, step=0.25)
    m = lb.quantize_(nn.Sequential(f), lb.QuantConfig(weight=wq, act=aq, quantize_input=True))[0]
    assert set(m.act_quants) == {"input_l0", "hidden_l0"}
    x = torch.randn(6, 2, 5)
    h0, c0 = torch.randn(1, 2, 6), torch.randn(1, 2, 6)
    out, (hn, cn) = m(x, (h0, c0))

    def q(t):  # 3-bit signed grid with step 0.25: {-0.75, ..., 0.75}
        return 0.25 * torch.clamp(torch.floor(t / 0.25 + 0.5), -3, 3)

    w_ih, w_hh = m.quantized_weight("weight_ih_l0").detach(), m.quantized_weight("weight_hh_l0").detach()
    h, c, ys = h0[0], c0[0], []
    for t in range(6):
        z = q(x[t]) @ w_ih.T + f.bias_ih_l0 + q(h) @ w_hh.T + f.bias_hh_l0
        i, fg, g, o = z.chunk(4, dim=1)
        c = torch.sigmoid(fg) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        ys.append(h)
    torch.testing.assert_close(out, torch.stack(ys), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cn[0], c, rtol=1e-5, atol=1e-6)
    out.sum().backward()
    assert f.weight_hh_l0.grad is not None and f.weight_hh_l0.grad.abs().sum() > 0


def test_hidden_quantizer_calibrates_on_states_not_on_zero_h0():
    """With hx=None, h_0 = 0: a step calibrated on it alone would be 1.0 and round every state to 0."""
    f = nn.LSTM(4, 6)
    x = torch.randn(5, 3, 4, generator=torch.Generator().manual_seed(8))
    m = lb.quantize_(nn.Sequential(f), lb.QuantConfig(act=get("uniform", bits=8, signed=True), quantize_input=True))[0]
    out = m(x)[0]
    xq = m.act_quants["input_l0"](x).detach()
    states = torch.cat([torch.zeros(1, 3, 6), f(xq)[0].detach()])  # h_0 and the float-state run of the first batch
    assert float(m.act_quants["hidden_l0"].step) == pytest.approx(l2_opt_step(states, 8, signed=True), rel=1e-6)
    assert float(m.act_quants["input_l0"].step) == pytest.approx(l2_opt_step(x, 8, signed=True), rel=1e-6)
    torch.testing.assert_close(out, f(x)[0], rtol=0, atol=0.05)  # 8-bit x and h: close to float


def test_bidirectional_act_roles_and_requantize():
    f = nn.GRU(5, 6, num_layers=2, bidirectional=True)
    m = lb.quantize_(nn.Sequential(f), lb.QuantConfig(act=get("uniform", bits=8, signed=True), quantize_input=True))[0]
    assert set(m.act_quants) == {
        "input_l0",
        "hidden_l0",
        "hidden_l0_reverse",
        "input_l1",
        "hidden_l1",
        "hidden_l1_reverse",
    }
    assert len(m.weight_quants) == 0
    m._set_quantizers(get("uniform", bits=2), None)  # re-configuring rebuilds the copies
    assert set(m.weight_quants) == set(m.quant_weight_names) and len(m.act_quants) == 0


def test_inq_drives_every_recurrent_weight_to_its_codebook():
    torch.manual_seed(6)
    model = nn.ModuleDict({"rnn": nn.LSTM(4, 6, bidirectional=True, num_layers=2), "head": nn.Linear(12, 3)})
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    inq = lb.INQ(model, bits=4, portions=(0.5, 1.0), optimizer=opt)
    rnn = model["rnn"]
    assert isinstance(rnn, QuantLSTM) and len(rnn.weight_quants) == 0
    assert set(rnn.weight_quant.param_names) == set(rnn.quant_weight_names)
    g = torch.Generator().manual_seed(7)
    x, y = torch.randn(5, 8, 4, generator=g), torch.randint(0, 3, (8,), generator=g)
    before = {n: getattr(rnn, n).detach().clone() for n in rnn.quant_weight_names}
    for _ in inq:
        for _ in range(3):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model["head"](rnn(x)[0][-1]), y)
            loss.backward()
            opt.step()
    assert inq.check()
    for n in rnn.quant_weight_names:
        w = getattr(rnn, n).detach()
        assert rnn.weight_quant.frozen(n).all()
        assert torch.isin(w, rnn.weight_quant.levels(name=n)).all(), n
        assert not torch.equal(w, before[n])


def test_inq_takes_over_a_quantized_lstm():
    model = nn.Sequential(nn.LSTM(4, 6))
    lb.quantize_(model, lb.QuantConfig(weight=get("uniform", bits=4)))
    assert len(model[0].weight_quants) == 2
    lb.INQ(model, bits=3)
    assert len(model[0].weight_quants) == 0  # stale per-matrix copies are dropped with the old template
    assert not any(k.startswith("0.weight_quants") for k in model.state_dict())


def test_save_load_round_trip(tmp_path):
    from support.twins import registered_model

    def tiny_lstm(hidden: int = 6) -> nn.Module:
        return nn.Sequential(nn.LSTM(4, hidden, bidirectional=True, batch_first=True))

    with registered_model("test_tiny_lstm", tiny_lstm):
        _round_trip(tmp_path, tiny_lstm)


def _round_trip(tmp_path, tiny_lstm) -> None:
    from lowbit.serialize import load_model, save_model

    model = lb.quantize_(
        tiny_lstm(),
        lb.QuantConfig(weight=get("uniform", bits=4), act=get("uniform", bits=6, signed=True), quantize_input=True),
    )
    x = torch.randn(3, 5, 4)
    model(x)  # calibrates every per-tensor copy
    model.eval()
    path = tmp_path / "lstm.safetensors"
    save_model(path, model, "test_tiny_lstm", hidden=6)
    back, _ = load_model(path)
    back.eval()
    assert lb.quantization_map(back) == lb.quantization_map(model)
    with torch.no_grad():
        for a, b in zip(flat(back[0](x)), flat(model[0](x)), strict=True):
            assert torch.equal(a, b)
    for n in model[0].quant_weight_names:
        assert torch.equal(back[0].weight_quants[n].step, model[0].weight_quants[n].step)
