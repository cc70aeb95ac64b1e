"""uniform (spec §2), pact (spec §3), pot (spec §1.1-1.2) against slow, obvious re-statements."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lowbit as lb
from lowbit.quantizers.pact import pact_quantize
from lowbit.quantizers.pot import inq_exponents, inq_round
from lowbit.quantizers.uniform import l2_opt_step, uniform_quantize

# ---------------------------------------------------------------- slow references


def ref_uniform(x: list[float], step: float, bits: int, signed: bool) -> list[float]:
    out = []
    for v in x:
        if signed:
            L = 2 ** (bits - 1) - 1
            lo, hi = -L * step, L * step
        else:
            lo, hi = 0.0, (2**bits - 1) * step
        c = min(max(v, lo), hi)
        out.append(step * math.floor(c / step + 0.5))
    return out


def ref_l2_error(w: list[float], step: float, bits: int) -> float:
    return sum((a - b) ** 2 for a, b in zip(w, ref_uniform(w, step, bits, True)))


def ref_inq_eq4(v: float, n1: int, n2: int) -> float:
    """Paper Eq. 4 literally: scan adjacent levels alpha < beta of P+ = {0, 2^n2..2^n1}."""
    levels = [0.0] + [2.0**p for p in range(n2, n1 + 1)]
    a = abs(v)
    if a >= 1.5 * 2.0**n1:
        return math.copysign(2.0**n1, v)  # saturate (spec §1.4)
    for alpha, beta in zip(levels[:-1], levels[1:]):
        if (alpha + beta) / 2 <= a < 3 * beta / 2:
            return math.copysign(beta, v)
    return 0.0


# ---------------------------------------------------------------- uniform


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("signed", [True, False])
def test_uniform_matches_reference(bits, signed):
    x = torch.randn(500, dtype=torch.float64) * 2
    step = 0.37
    got = uniform_quantize(x, step, bits, signed)
    if signed and bits == 1:
        want = [step if v >= 0 else -step for v in x.tolist()]
    else:
        want = ref_uniform(x.tolist(), step, bits, signed)
    assert got.tolist() == pytest.approx(want, abs=1e-12)


def test_uniform_ties_round_half_up_not_odd():
    q = lb.quantizers.get("uniform", bits=3, step=1.0)
    x = torch.tensor([1.5, -1.5, 0.5, -0.5, 2.5])
    assert q(x).tolist() == [2.0, -1.0, 1.0, 0.0, 3.0]  # floor(x + 0.5): Q(1.5Δ)=2Δ, Q(-1.5Δ)=-Δ


def test_uniform_levels_counts():
    x = torch.randn(1000)
    for bits in (2, 3, 4):
        w = lb.quantizers.get("uniform", bits=bits)
        assert len(w.levels(x)) == 2**bits - 1
        assert set(w(x).unique().tolist()) <= set(w.levels(x).tolist())
        a = lb.quantizers.get("uniform", bits=bits, signed=False)
        assert len(a.levels(x.relu())) == 2**bits
        assert set(a(x.relu()).unique().tolist()) <= set(a.levels(x.relu()).tolist())


@pytest.mark.parametrize("bits,ratio", [(2, 1.23), (3, 0.65), (4, 0.354)])
def test_l2_opt_gaussian_sanity_values(bits, ratio):
    g = torch.Generator().manual_seed(1)
    w = torch.randn(200_000, generator=g, dtype=torch.float64)
    assert l2_opt_step(w, bits) == pytest.approx(ratio, rel=0.03)


@pytest.mark.slow
@pytest.mark.parametrize("bits", [2, 3, 4])
def test_l2_opt_beats_grid_search(bits):
    w = torch.randn(400, dtype=torch.float64) * 0.1
    step = l2_opt_step(w, bits)
    a = float(w.abs().max())
    grid = [a * k / 2000 for k in range(1, 2001)]
    best_grid = min(ref_l2_error(w.tolist(), s, bits) for s in grid)
    # alternating minimisation reaches a local optimum: within 0.1% of a fine grid search (spec §2.2)
    assert ref_l2_error(w.tolist(), step, bits) <= best_grid * (1 + 1e-3)


def test_uniform_all_zero_and_constant():
    q = lb.quantizers.get("uniform", bits=2)
    z = torch.zeros(10, requires_grad=True)
    y = q(z)
    assert torch.equal(y, torch.zeros(10)) and float(q.step) == 1.0
    y.sum().backward()
    assert torch.equal(z.grad, torch.ones(10))  # gradient passes through
    c = torch.full((7,), -0.3)
    step = l2_opt_step(c, 3)  # constant |w|: any step with |w| on the grid gives zero error
    assert uniform_quantize(c, step, 3, True).tolist() == pytest.approx(c.tolist())


def test_uniform_one_bit_is_binary_mean_abs():
    w = torch.tensor([0.5, -1.0, 0.0, 2.5])
    q = lb.quantizers.get("uniform", bits=1)
    assert q(w).tolist() == [1.0, -1.0, 1.0, 1.0]  # mean|w| = 1, sgn(0) = +1


def test_uniform_32_bits_is_identity():
    x = torch.randn(50)
    assert torch.equal(lb.quantizers.get("uniform", bits=32)(x), x)


def test_uniform_step_fixed_after_first_call_unless_always():
    q = lb.quantizers.get("uniform", bits=2)
    q(torch.randn(100))
    s = float(q.step)
    q(torch.randn(100) * 10)
    assert float(q.step) == s
    qa = lb.quantizers.get("uniform", bits=2, update="always")
    qa(torch.randn(100))
    s = float(qa.step)
    qa(torch.randn(100) * 10)
    assert float(qa.step) != s


def test_uniform_gradients_weight_identity_act_clipped():
    w = torch.randn(100, requires_grad=True)
    lb.quantizers.get("uniform", bits=2)(w).sum().backward()
    assert torch.equal(w.grad, torch.ones(100))
    x = torch.tensor([-1.0, 0.0, 0.5, 2.9, 3.0, 3.1, 10.0], requires_grad=True)
    q = lb.quantizers.get("uniform", bits=2, signed=False, step=1.0)  # beta = 3
    q(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]  # 1_{0 <= x <= beta}


# ---------------------------------------------------------------- pact


def test_pact_values_and_gradients():
    alpha = torch.tensor(2.0, requires_grad=True)
    x = torch.tensor([-1.0, 0.0, 0.4, 1.0, 1.99, 2.0, 5.0], requires_grad=True)
    y = pact_quantize(x, alpha, 2)  # levels {0, 2/3, 4/3, 2}
    n = 3
    want = [round(min(max(v, 0.0), 2.0) * n / 2.0) * 2.0 / n for v in x.tolist()]
    assert y.tolist() == pytest.approx(want)
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]  # 1_{0 <= x < alpha}
    assert float(alpha.grad) == 2.0  # count of x >= alpha


def test_pact_one_bit_threshold_and_regularizer():
    q = lb.quantizers.get("pact", bits=1, alpha=4.0)
    assert q(torch.tensor([1.9, 2.1, 7.0])).tolist() == [0.0, 4.0, 4.0]
    assert float(q.regularizer()) == pytest.approx(2e-4 * 16)


def test_pact_alpha_never_divides_by_zero():
    q = lb.quantizers.get("pact", bits=2)
    with torch.no_grad():
        q.alpha.fill_(-1.0)
    y = q(torch.randn(20))
    assert torch.isfinite(y).all()


# ---------------------------------------------------------------- pot / INQ codebook


def test_inq_exponents_robust_floor():
    assert inq_exponents(0.75, 5) == (0, -7)  # 4s/3 = 1 exactly -> n1 = 0
    assert inq_exponents(0.7499, 5)[0] == -1
    assert inq_exponents(1.0, 2) == (0, 0)  # b=2: ternary {±2^n1, 0}
    assert inq_exponents(1.0, 3) == (0, -1)
    assert inq_exponents(1.0, 4) == (0, -3)


@pytest.mark.parametrize("bits", [1, 0, -2])
def test_inq_rejects_small_bits(bits):
    with pytest.raises(ValueError, match="bits"):
        inq_exponents(1.0, bits)


@pytest.mark.parametrize("bits", [2, 3, 4, 5])
def test_inq_round_matches_eq4_bruteforce(bits):
    w = torch.randn(20_000, dtype=torch.float64) * 0.3
    n1, n2 = inq_exponents(float(w.abs().max()), bits)
    got = inq_round(w, n1, n2).tolist()
    want = [ref_inq_eq4(v, n1, n2) for v in w.tolist()]
    assert got == want


def test_inq_round_ties_up_zero_threshold_and_saturation():
    n1, n2 = 0, -2
    w = torch.tensor([0.75, -0.375, 0.125, 0.1249, 1.5, 3.0, -0.0, 0.0])
    # 0.75 = midpoint of 0.5 and 1 -> 1; 0.375 midpoint of .25/.5 -> .5; 2^(n2-1)=0.125 -> 0.25; below -> 0
    assert inq_round(w, n1, n2).tolist() == [1.0, -0.5, 0.25, 0.0, 1.0, 1.0, 0.0, 0.0]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=50), st.integers(2, 6))
def test_pot_outputs_in_levels_and_idempotent(values, bits):
    x = torch.tensor(values)
    q = lb.quantizers.get("pot", bits=bits)
    y = q(x)
    assert set(y.tolist()) <= set(q.levels(x).tolist())
    assert len(q.levels(x)) <= q.max_levels()
    assert torch.equal(q(y), y)


def test_pot_all_zero():
    q = lb.quantizers.get("pot", bits=3)
    assert torch.equal(q(torch.zeros(5)), torch.zeros(5))


# ---------------------------------------------------------------- bits validation, registry


@pytest.mark.parametrize("bad", [0, -1, 2.5, 33, True, "2", None])
@pytest.mark.parametrize("name", ["uniform", "pact", "pot"])
def test_bad_bits_rejected_with_value_named(name, bad):
    with pytest.raises((ValueError, TypeError)) as e:
        lb.quantizers.get(name, bits=bad)
    assert repr(bad) in str(e.value) or "bits" in str(e.value)


def test_unknown_quantizer_name_lists_registry():
    with pytest.raises(ValueError, match="unknown quantizer 'nope'.*uniform"):
        lb.quantizers.get("nope", bits=2)


def test_get_accepts_instance_dict_none_and_rejects_other():
    q = lb.quantizers.get("uniform", bits=2)
    assert lb.quantizers.get(q) is q
    assert lb.quantizers.get(None) is None
    assert lb.quantizers.get({"name": "pact", "bits": 3}).bits == 3
    with pytest.raises(TypeError):
        lb.quantizers.get(3.0)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_pact_fast_path_equals_reference_values_and_gradients(bits):
    from lowbit.quantizers.pact import pact_reference

    x = (torch.randn(4000) * 3).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    a1 = torch.tensor(2.5, requires_grad=True)
    a2 = torch.tensor(2.5, requires_grad=True)
    g = torch.randn(4000)
    y1, y2 = pact_quantize(x, a1, bits), pact_reference(x2, a2, bits)
    assert torch.equal(y1, y2)
    y1.backward(g)
    y2.backward(g)
    assert torch.equal(x.grad, x2.grad)
    assert float(a1.grad) == pytest.approx(float(a2.grad), rel=1e-5)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_uniform_activation_fast_path_equals_straightforward(bits):
    """The fused unsigned path gives the same values and gradients as the plain autograd composition."""
    q = lb.quantizers.get("uniform", bits=bits, signed=False)
    x = (torch.randn(5000) * 2).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    y = q(x)
    step = q.step
    beta = float(step) * (2**bits - 1)
    ref = uniform_quantize(x2.detach(), step, bits, signed=False)
    xc = torch.clamp(x2, 0.0, beta)
    y2 = ref + (xc - xc.detach())
    assert torch.equal(y, y2)
    g = torch.randn(5000)
    y.backward(g)
    y2.backward(g)
    assert torch.equal(x.grad, x2.grad)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_uniform_weight_fast_path_equals_straightforward(bits):
    q = lb.quantizers.get("uniform", bits=bits)
    w = torch.randn(64, 33).requires_grad_()
    y = q(w)
    assert torch.equal(y, uniform_quantize(w.detach(), q.step, bits, signed=True))
    g = torch.randn(64, 33)
    y.backward(g)
    assert torch.equal(w.grad, g)  # identity STE


@pytest.mark.parametrize("signed", [True, False])
def test_uniform_on_an_empty_tensor(signed):
    assert lb.quantizers.get("uniform", bits=2, signed=signed)(torch.empty(0)).shape == (0,)


def test_ttq_official_scales_survive_recalibration():
    q = lb.quantizers.get("ttq")
    w = torch.randn(16, 8)
    q.calibrate(w)
    with torch.no_grad():
        q.wp.fill_(0.07)
        q.wn.fill_(0.05)
    q.calibrate(w)
    assert q.wp.item() == pytest.approx(0.07) and q.wn.item() == pytest.approx(0.05)
