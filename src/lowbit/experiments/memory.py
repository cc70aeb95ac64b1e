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
