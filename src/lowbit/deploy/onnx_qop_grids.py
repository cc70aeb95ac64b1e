"""How the integer ONNX writer (``onnx_qop.QopWriter``) classifies graph nodes and chooses, reads and requantizes
the uint8/int8 grid of each tensor (see ``onnx_qop``'s docstring for the graph it builds)."""

from __future__ import annotations

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from .fold_bn import LayerSpec
from .onnx_graph import MS_DOMAIN, Builder
from .onnx_grid import Grid, Val, _calibrated


class GridChoice:
    """Grid bookkeeping of ``QopWriter`` (which sets every attribute used here in its ``__init__``)."""

    gm: torch.fx.GraphModule
    mods: dict[str, nn.Module]
    b: Builder
    specs: dict[str, LayerSpec]
    points: dict
    ranges: dict
    cache: dict

    # ------------------------------------------------------------------ node classification
    def _module(self, n: torch.fx.Node) -> nn.Module | None:
        return self.mods[n.target] if n.op == "call_module" else None

    def _is_relu(self, n: torch.fx.Node) -> bool:
        m = self._module(n)
        fn = n.op in ("call_function", "call_method") and n.target in (F.relu, torch.relu, "relu")
        return isinstance(m, nn.ReLU) or fn

    def _transparent(self, n: torch.fx.Node) -> bool:
        """Ops that commute with a monotone quantizer (so they can run on its codes)."""
        m = self._module(n)
        if isinstance(m, (nn.ReLU, nn.MaxPool2d, nn.Flatten, nn.Dropout, nn.Identity)):
            return True
        return self._is_relu(n) or (n.op in ("call_function", "call_method") and n.target in (torch.flatten, "flatten"))

    def _grid_of_layer(self, n: torch.fx.Node) -> Grid | None:
        """The input grid of a layer, or of a weightless quantization point (an ``ActPoint`` twin)."""
        if n.name in self.specs:
            g = self.specs[n.name].grid
        elif n.name in self.points:
            g = self.points[n.name]
        else:
            return None
        return None if g is None else Grid(g.scale, g.zero_point, g.qmin, g.qmax)

    def _lookahead(self, n: torch.fx.Node) -> Grid | None:
        """The input grid of the one quantized layer that reads ``n`` through transparent ops, else None."""
        cur, relu = n, False
        while True:
            users = list(cur.users)
            if len(users) != 1:
                return None
            u = users[0]
            g = self._grid_of_layer(u)
            if g is not None:
                return None if relu and not g.relu_free else g
            if not self._transparent(u):
                return None
            relu |= self._is_relu(u)
            cur = u

    def pick_grid(self, n: torch.fx.Node) -> Grid:
        """Output grid for a node the trained model keeps in float (see the module docstring)."""
        g = self._lookahead(n)
        if g is not None:
            return g
        r = n
        while len(r.users) == 1 and isinstance(self._module(next(iter(r.users))), (nn.Identity, nn.Dropout)):
            r = next(iter(r.users))  # e.g. the Identity left where a BN was folded for QAT
        users = list(r.users)
        if len(users) == 1 and self._is_relu(users[0]):
            r = users[0]
            for u in r.users:
                gu = self._grid_of_layer(u)
                if gu is not None and gu.relu_free and not gu.signed:
                    return gu
        return _calibrated(*self.ranges.get(r.name, (0.0, 1.0)))

    # ------------------------------------------------------------------ value conversions
    def get_float(self, v: Val, base: str) -> str:
        if v.f is None:
            g = v.grid
            v.f = self.b.node("DequantizeLinear", [v.q, self._s(g, base), self._z(g, base)], base)
        return v.f

    def get_quant(self, v: Val, g: Grid, base: str) -> str:
        if v.q is not None and v.grid == g:
            return v.q
        key = (id(v), g)
        if key not in self.cache and v.remake is not None and (name := v.remake(g)) is not None:
            self.cache[key] = name
        if key not in self.cache and v.q is not None and v.f is None and not (v.grid.signed or g.signed):
            self.cache[key] = self._clip(self._requant(v.q, v.grid, g, base), g, base)
        if key not in self.cache:
            q = self.b.node("QuantizeLinear", [self.get_float(v, base), self._s(g, base), self._z(g, base)], base)
            self.cache[key] = self._clip(q, g, base)
        return self.cache[key]

    def _requant(self, q: str, g0: Grid, g: Grid, base: str) -> str:
        """uint8 codes on ``g0`` -> on ``g``: one QLinearAdd of the tensor with itself at half its scale. The same
        values as DequantizeLinear -> QuantizeLinear (s0·(q - z0)/s rounded half to even) in one pass over
        uint8 data instead of two over float (ResNet-20's stem: 63 vs 138 µs at batch 32)."""
        half = self.b.const(np.float32(np.float32(g0.scale) / 2), base + "_s")
        z0 = self._z(g0, base)
        ins = [q, half, z0, q, half, z0, self._s(g, base), self._z(g, base)]
        return self.b.node("QLinearAdd", ins, base, domain=MS_DOMAIN)

    def _reads(self, v: Val, g: Grid) -> Grid:
        """The grid a consumer whose input grid is ``g`` reads ``v`` on: ``v``'s own when its codes can stand for
        ``g``'s (``Grid.interchangeable``: within one step; e.g. a block sum read by the next block's QA and QRA
        points, whose learned scales agree), so the producer is not written a second time."""
        return v.grid if v.q is not None and v.grid.interchangeable(g) else g

    def _s(self, g: Grid, base: str) -> str:
        return self.b.const(np.float32(g.scale), base + "_s")

    def _z(self, g: Grid, base: str) -> str:
        return self.b.const(g.np_type()(g.zp), base + "_z")

    def _clip(self, q: str, g: Grid, base: str) -> str:
        if not g.needs_clip():
            return q
        t = g.np_type()
        lo, hi = self.b.const(t(g.qmin), base + "_lo"), self.b.const(t(g.qmax), base + "_hi")
        return self.b.node("Clip", [q, lo, hi], base)

    # ------------------------------------------------------------------ layers
