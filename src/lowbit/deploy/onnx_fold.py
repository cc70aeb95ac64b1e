"""Constant folding on the frozen weights of the Q/DQ graph (``onnx_lower``): element moves and shape arithmetic
applied to DequantizeLinear(codes) become moved codes, BatchNorm after a conv/Gemm folds into its codes' scales,
and the weights of layers left in float are stored decoded. Every fold keeps the values exactly.

BN folding: Conv/Gemm -> BatchNormalization (eval constants) -> one Conv/Gemm. g = γ/sqrt(σ² + ε) per channel; the
weight is Δ_c·c, so W·g = (|g_c|·Δ_c)·(±c): the codes stay (their sign flips where g_c < 0), the per-channel scale
becomes |g_c|·Δ_c; the bias becomes (b - μ)·g + β.
"""

from __future__ import annotations

import numpy as np

from .onnx_edit import Graph, Node, planned, scope_of
from .onnx_patterns import dq_weight

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
                outs.append(g.add("DequantizeLinear", ins, scope_of(n), **({"axis": b} if ii is not None else {})))
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
        y = g.add(layer.op, ins, scope_of(layer), **layer.attrs())
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
        return g.add("DequantizeLinear", ins, scope_of(layer), axis=out_axis)
    w = g.const(layer.inputs[1])
    if w is None:
        return None
    shape = [1] * w.ndim
    shape[out_axis] = -1
    return g.add_const((w.astype(np.float64) * gain.reshape(shape)).astype(np.float32), "w")


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
                g.rewire(n.outputs[0], g.add_const(w.astype(np.float32), scope_of(n) + "_w"))
                g.remove(n)


def _gather_codes(g: Graph, dq: Node, gathers: list[Node]) -> None:
    """Gather(DQ(codes), ids) -> the rows' codes gathered, then scaled: an embedding table stays int8 in memory and
    only the looked-up rows are dequantized (exactly: codes·scale in float32, as DequantizeLinear)."""
    w = dq_weight(g, dq.outputs[0])
    if w is None or (w[1].size > 1 and w[2] % w[0].ndim != 0):
        return
    base = scope_of(dq)
    for u in gathers:
        rows = g.add("Gather", [dq.inputs[0], u.inputs[1]], base, axis=0)
        if w[1].size == 1:
            y = g.add("DequantizeLinear", [rows, dq.inputs[1], dq.inputs[2]], base)
        else:
            scale = g.add("Gather", [dq.inputs[1], u.inputs[1]], base, axis=0)
            scale = g.add("Unsqueeze", [scale, g.add_const(np.array([-1], np.int64), base + "_ax")], base)
            y = g.add("Mul", [g.add("Cast", [rows], base, to=1), scale], base)
        g.rewire(u.outputs[0], planned(g, y))
        g.remove(u)
