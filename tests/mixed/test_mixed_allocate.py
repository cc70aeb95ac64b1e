"""lowbit.allocate_bits: the exact knapsack against brute force (729 assignments), bytes against lowbit.summary."""

from __future__ import annotations

import copy
import itertools
import random

import pytest
import torch
from torch import nn

import lowbit as lb
from lowbit.mixed import allocation, layer_costs, solve
from lowbit.mixed.sensitivity import allocatable_layers

BITS = (2, 4, 8)


def _brute(cost, weight, capacity, weight2=None, capacity2=None):
    layers = list(cost)
    best = None
    for choice in itertools.product(*(sorted(cost[n]) for n in layers)):
        if sum(weight[n][b] for n, b in zip(layers, choice)) > capacity:
            continue
        if weight2 is not None and sum(weight2[n][b] for n, b in zip(layers, choice)) > capacity2:
            continue
        c = sum(cost[n][b] for n, b in zip(layers, choice))
        if best is None or c < best:
            best = c
    return best


@pytest.mark.parametrize("two", [False, True])
def test_dp_finds_the_brute_force_optimum(two):
    rng = random.Random(3)
    for _trial in range(40):
        layers = [f"l{i}" for i in range(6)]
        size = {n: rng.randint(5, 400) for n in layers}
        weight = {n: {b: (size[n] * b + 7) // 8 + rng.randint(0, 3) for b in BITS} for n in layers}
        # costs need not be monotone in the bits (a measured loss change can be negative or noisy)
        cost = {n: {b: rng.uniform(-0.1, 1.0) * 2.0 ** (-b) * size[n] for b in BITS} for n in layers}
        lo = sum(weight[n][2] for n in layers)
        hi = sum(weight[n][8] for n in layers)
        capacity = rng.randint(lo - 5, hi)
        w2 = c2 = None
        if two:
            macs = {n: rng.randint(10, 1000) for n in layers}
            w2 = {n: {b: macs[n] * b * 8 for b in BITS} for n in layers}
            c2 = rng.randint(sum(w2[n][2] for n in layers), sum(w2[n][8] for n in layers))
        found = solve(cost, weight, capacity, w2, c2)
        best = _brute(cost, weight, capacity, w2, c2)
        if best is None:
            assert found is None
            continue
        bits, objective = found
        assert objective == pytest.approx(best, abs=1e-12)
        assert sum(cost[n][b] for n, b in bits.items()) == pytest.approx(objective)
        assert sum(weight[n][b] for n, b in bits.items()) <= capacity
        if two:
            assert sum(w2[n][b] for n, b in bits.items()) <= c2


def _six_layer_net():
    torch.manual_seed(0)
    sizes = [2, 24, 16, 32, 8, 20, 3]
    mods = []
    for i in range(6):
        mods += [nn.Linear(sizes[i], sizes[i + 1]), nn.ReLU()]
    model = nn.Sequential(*mods[:-1])
    x = torch.randn(128, 2)
    y = (x[:, 0] * x[:, 1] > 0).long() + (x[:, 0] > 1).long()
    return model, x, y


def test_allocation_is_the_optimum_of_its_objective_on_every_assignment():
    model, x, y = _six_layer_net()
    sens = lb.sensitivity(model, [(x, y)], candidates=BITS, acts=False, samples=2)
    config = lb.QuantConfig(weight=sens.weight_quantizer)
    layers = allocatable_layers(model, config)
    assert len(layers) == 6
    costs = layer_costs(model, config, BITS)
    for criterion in ("hutchinson", "first_order", "random"):
        for budget in ("W2", "W4", costs.uniform_bytes(4) - 20, costs.uniform_bytes(8)):
            a = allocation(model, budget, sens, criterion=criterion, costs=costs)
            score = sens.score(criterion)
            feasible = [
                sum(score[n][b] for n, b in zip(layers, choice))
                for choice in itertools.product(BITS, repeat=6)
                if costs.total_bytes(dict(zip(layers, choice))) <= a.budget_bytes
            ]
            assert a.objective == pytest.approx(min(feasible), abs=1e-12)
            assert a.predicted_bytes <= a.budget_bytes
    assert allocation(model, "W2", sens, costs=costs).bits == dict.fromkeys(layers, 2)  # nothing else fits


def test_predicted_bytes_equal_lowbit_summary():
    model, x, y = _six_layer_net()
    sens = lb.sensitivity(model, [(x, y)], candidates=BITS, acts=False, samples=2)
    config = lb.QuantConfig(weight=sens.weight_quantizer, act={"name": "uniform", "bits": 4, "signed": False})
    costs = layer_costs(model, config, BITS)
    layers = costs.layers
    rng = random.Random(0)
    from lowbit.mixed import config_for

    for _ in range(5):  # arbitrary assignments: the sum of per-layer rows is the model's bytes
        bits = {n: rng.choice(BITS) for n in layers}
        q = lb.quantize_(copy.deepcopy(model), config_for(model, config, bits))
        assert lb.summary(q).totals["model_bytes"] == costs.total_bytes(bits)
        assert {n: lb.quantization_map(q)[n]["weight"]["bits"] for n in layers} == bits
    a = allocation(model, "W4", sens, config=config, costs=costs)
    q = lb.quantize_(copy.deepcopy(model), a.config)
    assert lb.summary(q).totals["model_bytes"] == a.predicted_bytes <= a.uniform_bytes[4] == a.budget_bytes
    cfg = lb.allocate_bits(model, a.budget_bytes, sens, config=config)
    assert cfg.to_dict() == a.config.to_dict()
    assert lb.QuantConfig.from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()  # TOML/JSON round trip


def test_bitops_budget_binds():
    model, x, y = _six_layer_net()
    sens = lb.sensitivity(model, [(x, y)], candidates=BITS, acts=False, samples=2)
    config = lb.QuantConfig(weight=sens.weight_quantizer)
    costs = layer_costs(model, config, BITS, torch.zeros(1, 2))
    # BitOPs = MACs x weight bits x 32 (float activations); MACs of a Linear = in x out per example
    assert costs.macs == {
        n: model.get_submodule(n).in_features * model.get_submodule(n).out_features for n in costs.layers
    }
    free = allocation(model, "W8", sens, criterion="hutchinson", costs=costs)
    bound = costs.total_bitops(dict.fromkeys(costs.layers, 4))
    tight = allocation(model, "W8", sens, criterion="hutchinson", bitops_budget=bound, costs=costs)
    assert free.bitops > bound >= tight.bitops
    assert tight.objective >= free.objective
    score = sens.score("hutchinson")
    best = min(
        sum(score[n][b] for n, b in zip(costs.layers, c))
        for c in itertools.product(BITS, repeat=6)
        if costs.total_bitops(dict(zip(costs.layers, c))) <= bound
    )
    assert tight.objective == pytest.approx(best, abs=1e-12)


def test_infeasible_and_bad_budgets_are_named():
    model, x, y = _six_layer_net()
    sens = lb.sensitivity(model, [(x, y)], candidates=BITS, acts=False, samples=1)
    with pytest.raises(ValueError, match="fits no assignment; the smallest at 2 bits"):
        allocation(model, 10, sens)
    with pytest.raises(ValueError, match="budget 'X3'"):
        allocation(model, "X3", sens)
    with pytest.raises(ValueError, match="not a candidate"):
        allocation(model, "W3", sens)
    with pytest.raises(ValueError, match="criterion 'best'"):
        allocation(model, "W4", sens, criterion="best")
