"""The fast ONNX form: integer operators end to end (QOperator), from the model's own codes and learned scales.

What the graph looks like for a quantized CNN (issue 12):

    input -> QuantizeLinear (the first layer's input grid: once)
          -> QLinearConv (uint8 x, int8 per-channel codes, int32 bias, uint8 y) -> [Clip] -> MaxPool (uint8) -> ...
          -> QGemm (com.microsoft; the last layer: float output) -> output

- Requantization is folded into each integer op's output scale: a layer's output grid is the *next* layer's
  input grid (PACT α/(2^k-1), an LSQ step, a uniform Δ; ``Quantizer.export_activation``), so activations stay
  8-bit between layers. ReLU is fused: a uint8 grid with zero point 0 saturates at 0, exactly as the next
  quantizer clips at 0 (max-pool and flatten commute with the monotone quantizer, so they run on uint8 too).
- Sub-8-bit grids keep their codes: a k-bit activation is a uint8 with a Clip at 2^k - 1 after the op that
  produces it; k-bit weight codes are stored in int8 unchanged (the runtime has no sub-8-bit conv kernel).
- BatchNorm after a conv/linear is folded into it (``fold_bn``: the codes stay, the per-channel scale changes).
- Weights are int8 (|codes| <= 127) and activations uint8 (u8s8: the VNNI fast path of ONNX Runtime's MLAS).
- Residual adds: QLinearAdd (com.microsoft, uint8). A tensor the trained model keeps in float (a conv output
  before the add, the add itself when nothing quantized reads it) gets an asymmetric uint8 grid from its range
  on the calibration batch (``calib``, default the example): the only scales not learned in training.
- A tensor read by two quantization points (a block sum: the next block's QA and QRA points) is written once
  when the two grids are interchangeable (``Grid.interchangeable``: range ends within half a step, so any value
  moves by at most one step); otherwise a QLinearAdd writes the sum again on the second grid (exact, and no
  requantization of the written sum is cheaper: on a 32x16x28x28 uint8 tensor, 1 thread, QLinearAdd 63 µs,
  QLinearMul by one 83, DequantizeLinear -> QuantizeLinear 97, QLinearLeakyRelu(alpha=1) 107). Codes of another
  op (a conv) are moved to a second uint8 grid by one QLinearAdd of the tensor with itself at half scale
  (``_requant``: the values of DequantizeLinear -> QuantizeLinear, in one op).
- ``nbits`` (e.g. (4,)): Linear layers whose codes fit 4 (or 2) bits run through MatMulNBits, weight-only.

Rounding: QuantizeLinear and the integer ops' requantization round half to even, as PACT and LSQ do
(torch.round); lowbit's uniform quantizer rounds half up. Nothing is adjusted for that: a tie needs the
rescaled accumulator to land exactly on k + 1/2, which with float scales essentially never happens; when it
does, one activation moves by one step. The int32 bias (round(b/(Δx·Δw))) and the float requantization
multiplier add at most half a step of the accumulator's scale: the exported network matches the fake-quantized
one to within one activation step per layer (tests/deploy/test_deploy_integer.py).
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from ..nn import QuantMixin
from .fold_bn import LayerSpec, input_grid, layer_spec
from .matmul_nbits import matmul_nbits, nbits_for
from .onnx_graph import MS_DOMAIN, Builder, np32, trace
from .onnx_grid import Grid, Val, _calibrated, _Stats
from .onnx_qop_grids import GridChoice

BN = (nn.BatchNorm1d, nn.BatchNorm2d)
LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)


class QopWriter(GridChoice):
    def __init__(self, model: nn.Module, calib: torch.Tensor, nbits: tuple[int, ...] = ()):
        self.gm = trace(model)
        self.mods = dict(model.named_modules())
        self.b = Builder()
        self.nbits = tuple(nbits)
        st = _Stats(self.gm)
        with torch.no_grad():
            st.run(calib)
        self.ranges, self.ranks = st.ranges, st.ranks
        self.specs: dict[str, LayerSpec] = {}
        self.folded: dict[str, torch.fx.Node] = {}  # BN node name -> the layer node it is folded into
        self.end: dict[str, torch.fx.Node] = {}  # layer node name -> the node whose value it produces
        self.points: dict[str, Any] = {}  # weightless quantization point node name -> its grid (or None)
        for n in self.gm.graph.nodes:
            if n.op == "call_module" and isinstance(self.mods[n.target], LAYERS):
                users = list(n.users)
                bn = None
                if len(users) == 1 and users[0].op == "call_module" and isinstance(self.mods[users[0].target], BN):
                    bn = self.mods[users[0].target]
                    self.folded[users[0].name] = n
                self.specs[n.name] = layer_spec(n.target, self.mods[n.target], bn)
                self.end[n.name] = users[0] if bn is not None else n
            elif n.op == "call_module" and _is_point(self.mods[n.target]):
                self.points[n.name] = input_grid(self.mods[n.target])
        self.cache: dict[tuple[int, Grid], str] = {}

    def layer(self, n: torch.fx.Node, v: Val) -> Val:
        spec, b, base = self.specs[n.name], self.b, n.target
        gx = self._grid_of_layer(n)
        if gx is None and v.q is not None and spec.codes is not None:
            gx = v.grid  # the input was quantized upstream (an activation point): read its codes
        elif gx is not None and spec.codes is not None:
            gx = self._reads(v, gx)
        nb = nbits_for(spec, self.nbits) if self.nbits else None
        matrix = spec.is_conv or self.ranks.get(n.args[0].name) == 2  # QGemm/Gemm/MatMulNBits: (M, K) inputs
        nb = nb if matrix else None
        if gx is not None and spec.codes is not None and nb is None and matrix:
            return self._integer(n, spec, self.get_quant(v, gx, base), gx)
        if gx is not None:  # quantized input, weights without an int8 form (or weight-only nbits): float op
            v = Val(q=self.get_quant(v, gx, base), grid=gx)
        x = self.get_float(v, base)
        if nb is not None:
            return Val(f=matmul_nbits(b, spec, x, nb))
        w = b.const(np32(spec.weight), base + "_w")
        bias = [] if spec.bias is None else [b.const(np32(spec.bias), base + "_b")]
        if spec.is_conv:
            return Val(f=b.node("Conv", [x, w, *bias], base, **spec.attrs))
        if matrix:
            return Val(f=b.node("Gemm", [x, w, *bias], base, transB=1))
        y = b.node("MatMul", [x, b.const(np32(spec.weight.T.contiguous()), base + "_wT")], base)  # (..., K) inputs
        return Val(f=y if not bias else b.node("Add", [y, *bias], base))

    def _integer(self, n: torch.fx.Node, spec: LayerSpec, xq: str, gx: Grid) -> Val:
        b, base = self.b, n.target
        out_node = self.end[n.name]
        gy = self._lookahead(out_node)
        if gy is None and spec.is_conv:
            gy = self.pick_grid(out_node)
        if gy is not None and gy.signed != gx.signed:  # ORT's integer ops write the input's type: bridge later
            gy = _calibrated(*self.ranges.get(out_node.name, (0.0, 1.0)), signed=gx.signed)
        ws = spec.scale.numpy().astype(np.float32)
        w = b.const(spec.codes.numpy(), base + "_wq")
        wsn = b.const(ws, base + "_ws")
        wz = b.const(np.zeros(ws.shape, np.int8), base + "_wz")
        xs, xz = self._s(gx, base), self._z(gx, base)
        acc = np.float64(gx.scale) * ws.astype(np.float64)
        bias = np.zeros(ws.shape) if spec.bias is None else spec.bias.numpy().astype(np.float64)
        bq = b.const(np.round(bias / acc).astype(np.int32), base + "_bq")
        if spec.is_conv:
            ins = [xq, xs, xz, w, wsn, wz, self._s(gy, base), self._z(gy, base), bq]
            y = b.node("QLinearConv", ins, base, **spec.attrs)
        else:
            ins = [xq, xs, xz, w, wsn, wz, bq] + ([] if gy is None else [self._s(gy, base), self._z(gy, base)])
            y = b.node("QGemm", ins, base, domain=MS_DOMAIN, transB=1)
            if gy is None:
                return Val(f=y)
        return Val(q=self._clip(y, gy, base), grid=gy)

    # ------------------------------------------------------------------ other ops
    def relu(self, v: Val, base: str) -> Val:
        if v.q is not None and v.grid.relu_free:
            remake = v.remake
            if remake is not None:  # another grid of the same op is a ReLU too only when it cannot go negative
                remake = lambda g, r=remake: r(g) if g.relu_free else None  # noqa: E731
            return Val(q=v.q, grid=v.grid, remake=remake)
        return Val(f=self.b.node("Relu", [self.get_float(v, base)], base))

    def unary(self, op: str, v: Val, base: str, **attrs) -> Val:
        """An op that runs on codes as well as on floats (Flatten, MaxPool)."""
        if v.q is not None:
            return Val(q=self.b.node(op, [v.q], base, **attrs), grid=v.grid)
        return Val(f=self.b.node(op, [v.f], base, **attrs))

    def gap(self, n: torch.fx.Node, v: Val) -> Val:
        base = n.target if isinstance(n.target, str) else n.name
        g = self._lookahead(n)
        if v.q is not None and g is not None and g.signed == v.grid.signed:
            ins = [v.q, self._s(v.grid, base), self._z(v.grid, base), self._s(g, base), self._z(g, base)]
            y = self.b.node("QLinearGlobalAveragePool", ins, base, domain=MS_DOMAIN, channels_last=0)
            return Val(q=self._clip(y, g, base), grid=g)
        return Val(f=self.b.node("GlobalAveragePool", [self.get_float(v, base)], base))

    def add(self, n: torch.fx.Node, a: Val, c: Val) -> Val:
        base = n.name
        ga = a.grid if a.q is not None else _calibrated(*self.ranges[n.args[0].name])
        gc = c.grid if c.q is not None else _calibrated(*self.ranges[n.args[1].name])
        gy = self.pick_grid(n)
        if (a.q is not None or c.q is not None) and not (ga.signed or gc.signed or gy.signed):
            qa, qc = self.get_quant(a, ga, base), self.get_quant(c, gc, base)
            ins = [qa, self._s(ga, base), self._z(ga, base), qc, self._s(gc, base), self._z(gc, base)]

            def make(g: Grid) -> str | None:
                if g.signed:
                    return None
                y = self.b.node("QLinearAdd", ins + [self._s(g, base), self._z(g, base)], base, domain=MS_DOMAIN)
                return self._clip(y, g, base)

            return Val(q=make(gy), grid=gy, remake=make)
        return Val(f=self.b.node("Add", [self.get_float(a, base), self.get_float(c, base)], base))

    # ------------------------------------------------------------------ the walk
    def build(self, example: torch.Tensor):
        env: dict[str, Val] = {}
        out = None
        for n in self.gm.graph.nodes:
            if n.op == "placeholder":
                if env:
                    raise ValueError("export_onnx: models with one input only")
                env[n.name] = Val(f="input")
            elif n.op == "call_module":
                env[n.name] = self._call_module(n, env[n.args[0].name])
            elif n.op in ("call_function", "call_method"):
                env[n.name] = self._call_function(n, env)
            elif n.op == "output":
                out = self.get_float(env[n.args[0].name], "output")
            else:
                raise ValueError(f"export_onnx: graph node {n.op} {n.target!r} is not supported")
        with torch.no_grad():
            y = self.gm(example)
        return self.b.model(tuple(example.shape), tuple(y.shape), out)

    def _call_module(self, n: torch.fx.Node, v: Val) -> Val:
        m, base = self.mods[n.target], n.target
        if n.name in self.folded:
            return v
        if n.name in self.specs:
            return self.layer(n, v)
        if n.name in self.points:
            g = self._grid_of_layer(n)
            if g is None or (v.q is not None and self._reads(v, g) == v.grid):
                return v
            return Val(q=self.get_quant(v, g, base), grid=g)
        if isinstance(m, BN):
            ins = [np32(t) for t in (m.weight, m.bias, m.running_mean, m.running_var)]
            cs = [self.b.const(a, base + "_bn") for a in ins]
            return Val(f=self.b.node("BatchNormalization", [self.get_float(v, base), *cs], base, epsilon=m.eps))
        if isinstance(m, nn.ReLU):
            return self.relu(v, base)
        if isinstance(m, (nn.Dropout, nn.Identity)):
            return v
        if isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                raise ValueError("export_onnx: only Flatten(1, -1) is supported")
            return self.unary("Flatten", v, base, axis=1)
        if isinstance(m, nn.MaxPool2d):
            return self.unary("MaxPool", v, base, **_pool_attrs(m))
        if isinstance(m, nn.AdaptiveAvgPool2d) and m.output_size in (1, (1, 1)):
            return self.gap(n, v)
        raise ValueError(f"export_onnx: module {base!r} of type {type(m).__name__} is not supported")

    def _call_function(self, n: torch.fx.Node, env: dict[str, Val]) -> Val:
        t = n.target
        args = [env[a.name] if isinstance(a, torch.fx.Node) else a for a in n.args]
        if self._is_relu(n):
            return self.relu(args[0], n.name)
        if t in (torch.flatten, "flatten"):
            if (args[1] if len(args) > 1 else n.kwargs.get("start_dim", 0)) != 1:
                raise ValueError("export_onnx: only flatten(x, 1) is supported")
            return self.unary("Flatten", args[0], n.name, axis=1)
        if t in (F.adaptive_avg_pool2d, "adaptive_avg_pool2d"):
            size = args[1] if len(args) > 1 else n.kwargs.get("output_size")
            if size not in (1, (1, 1)):
                raise ValueError(f"export_onnx: adaptive_avg_pool2d to {size!r} is not supported (only 1)")
            return self.gap(n, args[0])
        if t in (operator.add, torch.add) and all(isinstance(a, Val) for a in args[:2]):
            return self.add(n, args[0], args[1])
        if t in (operator.add, torch.add, operator.mul, torch.mul):
            op = "Add" if t in (operator.add, torch.add) else "Mul"
            ins = [self.get_float(a, n.name) if isinstance(a, Val) else self.b.const(np.float32(a), n.name + "_c")
                   for a in args[:2]]  # fmt: skip
            return Val(f=self.b.node(op, ins, n.name))
        raise ValueError(f"export_onnx: operation {t!r} is not supported")


def _is_point(m: nn.Module) -> bool:
    """A weightless quantized twin (an ``ActPoint``): it only quantizes its input."""
    return isinstance(m, QuantMixin) and not m.quant_weight_names


def _pool_attrs(m: nn.MaxPool2d) -> dict[str, Any]:
    k = [m.kernel_size] * 2 if isinstance(m.kernel_size, int) else list(m.kernel_size)
    s = [m.stride] * 2 if isinstance(m.stride, int) else list(m.stride)
    p = [m.padding] * 4 if isinstance(m.padding, int) else list(m.padding) * 2
    return {"kernel_shape": k, "strides": s, "pads": p}


def build_qop(model: nn.Module, example: torch.Tensor, calib: torch.Tensor | None = None, nbits: tuple[int, ...] = ()):
    """The ``onnx.ModelProto`` of a frozen model in the integer form (see the module docstring)."""
    return QopWriter(model, example if calib is None else calib, nbits).build(example)
