"""``lowbit design --precision mixed --bytes B`` (issue 26 item 4): the architecture search with each candidate's
precision chosen per layer under a memory budget of B bytes, instead of one target precision for every layer.

Each candidate network gets the engine's ``mixed`` method (``engine/mixed.py``): after its float proxy training,
``lowbit.sensitivity`` on its first training images, then the exact allocation of weight bits among ``candidates``
so that the model's bytes as ``lowbit summary`` counts them (codes, steps, float BatchNorm, biases and the layers
kept float) are at most B, then the same QAT proxy retraining. The first conv and the FC stay float, as in the
fixed-precision design (``quant_table``); ``act_bits`` adds PACT at the QA/QRA points.

``min_bytes`` is what a candidate stores with every allocated layer at the fewest bits: a candidate above B cannot
meet the budget at all, and ``lowbit design`` leaves it out before anything is trained.
"""

from __future__ import annotations

from ..config import QuantConfig
from .design import Candidate, quant_table

MIXED_CANDIDATES = (2, 3, 4, 8)
MIXED_METHOD = "mixed"


def mixed_quant(act_bits: int | None, bits: int = min(MIXED_CANDIDATES)) -> dict:
    """The base config of the allocation: uniform weights (their bits are chosen per layer), first and last float."""
    if act_bits is not None:
        return quant_table(bits, act_bits)
    return {"weight": {"name": "uniform", "bits": bits}, "keep_float": ["first", "last"]}


def min_bytes(c: Candidate, act_bits: int | None, num_classes: int = 10, in_channels: int = 3) -> int:
    """Bytes of candidate ``c`` with every allocated layer at the fewest candidate bits (``lowbit.summary``'s count)."""
    from ..mixed import layer_costs
    from ..models import create_model

    kwargs = {k: v for k, v in c.model().items() if k != "name"}
    model = create_model("cifar_resnet", **kwargs, num_classes=num_classes, in_channels=in_channels)
    costs = layer_costs(model, QuantConfig.from_dict(mixed_quant(act_bits)), (min(MIXED_CANDIDATES),))
    return costs.uniform_bytes(min(MIXED_CANDIDATES))


def mixed_method(budget_bytes: int, act_bits: int | None, calibrate: int, samples: int = 8, probe: int = 256) -> dict:
    """The ``[methods.mixed]`` table of a design run."""
    return {
        "kind": "mixed",
        "parent": "float",
        "budget": int(budget_bytes),
        "candidates": list(MIXED_CANDIDATES),
        "criterion": "hutchinson",
        "samples": samples,
        "sensitivity_samples": probe,
        "calibrate": calibrate,
        "quant": mixed_quant(act_bits),
    }
