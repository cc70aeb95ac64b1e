"""QuantMultiheadAttention: equal to torch's nn.MultiheadAttention (outputs, attention weights, gradients) over a
grid of options when nothing is quantized; with quantizers, equal to a per-example, per-head restatement that
applies each quantizer where the docstring says; calibrate / freeze / packed / model-file round trips; INQ."""

from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from support.twins import check_round_trips, quantized_share
from torch import nn

import lowbit as lb
from lowbit.nn import QuantLinear, QuantMultiheadAttention
from lowbit.quantizers import get

E, H, L, S, N = 8, 2, 4, 6, 3


def identity_quantizers():
    """32-bit uniform quantizers return their input: every role's code path runs, values unchanged."""
    return get("uniform", bits=32), get("uniform", bits=32)


def make_mha(bias=True, kv=None, bias_kv=False, zero_attn=False, batch_first=False, dropout=0.0, seed=0):
    torch.manual_seed(seed)
    kd, vd = kv or (None, None)
    m = nn.MultiheadAttention(
        E, H, dropout=dropout, bias=bias, kdim=kd, vdim=vd, add_bias_kv=bias_kv, add_zero_attn=zero_attn,
        batch_first=batch_first,
    )  # fmt: skip
    if bias:  # torch initialises the biases to 0: make them matter
        nn.init.normal_(m.in_proj_bias)
        nn.init.normal_(m.out_proj.bias)
    return m


def make_inputs(m: nn.MultiheadAttention, self_attn: bool, batched: bool = True):
    g = torch.Generator().manual_seed(1)

    def t(length, dim):
        if not batched:
            return torch.randn(length, dim, generator=g, requires_grad=True)
        shape = (N, length, dim) if m.batch_first else (length, N, dim)
        return torch.randn(*shape, generator=g, requires_grad=True)

    if self_attn:
        x = t(L, E)
        return (x, x, x), L
    return (t(L, E), t(S, m.kdim), t(S, m.vdim)), S


def make_masks(kind: str, src: int, batched: bool = True):
    g = torch.Generator().manual_seed(2)
    kpm = torch.rand(N, src, generator=g) < 0.3
    kpm[:, 0] = False  # no fully masked row (NaN in torch as here)
    am = torch.rand(L, src, generator=g) < 0.3
    am[:, 0] = False
    kpm = kpm if batched else kpm[0]
    return {
        "none": {},
        "key_padding": {"key_padding_mask": kpm},
        "attn_bool": {"attn_mask": am},
        "both": {"key_padding_mask": kpm, "attn_mask": am},
        "attn_float3d": {"attn_mask": torch.randn((N if batched else 1) * H, L, src, generator=g)},
        "causal": {"attn_mask": nn.Transformer.generate_square_subsequent_mask(src)[:L], "is_causal": True},
    }[kind]


def compare(m, t, args, kw, atol=1e-6):
    """Outputs, attention weights and the gradients of inputs and weights of two modules on the same call."""
    outs = []
    for mod in (m, t):
        for a in args:
            a.grad = None
        mod.zero_grad()
        out, w = mod(*args, **kw)
        (out.square().sum() + (w.sum() if w is not None else 0)).backward()
        grads = [a.grad.clone() for a in dict.fromkeys(args)]
        grads += [p.grad.clone() for p in (mod.in_proj_weight, mod.q_proj_weight, mod.out_proj.weight) if p is not None]
        outs.append((out, w, grads))
    (o1, w1, g1), (o2, w2, g2) = outs
    torch.testing.assert_close(o2, o1, atol=atol, rtol=0)
    assert (w1 is None) == (w2 is None)
    if w1 is not None:
        torch.testing.assert_close(w2, w1, atol=atol, rtol=0)
    for a, b in zip(g2, g1):
        torch.testing.assert_close(a, b, atol=10 * atol, rtol=1e-5)  # sums of squares: large gradients


GRID = list(
    itertools.product(
        [False, True],  # batch_first
        [True, False],  # bias
        [None, (5, 7)],  # kdim, vdim
        [False, True],  # add_bias_kv
        [False, True],  # add_zero_attn
    )
)


@pytest.mark.parametrize("batch_first,bias,kv,bias_kv,zero_attn", GRID)
@pytest.mark.parametrize("quantizers", ["none", "identity"])
def test_equals_torch_without_quantization(batch_first, bias, kv, bias_kv, zero_attn, quantizers):
    m = make_mha(bias, kv, bias_kv, zero_attn, batch_first)
    wq, aq = identity_quantizers() if quantizers == "identity" else (None, None)
    t = QuantMultiheadAttention.from_float(copy.deepcopy(m), wq, aq)
    if quantizers == "identity":
        assert set(t.act_quants) == {"q", "k", "v", "attn"}
    for self_attn in [False, True] if kv is None else [False]:
        args, src = make_inputs(m, self_attn)
        for masks, need, avg in itertools.product(
            ["none", "key_padding", "both", "attn_float3d", "causal"], [True, False], [True, False]
        ):
            if masks == "causal" and (bias_kv or zero_attn):
                continue  # a causal mask of the wrong width: torch refuses it too
            kw = {**make_masks(masks, src), "need_weights": need, "average_attn_weights": avg}
            compare(m, t, args, kw)


@pytest.mark.parametrize("self_attn", [True, False])
def test_unbatched_and_bool_attn_mask_equal_torch(self_attn):
    m = make_mha(batch_first=True)
    t = QuantMultiheadAttention.from_float(copy.deepcopy(m), *identity_quantizers())
    args, src = make_inputs(m, self_attn, batched=False)
    for kind in ("none", "key_padding", "attn_bool", "attn_float3d"):
        compare(m, t, args, make_masks(kind, src, batched=False))


def test_dropout_in_training_equals_torch_with_the_same_seed():
    m = make_mha(dropout=0.3).train()
    t = QuantMultiheadAttention.from_float(copy.deepcopy(m), *identity_quantizers()).train()
    args, _ = make_inputs(m, self_attn=False)
    torch.manual_seed(5)
    a, wa = m(*args)
    torch.manual_seed(5)
    b, wb = t(*args)
    torch.testing.assert_close(b, a, atol=1e-6, rtol=0)
    torch.testing.assert_close(wb, wa, atol=1e-6, rtol=0)
    assert (wa == 0).any()  # dropout did act


def test_is_causal_alone_builds_the_causal_mask():
    m = make_mha(batch_first=True)
    t = QuantMultiheadAttention.from_float(copy.deepcopy(m), None, None)
    (x, _, _), _ = make_inputs(m, self_attn=True)
    mask = nn.Transformer.generate_square_subsequent_mask(L)
    torch.testing.assert_close(t(x, x, x, is_causal=True)[0], m(x, x, x, attn_mask=mask)[0], atol=1e-6, rtol=0)


def test_refusals_name_the_problem():
    t = QuantMultiheadAttention.from_float(make_mha(batch_first=True), None, None)
    x = torch.randn(N, L, E)
    with pytest.raises(ValueError, match="attn_mask of shape"):
        t(x, x, x, attn_mask=torch.zeros(L + 1, L))
    with pytest.raises(ValueError, match="key_padding_mask of shape"):
        t(x, x, x, key_padding_mask=torch.zeros(N, L + 1, dtype=torch.bool))
    with pytest.raises(TypeError, match="dtype torch.int64"):
        t(x, x, x, attn_mask=torch.zeros(L, L, dtype=torch.long))


# ---------------------------------------------------------------- quantized: against a slow restatement


def reference(t: QuantMultiheadAttention, x: torch.Tensor, kpm: torch.Tensor) -> torch.Tensor:
    """Per example and per head, each quantizer applied where the docstring places it (batch_first, self-attn).
    The quantizers are calibrated (fixed steps), so applying one to a slice equals applying it to the whole."""
    d = E // H
    w = t.weight_quant(t.in_proj_weight)
    w_q, w_k, w_v = w[:E], w[E : 2 * E], w[2 * E :]
    b_q, b_k, b_v = t.in_proj_bias[:E], t.in_proj_bias[E : 2 * E], t.in_proj_bias[2 * E :]
    outs = []
    for n in range(x.shape[0]):
        xn = t.act_quant(x[n])
        heads = []
        for h in range(H):
            rows = slice(h * d, (h + 1) * d)
            q = t.act_quants["q"](xn @ w_q[rows].T + b_q[rows])
            k = t.act_quants["k"](xn @ w_k[rows].T + b_k[rows])
            v = t.act_quants["v"](xn @ w_v[rows].T + b_v[rows])
            scores = (q / math.sqrt(d)) @ k.T
            scores = scores.masked_fill(kpm[n][None, :], float("-inf"))
            p = t.act_quants["attn"](torch.softmax(scores, dim=-1))
            heads.append(p @ v)
        outs.append(t.out_proj(torch.cat(heads, dim=1)))  # QuantLinear: quantizes O and W_o itself
    return torch.stack(outs)


@pytest.mark.parametrize("act", ["uniform", "lsq"])
def test_quantized_equals_the_per_head_restatement_with_gradients(act):
    model = nn.Sequential(make_mha(batch_first=True))
    cfg = lb.QuantConfig(
        weight=get("uniform", bits=3), act=get(act, bits=3, signed=True), quantize_input=True
    )  # fmt: skip
    lb.quantize_(model, cfg)
    t = model[0]
    assert isinstance(t, QuantMultiheadAttention) and isinstance(t.out_proj, QuantLinear)
    x = torch.randn(N, L, E, generator=torch.Generator().manual_seed(3))
    kpm = torch.zeros(N, L, dtype=torch.bool)
    kpm[0, -1] = True
    lb.calibrate(t, [x], forward=lambda m, b: m(b, b, b, key_padding_mask=kpm))
    steps = {r: float((q.s if act == "lsq" else q.step).detach()) for r, q in t.act_quants.items()}
    assert len(set(steps.values())) == 4, f"each role calibrates its own step: {steps}"

    x1 = x.clone().requires_grad_()
    x2 = x.clone().requires_grad_()
    got, _ = t(x1, x1, x1, key_padding_mask=kpm, need_weights=False)
    got.square().sum().backward()
    g_got = [x1.grad, t.in_proj_weight.grad.clone(), t.out_proj.weight.grad.clone()]
    t.zero_grad()
    want = reference(t, x2, kpm)
    want.square().sum().backward()
    g_want = [x2.grad, t.in_proj_weight.grad, t.out_proj.weight.grad]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    for a, b in zip(g_got, g_want):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    float_out = nn.MultiheadAttention.forward(make_mha(batch_first=True), x, x, x, key_padding_mask=kpm)[0]
    assert (got - float_out).abs().max() > 1e-2  # 3 bits change the output: the comparison above can fail


def test_every_quantizer_parameter_gets_a_gradient():
    """No unused parameters (DDP's find_unused_parameters=False): every role's LSQ step trains."""
    model = nn.Sequential(make_mha(batch_first=True))
    lb.quantize_(model, lb.QuantConfig(weight=get("lsq", bits=4), act=get("lsq", bits=4), quantize_input=True))
    x = torch.randn(N, L, E)
    model[0](x, x, x)[0].sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing


def test_separate_qkv_weights_get_one_quantizer_each():
    model = nn.Sequential(make_mha(kv=(5, 7)))
    lb.quantize_(model, lb.QuantConfig(weight=get("uniform", bits=2)))
    t = model[0]
    assert t.quant_weight_names == ("q_proj_weight", "k_proj_weight", "v_proj_weight")
    assert t.weight_quantizer("q_proj_weight") is t.weight_quant
    assert set(t.weight_quants) == {"k_proj_weight", "v_proj_weight"}
    for n in t.quant_weight_names:
        w = t.quantized_weight(n)
        step = t.weight_quantizer(n).step
        codes = w / step
        assert torch.equal(codes, codes.round()) and codes.abs().max() <= 1  # 2-bit signed grid {-Δ, 0, Δ}
    assert len({float(t.weight_quantizer(n).step) for n in t.quant_weight_names}) == 3


def test_quantize_swaps_out_proj_and_maps_both():
    model = nn.Sequential(make_mha(batch_first=True))
    lb.quantize_(model, lb.QuantConfig(weight=get("uniform", bits=4), act=get("uniform", bits=8)))
    qmap = lb.quantization_map(model)
    assert qmap["0"]["type"] == "QuantMultiheadAttention" and qmap["0.out_proj"]["type"] == "QuantLinear"
    assert qmap["0.out_proj"]["weight"]["bits"] == 4 and qmap["0.out_proj"]["act"]["bits"] == 8
    assert quantized_share(model) == pytest.approx(1 - (3 * E + E) / sum(p.numel() for p in model.parameters()))
    kept = nn.Sequential(make_mha(batch_first=True))
    lb.quantize_(kept, lb.QuantConfig(weight=get("uniform", bits=4), keep_float=("*out_proj",)))
    assert type(kept[0].out_proj) is nn.modules.linear.NonDynamicallyQuantizableLinear


class _Attn(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = make_mha(batch_first=True, seed=0)
        self.head = nn.Linear(E, 3)

    def forward(self, x):
        return self.head(self.attn(x, x, x, need_weights=False)[0])


class _CrossAttn(nn.Module):
    """Cross-attention with kdim/vdim != embed_dim: separate q/k/v_proj_weight, one quantizer each."""

    def __init__(self):
        super().__init__()
        self.attn = make_mha(kv=(5, 7), batch_first=True)
        self.head = nn.Linear(E, 3)

    def forward(self, x, k, v):
        return self.head(self.attn(x, k, v, need_weights=False)[0])


@pytest.mark.parametrize("act", [None, "uniform"])
def test_round_trips(tmp_path, act):
    cfg = lb.QuantConfig(weight=get("uniform", bits=4), act=act and get("uniform", bits=8), quantize_input=True)
    g = torch.Generator().manual_seed(4)
    check_round_trips(_Attn, cfg, (torch.randn(N, L, E, generator=g),), tmp_path)
    inputs = (torch.randn(N, L, E, generator=g), torch.randn(N, S, 5, generator=g), torch.randn(N, S, 7, generator=g))
    model = check_round_trips(_CrossAttn, cfg, inputs, tmp_path)
    assert set(model.attn.weight_quants) == {"k_proj_weight", "v_proj_weight"}


def test_inq_puts_the_in_projection_on_powers_of_two():
    model = _Attn()
    inq = lb.INQ(model, bits=4, portions=(0.5, 1.0))
    for _ in inq:
        pass
    assert isinstance(model.attn, QuantMultiheadAttention) and inq.check()
    w = model.attn.in_proj_weight.detach()
    nz = w[w != 0].abs()
    assert torch.equal(torch.log2(nz), torch.log2(nz).round())
    x = torch.randn(N, L, E)
    frozen = lb.freeze(copy.deepcopy(model).eval())
    torch.testing.assert_close(frozen(x), model.eval()(x), atol=1e-6, rtol=0)


def test_forward_has_no_graph_break():
    """No host syncs in the twin's own code: dynamo traces it whole (the identity quantizers add none)."""
    t = QuantMultiheadAttention.from_float(make_mha(batch_first=True), *identity_quantizers())
    x = torch.randn(N, L, E)
    kpm = torch.zeros(N, L, dtype=torch.bool)
    compiled = torch.compile(t, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(x, x, x, key_padding_mask=kpm)[0], t(x, x, x, key_padding_mask=kpm)[0])


def test_f_reference_is_not_used():
    """The forward restates the math: F.multi_head_attention_forward is never called (it would read raw weights)."""
    t = QuantMultiheadAttention.from_float(make_mha(batch_first=True), *identity_quantizers())
    called = []
    original = F.multi_head_attention_forward
    F.multi_head_attention_forward = lambda *a, **k: called.append(1) or original(*a, **k)
    try:
        x = torch.randn(N, L, E)
        t.eval()
        with torch.no_grad():
            t(x, x, x)
    finally:
        F.multi_head_attention_forward = original
    assert not called


def test_dorefa_gradient_hooks_accept_attention():
    """add_gradient_quantization hooks every twin; MHA returns a tuple, its out_proj's hook quantizes the gradient."""
    model = _Attn()
    lb.quantize_(model, lb.QuantConfig(weight=get("uniform", bits=4)))
    handles = lb.add_gradient_quantization(model, bits=4)
    x = torch.randn(N, L, E, requires_grad=True)
    model(x).sum().backward()
    assert torch.isfinite(x.grad).all() and len(handles) == 3  # attn, attn.out_proj, head
