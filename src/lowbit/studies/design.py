"""Architecture choice under a parameter budget, ranked by short proxy trainings (issue 13 item 4; Boo et al.
§5.3, Fig. 8, Table 5 / Appendix D: at W2A2 on CIFAR-10 the best ~1 M-parameter ResNet is depth 14 with basic
blocks or 38 with depthwise blocks).

1. ``enumerate_candidates``: every three-group CIFAR ResNet of the registered ``cifar_resnet`` family (block type
   basic | preact | depthwise x depth L = 3·n·(layers per block) + 2) with the first-layer width D_init whose
   parameter count is closest to the budget, kept when within ``tolerance`` of it. ``param_count`` counts the
   family's trainable parameters in closed form (conv weights, BN γ/β, FC weight and bias; ``bn_stats`` adds BN's
   running mean and variance, Table 5's Keras convention); the tests check it against the built models.
2. ``design_spec``: a study spec (``lowbit.engine.spec``) with one model per candidate, a float parent and
   the target precision as one QAT method (uniform weights with the L2-optimal step, PACT at the QA/QRA points,
   first conv and FC float, as in ``configs/studies/cnn_blocks.toml``).
3. The engine runs it (``engine.sweep``: resumable run folder); ``design_report`` ranks the candidates by the
   proxy score (accuracy of the quantized model after the proxy training, on held-out training images when the data
   table has ``validation``, else on the test set) and writes ``design.md`` (table,
   pick, the paper's check) and ``figures/proxy_score_vs_depth.png`` (score vs depth per block type).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..models.resnet_cifar import BLOCKS, LAYERS_PER_BLOCK, TABLE5

SHORT = {"basic": "basic", "preact": "preact", "depthwise": "dw"}
TABLE5_DEPTHS = {b: {row[1] for row in TABLE5 if row[0] == b} for b in BLOCKS}  # the paper's depth grid
PAPER_PICK = {"basic": 14, "depthwise": 38}  # Boo et al. §5.3, W2A2, ~1 M parameters, full CIFAR-10 training
_PRECISION = re.compile(r"^[Ww](\d{1,2})[Aa](\d{1,2})$")
BITS_RANGE = (2, 8)


def parse_precision(text: str) -> tuple[int, int]:
    """``"W2A2"`` -> (2, 2): weight and activation bits, each in 2..8."""
    m = _PRECISION.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"--precision {text!r} is not accepted; expected W<bits>A<bits>, e.g. W2A2 or W4A8")
    return check_bits(int(m.group(1)), "weight bits"), check_bits(int(m.group(2)), "activation bits")


def check_bits(bits: int, role: str) -> int:
    lo, hi = BITS_RANGE
    if not isinstance(bits, int) or isinstance(bits, bool) or not lo <= bits <= hi:
        raise ValueError(f"{role} {bits!r} is not accepted; expected a whole number {lo}..{hi}")
    return bits


def param_count(
    block: str, depth: int, width: int, num_classes: int = 10, in_channels: int = 3, bn_stats: bool = False
) -> int:
    """Parameters of ``cifar_resnet(block, depth, width)`` in closed form (mirrors ``CifarResNet``)."""
    from ..models.resnet_cifar import blocks_per_group

    if block not in BLOCKS:
        raise ValueError(f"block {block!r} is not accepted; expected one of {BLOCKS}")
    n = blocks_per_group(block, depth)
    bn = 4 if bn_stats else 2  # per BN channel: γ, β (+ running mean, var)
    total = 9 * in_channels * width + (0 if block == "preact" else bn * width)
    c = width
    for w, stride in ((width, 1), (2 * width, 2), (4 * width, 2)):
        for i in range(n):
            change = (stride if i == 0 else 1) != 1 or c != w
            if block == "basic":
                total += 9 * c * w + 9 * w * w + 2 * bn * w + ((c * w + bn * w) if change else 0)
            elif block == "preact":
                total += bn * c + 9 * c * w + bn * w + 9 * w * w + (c * w if change else 0)
            else:
                hidden = 6 * w
                total += (c * hidden + bn * hidden) if hidden != c else 0
                total += 9 * hidden + bn * hidden + hidden * w + bn * w + ((c * w + bn * w) if change else 0)
            c = w
    total += bn * c if block == "preact" else 0
    return total + c * num_classes + num_classes


@dataclass(frozen=True)
class Candidate:
    block: str
    depth: int
    width: int
    params: int

    @property
    def label(self) -> str:
        return f"{SHORT[self.block]}-{self.depth}"

    def model(self) -> dict:
        return {"name": "cifar_resnet", "block": self.block, "depth": self.depth, "width": self.width}


def valid_depths(block: str, max_depth: int, all_depths: bool = True) -> list[int]:
    """Depths L = 3·n·(layers per block) + 2 up to ``max_depth``; ``all_depths=False``: only Table 5's."""
    per = 3 * LAYERS_PER_BLOCK[block]
    depths = range(per + 2, max_depth + 1, per)
    return [d for d in depths if all_depths or d in TABLE5_DEPTHS[block]]


def enumerate_candidates(
    budget: float,
    tolerance: float = 0.15,
    blocks: tuple[str, ...] = BLOCKS,
    max_depth: int = 110,
    all_depths: bool = False,
    num_classes: int = 10,
    in_channels: int = 3,
    bn_stats: bool = False,
) -> list[Candidate]:
    """Every (block, depth) with the width closest to ``budget`` parameters, kept within ``tolerance``.

    Depths: Table 5's grid (basic / preact 8-56, depthwise 29-110), or with ``all_depths`` every valid depth up
    to ``max_depth``."""
    if not budget >= 100:
        raise ValueError(f"--params {budget!r} is not accepted; expected a parameter budget >= 100 (e.g. 1e6)")
    if not 0 < tolerance < 1:
        raise ValueError(f"--budget-tolerance {tolerance!r} is not accepted; expected a fraction in (0, 1)")
    for b in blocks:
        if b not in BLOCKS:
            raise ValueError(f"block type {b!r} is not accepted; expected any of {', '.join(BLOCKS)}")
    out = []
    for b in blocks:
        for depth in valid_depths(b, max_depth, all_depths):

            def count(w: int, b=b, depth=depth) -> int:
                return param_count(b, depth, w, num_classes, in_channels, bn_stats)

            lo, hi = 1, 1
            while count(hi) < budget and hi < 1 << 16:
                lo, hi = hi, hi * 2
            while hi - lo > 1:  # smallest width with count >= budget is hi
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if count(mid) < budget else (lo, mid)
            w = min((lo, hi), key=lambda x: abs(count(x) - budget))
            if abs(count(w) - budget) <= tolerance * budget:
                out.append(Candidate(b, depth, w, count(w)))
    return out


def quant_table(weight_bits: int, act_bits: int) -> dict:
    """The target precision as a QuantConfig table: uniform weights, PACT at every QA/QRA point."""
    act = {"act": {"name": "pact", "bits": act_bits}}
    return {
        "weight": {"name": "uniform", "bits": weight_bits},
        "keep_float": ["first", "last"],
        "rules": {"*qa?": act, "*qra": dict(act)},
    }


def scored_on(data: dict) -> str:
    """What the proxy score is measured on: "validation" (held-out training images) or "test"."""
    return "validation" if data.get("validation") else "test"


def design_spec(
    candidates: list[Candidate],
    budget: float,
    weight_bits: int,
    act_bits: int,
    data: dict,
    proxy_epochs: int = 2,
    seeds: tuple[int, ...] = (0,),
    batch_size: int = 128,
    calibrate: int = 256,
    device: str = "cpu",
    method: dict | None = None,
) -> dict:
    """The raw spec of a design run (validate it with ``spec.parse_spec``). ``method``: the target method's table
    instead of QAT at ``weight_bits``/``act_bits`` (``design_mixed.mixed_method``: bits per layer under a byte
    budget); it is then named "mixed"."""
    if not candidates:
        raise ValueError("no architecture fits the budget; raise --budget-tolerance or --params, or --max-depth")
    if not isinstance(proxy_epochs, int) or proxy_epochs < 1:
        raise ValueError(f"--proxy-epochs {proxy_epochs!r} is not accepted; expected a whole number >= 1")
    target = "mixed" if method is not None else f"W{weight_bits}A{act_bits}"
    scored = scored_on(data)
    return {
        "name": "design",
        "description": f"lowbit design: {len(candidates)} CIFAR ResNets within the {budget:.3g}-parameter budget, "
        f"ranked by {target} {scored} accuracy after {proxy_epochs}-epoch proxy training",
        "task": "image_classification_crop_flip",
        "data": dict(data),
        "grid": {"model": [c.label for c in candidates], "method": ["float", target], "seed": list(seeds)},
        "models": {c.label: c.model() for c in candidates},
        "train": {
            "batch_size": batch_size,
            "optimizer": "sgd",
            "momentum": 0.9,
            "lr": 0.01,
            "epochs": proxy_epochs,
            "schedule": "cosine",
            "device": device,
        },
        "methods": {
            "float": {"kind": "float", "train": {"lr": 0.1, "weight_decay": 5e-4}},
            target: method
            or {
                "kind": "qat",
                "parent": "float",
                "calibrate": calibrate,
                "quant": quant_table(weight_bits, act_bits),
            },
        },
        "report": {
            "tables": [
                {"title": f"Proxy {scored} accuracy (%)", "rows": "model", "columns": "method", "value": "accuracy"},
                {
                    "title": f"Proxy {scored} accuracy (%) right after quantization and calibration",
                    "rows": "model",
                    "columns": "method",
                    "value": "accuracy_before",
                    "where": {"method": target},
                },
            ],
        },
    }
