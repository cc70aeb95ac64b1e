"""INQ with a fixed top level (spec §1.1, the INQ edge paper's "the max value of the quantized weights is set to
4.0"): n1 = 2 for every layer whatever its max|W|, n2 = n1 + 1 - 2^(b-2); checked against a slow restatement of
Eq. 4 (nearest level in linear distance, ties up, saturating at the top, zero below half the smallest level)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lowbit as lb
from lowbit.engine.spec import SpecError, parse_spec
from lowbit.quantizers.pot import inq_fixed_exponents


def slow_inq(w: float, n1: int, n2: int) -> float:
    """Eq. 4 read literally: the levels {0, 2^n2..2^n1}, the nearest one to |w|, a tie to the larger one."""
    levels = [0.0] + [2.0**p for p in range(n2, n1 + 1)]
    a = abs(w)
    best = levels[0]
    for lv in levels:
        if abs(a - lv) < abs(a - best) or abs(a - lv) == abs(a - best):
            best = lv  # ascending levels: a tie goes to the larger one
    return best if w >= 0 else -best


def mlp() -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(), nn.Linear(40, 3))
    with torch.no_grad():  # layers of very different scale: Eq. 3 would give each its own n1, max_value must not
        m[0].weight.mul_(8.0)
        m[2].weight.mul_(0.05)
    return m


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6])
def test_fixed_top_level_matches_the_slow_restatement(bits):
    m = mlp()
    before = {i: m[i].weight.detach().clone() for i in (0, 2, 4)}
    inq = lb.INQ(m, bits=bits, portions=(1.0,), max_value=4.0)
    inq.step()
    n1, n2 = 2, 3 - 2 ** (bits - 2)
    for i, w0 in before.items():
        assert m[i].weight_quant.exponents() == (n1, n2)  # the same codebook in every layer
        want = torch.tensor([slow_inq(v, n1, n2) for v in w0.flatten().tolist()]).view_as(w0)
        assert torch.equal(m[i].weight.detach(), want), (bits, i)
    assert inq.check()


def test_eq3_codebook_differs_per_layer_and_fixed_top_does_not():
    per_layer = lb.INQ(mlp(), bits=4)
    fixed = lb.INQ(mlp(), bits=4, max_value=4.0)
    assert len({m.weight_quant.exponents() for m in per_layer.layers}) > 1
    assert {m.weight_quant.exponents() for m in fixed.layers} == {(2, -1)}


def test_more_bits_add_smaller_powers_below_the_fixed_top():
    assert [inq_fixed_exponents(4.0, b) for b in (2, 3, 4, 5, 6, 9)] == [(2, 2), (2, 1), (2, -1), (2, -5), (2, -13),
                                                                         (2, -125)]  # fmt: skip
    assert inq_fixed_exponents(0.5, 3) == (-1, -2)


@pytest.mark.parametrize("bad", [3.0, 0.0, -4.0, float("inf"), True])
def test_max_value_must_be_a_power_of_two(bad):
    with pytest.raises(ValueError, match="max_value=.*positive power of two"):
        lb.INQ(mlp(), bits=4, max_value=bad)


def test_max_value_survives_the_quantizer_config():
    m = mlp()
    lb.INQ(m, bits=5, max_value=4.0)
    assert m[0].weight_quant.config() == {"bits": 5, "names": ["weight"], "max_value": 4.0}
    assert "max_value" not in lb.INQ(mlp(), bits=5).layers[0].weight_quant.config()


def _spec(**inq) -> dict:
    return {
        "name": "t",
        "data": {"name": "spirals", "subset": 200},
        "grid": {"model": ["m"], "method": ["float", "INQ"], "seed": [0]},
        "models": {"m": {"name": "fcdnn", "width": 8, "depth": 2}},
        "methods": {"float": {"kind": "float"}, "INQ": {"kind": "inq", "parent": "float", "bits": 4, **inq}},
    }


def test_spec_accepts_max_value_and_rejects_a_bad_one_in_one_line():
    assert parse_spec(_spec(max_value=4.0)).methods["INQ"]["max_value"] == 4.0
    with pytest.raises(SpecError, match=r"methods\.INQ\.max_value = 3\.0: expected a positive power of two"):
        parse_spec(_spec(max_value=3.0))
