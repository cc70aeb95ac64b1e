"""What each layer costs at each candidate bit width: bytes exactly as ``lowbit.summary`` counts them, and BitOPs.

Bytes. ``summary`` counts a model's memory per row (a layer and the tensors it owns: codes at their bit width,
ceil(n·b/8) bytes, scales, biases, its quantizers' parameters), so a model's bytes are a sum over rows and a
layer's row depends only on that layer's own quantizers. ``layer_costs`` therefore quantizes a copy of the model at
every candidate width for every allocatable layer at once, reads each layer's row from ``summary``, and the rest
(float layers, BatchNorm, ...) as the fixed part, which must be the same at every width (checked). Any assignment's
bytes are then ``fixed + Σ_l bytes[l][b_l]``, equal to ``summary(quantize_(model, config)).totals["model_bytes"]``
(the tests check it).

BitOPs (Baskin et al.; HAWQ-V3 uses the same count): MACs per example × weight bits × activation bits, summed over
layers; a float activation counts 32 bits. MACs come from ``summary``'s forward hooks on an example input.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..api import plan, quantize_
from ..config import LayerRule, QuantConfig
from ..deploy.summary import summary
from .sensitivity import allocatable_layers, exact_selector, with_bits

FLOAT_BITS = 32


def config_for(model: nn.Module, base: QuantConfig, bits: dict[str, int]) -> QuantConfig:
    """``base`` with one exact rule per layer of ``bits``: the layer's weights at its width, its input quantizer as
    ``base`` plans it. The base's own rules follow (they still decide the layers not in ``bits``)."""
    decided = plan(model, base)
    rules = {}
    for name, b in bits.items():
        rule = decided.get(name)
        if rule is None:
            raise ValueError(f"allocation: layer {name!r} is kept float or not quantizable by the base config")
        rules[exact_selector(name)] = LayerRule(weight=with_bits(base.weight, b, {"name": "uniform"}), act=rule.act)
    for sel, r in base.rules.items():
        rules.setdefault(sel, r)
    return QuantConfig(
        weight=base.weight,
        act=base.act,
        keep_float=base.keep_float,
        rules=rules,
        quantize_input=base.quantize_input,
        fold_bn=base.fold_bn,
    )


def quantized_copy(model: nn.Module, config: QuantConfig) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_(copy.deepcopy(model), config)


@dataclass
class LayerCosts:
    layers: list[str]
    candidates: list[int]
    bytes: dict[str, dict[int, int]]
    fixed_bytes: int
    macs: dict[str, int] = field(default_factory=dict)  # per example; empty without an example input
    act_bits: dict[str, int] = field(default_factory=dict)

    def total_bytes(self, bits: dict[str, int]) -> int:
        return self.fixed_bytes + sum(self.bytes[n][b] for n, b in bits.items())

    def uniform_bytes(self, b: int) -> int:
        return self.total_bytes({n: b for n in self.layers})

    def bitops(self, name: str, b: int) -> int:
        return self.macs.get(name, 0) * b * self.act_bits.get(name, FLOAT_BITS)

    def total_bitops(self, bits: dict[str, int]) -> int:
        return sum(self.bitops(n, b) for n, b in bits.items())

    def to_dict(self) -> dict[str, Any]:
        return {
            "layers": self.layers,
            "candidates": self.candidates,
            "bytes": {n: {str(b): v for b, v in d.items()} for n, d in self.bytes.items()},
            "fixed_bytes": self.fixed_bytes,
            "macs": self.macs,
            "act_bits": self.act_bits,
        }


def _row_bytes(table, name: str) -> int:
    key = name or "(model)"
    for r in table.rows:
        if r["name"] == key:
            return int(r["memory_bytes"])
    raise ValueError(f"allocation: summary has no row for layer {name!r}")


def layer_costs(
    model: nn.Module, config: QuantConfig, candidates, example_input: torch.Tensor | None = None
) -> LayerCosts:
    """Bytes (and, with ``example_input``, MACs) of every allocatable layer at every candidate width."""
    layers = allocatable_layers(model, config)
    cands = sorted(candidates)
    per: dict[str, dict[int, int]] = {n: {} for n in layers}
    fixed: set[int] = set()
    macs: dict[str, int] = {}
    for i, b in enumerate(cands):
        q = quantized_copy(model, config_for(model, config, {n: b for n in layers}))
        table = summary(q, example_input if i == 0 else None)
        for n in layers:
            per[n][b] = _row_bytes(table, n)
        fixed.add(int(table.totals["model_bytes"]) - sum(per[n][b] for n in layers))
        if i == 0 and example_input is not None:
            for r in table.rows:
                if r["name"] in layers or (r["name"] == "(model)" and "" in layers):
                    macs[r["name"] if r["name"] != "(model)" else ""] = int(sum(r["macs"].values()))
    if len(fixed) != 1:  # a row outside the layers changed with their width: the sum would not be exact
        raise ValueError(f"allocation: the bytes outside the allocated layers vary with their width ({sorted(fixed)})")
    act_bits = {}
    decided = plan(model, config)
    for n in layers:
        aq = decided[n].act if decided[n] is not None else None
        act_bits[n] = int(getattr(aq, "bits", FLOAT_BITS)) if aq is not None else FLOAT_BITS
    return LayerCosts(layers, cands, per, fixed.pop(), macs, act_bits)
