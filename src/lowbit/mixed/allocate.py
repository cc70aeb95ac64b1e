"""``lowbit.allocate_bits``: the per-layer weight bits that minimise the summed sensitivity under a memory budget
(and optionally a BitOPs budget), solved exactly.

The problem is a multiple-choice knapsack: pick one width b_l per layer, minimise Σ_l s_l(b_l) subject to
fixed + Σ_l bytes_l(b_l) <= budget (and Σ_l bitops_l(b_l) <= BitOPs budget), with the exact integer byte counts of
``costs.py``. ``solve`` is a dynamic programme over layers whose states are the Pareto front of reachable partial
assignments (bytes used, BitOPs used, cost): a state another one matches or beats in every coordinate can never
complete to a better solution (every completion adds the same bytes, BitOPs and cost to both), so pruning it loses
nothing and the minimum over the final front is the exact optimum; with one budget the front is the classic
knapsack DP over exact byte counts, one state per byte count at most. The tests compare it with brute force over
every assignment of a 6-layer net × {2, 4, 8} bits (729).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..config import QuantConfig
from .costs import LayerCosts, config_for, layer_costs
from .result import Sensitivity
from .sensitivity import allocatable_layers

_UNIFORM = re.compile(r"^[Ww](\d{1,2})$")


def solve(
    cost: dict[str, dict[int, float]],
    weight: dict[str, dict[int, int]],
    capacity: int,
    weight2: dict[str, dict[int, int]] | None = None,
    capacity2: int | None = None,
) -> tuple[dict[str, int], float] | None:
    """Exact minimum of Σ cost[l][b_l] with Σ weight[l][b_l] <= capacity (and Σ weight2 <= capacity2); the choice per
    layer and its cost, or None when nothing fits. Ties go to the first in layer order and ascending widths."""
    layers = list(cost)
    two = weight2 is not None
    # state: (w1, w2, cost, choices)
    front: list[tuple[int, int, float, tuple[int, ...]]] = [(0, 0, 0.0, ())]
    for name in layers:
        grown = []
        for w1, w2, c, path in front:
            for b in sorted(cost[name]):
                n1 = w1 + weight[name][b]
                n2 = w2 + (weight2[name][b] if two else 0)
                if n1 <= capacity and (not two or n2 <= capacity2):
                    grown.append((n1, n2, c + cost[name][b], (*path, b)))
        front = _pareto(grown, two)
        if not front:
            return None
    best = min(front, key=lambda s: s[2])
    return dict(zip(layers, best[3])), best[2]


def _pareto(states: list, two: bool) -> list:
    """States no other state matches or beats in bytes, BitOPs and cost (the first of equals is kept)."""
    states.sort(key=lambda s: (s[0], s[1], s[2]))
    kept: list = []
    if not two:
        best = float("inf")
        for s in states:
            if s[2] < best:
                kept.append(s)
                best = s[2]
        return kept
    for s in states:  # kept states all have w1 <= s's; s is dominated if one also has w2 and cost <= s's
        if not any(k[1] <= s[1] and k[2] <= s[2] for k in kept):
            kept.append(s)
    return kept


@dataclass
class Allocation:
    bits: dict[str, int]
    objective: float
    predicted_bytes: int
    budget_bytes: int
    criterion: str
    config: QuantConfig
    bitops: int | None = None
    bitops_budget: int | None = None
    uniform_bytes: dict[int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "bits": self.bits,
            "objective": self.objective,
            "predicted_bytes": self.predicted_bytes,
            "budget_bytes": self.budget_bytes,
            "criterion": self.criterion,
            "bitops": self.bitops,
            "bitops_budget": self.bitops_budget,
            "uniform_bytes": self.uniform_bytes,
            "config": self.config.to_dict(),
        }


def budget_in_bytes(budget: int | str, costs: LayerCosts) -> int:
    """A budget in bytes: a whole number, or "W<b>" = the bytes of the same model with every allocated layer at b
    bits (uniform precision at the same memory)."""
    if isinstance(budget, str):
        m = _UNIFORM.match(budget.strip())
        if m is None:
            raise ValueError(f"budget {budget!r} is not accepted; expected a number of bytes or 'W<bits>' like 'W3'")
        b = int(m.group(1))
        if b not in costs.candidates:
            # a width outside the candidates: count it the same way
            raise ValueError(f"budget {budget!r}: {b} bits is not a candidate width {costs.candidates}")
        return costs.uniform_bytes(b)
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget {budget!r} is not accepted; expected a number of bytes >= 1 or 'W<bits>'")
    return budget


def allocation(
    model: nn.Module,
    budget_bytes: int | str,
    sensitivity: Sensitivity,
    *,
    criterion: str = "hutchinson",
    bitops_budget: int | None = None,
    config: QuantConfig | None = None,
    example_input: torch.Tensor | None = None,
    seed: int = 0,
    costs: LayerCosts | None = None,
) -> Allocation:
    """The exact allocation and what it costs (``allocate_bits`` returns its ``config``).

    config: the base config (quantizer families, kept-float layers, activation quantizers); default: the weight
        quantizer the sensitivity was measured with, float activations. Only weight bits are allocated.
    bitops_budget: a second budget on BitOPs per example (needs ``example_input``, default: a zero input of the
        sensitivity's input shape). seed: the random criterion's draw.
    """
    config = config or QuantConfig(weight=sensitivity.weight_quantizer)
    layers = allocatable_layers(model, config)
    missing = [n for n in layers if n not in sensitivity.layers]
    if missing:
        raise ValueError(f"allocation: no sensitivity for layer(s) {missing}; measured: {sensitivity.layers}")
    if bitops_budget is not None and example_input is None:
        example_input = torch.zeros(1, *sensitivity.input_shape)
    costs = costs or layer_costs(model, config, sensitivity.candidates, example_input)
    capacity = budget_in_bytes(budget_bytes, costs)
    scores = sensitivity.score(criterion, seed)
    cost = {n: scores[n] for n in layers}
    weight = {n: costs.bytes[n] for n in layers}
    extra = {}
    if bitops_budget is not None:
        extra = {
            "weight2": {n: {b: costs.bitops(n, b) for b in costs.candidates} for n in layers},
            "capacity2": int(bitops_budget),
        }
    found = solve(cost, weight, capacity - costs.fixed_bytes, **extra)
    if found is None:
        least = costs.uniform_bytes(min(costs.candidates))
        raise ValueError(
            f"allocation: budget {budget_bytes!r} ({capacity} bytes"
            f"{'' if bitops_budget is None else f', {bitops_budget} BitOPs'}) fits no assignment; the smallest at "
            f"{min(costs.candidates)} bits everywhere is {least} bytes"
        )
    bits, objective = found
    return Allocation(
        bits=bits,
        objective=objective,
        predicted_bytes=costs.total_bytes(bits),
        budget_bytes=capacity,
        criterion=criterion,
        config=config_for(model, config, bits),
        bitops=costs.total_bitops(bits) if costs.macs else None,
        bitops_budget=bitops_budget,
        uniform_bytes={b: costs.uniform_bytes(b) for b in costs.candidates},
    )


def allocate_bits(
    model: nn.Module,
    budget_bytes: int | str,
    sensitivity: Sensitivity,
    bitops_budget: int | None = None,
    *,
    criterion: str = "hutchinson",
    config: QuantConfig | None = None,
    example_input: torch.Tensor | None = None,
    seed: int = 0,
) -> QuantConfig:
    """A ``QuantConfig`` with one rule per layer giving the weight bits that minimise the summed ``criterion``
    sensitivity under ``budget_bytes`` (bytes as ``lowbit.summary`` counts them, or "W<b>": the memory of uniform b-bit
    weights) and optionally ``bitops_budget``; exact (``allocation`` returns the details)."""
    return allocation(
        model,
        budget_bytes,
        sensitivity,
        criterion=criterion,
        bitops_budget=bitops_budget,
        config=config,
        example_input=example_input,
        seed=seed,
    ).config
