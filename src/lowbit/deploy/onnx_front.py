"""The front end of every ONNX form: PyTorch's own exporter writes the float ops, lowbit writes the quantization.

``torch.onnx.export`` (the TorchScript exporter) already knows every op a user's model is made of (LayerNorm,
attention, GELU, Embedding, LSTM, ...). What it cannot know is where the model quantizes: the quantizers' STE
arithmetic would export as float ops. So the model is exported through an *export view* (a frozen copy) in which

    each activation quantizer  is a module whose ``autograd.Function`` has a ``symbolic``: QuantizeLinear -> [Clip]
                               -> DequantizeLinear on its grid (``Quantizer.export_activation``);
    each frozen weight read    (``quantized_weight(name)`` for every name in the twin's ``quant_weight_names``) is
                               a Function whose symbolic is DequantizeLinear(int8 codes, scale, axis 0).

Nothing here switches on a layer's or a quantizer's class: a twin that reads its weights through
``quantized_weight`` and its activations through quantizer submodules exports, whatever it computes.

Activation grids are written in one canonical form, uint8: a grid value = s·(q - z) with q in [qmin, qmax] is the
same value as s·(q' - z') with q' = q - qmin in [0, qmax - qmin] and z' = z - qmin. A signed 8-bit grid
(-127..127, zero point 0) becomes uint8 0..254 with zero point 127: the same real values, and the u8s8 kernels.
A grid with fewer than 256 levels gets a Clip on its codes after QuantizeLinear (QuantizeLinear saturates at 255).

Weights: the decoded weight is written as int8 codes times a per-output-channel (dim 0) scale whenever it is one
exactly (``int8_weight``): uniform codes, power-of-two codes up to 2^7 (scale 2^n2), and codebooks whose levels
are integer multiples of one step per channel (binary ±α, ternary, XNOR ±α_c). Anything else is a float constant.

An activation quantizer with no uint8 grid (``export_activation()`` is None, or more than 256 levels) is left in
the view: its own forward is traced, so the graph computes its float arithmetic (exact, not integer), and
``export_onnx`` warns naming it. Before writing anything, each grid is checked against what the quantizer
actually outputs on the example (``check_grids``): a quantizer whose ``export_activation`` disagrees with its own
forward is an error naming the layer, never a silently different graph.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..nn import QuantMixin
from ..quantizers import Quantizer
from .freeze import FrozenWeight

OPSET = 17
INT8_MAX = 127


@contextlib.contextmanager
def model_forward() -> Iterator[None]:
    """Within the block, PyTorch's inference fast paths (MultiheadAttention / TransformerEncoderLayer in eval under
    no_grad) are off: they read the weights directly and skip the quantizers, so they are not the model lowbit
    simulates or exports."""
    was = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(was)


@dataclass(frozen=True)
class U8Grid:
    """An activation grid in the canonical uint8 form: value = scale·(q - zp), q in [0, qmax]."""

    scale: float
    zp: int
    qmax: int
    half_up: bool  # lowbit's uniform quantizer rounds half up; ONNX rounds half to even (ties only differ)

    def fake_quant(self, x: torch.Tensor) -> torch.Tensor:
        v = x / self.scale
        r = torch.floor(v + 0.5) if self.half_up else torch.round(v)
        return self.scale * (torch.clamp(r + self.zp, 0, self.qmax) - self.zp)


def u8_grid(q: Quantizer) -> U8Grid | None:
    """The quantizer's output grid in uint8 form, or None when it has none (no grid, > 256 levels, bad scale)."""
    g = q.export_activation()
    if g is None:
        return None
    span, zp = g.qmax - g.qmin, g.zero_point - g.qmin
    if not (0 < span <= 255 and 0 <= zp <= 255) or not (math.isfinite(g.scale) and g.scale > 0):
        return None
    return U8Grid(float(np.float32(g.scale)), int(zp), int(span), g.rounding == "half_up")


class _QDQ(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float, zp: int, qmax: int, half_up: bool) -> torch.Tensor:
        # only traced (the symbolic is what is exported); written without "+ zp" because the exporter's peephole
        # pass drops an "x + 0" inside a Function's traced body and then fails to map its values
        return torch.clamp(torch.round(x / scale), -zp, qmax - zp) * scale

    @staticmethod
    def symbolic(g, x, scale: float, zp: int, qmax: int, half_up: bool):
        s = g.op("Constant", value_t=torch.tensor(scale, dtype=torch.float32))
        z = g.op("Constant", value_t=torch.tensor(zp, dtype=torch.uint8))
        q = g.op("QuantizeLinear", x, s, z)
        if qmax < 255:
            lo = g.op("Constant", value_t=torch.tensor(0, dtype=torch.uint8))
            hi = g.op("Constant", value_t=torch.tensor(qmax, dtype=torch.uint8))
            q = g.op("Clip", q, lo, hi)
        return g.op("DequantizeLinear", q, s, z)


class ExportQDQ(nn.Module):
    """Stands for an activation quantizer in the export view: its grid, as Q -> [Clip] -> DQ."""

    def __init__(self, grid: U8Grid, source: str):
        super().__init__()
        self.grid, self.source = grid, source

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.grid
        return _QDQ.apply(x, g.scale, g.zp, g.qmax, g.half_up)


class _DQWeight(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w: torch.Tensor, codes: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor, per_channel: bool):
        return w.clone()  # a new tensor: the exporter's passes fail on a Function that returns its input

    @staticmethod
    def symbolic(g, w, codes, scale, zp, per_channel: bool):
        return g.op("DequantizeLinear", codes, scale, zp, **({"axis_i": 0} if per_channel else {}))


def int8_weight(w: torch.Tensor, hint: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(int8 codes, float32 scale of shape () or (C_out,)) with scale·codes == ``w`` exactly in float32, else None.

    ``hint``: the frozen weight's own step (uniform Δ, or 2^n2 for power-of-two codes), scalar or per channel; else
    each channel's smallest nonzero magnitude is tried (binary, ternary and XNOR codebooks are ±k·α).
    """
    w = w.detach().to(torch.float32)
    if w.dim() == 0 or w.numel() == 0:
        return None
    rows = w.reshape(w.shape[0], -1)
    if hint is not None and hint.numel() in (1, w.shape[0]):
        step = hint.detach().to(torch.float32).reshape(-1).expand(w.shape[0]).clone()
    else:
        mag = torch.where(rows != 0, rows.abs(), torch.full_like(rows, float("inf"))).amin(dim=1)
        step = torch.where(torch.isfinite(mag), mag, torch.ones_like(mag))
    if not bool((step > 0).all()) or not bool(torch.isfinite(step).all()):
        return None
    codes = torch.round(rows / step[:, None])
    if codes.numel() and float(codes.abs().max()) > INT8_MAX:
        return None
    if not torch.equal(codes * step[:, None], rows):  # DequantizeLinear computes codes·scale in float32
        return None
    scale = step[0].clone() if bool((step == step[0]).all()) else step
    return codes.to(torch.int8).reshape(w.shape), scale


def _hint(fw: FrozenWeight, name: str) -> torch.Tensor | None:
    """The step a frozen scheme stores (uniform Δ, power-of-two 2^n2), else None (codebooks: tried per channel)."""
    s = fw.schemes[name]
    if s["scheme"] == "uniform":
        return getattr(fw, f"step_{name}")
    if s["scheme"] == "pow2":
        exp = getattr(fw, f"exp_{name}")
        return torch.tensor(2.0 ** int(exp[1])) if exp.numel() else None
    return None


def _override_weights(layer: nn.Module, fw: FrozenWeight) -> list[str]:
    """Make ``layer.quantized_weight(name)`` write DequantizeLinear(codes) for each name that has an int8 form.

    The frozen codes are in the quantizer's layout (output channel first, ``QuantMixin.to_quant_layout``); the
    DequantizeLinear is written in that layout and the layer's own ``from_quant_layout`` (a transpose for
    ConvTranspose and transformers' Conv1D, the identity otherwise) is traced after it."""
    forms = {}
    for n in layer.quant_weight_names:
        if n in fw.schemes:
            form = int8_weight(fw.decode(n), _hint(fw, n))
            if form is not None:
                forms[n] = form
    read = layer.quantized_weight  # the twin's own read (BN-folded twins: the folded weight), in its layout

    def quantized_weight(name: str = "weight") -> torch.Tensor:
        w = read(name)
        form = forms.get(name)
        if form is None:
            return w
        codes, scale = form
        zp = torch.zeros(scale.shape, dtype=torch.int8)
        dq = _DQWeight.apply(layer.to_quant_layout(name, w), codes, scale, zp, scale.dim() == 1)
        return layer.from_quant_layout(name, dq)

    layer.quantized_weight = quantized_weight  # instance attribute: shadows the class method in this copy only
    return [n for n in layer.quant_weight_names if n not in forms]


def activation_quantizers(model: nn.Module) -> list[tuple[nn.Module, str, str, Quantizer]]:
    """(parent, attribute, qualified name, quantizer) of every quantizer that is not a weight quantizer."""
    weight_q = set()
    for m in model.modules():
        if isinstance(m, QuantMixin) and m.weight_quant is not None:
            weight_q.add(id(m.weight_quant))
            for n in m.quant_weight_names:
                weight_q.add(id(m.weight_quantizer(n)))
    out = []
    for pname, parent in model.named_modules():
        for attr, q in parent._modules.items():
            if isinstance(q, Quantizer) and not isinstance(q, FrozenWeight) and id(q) not in weight_q:
                out.append((parent, attr, f"{pname}.{attr}" if pname else attr, q))
    return out


@torch.no_grad()
def check_grids(model: nn.Module, example: tuple) -> dict[str, U8Grid | None]:
    """Each activation quantizer's uint8 grid, checked against its own output on ``example`` (see the docstring).

    Only the quantizers the forward calls are returned (a recurrent twin's template is not); one whose output is not
    on the grid it declares (beyond one step at a tie) raises naming it."""
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = []
    grids: dict[str, U8Grid | None] = {}
    for _, _, name, q in activation_quantizers(model):
        grids[name] = u8_grid(q)
        hooks.append(q.register_forward_hook(_recorder(seen, name)))
    try:
        with model_forward():
            model(*example)
    finally:
        for h in hooks:
            h.remove()
    for name, (x, y) in seen.items():
        g = grids[name]
        if g is None:
            continue
        ref = g.fake_quant(x.to(torch.float32))
        d = (ref - y.to(torch.float32)).abs()
        bad = d > 1e-5 * (1 + y.abs())
        if bool(bad.any()) and (float(d.max()) > g.scale * 1.001 or float(bad.float().mean()) > 1e-3):
            raise ValueError(
                f"export_onnx: activation quantizer {name!r} outputs values off the grid its export_activation() "
                f"declares (scale {g.scale:g}, zero point {g.zp}, {g.qmax + 1} levels): max |difference| "
                f"{float(d.max()):g} at {float(bad.float().mean()):.2%} of the values"
            )
    return {n: g for n, g in grids.items() if n in seen}


def _recorder(seen: dict, name: str):
    def hook(_m, inputs, output) -> None:  # returns None: the output is left as it is
        seen.setdefault(name, (inputs[0], output))

    return hook


def export_view(model: nn.Module, example: tuple) -> tuple[nn.Module, list[str], list[str]]:
    """A copy of the frozen ``model`` whose quantizers and frozen weights export as Q/DQ (see the docstring);
    returns it with the notes on what is left in float: activation quantizers without a grid, and (separately)
    weights without an int8 form (stored as float32)."""
    grids = check_grids(model, example)
    view = copy.deepcopy(model).eval()
    notes, weight_notes = [], []
    for parent, attr, name, q in activation_quantizers(view):
        if name not in grids:
            continue  # never called by the forward
        g = grids[name]
        if g is not None:
            parent._modules[attr] = ExportQDQ(g, name)  # _modules: bypasses twins' __setattr__ (recurrent copies)
        else:
            notes.append(f"activation quantizer {name!r} ({q.to_dict()['name']}) has no uint8 grid: its float "
                         "arithmetic is exported")  # fmt: skip
    for lname, layer in view.named_modules():
        fw = getattr(layer, "weight_quant", None)
        if isinstance(layer, QuantMixin) and isinstance(fw, FrozenWeight):
            for n in _override_weights(layer, fw):
                weight_notes.append(f"{lname}.{n} ({fw.schemes[n]['scheme']})")
    return view, notes, weight_notes


def input_names(example: tuple) -> list[str]:
    return ["input"] if len(example) == 1 else [f"input_{i}" for i in range(len(example))]


def torch_export(model: nn.Module, example: tuple):
    """``torch.onnx.export`` (TorchScript) of ``model`` with a dynamic batch dimension; the ``onnx.ModelProto``."""
    import onnx

    names = input_names(example)
    axes = {n: {0: "N"} for n in names} | {"output": {0: "N"}}
    buf = io.BytesIO()
    with warnings.catch_warnings(), model_forward():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer warnings are not the user's business
        torch.onnx.export(
            model,
            example,
            buf,
            dynamo=False,
            opset_version=OPSET,
            input_names=names,
            output_names=["output"],
            dynamic_axes=axes,
            do_constant_folding=True,
        )
    return onnx.load_from_string(buf.getvalue())
