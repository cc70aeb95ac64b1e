"""ONNX export of a frozen model, built node by node with ``onnx.helper`` from a torch.fx trace.

Why not ``torch.onnx.export``: the quantizers' custom autograd functions and STE arithmetic export as float
ops, not as QuantizeLinear/DequantizeLinear, so the graph would not say what is quantized. Here each layer
is written from its frozen codes:

    weights   "uniform" (b <= 8):  int8 codes initializer -> DequantizeLinear(Δ, 0)   (per-channel: axis 0)
              pow2 / codebook / float: the decoded float32 constant (ONNX has no power-of-two type)
    inputs    PACT / unsigned uniform activation (b <= 8): Clip(0, (2^b-1)Δ) -> QuantizeLinear(Δ, uint8 0)
              -> DequantizeLinear.  ONNX rounds ties to even where PACT/uniform round half up, so
              outputs match PyTorch to within one activation step on exact ties (tests: 1e-4 otherwise).
    integer=True  layers with a quantized uint8 input and uniform int8 weights run as MatMulInteger /
              ConvInteger (int32 accumulator) followed by one float rescale Δx·Δw and the bias: ONNX
              Runtime's integer kernels (``profile_ops`` lists which kernels actually ran).

Supported modules: Linear/Conv1d/Conv2d (float or quantized twins), BatchNorm1d/2d, ReLU, Flatten, Dropout,
MaxPool2d, AdaptiveAvgPool2d(1); functions relu, flatten, add, mul by a constant. Anything else raises.
"""

from __future__ import annotations

import copy
import operator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from ..fileio import atomic_write_bytes
from .freeze import FrozenWeight
from .onnx_graph import (
    OPSET,
    Builder,
    Tracer,
    conv_attrs,
    run_onnx,  # noqa: F401  (re-exported)
)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


class _Builder(Builder):
    def __init__(self, integer: bool):
        super().__init__()
        self.integer = integer


def _act_params(aq) -> tuple[float, int] | None:
    """(Δ, bits) of an unsigned zero-point-0 activation grid ONNX can express with uint8 Q/DQ, else None.

    Asks the quantizer (``Quantizer.export_activation``); no dispatch on its name or class.
    """
    if aq is None:
        return None
    g = aq.export_activation()
    if g is not None and g.zero_point == 0 and g.qmin == 0 and g.qmax <= 255 and (g.qmax + 1) & g.qmax == 0:
        return g.scale, g.qmax.bit_length()
    raise ValueError(
        f"export_onnx: activation quantizer {aq.to_dict()} has no ONNX form here; supported: an unsigned grid "
        "0..2^b-1 with b <= 8 and zero point 0 (pact, lsq unsigned, unsigned per-tensor uniform)"
    )


def _uniform_codes(m: nn.Module) -> tuple[np.ndarray, np.ndarray] | None:
    """(int8 codes, Δ) of a frozen uniform weight with b <= 8, else None."""
    fw = getattr(m, "weight_quant", None)
    if (
        isinstance(fw, FrozenWeight)
        and fw.schemes["weight"]["scheme"] == "uniform"
        and fw.schemes["weight"]["bits"] <= 8
    ):
        return _np(fw.codes_weight).astype(np.int8), _np(fw.step_weight).astype(np.float32)
    return None


def _weight(b: _Builder, m: nn.Module, base: str) -> tuple[str, tuple[np.ndarray, np.ndarray] | None]:
    """(weight tensor name, (int8 codes, scale) when the weight is uniform int8, for the integer path)."""
    fw = getattr(m, "weight_quant", None)
    if isinstance(fw, FrozenWeight):
        s = fw.schemes["weight"]
        if s["scheme"] == "uniform" and s["bits"] <= 8:
            codes = _np(fw.codes_weight).astype(np.int8)
            step = _np(fw.step_weight).astype(np.float32)
            zp = np.zeros(step.shape, dtype=np.int8)
            attrs = {"axis": 0} if step.ndim == 1 else {}
            w = b.node(
                "DequantizeLinear",
                [b.const(codes, base + "_wq"), b.const(step, base + "_ws"), b.const(zp, base + "_wz")],
                base,
                **attrs,
            )
            return w, (codes, step)
        return b.const(_np(fw.decode("weight")).astype(np.float32), base + "_w"), None
    if fw is not None:
        raise ValueError(f"export_onnx: layer {base!r} is not frozen; call lowbit.freeze(model) first")
    return b.const(_np(m.weight).astype(np.float32), base + "_w"), None


def _layer(b: _Builder, m: nn.Module, x: str, base: str) -> str:
    act = _act_params(getattr(m, "act_quant", None))
    xq = None
    if act is not None:
        step, bits = act
        x = b.node(
            "Clip",
            [x, b.const(np.float32(0.0), base + "_lo"), b.const(np.float32(step * (2**bits - 1)), base + "_hi")],
            base,
        )
        sc, zp = b.const(np.float32(step), base + "_xs"), b.const(np.uint8(0), base + "_xz")
        xq = b.node("QuantizeLinear", [x, sc, zp], base)
        x = b.node("DequantizeLinear", [xq, sc, zp], base)
    wint = _uniform_codes(m)
    is_conv = isinstance(m, (nn.Conv1d, nn.Conv2d))
    if b.integer and xq is not None and wint is not None and (not is_conv or wint[1].ndim == 0):
        codes, wstep = wint
        xz = b.const(np.uint8(0), base + "_xz8")
        wz = b.const(np.int8(0), base + "_wz8")
        if is_conv:
            acc = b.node("ConvInteger", [xq, b.const(codes, base + "_wi"), xz, wz], base, **conv_attrs(m))
        else:
            acc = b.node("MatMulInteger", [xq, b.const(np.ascontiguousarray(codes.T), base + "_wiT"), xz, wz], base)
        y = b.node("Cast", [acc], base, to=1)
        scale = (np.float32(act[0]) * wstep).astype(np.float32)
        if is_conv:
            scale = scale.reshape((-1,) + (1,) * (codes.ndim - 2)) if scale.ndim else scale
        y = b.node("Mul", [y, b.const(scale, base + "_rs")], base)
        if m.bias is not None:
            bias_arr = _np(m.bias).astype(np.float32)
            if is_conv:
                bias_arr = bias_arr.reshape((-1,) + (1,) * (codes.ndim - 2))
            y = b.node("Add", [y, b.const(bias_arr, base + "_bb")], base)
        return y
    w, _ = _weight(b, m, base)
    bias = None if m.bias is None else b.const(_np(m.bias).astype(np.float32), base + "_b")
    if is_conv:
        return b.node("Conv", [x, w] + ([bias] if bias else []), base, **conv_attrs(m))
    wt = b.node("Transpose", [w], base, perm=[1, 0])
    y = b.node("MatMul", [x, wt], base)
    return y if bias is None else b.node("Add", [y, bias], base)


def _module(b: _Builder, m: nn.Module, x: str, base: str) -> str:
    if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
        return _layer(b, m, x, base)
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        ins = [_np(t).astype(np.float32) for t in (m.weight, m.bias, m.running_mean, m.running_var)]
        return b.node("BatchNormalization", [x] + [b.const(a, base + "_bn") for a in ins], base, epsilon=m.eps)
    if isinstance(m, nn.ReLU):
        return b.node("Relu", [x], base)
    if isinstance(m, nn.Flatten):
        if m.start_dim != 1 or m.end_dim != -1:
            raise ValueError("export_onnx: only Flatten(1, -1) is supported")
        return b.node("Flatten", [x], base, axis=1)
    if isinstance(m, nn.Dropout):
        return x
    if isinstance(m, nn.MaxPool2d):
        k = [m.kernel_size] * 2 if isinstance(m.kernel_size, int) else list(m.kernel_size)
        s = [m.stride] * 2 if isinstance(m.stride, int) else list(m.stride)
        p = [m.padding] * 4 if isinstance(m.padding, int) else list(m.padding) * 2
        return b.node("MaxPool", [x], base, kernel_shape=k, strides=s, pads=p)
    if isinstance(m, nn.AdaptiveAvgPool2d) and m.output_size in (1, (1, 1)):
        return b.node("GlobalAveragePool", [x], base)
    raise ValueError(f"export_onnx: module {base!r} of type {type(m).__name__} is not supported")


def _function(b: _Builder, node: torch.fx.Node, env: dict[str, Any]) -> str:
    args = [env[a.name] if isinstance(a, torch.fx.Node) else a for a in node.args]
    t = node.target
    if t in (torch.relu, F.relu) or t == "relu":
        return b.node("Relu", [args[0]], node.name)
    if t in (torch.flatten,) or t == "flatten":
        if (args[1] if len(args) > 1 else node.kwargs.get("start_dim", 0)) != 1:
            raise ValueError("export_onnx: only flatten(x, 1) is supported")
        return b.node("Flatten", [args[0]], node.name, axis=1)
    if t in (operator.add, torch.add, operator.mul, torch.mul):
        op = "Add" if t in (operator.add, torch.add) else "Mul"
        ins = [a if isinstance(a, str) else b.const(np.float32(a), node.name + "_c") for a in args[:2]]
        return b.node(op, ins, node.name)
    raise ValueError(f"export_onnx: operation {t!r} is not supported")


def build_onnx(model: nn.Module, example: torch.Tensor, integer: bool = False):
    """The ``onnx.ModelProto`` of ``model`` (see the module docstring)."""
    b = _Builder(integer)
    graph = Tracer().trace(model)  # the tracer of every ONNX writer: quantized twins are leaves
    mods = dict(model.named_modules())
    env: dict[str, Any] = {}
    outputs = []
    for node in graph.nodes:
        if node.op == "placeholder":
            if env:
                raise ValueError("export_onnx: models with one input only")
            env[node.name] = "input"
        elif node.op == "call_module":
            env[node.name] = _module(b, mods[node.target], env[node.args[0].name], node.target)
        elif node.op in ("call_function", "call_method"):
            env[node.name] = _function(b, node, env)
        elif node.op == "output":
            outputs = [env[node.args[0].name]]
        else:
            raise ValueError(f"export_onnx: graph node {node.op} {node.target!r} is not supported")
    b.nodes.append(b.h.make_node("Identity", outputs, ["output"]))
    from onnx import TensorProto, checker

    inp = b.h.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *example.shape[1:]])
    with torch.no_grad():
        y = model(example)
    out = b.h.make_tensor_value_info("output", TensorProto.FLOAT, ["N", *y.shape[1:]])
    g = b.h.make_graph(b.nodes, "lowbit", [inp], [out], b.inits)
    proto = b.h.make_model(g, opset_imports=[b.h.make_opsetid("", OPSET)], producer_name="lowbit")
    proto.ir_version = 8
    checker.check_model(proto)
    return proto


FORMS = ("qop", "qdq", "integer", "float")


def export_onnx(
    model: nn.Module,
    path: str | Path,
    example: torch.Tensor,
    integer: bool = False,
    form: str | None = None,
    calib: torch.Tensor | None = None,
    nbits: tuple[int, ...] = (),
) -> Path:
    """Write ``model`` as ONNX; a quantized model that is not frozen yet is frozen on a copy first.

    form "qop" (the default): integer operators end to end, the fast form (``onnx_qop``; ``calib`` is the batch
        that sets the range of tensors the trained model keeps in float, default ``example``; ``nbits=(4,)``
        runs Linear layers with <= 4-bit codes through MatMulNBits).
    form "qdq": the older form: weights as DequantizeLinear, activations Q->DQ, float Conv/MatMul.
    form "integer" (or ``integer=True``): the older MatMulInteger/ConvInteger form with a float rescale.
    form "float": the "qop" writer on a model without quantizers gives the plain float graph (BN folded).
    """
    form = "integer" if integer and form is None else (form or "qop")
    if form not in FORMS:
        raise ValueError(f"export_onnx: form={form!r} is not accepted; expected one of {FORMS}")
    from .freeze import freeze

    quantized = any(getattr(m, "weight_quant", None) is not None for m in model.modules())
    if form == "float" and quantized:
        raise ValueError(
            "export_onnx: form='float' needs a float model; this one has quantizers (use form='qop', or export the "
            "float model before quantize_)"
        )
    if quantized and not _all_frozen(model):
        model = freeze(copy.deepcopy(model))
    elif model.training:
        model = copy.deepcopy(model)  # eval mode for export without switching the caller's model
    model = model.eval()
    if form in ("qop", "float"):
        from .onnx_qop import build_qop

        proto = build_qop(model, example, calib, nbits)
    else:
        proto = build_onnx(model, example, form == "integer")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, proto.SerializeToString())
    return path


def _all_frozen(model: nn.Module) -> bool:
    return all(
        isinstance(m.weight_quant, FrozenWeight)
        for m in model.modules()
        if getattr(m, "weight_quant", None) is not None
    )
