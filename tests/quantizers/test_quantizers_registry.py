"""Invariants every registered quantizer must satisfy, driven by ``lowbit.quantizers.names()``.

A quantizer registered later is picked up automatically; ``DECLARED`` below must then get an entry for it
(what is idempotent, the gradient pass region, the bits it must reject), and a test fails until it does.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lowbit as lb
from lowbit.quantizers.catalogue import allowed_bits, catalogue, default_bits, format_table

NAMES = lb.quantizers.names()
TEST_BITS = (1, 2, 3, 4, 8)


def _all(x, q):
    return torch.ones_like(x, dtype=torch.bool)


# Per method: idempotent (Q(Q(x)) == Q(x) once statistics are set), pass region of dQ/dx (the mask where the
# gradient is non-zero; None = checked against a formula in test_quantizers_reference.py), bits to reject.
DECLARED = {
    "binary": dict(idem=True, region=_all, bad=[2, 3]),
    "binary_stochastic": dict(idem=False, region=_all, bad=[2]),
    "sign": dict(idem=True, region=lambda x, q: x.abs() <= 1, bad=[2]),
    "xnor": dict(idem=True, region=None, bad=[2]),
    "twn": dict(idem=True, region=_all, bad=[1, 3]),
    "ttq": dict(idem=True, region=_all, bad=[1, 3]),
    "dorefa_w": dict(idem=False, region=_all, bad=[]),
    "dorefa_a": dict(idem=True, region=lambda x, q: (x >= 0) & (x <= 1), bad=[]),
    "hwgq": dict(idem=True, region=lambda x, q: (x > 0) & (x <= float(q.centers[-1])), bad=[1, 3]),
    "log2": dict(idem=True, region=lambda x, q: x > 0, bad=[1]),
    "lsq": dict(idem=True, region=lambda x, q: ((x / q.s.detach()) >= -q.qn) & ((x / q.s.detach()) <= q.qp), bad=[1]),
    "pact": dict(idem=True, region=lambda x, q: (x >= 0) & (x < float(q.alpha.detach())), bad=[]),
    "pot": dict(idem=True, region=_all, bad=[1]),
    "uniform": dict(idem=True, region=_all, bad=[]),
}


def _tie(name, x, want, setup=None, **kw):
    """(quantizer, input, expected output) at a tie or at sgn(0); ``setup(q)`` fixes learned state first."""

    def case():
        q = lb.quantizers.get(name, **kw)
        if setup is not None:
            setup(q)
        return q, torch.tensor(x, dtype=torch.float64), want

    return case


def _lsq_step_one(q):
    q(torch.ones(4, dtype=torch.float64))  # initialise, then fix s = 1
    with torch.no_grad():
        q.s.fill_(1.0)


def _hwgq_thresholds():
    c = lb.quantizers.get("hwgq").centers.to(torch.float64)
    return ((c[:-1] + c[1:]) / 2).tolist(), c[:-1].tolist()


# Each method's tie rule and sign of zero (spec §9), as one (q, x, want) case per registered name.
TIES = {
    "binary": _tie("binary", [0.0, -0.0, -1e-9], [1.0, 1.0, -1.0]),  # sgn(0) = +1
    "binary_stochastic": _tie("binary_stochastic", [0.0, -0.5], [0.0, -0.5], setup=lambda q: q.eval()),
    "sign": _tie("sign", [0.0, -0.0], [1.0, 1.0]),
    "xnor": _tie("xnor", [[0.0, 2.0]], [1.0, 1.0]),  # α = 1, sgn(0) = +1
    "twn": _tie("twn", [2.0, -2.0, 0.7, 0.3, 0.0, -1.0], [5 / 3, -5 / 3, 0.0, 0.0, 0.0, -5 / 3]),  # |w| = Δ -> 0
    "ttq": _tie("ttq", [1.0, 0.05, -1.0, -0.05, 0.0], [1.0, 1.0, -1.0, -1.0, 0.0]),  # |w| = t·max|W| -> ±1 (official)
    "dorefa_w": _tie("dorefa_w", [0.0, -2.0], [1.0, -1.0], bits=1),  # sgn(0) = +1, E = 1
    "dorefa_a": _tie(
        "dorefa_a", [0.5, 1 / 6, 0.5 / 3 * 5], [2 / 3, 0.0, 2 / 3], bits=2
    ),  # half-even: 1.5->2, 0.5->0, 2.5->2
    "hwgq": _tie("hwgq", _hwgq_thresholds()[0] + [0.0], _hwgq_thresholds()[1] + [0.0]),  # x = t -> lower level
    "log2": _tie("log2", [2**-1.5, 2**0.5, 2**-0.5], [0.5, 2.0, 1.0], bits=2, fsr=2),  # half-up in log2
    "lsq": _tie("lsq", [0.5, 1.5, 2.5, -0.5], [0.0, 2.0, 2.0, 0.0], setup=_lsq_step_one, bits=4),  # half-even
    "pact": _tie("pact", [0.5, 1.5, 2.5], [0.0, 2.0, 2.0], bits=2, alpha=3.0),  # torch.round half-even
    "pot": _tie("pot", [1.0, 0.75, 0.25, -0.75], [1.0, 1.0, 0.5, -1.0], bits=3),  # INQ ties up (away from 0)
    "uniform": _tie("uniform", [0.5, -0.5, 1.5, -1.5], [1.0, 0.0, 2.0, -1.0], bits=3, step=1.0),  # floor(x+0.5)
}


@pytest.mark.parametrize("name", NAMES)
def test_tie_rule_and_sign_of_zero(name):
    assert name in TIES, f"declare {name}'s tie rule in TIES"
    q, x, want = TIES[name]()
    q = q.double()
    assert q(x).detach().reshape(-1).tolist() == pytest.approx(want, abs=1e-12)


def bits_for(name: str) -> list[int]:
    ok = allowed_bits(name)
    return [b for b in TEST_BITS if b in ok]


CASES = [(n, b) for n in NAMES for b in bits_for(n)]


def make_x(seed: int = 0, shape=(6, 4, 3, 3), scale: float = 1.5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * scale


def assert_subset(y: torch.Tensor, levels: torch.Tensor) -> None:
    y = y.detach().reshape(-1, 1).to(torch.float64)
    lv = levels.reshape(1, -1).to(torch.float64)
    dist = (y - lv).abs().min(dim=1).values
    tol = 1e-5 * max(1.0, float(lv.abs().max()))
    assert float(dist.max()) <= tol, f"outputs off the level set by {float(dist.max())}"


def distinct_ok(q, y: torch.Tensor) -> None:
    y = y.detach()
    groups = y.reshape(y.shape[0], -1) if getattr(q, "per_channel", False) else y.reshape(1, -1)
    for row in groups:
        assert torch.unique(row).numel() <= q.max_levels()


def test_every_registered_quantizer_is_declared():
    missing = sorted(set(NAMES) - set(DECLARED))
    assert not missing, f"declare idempotence / pass region / bad bits for {missing} in DECLARED"


def test_catalogue_lists_every_quantizer():
    rows = catalogue()
    assert [r["name"] for r in rows] == NAMES
    text = format_table(rows)
    for n in NAMES:
        assert f"| {n} |" in text
    for r in rows:
        assert r["kind"] in ("weight", "act", "both") and r["reference"]


@pytest.mark.parametrize("name,bits", CASES)
def test_outputs_are_levels_and_bounded(name, bits):
    q = lb.quantizers.get(name, bits=bits)
    x = make_x(1)
    y = q(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert_subset(y, q.levels(x))
    distinct_ok(q, y)


@pytest.mark.parametrize("name,bits", CASES)
def test_idempotent_where_declared(name, bits):
    q = lb.quantizers.get(name, bits=bits)
    x = make_x(2)
    y = q(x).detach()
    if DECLARED[name]["idem"]:
        torch.testing.assert_close(q(y), y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,bits", CASES)
def test_gradient_pass_region(name, bits):
    region = DECLARED[name]["region"]
    q = lb.quantizers.get(name, bits=bits)
    x = make_x(3).requires_grad_(True)
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(9))
    (q(x) * g).sum().backward()
    assert torch.isfinite(x.grad).all()
    if region is None:
        return
    want = region(x.detach(), q)
    got = x.grad != 0
    assert torch.equal(got, want), f"{int((got != want).sum())} elements outside the declared pass region"


@pytest.mark.parametrize("name,bits", CASES)
def test_config_round_trip(name, bits):
    q = lb.quantizers.get(name, bits=bits)
    d = q.to_dict()
    q2 = lb.quantizers.get(d)
    assert type(q2) is type(q) and q2.to_dict() == d
    if name != "binary_stochastic":
        x = make_x(4)
        torch.testing.assert_close(q2(x), lb.quantizers.get(d)(x))
        torch.testing.assert_close(q(x), q2(x))


@pytest.mark.parametrize("name,bits", CASES)
def test_all_zero_tensor_is_finite(name, bits):
    q = lb.quantizers.get(name, bits=bits)
    x = torch.zeros(4, 3, 2, 2, requires_grad=True)
    y = q(x)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    assert torch.isfinite(q.levels(x.detach())).all()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [0, -1, 2.5, 33, "2", True])
def test_rejects_bad_bits(name, bad):
    with pytest.raises(ValueError, match="bits"):
        lb.quantizers.get(name, bits=bad)


@pytest.mark.parametrize("name", NAMES)
def test_rejects_method_specific_bits(name):
    for bad in DECLARED[name]["bad"]:
        with pytest.raises(ValueError, match=f"bits={bad}"):
            lb.quantizers.get(name, bits=bad)
        assert bad not in allowed_bits(name)


@pytest.mark.parametrize("name", NAMES)
def test_default_quantizer_builds_and_runs(name):
    q = lb.quantizers.get(name, bits=default_bits(name))
    y = q(make_x(5))
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", NAMES)
def test_32_bits_where_accepted_is_finite(name):
    if 32 not in allowed_bits(name):
        pytest.skip(f"{name} does not take 32 bits")
    q = lb.quantizers.get(name, bits=32)
    x = make_x(6)
    assert torch.isfinite(q(x)).all()


@pytest.mark.parametrize("name,bits", CASES)
def test_state_dict_round_trip(name, bits):
    q = lb.quantizers.get(name, bits=bits)
    x = make_x(7)
    q(x)
    q2 = lb.quantizers.get(q.to_dict())
    q2.load_state_dict(q.state_dict())
    if name != "binary_stochastic":
        x2 = make_x(8)  # a new tensor: calibrated statistics must come from the state dict, not from x2
        torch.testing.assert_close(q2(x2), q(x2))


_floats = st.floats(min_value=-4, max_value=4, allow_nan=False, allow_infinity=False, width=32)


@pytest.mark.slow
@settings(max_examples=80, deadline=None, derandomize=True)
@given(case=st.sampled_from(CASES), vals=st.lists(_floats, min_size=2, max_size=48), rows=st.sampled_from([1, 2]))
def test_hypothesis_levels_and_counts(case, vals, rows):
    name, bits = case
    n = len(vals) // rows * rows
    x = torch.tensor(vals[:n], dtype=torch.float32).reshape(rows, -1)
    q = lb.quantizers.get(name, bits=bits)
    y = q(x)
    assert torch.isfinite(y).all()
    assert_subset(y, q.levels(x))
    distinct_ok(q, y)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(case=st.sampled_from(CASES), scale=st.floats(min_value=1e-6, max_value=1e3))
def test_hypothesis_finite_across_scales(case, scale):
    name, bits = case
    q = lb.quantizers.get(name, bits=bits)
    x = (make_x(10, shape=(3, 8)) * scale).requires_grad_(True)
    y = q(x)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    assert not math.isnan(float(q.levels(x.detach()).sum()))


@pytest.mark.slow
def test_cli_lists_catalogue_and_plots(tmp_path, capsys):
    from lowbit.cli import main

    out = tmp_path / "q.png"
    assert main(["quantizers", "--plot", str(out)]) == 0
    text = capsys.readouterr().out
    for n in NAMES:
        assert f"| {n} |" in text
    assert out.is_file() and out.read_bytes()[:4] == b"\x89PNG"
