"""The ``mixed`` method kind: per-layer weight bits chosen under a memory budget, then retrained like ``qat``.

    [methods.mixed_h]
    kind = "mixed"
    parent = "float"                 # a float method: sensitivity is measured on the parent's float model
    budget = "W3"                    # bytes, or "W<b>": the memory of the same model with uniform b-bit weights
    # budget_bits = "${bits}"        # the same as budget = "W<bits>", from a grid axis (pairs with a uniform method)
    candidates = [2, 3, 4, 8]        # the widths a layer may get
    criterion = "hutchinson"         # "first_order" (single-layer loss change) | "hutchinson" | "random" (control)
    samples = 16                     # Rademacher vectors per batch (hutchinson)
    sensitivity_samples = 512        # training samples the sensitivity is measured on (the first ones)
    quant = { weight = { name = "uniform", bits = 2 } }   # the base config: quantizer families, keep_float, act
    calibrate = 4096                 # + train, task: as for qat

The step (``mixed_step``): load the parent, measure ``lowbit.sensitivity`` on its first training samples (weights
only; the random criterion measures nothing), solve ``lowbit.mixed.allocation`` exactly, write ``mixed.json`` (the
bits per layer, predicted bytes, the sensitivity rows) in the job folder, quantize with the allocated config,
calibrate, record ``<metric>_before``, retrain with ``fit``. Extra metrics: ``budget_kib`` and ``mean_weight_bits``
(weights' bits averaged over the allocated layers' parameters). The ``mixed_bits`` report extra reads ``mixed.json``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import torch
from torch.utils.data import Subset

from ..api import calibrate, quantize_
from ..config import QuantConfig
from ..fileio import atomic_write_text
from ..mixed import CRITERIA, Sensitivity, allocatable_layers, allocation, sensitivity
from ..train import TrainConfig, fit
from ..train.loop import place
from .checker import Checker, SpecError

MIXED_KEYS = (
    "kind",
    "parent",
    "task",
    "budget",
    "budget_bits",
    "candidates",
    "criterion",
    "samples",
    "sensitivity_samples",
    "quant",
    "calibrate",
    "train",
)
MIXED_FILE = "mixed.json"
DEFAULT_CANDIDATES = (2, 3, 4, 8)


def check_mixed(c: Checker, p: str, m: dict, methods: dict) -> None:
    """A mixed recipe (axis values substituted): one budget form, candidates, criterion, counts."""
    if methods[m["parent"]].get("kind") != "float":
        c.fail(f"{p}.parent", m["parent"], "a mixed method needs a float parent (sensitivity is measured on it)")
    if ("budget" in m) == ("budget_bits" in m):
        raise SpecError(
            f"{c.source}: {p}.budget: give budget (bytes, or 'W<bits>' like 'W3') or budget_bits (a bit width), "
            "exactly one"
        )
    cands = m.get("candidates", list(DEFAULT_CANDIDATES))
    if not isinstance(cands, list) or not cands or len(set(map(repr, cands))) != len(cands):
        c.fail(f"{p}.candidates", cands, "expected a list of different bit widths, e.g. [2, 3, 4, 8]")
    for i, b in enumerate(cands):
        c.whole(f"{p}.candidates[{i}]", b, 1, 16)
    if "budget_bits" in m:
        c.whole(f"{p}.budget_bits", m["budget_bits"], 1, 16)
        if m["budget_bits"] not in cands:
            c.fail(f"{p}.budget_bits", m["budget_bits"], f"expected one of the candidates {cands}")
    else:
        b = m["budget"]
        if isinstance(b, str):
            ok = len(b) > 1 and b[0] in "Ww" and b[1:].isdigit() and int(b[1:]) in cands
            if not ok:
                c.fail(f"{p}.budget", b, f"expected a number of bytes or 'W<bits>' with bits one of {cands}")
        else:
            c.whole(f"{p}.budget", b, 1)
    if m.get("criterion", "hutchinson") not in CRITERIA:
        c.fail(f"{p}.criterion", m["criterion"], f"expected one of {', '.join(CRITERIA)}")
    c.whole(f"{p}.samples", m.get("samples", 16), 1)
    c.whole(f"{p}.sensitivity_samples", m.get("sensitivity_samples", 512), 1)


def base_config(recipe: dict) -> QuantConfig:
    cands = recipe.get("candidates", list(DEFAULT_CANDIDATES))
    return QuantConfig.from_dict(recipe.get("quant", {"weight": {"name": "uniform", "bits": min(cands)}}))


def mean_weight_bits(model: torch.nn.Module, bits: dict[str, int]) -> float:
    sizes = {
        n: sum(p.numel() for k, p in model.get_submodule(n).named_parameters(recurse=False) if k.startswith("weight"))
        for n in bits
    }
    total = sum(sizes.values())
    return sum(sizes[n] * b for n, b in bits.items()) / total if total else math.nan


def mixed_step(c: Any) -> tuple[dict, str | None]:
    """The step of a mixed job (``c``: the steps' job context)."""
    r = c.recipe
    model, kwargs = c.parent_model()
    cands = sorted(r.get("candidates", list(DEFAULT_CANDIDATES)))
    base = base_config(r)
    seed = c.config["seed"]
    criterion = r.get("criterion", "hutchinson")
    train = c.data.train
    probe = Subset(train, range(min(r.get("sensitivity_samples", 512), len(train))))
    model.cpu().eval()
    if criterion == "random":  # the control measures nothing: random per-layer weights (Sensitivity.score)
        sens = Sensitivity(
            layers=allocatable_layers(model, base),
            candidates=cands,
            rows=[],
            base_loss=math.nan,
            seed=seed,
            input_shape=list(probe[0][0].shape),
            weight_quantizer=base.weight.to_dict(),
        )
    else:
        sens = sensitivity(
            model, probe, cands, config=base, acts=False, samples=r.get("samples", 16), seed=seed, progress=c.progress
        )
    budget = r["budget"] if "budget" in r else f"W{r['budget_bits']}"
    alloc = allocation(model, budget, sens, criterion=criterion, config=base, seed=seed)
    record = {"allocation": alloc.to_dict(), "sensitivity": sens.to_dict()}
    atomic_write_text(c.job_dir / MIXED_FILE, json.dumps(record, indent=1) + "\n")
    cfg = TrainConfig.from_dict(r["train"])
    place(model, cfg.device)
    quantize_(model, alloc.config)
    n = r.get("calibrate", 4096)
    if n:
        calibrate(model, c.task.calibration(train, n))
    before = {f"{k}_before": v for k, v in c.evaluate(model).items()}
    fit(model, train, cfg, desc="mixed", **c.fit_kwargs())
    extra = {"budget_kib": alloc.budget_bytes / 1024, "mean_weight_bits": mean_weight_bits(model, alloc.bits)}
    return {**c.finish(model), **before, **extra}, c.save(model, kwargs)
