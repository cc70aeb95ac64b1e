"""Weight memory as the studies report it: b bits per INQ-quantized weight, 32 per other parameter.

(``lowbit.summary`` gives the full per-layer table including BN running statistics and scales; the studies
report this simpler count, the one the seed paper's memory-reduction figures use.)
"""

from __future__ import annotations

import torch

from ..inq import INQWeight


def weight_memory(model: torch.nn.Module) -> dict[str, int]:
    """{"params", "bits" (as stored), "float_bits" (32 per parameter)} of ``model``."""
    qbits: dict[int, int] = {}
    for m in model.modules():
        wq = getattr(m, "weight_quant", None)
        if isinstance(wq, INQWeight):
            for n in wq.param_names:
                qbits[id(getattr(m, n))] = wq.bits
    params = sum(p.numel() for p in model.parameters())
    bits = sum(p.numel() * qbits.get(id(p), 32) for p in model.parameters())
    return {"params": params, "bits": bits, "float_bits": 32 * params}


def memory_metrics(model: torch.nn.Module) -> dict[str, float]:
    """The memory columns of a study's result rows: ``params``, ``weight_kib`` (as stored: b bits per INQ weight,
    32 per other parameter) and ``memory_reduction`` (32-bit storage of the same model / as stored)."""
    m = weight_memory(model)
    return {
        "params": float(m["params"]),
        "weight_kib": m["bits"] / 8 / 1024,
        "memory_reduction": m["float_bits"] / m["bits"] if m["bits"] else 1.0,
    }
