"""Quantization grids of the integer ONNX form, and the tensor ranges of a calibration batch (``onnx_qop``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.fx


@dataclass(frozen=True)
class Grid:
    """ONNX quantization parameters of one tensor: value = scale·(q - zp), q in [qmin, qmax] (uint8 or int8)."""

    scale: float
    zp: int
    qmin: int
    qmax: int

    @property
    def signed(self) -> bool:
        return self.qmin < 0

    def np_type(self):
        return np.int8 if self.signed else np.uint8

    def needs_clip(self) -> bool:
        return (self.qmin, self.qmax) != ((-128, 127) if self.signed else (0, 255))

    @property
    def relu_free(self) -> bool:
        """Every value of the grid is >= 0 (a ReLU on it is the identity)."""
        return self.qmin >= self.zp

    @property
    def lo(self) -> float:
        return self.scale * (self.qmin - self.zp)

    @property
    def hi(self) -> float:
        return self.scale * (self.qmax - self.zp)

    def interchangeable(self, other: Grid) -> bool:
        """Codes on this grid may stand for ``other``'s: same integer type and both range ends within half a step
        (of the finer grid) of each other. Then for every real x the two quantized values differ by at most one
        step of the coarser grid (inside both ranges by (s1 + s2)/2; between the range ends by the gap plus half
        a step), the "one activation step per layer" budget of deployed-equals-simulated."""
        if self == other:
            return True
        half = min(self.scale, other.scale) / 2
        return self.signed == other.signed and abs(self.lo - other.lo) <= half and abs(self.hi - other.hi) <= half


@dataclass
class Val:
    """A tensor in the graph: its float name and/or its quantized name with the grid."""

    f: str | None = None
    q: str | None = None
    grid: Grid | None = None
    remake: Any = None  # grid -> name: the producing op again with another output grid (cheaper than DQ -> Q)


def _calibrated(lo: float, hi: float, signed: bool = False) -> Grid:
    """Asymmetric uint8 grid over [min(lo, 0), max(hi, 0)] (for tensors the trained model keeps in float);
    ``signed``: the symmetric int8 grid over the same range."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if signed:
        m = max(-lo, hi)
        return Grid(float(m / 127) if m > 0 else 1.0, 0, -128, 127)
    scale = (hi - lo) / 255 if hi > lo else 1.0
    zp = int(np.clip(np.round(-lo / scale), 0, 255))
    return Grid(float(scale), zp, 0, 255)


class _Stats(torch.fx.Interpreter):
    def __init__(self, gm):
        super().__init__(gm)
        self.ranges: dict[str, tuple[float, float]] = {}
        self.ranks: dict[str, int] = {}

    def run_node(self, n):
        out = super().run_node(n)
        if isinstance(out, torch.Tensor):
            self.ranks[n.name] = out.dim()
        if isinstance(out, torch.Tensor) and out.is_floating_point() and out.numel():
            lo, hi = float(out.min()), float(out.max())
            old = self.ranges.get(n.name)
            self.ranges[n.name] = (lo, hi) if old is None else (min(lo, old[0]), max(hi, old[1]))
        return out
