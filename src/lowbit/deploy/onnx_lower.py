"""Lowering the Q/DQ graph to integer operators: the "qop" form (QLinearConv/QGemm/QLinearAdd, ...) and the older
"integer" form (ConvInteger/MatMulInteger + a float rescale).

The front end (``onnx_front``) writes the model as PyTorch computes it, with QuantizeLinear -> DequantizeLinear
where the model quantizes an activation and DequantizeLinear(int8 codes) where it reads a frozen weight. The
lowering replaces a float op by an integer one only where the two compute the same values:

    BN folding      Conv/Gemm -> BatchNormalization (eval constants) -> one Conv/Gemm: the weight's codes stay, the
                    per-channel scale becomes |g_c|·Δ_c (codes flip sign where g_c < 0), g = γ/sqrt(σ² + ε).
    layers          DQ(x codes) and DQ(w codes) -> Conv/Gemm/MatMul -> Q  =>  QLinearConv / QGemm (N-D inputs:
                    reshaped to 2-D on the codes): int32 accumulation, the bias as int32 in units of Δx·Δw, the
                    output written on the grid of the quantizer that reads it. A layer whose output the model
                    keeps in float (a residual branch, the last layer) runs as QGemm with a float output (Linear)
                    or as a float Conv on the dequantized codes (exact; ONNX Runtime has no fast integer
                    convolution with a float output: ConvInteger is slower than the float Conv here).
    elementwise     DQ inputs -> Add/Mul/GlobalAveragePool/AveragePool/Concat/Sigmoid/LeakyRelu -> Q  =>  the
                    com.microsoft QLinear* op of the same name.
    moves           see ``onnx_patterns``: max-pool, flatten, reshape, ReLU ... run on the codes.

Differences from the fake-quantized model that remain: the int32 bias (at most half a unit of Δx·Δw before
rounding), float arithmetic order, and ties (QuantizeLinear rounds half to even, lowbit's uniform quantizer half
up); each can move an activation that lies within that margin of a rounding boundary by one step. Everything
else computes the same values; any op with no integer form runs in float between DequantizeLinear and
QuantizeLinear and is listed by ``float_islands`` (``export_onnx`` warns naming them).
"""

from __future__ import annotations

import numpy as np

from .matmul_nbits import matmul_nbits, nbits_for
from .onnx_edit import MS_DOMAIN, Graph, Node
from .onnx_patterns import (
    MOVES,
    QGrid,
    Weight,
    act,
    cancel_pairs,
    codes_range,
    dq_weight,
    pull_quantize,
    push_dequantize,
    quant_reads,
    replace_reads,
    weight_of,
)

INT32_MAX = 2**31 - 1
INT16_PAIR = 32767  # two u8·s8 products must fit an int16 (pmaddubsw on CPUs without VNNI)
LAYERS = ("Conv", "Gemm", "MatMul")
# ops that carry no arithmetic worth an integer form (shapes, indices, element moves, quantization itself)
BOOKKEEPING = MOVES | {"QuantizeLinear", "DequantizeLinear", "Clip", "Shape", "Cast", "Concat", "Constant",
                       "ConstantOfShape", "Range", "Equal", "Where", "Not", "Less", "Greater", "Dropout"}  # fmt: skip


def _base(n: Node) -> str:
    return n.scope or "model"


def _planned(g: Graph, t: str) -> str:
    """Mark the node producing ``t`` as float on purpose (part of a lowered layer): not a float island."""
    g.producer(t).planned = True
    return t


# ---------------------------------------------------------------------------------------------------- BN folding
WEIGHT_MOVES = ("Transpose", "Slice", "Split", "Reshape", "Squeeze", "Unsqueeze")


def fold_weight_moves(g: Graph) -> None:
    """T(DQ(constant codes)) -> DQ(T(codes)) for element moves with constant arguments: Linear on N-D inputs
    exports as MatMul(x, Transpose(W)), attention slices its packed in-projection (``chunk``: Split). The per-channel
    scale follows its channels: T is applied to a map of channel indices too, and the result is kept only when the
    channels lie along one axis of the moved codes."""
    changed = True
    while changed:
        changed = False
        for n in list(g.nodes):
            if n.op not in WEIGHT_MOVES or n not in g.nodes:
                continue
            w = dq_weight(g, n.inputs[0])
            args = [g.const(i) if i else None for i in n.inputs[1:]]
            if w is None or any(i and a is None for i, a in zip(n.inputs[1:], args)):
                continue
            c, s, axis = w
            codes = _run_node(n, c, args)
            index = np.broadcast_to(np.arange(s.size).reshape([-1 if k == axis % c.ndim else 1 for k in range(c.ndim)]),
                                    c.shape) if s.size > 1 else None  # fmt: skip
            moved = _run_node(n, np.ascontiguousarray(index), args) if index is not None else [None] * len(codes)
            outs = []
            for cc, ii in zip(codes, moved):
                b = None if ii is None else _channel_axis(ii)
                if ii is not None and b is None:
                    break  # the channels no longer lie along one axis: keep the float move
                scale = s if ii is None else s[np.moveaxis(ii, b, 0).reshape(ii.shape[b], -1)[:, 0]]
                ins = [g.add_const(cc, "wq"), g.add_const(scale.astype(np.float32), "ws"),
                       g.add_const(np.zeros(scale.shape, np.int8), "wz")]  # fmt: skip
                outs.append(g.add("DequantizeLinear", ins, _base(n), **({"axis": b} if ii is not None else {})))
            else:
                for old, new in zip(n.outputs, outs):
                    g.rewire(old, new)
                g.remove(n)
                changed = True


def fold_weight_shapes(g: Graph) -> None:
    """Shape(DQ(constant codes)) and the integer arithmetic on it -> constants, so that the slices of a packed
    weight (attention's in-projection ``chunk(3)``: sizes computed from the weight's shape) are constant moves
    ``fold_weight_moves`` can apply to the codes. Only integer results are folded (exact)."""
    changed = True
    while changed:
        changed = False
        for n in list(g.nodes):
            if n not in g.nodes or len(n.outputs) != 1:
                continue
            if n.op == "Shape" and (w := dq_weight(g, n.inputs[0])) is not None:
                shape = np.array(w[0].shape, np.int64)[n.attr("start", 0) : n.attr("end", None)]
                out = [shape]
            elif n.op not in ("DequantizeLinear", "QuantizeLinear") and n.inputs:
                args = [g.const(i) if i else None for i in n.inputs]
                if any(i and (a is None or a.dtype.kind not in "iub") for i, a in zip(n.inputs, args)):
                    continue
                out = _run_node(n, args[0], args[1:])
                if any(o.dtype.kind not in "iub" for o in out):
                    continue
            else:
                continue
            g.rewire(n.outputs[0], g.add_const(out[0], "shape"))
            g.remove(n)
            changed = True


def _run_node(n: Node, data: np.ndarray, args: list) -> list[np.ndarray]:
    """The outputs of node ``n`` on ``data`` (its first input) and constant ``args`` (the rest)."""
    from onnx import TensorProto, helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    names = ["d"] + [f"a{k}" if a is not None else "" for k, a in enumerate(args)]
    node = helper.make_node(n.op, names, [f"o{k}" for k in range(len(n.outputs))], **n.attrs())
    inits = [numpy_helper.from_array(np.asarray(a), f"a{k}") for k, a in enumerate(args) if a is not None]
    dtype = helper.np_dtype_to_tensor_dtype(data.dtype)
    graph = helper.make_graph([node], "w", [helper.make_tensor_value_info("d", dtype, data.shape)],
                              [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in node.output],
                              inits)  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return list(ReferenceEvaluator(model).run(None, {"d": data}))


def _channel_axis(index: np.ndarray) -> int | None:
    """The axis of a moved channel-index map along which the channels lie (constant along every other axis)."""
    for b in range(index.ndim):
        rows = np.moveaxis(index, b, 0).reshape(index.shape[b], -1)
        if rows.size and (rows == rows[:, :1]).all():
            return b
    return None


def fold_batch_norms(g: Graph) -> None:
    """Conv/Gemm -> BatchNormalization with constant statistics: one layer (see the module docstring)."""
    for bn in list(g.nodes):
        if bn.op != "BatchNormalization" or len(bn.outputs) != 1:
            continue
        layer = g.producer(bn.inputs[0])
        stats = [g.const(i) for i in bn.inputs[1:5]]
        if layer is None or layer.op not in ("Conv", "Gemm") or any(s is None for s in stats):
            continue
        if len(g.consumers(layer.outputs[0])) != 1 or g.is_output(layer.outputs[0]):
            continue
        gamma, beta, mean, var = (s.astype(np.float64) for s in stats)
        gain = gamma / np.sqrt(var + bn.attr("epsilon", 1e-5))
        out_axis = 0 if layer.op == "Conv" or layer.attr("transB", 0) else 1
        new_w = _scaled_weight(g, layer, gain, out_axis)
        if new_w is None:
            continue
        b = g.const(layer.inputs[2]) if len(layer.inputs) > 2 and layer.inputs[2] else np.zeros_like(gain)
        if b is None:
            continue
        bias = ((b.astype(np.float64).reshape(-1) - mean) * gain + beta).astype(np.float32)
        ins = [layer.inputs[0], new_w, g.add_const(bias, "b")]
        y = g.add(layer.op, ins, _base(layer), **layer.attrs())
        g.producer(y).name = layer.name
        g.rewire(bn.outputs[0], y)
        g.remove(bn)
        g.remove(layer)


def _scaled_weight(g: Graph, layer: Node, gain: np.ndarray, out_axis: int) -> str | None:
    """The layer's weight times ``gain`` along the output axis: codes with sign flips and scaled steps when the
    weight is DQ(int8 codes), else the float constant scaled."""
    shape = [1] * 8
    q = dq_weight(g, layer.inputs[1])
    if q is not None:
        c, s, axis = q
        if s.size > 1 and axis != out_axis:
            return None
        bshape = [1] * c.ndim
        bshape[out_axis] = -1
        sign = np.where(gain < 0, -1, 1).astype(np.int8)
        step = np.broadcast_to(s.reshape(-1), gain.shape).astype(np.float64) * np.abs(gain)
        zero = step == 0
        codes = np.where(zero.reshape(bshape), 0, c * sign.reshape(bshape)).astype(np.int8)
        step = np.where(zero, 1.0, step).astype(np.float32)
        ins = [g.add_const(codes, "wq"), g.add_const(step, "ws"), g.add_const(np.zeros(step.shape, np.int8), "wz")]
        return g.add("DequantizeLinear", ins, _base(layer), axis=out_axis)
    w = g.const(layer.inputs[1])
    if w is None:
        return None
    shape = [1] * w.ndim
    shape[out_axis] = -1
    return g.add_const((w.astype(np.float64) * gain.reshape(shape)).astype(np.float32), "w")


# ---------------------------------------------------------------------------------------------------- layers
def _bias(g: Graph, n: Node) -> tuple[np.ndarray | None, str]:
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
        self.base = _base(n)
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
        y = _planned(g, g.add("QGemm", [a, x_s, x_z, wq, ws, wz], base, domain=MS_DOMAIN, transB=1))
        if layer.bias is None:
            return y
        return _planned(g, g.add("Add", [y, g.add_const(layer.bias.astype(np.float32), "b")], base))
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
        bias, y_name = _bias(g, n)
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
    y = _planned(g, matmul_nbits(g, w, n.inputs[0], nb, _base(n)))
    if bias is not None:
        y = _planned(g, g.add("Add", [y, g.add_const(bias.astype(np.float32), "b")], _base(n)))
    g.rewire(y_name, y)


def lower_weight_only(g: Graph) -> None:
    """Every Gemm/MatMul with int8 weights and a float input -> MatMulNBits (integer form; see ``_weight_only``)."""
    for n in list(g.nodes):
        if n.op in ("Gemm", "MatMul") and n in g.nodes and act(g, n.inputs[0]) is None:
            w = weight_of(g, n)
            bias, y_name = _bias(g, n) if w is not None else (None, "")
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
    base = _base(n)

    def make(grid: QGrid) -> str:
        c = [g.add_const(np.float32(v.scale), base + "_s") for v in (a[1], b[1], grid)]
        z = [g.add_const(np.uint8(v.zp), base + "_z") for v in (a[1], b[1], grid)]
        return g.add("QLinearMatMul", [a[0], c[0], z[0], b[0], c[1], z[1], c[2], z[2]], base)

    replace_reads(g, reads, lambda grid, _q: make(grid))


# ---------------------------------------------------------------------------------------------------- elementwise
_QLINEAR = {"Add": "QLinearAdd", "Mul": "QLinearMul", "GlobalAveragePool": "QLinearGlobalAveragePool",
            "AveragePool": "QLinearAveragePool", "Sigmoid": "QLinearSigmoid", "LeakyRelu": "QLinearLeakyRelu",
            "Concat": "QLinearConcat"}  # fmt: skip


def lower_elementwise(g: Graph) -> None:
    """DQ inputs -> Add/Mul/pools/Concat/Sigmoid/LeakyRelu -> Q  =>  the com.microsoft QLinear* op."""
    for n in list(g.nodes):
        if n.op not in _QLINEAR or n not in g.nodes or len(n.outputs) != 1:
            continue
        ins = [act(g, i) for i in n.inputs]
        reads = quant_reads(g, n.outputs[0])
        if reads is None or not ins or any(a is None for a in ins):
            continue
        if n.op in ("Add", "Mul") and len(ins) != 2:
            continue
        replace_reads(g, reads, lambda grid, _q, n=n, ins=ins: _qlinear(g, n, ins, grid))


def _qlinear(g: Graph, n: Node, ins: list, grid: QGrid) -> str:
    base = _base(n)

    def sz(v: QGrid) -> list[str]:
        return [g.add_const(np.float32(v.scale), base + "_s"), g.add_const(np.uint8(v.zp), base + "_z")]

    attrs = n.attrs()
    if n.op == "Concat":
        flat = [t for codes, v in ins for t in (codes, *sz(v))]
        return g.add("QLinearConcat", [*sz(grid), *flat], base, domain=MS_DOMAIN, axis=attrs["axis"])
    if n.op == "GlobalAveragePool":
        attrs["channels_last"] = 0
    flat = [t for codes, v in ins for t in (codes, *sz(v))]
    return g.add(_QLINEAR[n.op], [*flat, *sz(grid)], base, domain=MS_DOMAIN, **attrs)


# ---------------------------------------------------------------------------------------------------- integer form
def lower_integer(g: Graph) -> None:
    """The older form: ConvInteger / MatMulInteger on the codes, then Cast -> Mul(Δx·Δw) -> Add(bias), float out."""
    for n in list(g.nodes):
        if n.op not in LAYERS or n not in g.nodes:
            continue
        w, a = weight_of(g, n), act(g, n.inputs[0])
        bias, y_name = _bias(g, n)
        if w is None or a is None or not y_name or (n.op == "MatMul" and g.ranks.get(n.inputs[0]) is None):
            continue
        base, (xq, gx) = _base(n), a
        xz, wz = g.add_const(np.uint8(gx.zp), base + "_xz"), g.add_const(np.int8(0), base + "_wz")
        rs = (np.float64(gx.scale) * w.scale.astype(np.float64)).astype(np.float32)
        if n.op == "Conv":
            acc = g.add("ConvInteger", [xq, g.add_const(w.codes, base + "_wq"), xz, wz], base, **n.attrs())
            shape = (-1,) + (1,) * (w.codes.ndim - 2)
        else:
            wt = g.add_const(np.ascontiguousarray(w.codes.T), base + "_wq")
            acc = g.add("MatMulInteger", [xq, wt, xz, wz], base)
            shape = (-1,)
        rs_name = g.add_const(rs.reshape(shape if rs.size > 1 else ()), base + "_rs")
        y = _planned(g, g.add("Mul", [g.add("Cast", [acc], base, to=1), rs_name], base))
        if bias is not None:
            y = _planned(g, g.add("Add", [y, g.add_const(bias.astype(np.float32).reshape(shape), base + "_b")], base))
        g.rewire(y_name, y)


def decode_float_weights(g: Graph) -> None:
    """Weights of layers left in float (a residual branch's conv, a weight-only conv): DequantizeLinear(codes) ->
    its float32 value, stored. ONNX Runtime keeps a DequantizeLinear of constants in the graph (to find Q/DQ
    patterns) and so dequantizes such a weight at every run: measured 2x slower than the float model on ResNet-20.
    The value is exactly DequantizeLinear's (codes·scale in float32)."""
    for n in list(g.nodes):
        if n.op == "DequantizeLinear" and n in g.nodes and g.const(n.inputs[0]) is not None:
            users = g.consumers(n.outputs[0])
            if users and all(
                u.op == "Gather" and u.inputs[0] == n.outputs[0] and u.attr("axis", 0) == 0 for u in users
            ):
                _gather_codes(g, n, users)
            elif users and all(u.op in ("Conv", "ConvTranspose", "Gemm", "MatMul") for u in users):
                c, s, axis = dq_weight(g, n.outputs[0]) or (None, None, None)
                if c is None:
                    continue
                shape = [1] * c.ndim
                if s.size > 1:
                    shape[axis % c.ndim] = -1
                w = c.astype(np.float32) * s.astype(np.float32).reshape(shape if s.size > 1 else ())
                g.rewire(n.outputs[0], g.add_const(w.astype(np.float32), _base(n) + "_w"))
                g.remove(n)


def _gather_codes(g: Graph, dq: Node, gathers: list[Node]) -> None:
    """Gather(DQ(codes), ids) -> the rows' codes gathered, then scaled: an embedding table stays int8 in memory and
    only the looked-up rows are dequantized (exactly: codes·scale in float32, as DequantizeLinear)."""
    w = dq_weight(g, dq.outputs[0])
    if w is None or (w[1].size > 1 and w[2] % w[0].ndim != 0):
        return
    base = _base(dq)
    for u in gathers:
        rows = g.add("Gather", [dq.inputs[0], u.inputs[1]], base, axis=0)
        if w[1].size == 1:
            y = g.add("DequantizeLinear", [rows, dq.inputs[1], dq.inputs[2]], base)
        else:
            scale = g.add("Gather", [dq.inputs[1], u.inputs[1]], base, axis=0)
            scale = g.add("Unsqueeze", [scale, g.add_const(np.array([-1], np.int64), base + "_ax")], base)
            y = g.add("Mul", [g.add("Cast", [rows], base, to=1), scale], base)
        g.rewire(u.outputs[0], _planned(g, y))
        g.remove(u)


# ---------------------------------------------------------------------------------------------------- report
def float_islands(g: Graph) -> list[tuple[str, str]]:
    """(op type, module) for every op left in float between a DequantizeLinear of an activation and a QuantizeLinear
    (compute that lowbit has no integer form for); shapes, element moves and quantization itself are not listed."""
    # the quantized region starts at dequantized activations and at the float outputs of lowered layers
    starts = [n for n in g.nodes if (n.op == "DequantizeLinear" and g.const(n.inputs[0]) is None) or n.planned]
    fwd, stack = set(), [n.outputs[0] for n in starts]
    while stack:
        for u in g.consumers(stack.pop()):
            if id(u) not in fwd and u.op not in ("QuantizeLinear", "Shape"):  # a shape is metadata, not the data
                fwd.add(id(u))
                stack.extend(u.outputs)
    back, stack = set(), [n.inputs[0] for n in g.nodes if n.op == "QuantizeLinear"]
    while stack:
        p = g.producer(stack.pop())
        if p is not None and id(p) not in back and p.op != "DequantizeLinear":
            back.add(id(p))
            stack.extend(i for i in p.inputs if i)
    return [(n.op, _base(n)) for n in g.nodes
            if id(n) in fwd and id(n) in back and n.op not in BOOKKEEPING and not n.planned]  # fmt: skip


# ---------------------------------------------------------------------------------------------------- calibrated
CALIBRATED_READERS = ("Add", "GlobalAveragePool", "AveragePool")


def calibrate_float_inputs(g: Graph, calib) -> int:
    """Opt-in approximation (``export_onnx(..., calib=batch)``): each float input of an Add or average pool (a
    residual branch, a block sum the model keeps in float) gets an asymmetric uint8 grid from its range on
    ``calib``, so that the layer before it and the add itself run as integer ops. These are the only grids not
    learned in training: the graph then differs from the model by up to half a step of those grids (and by more
    where ``calib`` does not cover a value's range). Returns how many tensors got one."""
    from .onnx_graph import feeds

    wanted = []
    for n in g.nodes:
        if n.op in CALIBRATED_READERS:
            wanted += [t for t in n.inputs if t and g.const(t) is None and act(g, t) is None and t not in wanted]
    if not wanted:
        return 0
    probe = g.to_model()
    from onnx import helper

    probe.graph.output.extend(helper.make_empty_tensor_value_info(t) for t in wanted)
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    values = sess.run(wanted, feeds(sess, calib))
    for t, v in zip(wanted, values):
        lo, hi = min(float(v.min()), 0.0), max(float(v.max()), 0.0)
        scale = np.float32((hi - lo) / 255 if hi > lo else 1.0)
        zp = np.uint8(np.clip(np.round(-lo / scale), 0, 255))
        s_name, z_name = g.add_const(scale, "calib_s"), g.add_const(zp, "calib_z")
        base = g.producer(t).scope if g.producer(t) is not None else "input"
        dq = g.add("DequantizeLinear", [g.add("QuantizeLinear", [t, s_name, z_name], base), s_name, z_name], base)
        for n in g.consumers(t):
            if n.op in CALIBRATED_READERS and n.outputs[0] != dq:
                for k, i in enumerate(n.inputs):
                    if i == t:
                        g.set_input(n, k, dq)
    return len(wanted)


def lower(model, form: str, nbits: tuple[int, ...] = (), calib=None):
    """(lowered ``ModelProto``, the ops left in float between DQ and Q) for form "qop" or "integer"; ``calib``: a
    batch for ``calibrate_float_inputs`` (qop only; None keeps every tensor the model keeps in float in float)."""
    from onnx import shape_inference

    g = Graph(shape_inference.infer_shapes(model))
    fold_weight_shapes(g)
    fold_weight_moves(g)
    fold_batch_norms(g)
    g.prune()
    if calib is not None and form == "qop":
        calibrate_float_inputs(g, calib)
    if form == "integer":
        lower_integer(g)
        lower_weight_only(g)
    else:
        steps = (pull_quantize, push_dequantize, lambda g: lower_layers(g, nbits), lower_elementwise, push_dequantize,
                 cancel_pairs)  # fmt: skip
        for step in steps:
            step(g)
            g.prune()
    decode_float_weights(g)
    return g.to_model(), float_islands(g)
