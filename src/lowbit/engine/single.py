"""``lowbit run CONFIG``: one experiment is a spec with one cell (one model, one seed).

A CONFIG is either a study spec (``spec.py``) whose grid has one model and one seed, or the short
one-experiment form, translated here into such a spec:

    name = "fcdnn-w2"
    plugins = [...]     # optional, as in a spec
    [data]              # a registered data set and its arguments (or target = "pkg.module:build", as in a spec)
    name = "spirals"
    [model]             # a registered model and its arguments (or target = "pkg.module:build"; flatten)
    name = "fcdnn"
    width = 128
    [train]             # float training (TrainConfig fields; its seed is the cell's seed)
    epochs = 50
    [quant]             # optional: QuantConfig fields -> method "quantized" (QAT from "float")
    weight = { name = "uniform", bits = 2 }
    [inq]               # optional, instead of or on top of [quant]: bits, portions, strategy -> INQ
    bits = 4
    [retrain]           # TrainConfig of the retraining (INQ: epochs per portion)
    epochs = 10
"""

from __future__ import annotations

from typing import Any

from .spec import SpecError

SHORT_KEYS = ("name", "plugins", "data", "model", "train", "quant", "inq", "retrain")


def is_short_form(raw: dict) -> bool:
    return "grid" not in raw and "model" in raw


def short_to_spec(raw: dict, source: str = "config") -> dict[str, Any]:
    """The spec of a one-experiment config (errors name the path in the short form's terms where they can)."""
    for k in raw:
        if k not in SHORT_KEYS:
            raise SpecError(f"{source}: {k}: unknown key; accepted: {', '.join(SHORT_KEYS)}")
    for k in ("data", "model"):
        if not isinstance(raw.get(k), dict) or ("name" not in raw[k] and "target" not in raw[k]):
            raise SpecError(
                f"{source}: {k}.name: missing; [{k}] needs a registered name or target = 'package.module:function'"
            )
    train = dict(raw.get("train", {}))
    seed = train.pop("seed", 0)
    retrain = dict(raw.get("retrain", {"epochs": 5, "lr": 1e-3}))
    retrain.pop("seed", None)
    methods: dict[str, dict] = {"float": {"kind": "float", "train": train}}
    if "inq" in raw:
        inq = raw["inq"]
        if not isinstance(inq, dict) or "bits" not in inq:
            raise SpecError(f"{source}: inq.bits: missing; [inq] needs bits (and optionally portions, strategy)")
        methods["quantized"] = {"kind": "inq", "parent": "float", **inq, "train": retrain}
        if "quant" in raw:
            methods["quantized"]["quant"] = raw["quant"]
    elif "quant" in raw:
        methods["quantized"] = {"kind": "qat", "parent": "float", "quant": raw["quant"], "train": retrain}
    return {
        "name": raw.get("name", "experiment"),
        "description": "One experiment (lowbit run).",
        **({"plugins": raw["plugins"]} if "plugins" in raw else {}),
        "data": raw["data"],
        "grid": {"model": ["model"], "method": list(methods), "seed": [seed]},
        "models": {"model": raw["model"]},
        "methods": methods,
    }


def check_one_cell(raw: dict, source: str) -> None:
    grid = raw.get("grid", {})
    sizes = {a: len(v) for a, v in grid.items() if a != "method" and isinstance(v, list)}
    if any(n > 1 for n in sizes.values()):
        shape = " x ".join(f"{n} {a}" for a, n in sizes.items())
        raise SpecError(f"{source}: grid has {shape}; `lowbit run` runs one cell, use `lowbit sweep` for a grid")


_SHORT_PATHS = (
    ("methods.quantized.quant", "quant"),
    ("methods.quantized.train", "retrain"),
    ("methods.quantized.", "inq."),
    ("methods.float.train", "train"),
    ("models.model", "model"),
)


def short_error(e: SpecError) -> SpecError:
    """A spec error of a translated config, with the paths the user wrote ([quant], [retrain], ...)."""
    msg = str(e)
    for long, short in _SHORT_PATHS:
        msg = msg.replace(long, short)
    return SpecError(msg)
