"""The zoo's formulas (spec §4a-§4h, TTQ, shift BN, uniform options) against slow, obvious re-statements.

Each reference is a python loop over elements in float64, written from the spec text, not from the code.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import lowbit as lb
from lowbit.nn import add_gradient_quantization, add_xnor_input_scaling
from lowbit.nn.shift_bn import ShiftBatchNorm1d, ShiftBatchNorm2d, ap2
from lowbit.quantizers.dorefa import quantize_grad_tensor, quantize_gradient
from lowbit.quantizers.uniform import l2_opt_step

get = lb.quantizers.get
D = torch.float64


def rnd(shape, seed=0, scale=1.0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=D) * scale


def sgn(v: float) -> float:
    return 1.0 if v >= 0 else -1.0


def grad_of(q, x, g=None):
    x = x.clone().requires_grad_(True)
    y = q(x)
    g = torch.ones_like(y) if g is None else g
    (y * g).sum().backward()
    return y.detach(), x.grad


# ---------------------------------------------------------------- BinaryConnect / BNN sign (§4b, §4c)


def test_binary_deterministic_values_sign_of_zero_and_identity_grad():
    x = torch.tensor([-2.0, -0.3, 0.0, -0.0, 0.4, 3.0], dtype=D)
    for H in (1.0, 0.25):
        y, g = grad_of(get("binary", H=H), x)
        assert y.tolist() == [H * sgn(v) for v in x.tolist()]  # -0.0 >= 0 too: +H
        assert g.tolist() == [1.0] * 6


def test_binary_post_step_clips_and_glorot_h():
    w = torch.tensor([[-3.0, 0.5], [2.0, -0.25]])
    get("binary").post_step(w)
    assert w.tolist() == [[-1.0, 0.5], [1.0, -0.25]]
    q = get("binary", H="glorot")
    conv_w = torch.randn(8, 4, 3, 3)
    h = math.sqrt(1.5 / (4 * 9 + 8 * 9))
    assert q.h_for(conv_w) == pytest.approx(h)
    assert q(conv_w).unique().tolist() == pytest.approx([-h, h])
    big = torch.full((8, 4, 3, 3), 5.0)
    q.post_step(big)
    assert float(big.max()) == pytest.approx(h)
    with pytest.raises(ValueError, match="H="):
        get("binary", H=-1)


def test_binary_stochastic_probability_and_eval_uses_real_weights():
    q = get("binary_stochastic")
    torch.manual_seed(1)
    for w in (-0.6, 0.0, 0.5, 1.5):
        x = torch.full((40000,), w)
        frac = float((q(x) > 0).double().mean())
        assert frac == pytest.approx(min(max((w + 1) / 2, 0.0), 1.0), abs=0.01)
    q.eval()
    x = rnd(50)
    y, g = grad_of(q, x)
    assert torch.equal(y, x) and g.tolist() == [1.0] * 50


def test_trainer_post_step_hook_clips_binaryconnect_layers():
    from lowbit.train.regularizers import apply_post_step

    m = lb.quantize_(nn.Sequential(nn.Linear(3, 2)), lb.QuantConfig(weight=get("binary")))
    with torch.no_grad():
        m[0].weight.mul_(10)
    apply_post_step(m)
    assert float(m[0].weight.detach().abs().max()) <= 1.0


def test_sign_activation_values_and_hardtanh_gradient():
    x = torch.tensor([-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.0001, 2.0], dtype=D)
    y, g = grad_of(get("sign"), x)
    assert y.tolist() == [sgn(v) for v in x.tolist()]
    assert g.tolist() == [1.0 if abs(v) <= 1 else 0.0 for v in x.tolist()]


# ---------------------------------------------------------------- XNOR (§4e)


def ref_xnor(w: torch.Tensor, g: torch.Tensor):
    out, grad = torch.zeros_like(w), torch.zeros_like(w)
    W, G = w.reshape(w.shape[0], -1), g.reshape(w.shape[0], -1)
    O, GR = out.view(w.shape[0], -1), grad.view(w.shape[0], -1)
    for c in range(W.shape[0]):
        row = W[c].tolist()
        n = len(row)
        alpha = sum(abs(v) for v in row) / n
        s = sum(sgn(v) * float(G[c, j]) for j, v in enumerate(row))
        for i, v in enumerate(row):
            O[c, i] = alpha * sgn(v)
            GR[c, i] = alpha * (1.0 if abs(v) <= 1 else 0.0) * float(G[c, i]) + sgn(v) / n * s
    return out, grad


def test_xnor_values_and_exact_gradient():
    w = rnd((4, 3, 2, 2), 1, 1.2)
    w[0, 0, 0, 0] = 0.0
    g = rnd((4, 3, 2, 2), 2)
    y, gw = grad_of(get("xnor"), w, g)
    ry, rg = ref_xnor(w, g)
    torch.testing.assert_close(y, ry)
    torch.testing.assert_close(gw, rg)
    assert y[0, 0, 0, 0] > 0  # sgn(0) = +1
    y0, g0 = grad_of(get("xnor"), torch.zeros(2, 3, dtype=D))
    assert y0.abs().sum() == 0 and torch.isfinite(g0).all()


def test_xnor_input_scaling_matches_box_filter_reference():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1).double()
    model = lb.quantize_(nn.Sequential(conv), lb.QuantConfig(weight=get("xnor"), act=get("sign"), quantize_input=True))
    scalers = add_xnor_input_scaling(model)
    assert len(scalers) == 1
    x = rnd((2, 3, 7, 7), 3)
    got = model(x)
    layer = model[0]
    # reference: K[n, i, j] = mean over the 3x3 window (zero padded) of A = mean_c |x|
    A = x.abs().mean(dim=1)
    K = torch.zeros(2, 4, 4, dtype=D)
    for n in range(2):
        for i in range(4):
            for j in range(4):
                s = 0.0
                for di in range(3):
                    for dj in range(3):
                        r, c = 2 * i - 1 + di, 2 * j - 1 + dj
                        if 0 <= r < 7 and 0 <= c < 7:
                            s += float(A[n, r, c])
                K[n, i, j] = s / 9
    wq = layer.weight_quant(layer.weight)
    xs = torch.where(x >= 0, 1.0, -1.0).to(D)
    base = torch.nn.functional.conv2d(xs, wq, None, stride=2, padding=1)
    want = base * K[:, None] + layer.bias.reshape(1, -1, 1, 1)
    torch.testing.assert_close(got, want)
    for s in scalers:
        s.remove()
    torch.testing.assert_close(model(x), base + layer.bias.reshape(1, -1, 1, 1))


# ---------------------------------------------------------------- TWN and TTQ (§4d)


def ref_twn(row: list[float]) -> list[float]:
    n = len(row)
    delta = 0.7 * sum(abs(v) for v in row) / n
    above = [abs(v) for v in row if abs(v) > delta]
    alpha = sum(above) / len(above) if above else 0.0
    return [alpha if v > delta else -alpha if v < -delta else 0.0 for v in row]


@pytest.mark.parametrize("per_channel", [False, True])
def test_twn_matches_reference(per_channel):
    w = rnd((5, 4, 3), 4)
    y, g = grad_of(get("twn", per_channel=per_channel), w)
    if per_channel:
        want = torch.tensor([ref_twn(r.reshape(-1).tolist()) for r in w], dtype=D).reshape(w.shape)
    else:
        want = torch.tensor(ref_twn(w.reshape(-1).tolist()), dtype=D).reshape(w.shape)
    torch.testing.assert_close(y, want)
    assert g.tolist() == torch.ones_like(w).tolist()


def test_twn_strict_threshold_and_empty():
    w = torch.tensor([2.0, -2.0, 0.7, 0.3, 0.0, -1.0], dtype=D)  # mean|w| = 1, Δ = 0.7 exactly
    y = get("twn")(w)
    assert y.tolist() == [5 / 3, -5 / 3, 0.0, 0.0, 0.0, -5 / 3]  # |w| = Δ stays 0
    assert get("twn")(torch.zeros(3, 3)).abs().sum() == 0


@pytest.mark.parametrize("init", ["official", "mean"])
def test_ttq_values_gradients_and_init(init):
    w = rnd((6, 5), 5)
    q = get("ttq", init=init).double()
    g = rnd((6, 5), 6)
    y, gw = grad_of(q, w, g)
    flat, gf = w.reshape(-1).tolist(), g.reshape(-1).tolist()
    delta = 0.05 * max(abs(v) for v in flat)
    pos = [v for v in flat if v >= delta]
    neg = [-v for v in flat if v <= -delta]
    wp, wn = (1.0, 1.0) if init == "official" else (sum(pos) / len(pos), sum(neg) / len(neg))
    assert float(q.wp.detach()) == pytest.approx(wp) and float(q.wn.detach()) == pytest.approx(wn)
    want = [wp if v >= delta else -wn if v <= -delta else 0.0 for v in flat]
    assert y.reshape(-1).tolist() == pytest.approx(want)
    want_gw = [wp * gi if v >= delta else wn * gi if v <= -delta else gi for v, gi in zip(flat, gf)]
    assert gw.reshape(-1).tolist() == pytest.approx(want_gw)
    assert float(q.wp.grad) == pytest.approx(sum(gi for v, gi in zip(flat, gf) if v >= delta))
    assert float(q.wn.grad) == pytest.approx(-sum(gi for v, gi in zip(flat, gf) if v <= -delta))
    # scales are learned, not re-initialised on later calls
    with torch.no_grad():
        q.wp.fill_(0.5)
    assert float(q(w).detach().max()) == pytest.approx(0.5)


# ---------------------------------------------------------------- DoReFa (§4a)


def ref_dorefa_w(xs: list[float], k: int) -> list[float]:
    n = 2**k - 1
    if k == 1:
        e = sum(abs(v) for v in xs) / len(xs)
        return [sgn(v) * e for v in xs]
    m = max(abs(math.tanh(v)) for v in xs)
    if m == 0:
        return [0.0] * len(xs)
    return [2 * (round(n * (math.tanh(v) / (2 * m) + 0.5)) / n) - 1 for v in xs]  # round(): half-even


def ref_dorefa_w_grad(xs: list[float], gs: list[float], k: int) -> list[float]:
    """d/dx_j Σ_i g_i y_i with the STE on quantize_k, through tanh and through m = max|tanh|."""
    if k == 1:
        return list(gs)
    t = [math.tanh(v) for v in xs]
    jmax = max(range(len(t)), key=lambda i: abs(t[i]))
    m = abs(t[jmax])
    s = sum(g * ti for g, ti in zip(gs, t))
    out = []
    for j in range(len(xs)):
        d = gs[j] / m - (math.copysign(1.0, t[j]) * s / m**2 if j == jmax else 0.0)
        out.append(d * (1 - t[j] ** 2))
    return out


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_dorefa_weights_match_reference(k):
    x = rnd(40, 7, 1.3)
    g = rnd(40, 8)
    y, gx = grad_of(get("dorefa_w", bits=k), x, g)
    assert y.tolist() == pytest.approx(ref_dorefa_w(x.tolist(), k), abs=1e-12)
    assert gx.tolist() == pytest.approx(ref_dorefa_w_grad(x.tolist(), g.tolist(), k), abs=1e-10)


def test_dorefa_no_zero_level_and_all_zero():
    assert get("dorefa_w", bits=2).levels(rnd(9)).tolist() == pytest.approx([-1, -1 / 3, 1 / 3, 1])
    for k in (1, 2, 4):
        y, g = grad_of(get("dorefa_w", bits=k), torch.zeros(5, dtype=D))
        assert y.abs().sum() == 0 and torch.isfinite(g).all()
    assert get("dorefa_w", bits=1)(torch.tensor([0.0, -2.0])).tolist() == [1.0, -1.0]  # sgn(0) = +1, E = 1


def test_dorefa_activation_reference_ties_half_even_and_gradient():
    x = rnd(60, 9, 0.8)
    for k in (1, 2, 3):
        n = 2**k - 1
        y, g = grad_of(get("dorefa_a", bits=k), x)
        want = [round(n * min(max(v, 0.0), 1.0)) / n for v in x.tolist()]
        assert y.tolist() == pytest.approx(want, abs=1e-12)
        assert g.tolist() == [1.0 if 0 <= v <= 1 else 0.0 for v in x.tolist()]
    # ties: 3·0.5 = 1.5 -> 2 (half-even), 1·0.5 = 0.5 -> 0 (half-even; half-up would give 1)
    assert float(get("dorefa_a", bits=2)(torch.tensor(0.5, dtype=D))) == pytest.approx(2 / 3)
    assert float(get("dorefa_a", bits=1)(torch.tensor(0.5, dtype=D))) == 0.0


def test_dorefa_gradient_quantization_grid_unbiased_and_hooks():
    g = rnd((2, 50), 10)
    bits, n = 4, 15
    q = quantize_grad_tensor(g, bits, torch.Generator().manual_seed(0))
    for r in range(2):
        rank = float(g[r].abs().max())
        codes = (q[r] / (2 * rank) + 0.5) * n
        torch.testing.assert_close(codes, codes.round())  # on the k-bit grid of that example
    reps = torch.stack([quantize_grad_tensor(g, bits, torch.Generator().manual_seed(s)) for s in range(400)])
    assert float((reps.mean(0) - g).abs().max()) < 0.05 * float(g.abs().max())  # unbiased (noise = dithering)
    x = rnd((2, 50), 11).requires_grad_(True)
    quantize_gradient(x, bits).backward(g)
    assert not torch.equal(x.grad, g) and torch.isfinite(x.grad).all()
    m = lb.quantize_(nn.Sequential(nn.Linear(4, 3)).double(), lb.QuantConfig(weight=get("dorefa_w", bits=2)))
    handles = add_gradient_quantization(m, 2)
    assert len(handles) == 1
    m(rnd((5, 4), 12)).sum().backward()
    assert torch.isfinite(m[0].weight.grad).all()
    for h in handles:
        h.remove()
    with pytest.raises(ValueError, match="bits"):
        quantize_gradient(x, 0)


# ---------------------------------------------------------------- HWGQ (§4f)


def ref_hwgq(v: float, centers: list[float]) -> float:
    if v <= 0:
        return 0.0
    thr = [(a + b) / 2 for a, b in zip(centers, centers[1:])]
    for c, t in zip(centers, thr):
        if v <= t:  # x <= t goes to the lower level
            return c
    return centers[-1]


@pytest.mark.parametrize("variant,centers", [("2", [0.538, 1.076, 1.614]), ("2n", [0.453, 1.51])])
def test_hwgq_matches_reference_with_ties_and_gradient(variant, centers):
    q = get("hwgq", variant=variant)
    cs = q.centers.to(D).tolist()
    assert cs == pytest.approx(centers)
    thr = [(a + b) / 2 for a, b in zip(cs, cs[1:])]
    x = torch.cat([rnd(200, 13, 1.2), torch.tensor([0.0, 1e-9, -1e-9, cs[-1], cs[-1] + 1e-6] + thr, dtype=D)])
    y, g = grad_of(q, x)
    assert y.tolist() == pytest.approx([ref_hwgq(v, cs) for v in x.tolist()], abs=0)
    assert g.tolist() == [1.0 if 0 < v <= cs[-1] else 0.0 for v in x.tolist()]


def test_hwgq_custom_centers_and_rejections():
    q = get("hwgq", bits=1, centers=[0.8])
    assert q(torch.tensor([-1.0, 0.0, 0.1, 3.0])).tolist() == pytest.approx([0, 0, 0.8, 0.8])
    with pytest.raises(ValueError, match="fit"):
        get("hwgq", bits=1, centers=[0.5, 1.0])
    with pytest.raises(ValueError, match="increasing"):
        get("hwgq", centers=[1.0, 0.5])
    with pytest.raises(ValueError, match="variant"):
        get("hwgq", variant="3")


# ---------------------------------------------------------------- logarithmic (§4g)


def ref_log2(v: float, b: int, fsr: int, signed: bool) -> float:
    mb = b - 1 if signed else b
    if v == 0 or (v < 0 and not signed):
        return 0.0
    e = math.floor(math.log2(abs(v)) + 0.5)
    if e <= fsr - 2**mb:
        return 0.0
    e = min(e, fsr - 1)
    return math.copysign(2.0**e, v)


@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("signed", [False, True])
def test_log2_matches_reference_and_calibrates_fsr(bits, signed):
    x = rnd(300, 14, 2.0)
    q = get("log2", bits=bits, signed=signed)
    y, g = grad_of(q, x)
    m = float(x.abs().max()) if signed else float(x.max())
    fsr = math.floor(math.log2(m) + 0.5) + 1
    assert int(q.fsr) == fsr
    assert y.tolist() == [ref_log2(v, bits, fsr, signed) for v in x.tolist()]
    assert g.tolist() == [1.0 if (signed or v > 0) else 0.0 for v in x.tolist()]
    assert torch.unique(y).numel() <= q.max_levels()


def test_log2_log_domain_threshold_underflow_and_fixed_fsr():
    q = get("log2", bits=2, fsr=2)  # levels {0, 2^-1, 2^0, 2^1}
    assert q.levels(torch.ones(1)).tolist() == [0.0, 0.5, 1.0, 2.0]
    r2 = math.sqrt(2)
    x = torch.tensor([r2 * 0.999, r2 * 1.001, 100.0, 0.36, 0.35, 0.0, -1.0], dtype=D)
    # √2 is the log-domain midpoint between 1 and 2 (linear would be 1.5); 0.35 < 2^-1.5 underflows to 0
    assert get("log2", bits=2, fsr=2)(x).tolist() == [1.0, 2.0, 2.0, 0.5, 0.0, 0.0, 0.0]
    y, g = grad_of(get("log2", bits=3, fsr=1, clip_grad=True), torch.tensor([0.5, 1.4, 1.5, 2.0], dtype=D))
    assert g.tolist() == [1.0, 1.0, 0.0, 0.0]  # above √2·2^(FSR-1) = 1.414 the gradient is cut
    z = get("log2")
    assert z(torch.zeros(4)).abs().sum() == 0 and z.fsr.numel() == 0  # all-zero first tensor: FSR not set


# ---------------------------------------------------------------- LSQ (§4h)


@pytest.mark.parametrize("bits,signed", [(2, True), (3, True), (4, True), (1, False), (2, False), (4, False)])
def test_lsq_values_init_and_step_gradient(bits, signed):
    x = rnd((4, 30), 15, 1.1)
    if not signed:
        x = x.abs()
    q = get("lsq", bits=bits, signed=signed).double()
    g = rnd((4, 30), 16)
    y, gx = grad_of(q, x, g)
    qn, qp = (2 ** (bits - 1), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    s = 2 * float(x.abs().mean()) / math.sqrt(qp)
    assert float(q.s.detach()) == pytest.approx(s)
    nf = x.numel() / x.shape[0] if not signed else x.numel()
    gscale = 1 / math.sqrt(nf * qp)
    want_y, want_gx, want_gs = [], [], 0.0
    for v, gi in zip(x.reshape(-1).tolist(), g.reshape(-1).tolist()):
        r = v / s
        c = min(max(r, -qn), qp)
        want_y.append(round(c) * s)
        want_gx.append(gi if -qn <= r <= qp else 0.0)
        ds = -r + round(r) if -qn < r < qp else (-qn if r <= -qn else qp)
        want_gs += gi * ds * gscale
    assert y.reshape(-1).tolist() == pytest.approx(want_y, abs=1e-12)
    assert gx.reshape(-1).tolist() == pytest.approx(want_gx, abs=1e-12)  # (g/s)·s: exact up to rounding
    assert float(q.s.grad) == pytest.approx(want_gs, rel=1e-9)


def test_lsq_rejects_signed_one_bit_and_clamps_step():
    with pytest.raises(ValueError, match="bits=1"):
        get("lsq", bits=1)
    q = get("lsq", bits=4)
    y, g = grad_of(q, torch.zeros(3, 3))
    assert float(q.s.detach()) == 0.0 and y.abs().sum() == 0 and torch.isfinite(g).all()
    assert get("lsq", bits=2, symmetric=True).levels(torch.ones(2)).numel() == 3


# ---------------------------------------------------------------- uniform options (§2 + per-channel / asymmetric)


def test_uniform_per_channel_steps_are_per_row_l2_opt():
    w = rnd((4, 3, 3, 3), 17) * torch.tensor([0.1, 1.0, 3.0, 0.0], dtype=D).reshape(4, 1, 1, 1)
    q = get("uniform", bits=3, granularity="per_channel")
    y, g = grad_of(q, w)
    assert q.step.shape == (4,)
    for c in range(4):
        assert float(q.step[c]) == pytest.approx(l2_opt_step(w[c], 3, True), rel=1e-6)
        st = float(q.step[c])  # the step buffer is float32, as the per-tensor default
        want = [st * max(-3, min(3, math.floor(v / st + 0.5))) for v in w[c].reshape(-1).tolist()]
        assert y[c].reshape(-1).tolist() == pytest.approx(want, abs=1e-12)
    assert torch.equal(g, torch.ones_like(w))


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("bits", [1, 2, 4])
def test_uniform_asymmetric_min_max_reference(per_channel, bits):
    w = rnd((3, 20), 18) + torch.tensor([0.5, -2.0, 3.0], dtype=D).reshape(3, 1)
    q = get("uniform", bits=bits, symmetric=False, granularity="per_channel" if per_channel else "per_tensor")
    y, g = grad_of(q, w)
    n = 2**bits - 1
    rows = [w[c].tolist() for c in range(3)] if per_channel else [w.reshape(-1).tolist()]
    want, want_g = [], []
    for r in rows:
        lo, hi = min(min(r), 0.0), max(max(r), 0.0)
        st = (hi - lo) / n
        z = min(max(math.floor(-lo / st + 0.5), 0), n)
        for v in r:
            want.append(st * (min(max(math.floor(v / st + 0.5) + z, 0), n) - z))
            want_g.append(1.0 if -z * st <= v <= (n - z) * st else 0.0)
    assert y.reshape(-1).tolist() == pytest.approx(want, abs=1e-12)
    assert g.reshape(-1).tolist() == want_g
    assert 0.0 in q.levels(w).tolist() or bits == 1  # zero is on the grid (z is an integer code)
    y0 = q.__class__(**q.config())(torch.zeros(2, 3))
    assert y0.abs().sum() == 0


def test_uniform_options_validate():
    with pytest.raises(ValueError, match="granularity"):
        get("uniform", bits=2, granularity="per_row")
    with pytest.raises(ValueError, match="fixed step"):
        get("uniform", bits=2, step=0.1, symmetric=False)


# ---------------------------------------------------------------- shift-based batch norm (BinaryNet Alg. 3)


def ref_ap2(v: float) -> float:
    return 0.0 if v == 0 else math.copysign(2.0 ** math.floor(math.log2(abs(v)) + 0.5), v)


def test_ap2_is_power_of_two_rounding():
    x = torch.tensor([0.0, 1.0, 1.41, 1.42, -3.0, 0.3, 1e-5], dtype=D)
    assert ap2(x).tolist() == [ref_ap2(v) for v in x.tolist()]


def test_shift_batchnorm_matches_reference_train_and_eval():
    torch.manual_seed(0)
    bn = ShiftBatchNorm2d(3).double()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.7, 1.3, 3.0]))
        bn.bias.copy_(torch.tensor([0.1, -0.2, 0.0]))
    x = rnd((4, 3, 2, 2), 19, 2.0) + 1.0
    y = bn(x)
    for c in range(3):
        vals = x[:, c].reshape(-1).tolist()
        mu = sum(vals) / len(vals)
        cs = [v - mu for v in vals]
        var = sum(v * ref_ap2(v) for v in cs) / len(cs)
        inv = ref_ap2(1 / math.sqrt(var + bn.eps))
        want = [v * inv * ref_ap2(float(bn.weight[c].detach())) + float(bn.bias[c].detach()) for v in cs]
        assert y[:, c].reshape(-1).tolist() == pytest.approx(want, abs=1e-12)
        assert float(bn.running_mean[c]) == pytest.approx(0.1 * mu)
    y.sum().backward()
    assert torch.isfinite(bn.weight.grad).all()
    bn.eval()
    ye = bn(x)
    inv = torch.tensor([ref_ap2(1 / math.sqrt(float(v) + bn.eps)) for v in bn.running_var], dtype=D)
    sc = torch.tensor([ref_ap2(float(w)) for w in bn.weight.detach()], dtype=D)
    want = (x - bn.running_mean.reshape(1, 3, 1, 1)) * (inv * sc).reshape(1, 3, 1, 1) + bn.bias.reshape(1, 3, 1, 1)
    torch.testing.assert_close(ye, want.detach())
    b1 = ShiftBatchNorm1d(5)
    assert torch.isfinite(b1(torch.zeros(8, 5))).all()
    with pytest.raises(ValueError, match="4-D"):
        bn(torch.zeros(2, 3))
