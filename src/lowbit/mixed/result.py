"""``Sensitivity``: the rows ``lowbit.sensitivity`` measures, as a table, a layers × bits heat map and JSON.

One row per (layer, role, bits): ``loss_delta`` / ``metric_delta`` (single-layer drop), ``trace`` (Hutchinson
Tr(H), with ``trace_stderr``), ``perturbation`` (‖Δ‖²), ``numel`` (n) and ``hutchinson`` (½·Tr(H)/n·‖Δ‖²).
``score(criterion)`` gives the per-layer table an allocation minimises.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CRITERION_COLUMN = {"first_order": "loss_delta", "hutchinson": "hutchinson"}
RANDOM_SCALE = 4.0  # the random control's score u_l · 4^-b: quantization noise power falls 4x per bit
RANDOM_DECADES = 3.0  # u_l = 10^U(-3, 3): random layer importances spread over six decades


@dataclass
class Sensitivity:
    layers: list[str]
    candidates: list[int]
    rows: list[dict[str, Any]]
    base_loss: float
    base_metric: float | None = None
    metric_name: str | None = None
    samples: int = 0
    seed: int = 0
    num_samples: int = 0
    input_shape: list[int] = field(default_factory=list)
    weight_quantizer: dict | None = None
    act_quantizer: dict | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Sensitivity:
        return cls(**d)

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            from ..fileio import atomic_write_text

            atomic_write_text(Path(path), text + "\n")
        return text

    @classmethod
    def from_json(cls, path: str | Path) -> Sensitivity:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def value(self, layer: str, bits: int, column: str = "loss_delta", role: str = "weight") -> float:
        for r in self.rows:
            if r["layer"] == layer and r["bits"] == bits and r["role"] == role:
                return r[column]
        raise KeyError(f"no sensitivity row for layer {layer!r}, {role}, {bits} bits")

    def score(self, criterion: str = "hutchinson", seed: int = 0) -> dict[str, dict[int, float]]:
        """{layer: {bits: cost}} of the weights under ``criterion``: ``first_order`` (the single-layer loss change),
        ``hutchinson`` (½·Tr(H)/n·‖ΔW‖²) or ``random`` (the control: u_l · 4^-b, the form of the HAWQ score, with a
        random importance u_l = 10^U(-3, 3) per layer drawn from ``seed``: the budget is spent, as the other criteria
        spend it, but which layers get the bits is chance; importances that varied less would leave the allocation
        uniform, since taking a bit from a layer costs 4x what giving it one saves)."""
        if criterion == "random":
            rng = random.Random(seed)
            u = {layer: 10 ** rng.uniform(-RANDOM_DECADES, RANDOM_DECADES) for layer in self.layers}
            return {la: {b: u[la] * RANDOM_SCALE ** (-b) for b in self.candidates} for la in self.layers}
        if criterion not in CRITERION_COLUMN:
            raise ValueError(
                f"criterion {criterion!r} is not accepted; expected one of first_order, hutchinson, random"
            )
        col = CRITERION_COLUMN[criterion]
        return {la: {b: self.value(la, b, col) for b in self.candidates} for la in self.layers}

    def table(self, column: str | None = None) -> str:
        """Text table: one line per (layer, role), one column per bit width of ``column`` (default: loss change and
        the Hutchinson estimate side by side), then the traces."""
        cols = [column] if column else ["loss_delta", "hutchinson"]
        if column is None and self.metric_name:
            cols.insert(1, "metric_delta")
        head = ["layer", "role", "n", "Tr(H) ± se"] + [f"{c} b={b}" for c in cols for b in self.candidates]
        body = []
        for layer in self.layers:
            for role in ("weight", "act"):
                rs = {r["bits"]: r for r in self.rows if r["layer"] == layer and r["role"] == role}
                if not rs:
                    continue
                r0 = next(iter(rs.values()))
                cells = [layer, role, str(r0["numel"]), f"{r0['trace']:.4g} ± {r0['trace_stderr']:.2g}"]
                cells += [_num(rs[b][c]) if b in rs else "-" for c in cols for b in self.candidates]
                body.append(cells)
        widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
        line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
        metric = f", {self.metric_name} {self.base_metric:.4g}" if self.base_metric is not None else ""
        foot = (
            f"float model: loss {self.base_loss:.4g}{metric} on {self.num_samples} samples; loss_delta / "
            f"metric_delta: that layer alone quantized and calibrated; hutchinson: ½·Tr(H)/n·‖Δ‖² "
            f"({self.samples} Rademacher vectors per batch, seed {self.seed})"
        )
        return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, body), "", foot])

    __str__ = table

    def figure(self, path: str | Path, column: str = "loss_delta") -> Path:
        """A layers × bits heat map of ``column`` (weights left, activations right when measured); PNG at ``path``."""
        from .report import heat_map

        return heat_map(self, Path(path), column)


def _num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return str(v)
    return f"{v:.3g}"
