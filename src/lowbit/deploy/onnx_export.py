"""``export_onnx``: a frozen (or quantized: frozen on a copy) model as ONNX, in one of four forms.

    qdq       what the fake-quantized model computes, as PyTorch's exporter writes it, with QuantizeLinear ->
              DequantizeLinear where the model quantizes an activation and DequantizeLinear(int8 codes) where it
              reads a frozen weight (``onnx_front``). Every op PyTorch can export is exported.
    qop       (the default) the qdq graph lowered to integer operators where they compute the same values:
              QLinearConv / QGemm / QLinearAdd / QLinearMatMul ..., BN folded, ReLU and max-pool on the codes
              (``onnx_lower``). The fast form on ONNX Runtime; ops with no integer form stay float between
              DequantizeLinear and QuantizeLinear, with a ``FloatOpsWarning`` naming them.
    integer   the older form: ConvInteger / MatMulInteger and a float rescale for each quantized layer.
    float     a model without quantizers, as PyTorch exports it (BN folded by PyTorch).

Tolerance ("deployed = simulated"). Each form computes the fake-quantized model's values except where an
activation lies within float rounding (qdq), or within half a unit of Δx·Δw of the int32 bias (qop, integer), of a
rounding boundary, or exactly on a tie (ONNX rounds half to even, lowbit's uniform quantizer half up): such an
activation moves by one step of its grid. ``onnx_check.output_step`` turns "every activation within one step"
into a bound on each output, the *output step*; ``onnx_check.compare`` measures an exported file against it.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch
from torch import nn

from ..fileio import atomic_write_bytes
from .freeze import FrozenWeight
from .onnx_graph import run_onnx  # noqa: F401  (re-exported)

FORMS = ("qop", "qdq", "integer", "float")


class FloatOpsWarning(UserWarning):
    """Parts of a quantized model that the exported graph computes in float (named in the message)."""


def _as_tuple(example) -> tuple:
    return tuple(example) if isinstance(example, (tuple, list)) else (example,)


def build_onnx(model: nn.Module, example, form: str = "qop", nbits: tuple[int, ...] = (), calib=None):
    """(``onnx.ModelProto``, notes) of a frozen eval-mode ``model`` in ``form``; notes name what runs in float."""
    from .onnx_front import export_view, torch_export

    ex = _as_tuple(example)
    if form == "float":
        return torch_export(model, ex), []
    view, notes, weight_notes = export_view(model, ex)
    proto = torch_export(view, ex)
    if form == "qdq":
        return proto, notes
    if weight_notes:
        notes.append(f"weights with no int8 form, stored and computed as float32: {', '.join(weight_notes)}")
    from .onnx_lower import lower

    proto, islands = lower(proto, form, nbits, None if calib is None else _as_tuple(calib))
    if islands:
        notes.append(
            f"{len(islands)} ops run in float between DequantizeLinear and QuantizeLinear (no integer form, or "
            f"the model keeps their output in float): {describe(islands)}"
        )
    return proto, notes


def describe(ops: list[tuple[str, str]], examples: int = 3) -> str:
    """ "Add x9 (layer1.0, layer1.1, layer1.2, ...), Conv (stem.0)" from (op type, module) pairs."""
    by_op: dict[str, list[str]] = {}
    for op, where in ops:
        by_op.setdefault(op, []).append(where)
    parts = []
    for op, where in by_op.items():
        more = ", ..." if len(where) > examples else ""
        parts.append(f"{op}{f' x{len(where)}' if len(where) > 1 else ''} ({', '.join(where[:examples])}{more})")
    return "; ".join(parts)


def export_onnx(
    model: nn.Module,
    path: str | Path,
    example,
    integer: bool = False,
    form: str | None = None,
    calib: torch.Tensor | None = None,
    nbits: tuple[int, ...] = (),
) -> Path:
    """Write ``model`` as ONNX (see the module docstring for the forms); returns the path.

    ``example``: the input (a tensor, or a tuple for a model with several inputs; the batch dimension is dynamic).
    ``nbits=(4,)`` (qop): Linear layers whose codes fit 4 (or 2) bits run through MatMulNBits (weight-only).
    ``calib`` (qop; default None): None writes exactly what the model computes, so a tensor the model keeps in
    float (a residual branch before its add, a block sum) stays float and the layer producing it runs as a float
    Conv. A batch of real inputs opts into speed over exactness: those tensors, where an Add or an average pool
    reads them, get a uint8 grid from their range on ``calib`` and the residual path runs as integer ops
    (``onnx_lower.calibrate_float_inputs``); the graph then differs from the model by up to half a step of those
    grids. ``integer=True`` is ``form="integer"``.
    Warns (``FloatOpsWarning``) naming what the graph computes in float although the model quantizes around it.
    """
    form = "integer" if integer and form is None else (form or "qop")
    if form not in FORMS:
        raise ValueError(f"export_onnx: form={form!r} is not accepted; expected one of {FORMS}")
    from .freeze import freeze

    quantized = any(getattr(m, "weight_quant", None) is not None or getattr(m, "act_quant", None) is not None
                    for m in model.modules())  # fmt: skip
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
    proto, notes = build_onnx(model, example, form, tuple(nbits), calib)
    for note in notes:
        warnings.warn(f"export_onnx ({form}): {note}", FloatOpsWarning, stacklevel=2)
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
