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
(BN folding and the other weight folds: ``onnx_fold``; the layers: ``onnx_layers``.)

Differences from the fake-quantized model that remain: the int32 bias (at most half a unit of Δx·Δw before
rounding), float arithmetic order, and ties (QuantizeLinear rounds half to even, lowbit's uniform quantizer half
up); each can move an activation that lies within that margin of a rounding boundary by one step. Everything
else computes the same values; any op with no integer form runs in float between DequantizeLinear and
QuantizeLinear and is listed by ``float_islands`` (``export_onnx`` warns naming them).
"""

from __future__ import annotations

import numpy as np

from .onnx_edit import MS_DOMAIN, Graph, Node, planned, scope_of
from .onnx_fold import decode_float_weights, fold_batch_norms, fold_weight_moves, fold_weight_shapes
from .onnx_layers import (
    LAYERS,
    layer_bias,
    lower_layers,
    lower_weight_only,
)
from .onnx_patterns import (
    MOVES,
    QGrid,
    act,
    cancel_pairs,
    pull_quantize,
    push_dequantize,
    quant_reads,
    replace_reads,
    weight_of,
)

# ops that carry no arithmetic worth an integer form (shapes, indices, element moves, quantization itself)
BOOKKEEPING = MOVES | {"QuantizeLinear", "DequantizeLinear", "Clip", "Shape", "Cast", "Concat", "Constant",
                       "ConstantOfShape", "Range", "Equal", "Where", "Not", "Less", "Greater", "Dropout"}  # fmt: skip


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
    base = scope_of(n)

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
        bias, y_name = layer_bias(g, n)
        if w is None or a is None or not y_name or (n.op == "MatMul" and g.ranks.get(n.inputs[0]) is None):
            continue
        base, (xq, gx) = scope_of(n), a
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
        y = planned(g, g.add("Mul", [g.add("Cast", [acc], base, to=1), rs_name], base))
        if bias is not None:
            y = planned(g, g.add("Add", [y, g.add_const(bias.astype(np.float32).reshape(shape), base + "_b")], base))
        g.rewire(y_name, y)


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
    return [(n.op, scope_of(n)) for n in g.nodes
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
