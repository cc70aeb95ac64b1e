"""Conv / Gemm / MatMul of the Q/DQ graph as integer operators (``onnx_lower``): QLinearConv, QGemm (N-D inputs
reshaped to 2-D on the codes), QLinearMatMul for two quantized activations, MatMulNBits for weight-only layers;
the int32 bias in the finest unit the int8/uint8 ranges allow (``_Layer``)."""

from __future__ import annotations

import numpy as np

from .matmul_nbits import matmul_nbits, nbits_for
from .onnx_edit import MS_DOMAIN, Graph, Node, planned, scope_of
from .onnx_patterns import QGrid, Weight, act, codes_range, quant_reads, replace_reads, weight_of

INT32_MAX = 2**31 - 1
INT16_PAIR = 32767  # two u8·s8 products must fit an int16 (pmaddubsw on CPUs without VNNI)
LAYERS = ("Conv", "Gemm", "MatMul")


def layer_bias(g: Graph, n: Node) -> tuple[np.ndarray | None, str]:
    """(float bias (N,) or None, the tensor that holds the layer's result with its bias)."""
    if n.op in ("Conv", "Gemm"):
        if len(n.inputs) > 2 and n.inputs[2]:
            b = g.const(n.inputs[2])
            if b is None or (n.op == "Gemm" and n.attr("beta", 1.0) != 1.0):
                return None, ""
            return b.reshape(-1), n.outputs[0]
        return None, n.outputs[0]
    users = g.consumers(n.outputs[0])
    if len(users) == 1 and users[0].op == "Add" and not g.is_output(n.outputs[0]):
        other = [i for i in users[0].inputs if i != n.outputs[0]]
        b = g.const(other[0]) if len(other) == 1 else None
        if b is not None and b.ndim == 1:
            return b, users[0].outputs[0]
    return None, n.outputs[0]


class _Layer:
    """What one Conv/Gemm/MatMul needs for its integer form.

    The int32 bias is in units of the accumulator's scale Δx·Δw. Codes that use little of the int8 range are
    stored times an integer m per output channel, with the step divided by m (the same weights): the bias unit
    shrinks m-fold (W2 codes ±1: m up to 127), and of the admissible m the one that rounds this channel's bias
    best is taken. Likewise sub-8-bit input codes (a 4-bit grid uses 0..15 of uint8) are multiplied by an integer
    k (one uint8 Mul, exact) on a grid of step Δx/k: the unit shrinks k-fold more. Both are capped so that two
    products x·w still fit an int16 (the u8s8 kernels of CPUs without VNNI add pairs in int16 with saturation).
    """

    def __init__(self, g: Graph, n: Node, xq: str, gx: QGrid, w: Weight, bias: np.ndarray | None):
        self.g, self.n, self.bias = g, n, bias
        self.base = scope_of(n)
        x_max = codes_range(g, xq)[1]
        if bias is not None and bias.any():
            peak = max(int(np.abs(w.codes).max(initial=0)), 1)
            k = max(1, min(255 // max(x_max, 1), 255 // max(gx.zp, 1), INT16_PAIR // (2 * max(x_max, 1) * peak)))
            if k > 1:
                xq = g.add("Mul", [xq, g.add_const(np.uint8(k), self.base + "_k")], self.base)
                gx, x_max = QGrid(float(np.float32(gx.scale / k)), gx.zp * k), x_max * k
            w = _widened(w, x_max, bias, gx.scale)
        self.xq, self.gx, self.w = xq, gx, w
        self.acc = np.float64(gx.scale) * self.w.scale.astype(np.float64)  # the accumulator's scale Δx·Δw

    def consts(self) -> list[str]:
        g, b, gx, w = self.g, self.base, self.gx, self.w
        return [g.add_const(np.float32(gx.scale), b + "_xs"), g.add_const(np.uint8(gx.zp), b + "_xz"),
                g.add_const(w.codes, b + "_wq"), g.add_const(w.scale, b + "_ws"),
                g.add_const(np.zeros(w.scale.shape, np.int8), b + "_wz")]  # fmt: skip

    def int_bias(self) -> np.ndarray | None:
        if self.bias is None:
            return np.zeros(self.w.codes.shape[0], np.int32)
        bq = np.round(self.bias.astype(np.float64) / self.acc)
        return None if np.abs(bq).max(initial=0) > INT32_MAX else bq.astype(np.int32)

    def out(self, grid: QGrid) -> list[str]:
        return [self.g.add_const(np.float32(grid.scale), self.base + "_ys"),
                self.g.add_const(np.uint8(grid.zp), self.base + "_yz")]  # fmt: skip


def _widened(w: Weight, x_max: int, bias: np.ndarray, x_scale: float) -> Weight:
    """``w`` with each channel's codes times an integer m and its step divided by m (see ``_Layer``): of the m that
    keep the codes within the cap, the one whose int32 bias unit Δx·Δw/m leaves the smallest rounding error."""
    cap = min(127, INT16_PAIR // (2 * max(x_max, 1)))
    rows = w.codes.reshape(w.codes.shape[0], -1).astype(np.int32)
    peak = np.abs(rows).max(axis=1)
    m_max = np.where(peak > 0, cap // np.maximum(peak, 1), 1).clip(min=1)
    step = np.broadcast_to(w.scale.reshape(-1), m_max.shape).astype(np.float64)
    units = bias.astype(np.float64) / (np.float64(x_scale) * step)  # the bias in units of Δx·Δw (m = 1)
    m = np.ones_like(m_max)
    for c in range(len(m)):
        cand = np.arange(1, m_max[c] + 1)
        m[c] = cand[np.argmin(np.abs(np.round(units[c] * cand) - units[c] * cand) / cand)]
    if (m == 1).all():
        return w
    return Weight((rows * m[:, None]).reshape(w.codes.shape).astype(np.int8), (step / m).astype(np.float32))


def _gemm(layer: _Layer, a: str, grid: QGrid | None) -> str:
    """QGemm on 2-D codes ``a``: uint8 on ``grid``, or float (plus the float bias) when ``grid`` is None."""
    g, base = layer.g, layer.base
    x_s, x_z, wq, ws, wz = layer.consts()
    if grid is None:
        y = planned(g, g.add("QGemm", [a, x_s, x_z, wq, ws, wz], base, domain=MS_DOMAIN, transB=1))
        if layer.bias is None:
            return y
        return planned(g, g.add("Add", [y, g.add_const(layer.bias.astype(np.float32), "b")], base))
    bq = g.add_const(layer.int_bias(), base + "_bq")
    return g.add("QGemm", [a, x_s, x_z, wq, ws, wz, bq, *layer.out(grid)], base, domain=MS_DOMAIN, transB=1)


def _matrix(layer: _Layer, grid: QGrid | None) -> str:
    """QGemm for a Gemm, or a MatMul of known rank (reshaped to 2-D on the codes and back)."""
    g, base, xq = layer.g, layer.base, layer.xq
    if layer.n.op == "Gemm" or g.ranks.get(layer.n.inputs[0]) == 2:
        return _gemm(layer, xq, grid)
    k, n_out = layer.w.codes.shape[1], layer.w.codes.shape[0]
    a = g.add("Reshape", [xq, g.add_const(np.array([-1, k], np.int64), base + "_2d")], base)
    y = _gemm(layer, a, grid)
    head = g.add("Slice", [g.add("Shape", [xq], base), g.add_const(np.array([0], np.int64), base + "_s0"),
                           g.add_const(np.array([-1], np.int64), base + "_s1")], base)  # fmt: skip
    shape = g.add("Concat", [head, g.add_const(np.array([n_out], np.int64), base + "_n")], base, axis=0)
    return g.add("Reshape", [y, shape], base)


def lower_layers(g: Graph, nbits: tuple[int, ...] = ()) -> None:
    """Conv/Gemm/MatMul with int8 weights -> QLinearConv / QGemm / MatMulNBits (see the module docstring)."""
    for n in list(g.nodes):
        if n.op not in LAYERS or n not in g.nodes:
            continue
        w = weight_of(g, n)
        if w is None:
            if n.op == "MatMul":
                _activation_matmul(g, n)
            continue
        bias, y_name = layer_bias(g, n)
        if not y_name:
            continue
        a = act(g, n.inputs[0])
        nb = nbits_for(w.codes, nbits) if nbits and n.op != "Conv" and w.codes.ndim == 2 else None
        if nb is not None or (a is None and n.op != "Conv"):
            _weight_only(g, n, w, bias, y_name, nb or 8)
            continue
        if a is None:
            continue  # a float input to a conv: the weight stays DequantizeLinear(codes) for the float Conv
        layer = _Layer(g, n, a[0], a[1], w, bias)
        matrix_ok = n.op == "Gemm" or g.ranks.get(n.inputs[0]) is not None
        reads = quant_reads(g, y_name)
        if reads is not None and layer.int_bias() is not None and (n.op == "Conv" or matrix_ok):
            make = _qconv if n.op == "Conv" else _matrix
            replace_reads(g, reads, lambda grid, _q, L=layer, f=make: f(L, grid))
        elif n.op != "Conv" and matrix_ok:
            g.rewire(y_name, _matrix(layer, None))


def _weight_only(g: Graph, n: Node, w: Weight, bias, y_name: str, nb: int) -> None:
    """A Gemm/MatMul with a float input as MatMulNBits (``nb``-bit codes, float activations, accuracy_level 0:
    float arithmetic). Written explicitly because ONNX Runtime otherwise fuses DequantizeLinear(int8) -> MatMul
    into MatMulNBits itself with its default accuracy level 4, which quantizes the activations to int8 on the fly
    (measured: 5e-3 relative error on a W4 MLP whose simulation has none)."""
    y = planned(g, matmul_nbits(g, w, n.inputs[0], nb, scope_of(n)))
    if bias is not None:
        y = planned(g, g.add("Add", [y, g.add_const(bias.astype(np.float32), "b")], scope_of(n)))
    g.rewire(y_name, y)


def lower_weight_only(g: Graph) -> None:
    """Every Gemm/MatMul with int8 weights and a float input -> MatMulNBits (integer form; see ``_weight_only``)."""
    for n in list(g.nodes):
        if n.op in ("Gemm", "MatMul") and n in g.nodes and act(g, n.inputs[0]) is None:
            w = weight_of(g, n)
            bias, y_name = layer_bias(g, n) if w is not None else (None, "")
            if w is not None and y_name:
                _weight_only(g, n, w, bias, y_name, 8)


def _qconv(layer: _Layer, grid: QGrid) -> str:
    g, base = layer.g, layer.base
    x_s, x_z, wq, ws, wz = layer.consts()
    bq = g.add_const(layer.int_bias(), base + "_bq")
    ins = [layer.xq, x_s, x_z, wq, ws, wz, *layer.out(grid), bq]
    return g.add("QLinearConv", ins, base, **layer.n.attrs())


def _activation_matmul(g: Graph, n: Node) -> None:
    """MatMul of two quantized activations (attention scores, probabilities · V) -> QLinearMatMul when a
    quantizer reads the result."""
    a, b = act(g, n.inputs[0]), act(g, n.inputs[1])
    reads = quant_reads(g, n.outputs[0])
    if a is None or b is None or reads is None:
        return
    base = scope_of(n)

    def make(grid: QGrid) -> str:
        c = [g.add_const(np.float32(v.scale), base + "_s") for v in (a[1], b[1], grid)]
        z = [g.add_const(np.uint8(v.zp), base + "_z") for v in (a[1], b[1], grid)]
        return g.add("QLinearMatMul", [a[0], c[0], z[0], b[0], c[1], z[1], c[2], z[2]], base)

    replace_reads(g, reads, lambda grid, _q: make(grid))
