"""The floor under calibrated steps and ranges (quantizers/floor.py): the top level is >= RMS/16 of what the grid
represents. It never moves the L2-optimal uniform step (spec §2.2) on ordinary data, and it lifts the ranges that
rules of thumb give on sparse data (LSQ's 2·mean|x|/sqrt(Q_P), PACT's 99.99th percentile). References are
written out by hand here (plain Python over the values)."""

from __future__ import annotations

import math

import pytest
import torch

from lowbit.quantizers import get
from lowbit.quantizers.l2_step import l2_opt_step

N = 8000  # small enough for the solver's dense path: fast


def _rms(values: list[float]) -> float:
    return math.sqrt(sum(v * v for v in values) / len(values))


def _data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(N, generator=g, dtype=torch.float64)
    keep = torch.rand(N, generator=g) < 1e-2
    return {
        "gauss": x,
        "relu": x.clamp_min(0),
        "laplace": torch.distributions.Laplace(0.0, 1.0).sample((N,)).double(),
        "lognormal": x.exp(),
        "sparse": x.abs() * keep,
        "outlier": torch.cat([x, torch.tensor([1e4], dtype=torch.float64)]),
        "one_value": torch.zeros(N, dtype=torch.float64).index_fill_(0, torch.tensor([17]), 3.0),
    }


def _represented_rms(x: torch.Tensor) -> dict[bool, float]:
    """{signed: RMS of |x|, unsigned: RMS of max(x, 0)} by hand."""
    vals = [float(t) for t in x]
    return {True: _rms([abs(v) for v in vals]), False: _rms([max(v, 0.0) for v in vals])}


def top_level(q, x: torch.Tensor) -> float:
    """The largest magnitude the calibrated grid can output, from its own levels."""
    return float(q.levels(x.float()).abs().max())


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("signed", [True, False])
def test_uniform_step_is_the_l2_optimum_on_ordinary_data(bits, signed):
    for name, x in _data().items():
        q = get("uniform", bits=bits, signed=signed)
        q.calibrate(x)
        assert float(q.step) == pytest.approx(l2_opt_step(x, bits, signed), rel=1e-6), name
        assert top_level(q, x) >= _represented_rms(x)[signed] / 16, name


def test_lsq_init_on_sparse_activations_is_lifted_to_the_floor():
    x = torch.zeros(100_000)
    x[:5] = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])  # 99.995 % zeros
    q = get("lsq", bits=2, signed=False)
    q.calibrate(x)
    qp = 3
    paper = 2 * sum([1.0, 2.0, 3.0, 4.0, 5.0]) / 100_000 / math.sqrt(qp)
    floor = math.sqrt((1 + 4 + 9 + 16 + 25) / 100_000) / 16 / qp
    assert floor > paper  # the paper's init would clip everything at Q_P·s = 4e-4
    assert float(q.s.detach()) == pytest.approx(floor, rel=1e-6)


def test_lsq_init_on_gaussian_data_is_the_papers():
    x = _data()["gauss"].float()
    for bits, signed in [(2, False), (4, True), (8, False)]:
        q = get("lsq", bits=bits, signed=signed)
        q.calibrate(x)
        qp = 2**bits - 1 if not signed else 2 ** (bits - 1) - 1
        paper = 2 * sum(abs(float(v)) for v in x) / len(x) / math.sqrt(qp)
        assert float(q.s.detach()) == pytest.approx(paper, rel=1e-5)


def test_pact_alpha_on_a_tensor_of_zeros_and_a_few_values_is_the_floor_not_ten():
    x = torch.zeros(100_000)
    x[:3] = torch.tensor([2.0, 6.0, 9.0])  # the 99.99th percentile is 0
    q = get("pact", bits=2)
    q.calibrate(x)
    assert float(q.alpha.detach()) == pytest.approx(math.sqrt((4 + 36 + 81) / 100_000) / 16, rel=1e-6)


def test_pact_alpha_on_ordinary_data_is_the_percentile():
    x = _data()["relu"].float()
    q = get("pact", bits=4)
    q.calibrate(x)
    v = sorted(float(t) for t in x)
    assert float(q.alpha.detach()) == pytest.approx(v[math.ceil(0.9999 * len(v)) - 1])


def _act_quantizers(bits: int) -> list:
    out = [get("uniform", bits=bits, signed=False), get("uniform", bits=bits), get("lsq", bits=bits, signed=False)]
    out += [get("pact", bits=bits), get("log2", bits=bits)]
    centers = [0.538, 1.076, 1.614] if bits == 2 else [0.5 * i for i in range(1, 2**bits)]
    return out + [get("hwgq", bits=bits, centers=centers)]


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_every_calibrated_top_level_is_at_least_a_sixteenth_of_the_rms(bits):
    for name, x in _data().items():
        x = x.float()
        rms = _represented_rms(x)
        for q in _act_quantizers(bits):
            q.calibrate(x)
            assert top_level(q, x) >= rms[q.signed_input] / 16 * (1 - 1e-6), (name, q.name, q.config())


def test_all_zero_tensors_keep_the_documented_placeholders_and_stay_finite():
    z = torch.zeros(64)
    u, lsq, pact = get("uniform", bits=4, signed=False), get("lsq", bits=4, signed=False), get("pact", bits=4)
    for q in (u, lsq, pact):
        q.calibrate(z)
    assert float(u.step) == 1.0  # spec §2.4
    assert float(lsq.s.detach()) == 0.0  # lsq-net: 0, used as max(s, 1e-8)
    assert float(pact.alpha.detach()) == 10.0  # never calibrated: the reference code's α
    x = torch.randn(64)
    for q in (u, lsq, pact):
        assert torch.isfinite(q(x)).all()
