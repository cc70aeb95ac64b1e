"""Refuse to ship non-finite numbers: ``freeze``, ``save_model`` and ``save_packed`` check a model's floating
tensors (weights, biases, norm statistics, quantizer steps and ranges) first and name the layer holding a NaN or
inf, instead of writing a file that decodes to NaN or dying later in an index lookup."""

from __future__ import annotations

import torch
from torch import nn


def non_finite(x: torch.Tensor) -> str | None:
    """'N NaN, M inf of K values' when ``x`` holds non-finite values, else None."""
    if not x.is_floating_point():
        return None
    bad = ~torch.isfinite(x)
    if not bool(bad.any()):
        return None
    nan = int(torch.isnan(x).sum())
    return f"{nan} NaN, {int(bad.sum()) - nan} inf of {x.numel()} values"


def non_finite_tensors(model: nn.Module) -> list[tuple[str, str, str]]:
    """(layer name, tensor name, what is wrong) for every floating tensor of ``model`` holding NaN or inf.

    A tensor is reported under the module that owns it directly (a quantizer's step under ``layer.act_quant``).
    """
    out = []
    for lname, m in model.named_modules():
        tensors = [*m.named_parameters(recurse=False), *m.named_buffers(recurse=False)]
        for tname, t in tensors:
            why = non_finite(t.detach())
            if why is not None:
                out.append((lname or "<model>", tname, why))
    return out


def require_finite(model: nn.Module, verb: str) -> None:
    """Raise one ValueError naming the first layer (and counting the others) whose tensors are not finite."""
    bad = non_finite_tensors(model)
    if not bad:
        return
    layer, tensor, why = bad[0]
    others = ", ".join(f"{n}.{t}" for n, t, _ in bad[1:4]) + (" ..." if len(bad) > 4 else "")
    more = f" (and {len(bad) - 1} more tensor(s): {others})" if len(bad) > 1 else ""
    raise ValueError(
        f"{verb}: layer {layer!r} has a non-finite {tensor} ({why}){more}; "
        "the model diverged or was loaded from a broken file: nothing was written or changed"
    )
