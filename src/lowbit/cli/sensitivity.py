"""``lowbit sensitivity`` and ``lowbit allocate``: per-layer sensitivity of a saved model, and the exact
allocation of weight bits under a memory budget (``lowbit.mixed``).

    lowbit sensitivity MODEL_FILE --data spirals [--data-arg subset=2000] [--candidates 2 3 4 8] [--samples 32]
                       [--subset 1024] [--seed 0] [--no-acts] [--out DIR] [--json]
    lowbit allocate MODEL_FILE --sensitivity DIR/sensitivity.json --budget W3 [--criterion hutchinson]
                    [--bitops N] [--out DIR] [--json]

MODEL_FILE is a float model written by ``lowbit.serialize.save_model`` (a run's jobs/<id>/model.safetensors); the
data set is a registered one (``lowbit datasets``), flattened for a model that takes vectors (fcdnn), measured on
its first ``--subset`` training samples. ``--out`` writes sensitivity.json (for ``allocate`` and other tools) and
sensitivity.png (layers × bits heat map); ``allocate --out`` writes allocation.json and quant.toml (the config as a
study spec's ``quant`` table).
"""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path

from . import COMMANDS, UsageError


def _data_args(pairs: list[str]) -> dict:
    out = {}
    for p in pairs:
        key, eq, value = p.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"--data-arg {p!r} is not accepted; expected key=value, e.g. subset=2000")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value
    return out


def _load(path: Path):
    from .summary import load_saved

    model, meta = load_saved(path)
    if meta["format"] != "safetensors":
        raise UsageError(f"{str(path)!r} is a packed file; expected a float model file (lowbit.serialize.save_model)")
    return model.eval(), (meta.get("model") or {}).get("name")


@COMMANDS.register("sensitivity")
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sensitivity",
        help="per-layer, per-bit-width sensitivity of a saved float model (single-layer drop, Hutchinson trace)",
        description="For every quantizable layer (its weights, and separately its input) and every candidate bit "
        "width: the loss and accuracy change when only that layer is quantized and calibrated, and the HAWQ-V2 "
        "estimate ½·Tr(H)/n·‖Δ‖² with Tr(H) by Hutchinson's method. Prints a table; --out writes JSON and a heat map.",
    )
    p.add_argument("checkpoint", type=Path, help="a float model file (lowbit.serialize.save_model's safetensors)")
    p.add_argument("--data", required=True, help="a registered data set (`lowbit datasets`), e.g. spirals")
    p.add_argument("--data-arg", action="append", default=[], help="a data set argument key=value (repeatable)")
    p.add_argument("--subset", type=int, default=1024, help="training samples measured on (the first ones)")
    p.add_argument("--candidates", type=int, nargs="+", default=[2, 3, 4, 8], help="bit widths (default 2 3 4 8)")
    p.add_argument("--samples", type=int, default=32, help="Rademacher vectors per batch (default 32)")
    p.add_argument("--seed", type=int, default=0, help="seed of the Rademacher vectors (default 0)")
    p.add_argument("--no-acts", action="store_true", help="weights only (skip the layer inputs)")
    p.add_argument("--out", type=Path, default=None, help="write DIR/sensitivity.json and DIR/sensitivity.png")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_run)


@COMMANDS.register("allocate")
def add_allocate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "allocate",
        help="exact per-layer weight bits under a memory budget, from a sensitivity file",
        description="Choose each layer's weight bits among the sensitivity's candidates to minimise the summed "
        "sensitivity with the model's bytes (as `lowbit summary` counts them) within --budget: a number of bytes or "
        "W<b>, the memory of uniform b-bit weights. Exact (a knapsack over exact byte counts).",
    )
    p.add_argument("checkpoint", type=Path, help="the float model file the sensitivity was measured on")
    p.add_argument("--sensitivity", type=Path, required=True, help="sensitivity.json from `lowbit sensitivity --out`")
    p.add_argument("--budget", required=True, help="bytes (e.g. 4096) or W<bits> (e.g. W3)")
    p.add_argument("--criterion", default="hutchinson", help="hutchinson | first_order | random (default hutchinson)")
    p.add_argument("--bitops", type=int, default=None, help="a second budget: BitOPs per example")
    p.add_argument("--seed", type=int, default=0, help="the random criterion's seed")
    p.add_argument("--out", type=Path, default=None, help="write DIR/allocation.json and DIR/quant.toml")
    p.add_argument("--json", action="store_true", help="print the allocation as JSON")
    p.set_defaults(func=_run_allocate)


def _run(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.data import Subset

    from ..data.sets import dataset_names, flatten_images, load_data
    from ..engine.models import takes_vectors
    from ..mixed import sensitivity

    if args.data not in dataset_names():
        raise UsageError(f"--data {args.data!r}: unknown data set; accepted: {', '.join(dataset_names())}")
    if args.subset < 1:
        raise UsageError(f"--subset {args.subset} is not accepted; expected a number of samples >= 1")
    torch.manual_seed(args.seed)
    model, name = _load(args.checkpoint)
    data = load_data({"name": args.data, **_data_args(args.data_arg)})
    if name is not None and takes_vectors({"name": name}):
        data = flatten_images(data)
    probe = Subset(data.train, range(min(args.subset, len(data.train))))
    s = sensitivity(
        model,
        probe,
        args.candidates,
        acts=not args.no_acts,
        samples=args.samples,
        seed=args.seed,
        progress=not args.no_progress,
    )
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        s.to_json(args.out / "sensitivity.json")
        s.figure(args.out / "sensitivity.png")
    print(s.to_json() if args.json else s.table())
    if args.out is not None and not args.json:
        print(f"written: {args.out / 'sensitivity.json'}, {args.out / 'sensitivity.png'}")
    return 0


def _budget(text: str) -> int | str:
    return int(text) if text.strip().isdigit() else text


def _run_allocate(args: argparse.Namespace) -> int:
    from ..fileio import atomic_write_text
    from ..mixed import Sensitivity, allocation
    from ..tomlio import dumps

    if not args.sensitivity.is_file():
        raise UsageError(
            f"--sensitivity {str(args.sensitivity)!r} does not exist; write it with lowbit sensitivity --out"
        )
    try:
        sens = Sensitivity.from_json(args.sensitivity)
    except (json.JSONDecodeError, TypeError) as e:
        raise UsageError(f"--sensitivity {str(args.sensitivity)!r} is not a sensitivity file ({e})") from None
    model, _ = _load(args.checkpoint)
    a = allocation(
        model, _budget(args.budget), sens, criterion=args.criterion, bitops_budget=args.bitops, seed=args.seed
    )
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / "allocation.json", json.dumps(a.to_dict(), indent=2) + "\n")
        atomic_write_text(args.out / "quant.toml", dumps(a.config.to_dict()))
    if args.json:
        print(json.dumps(a.to_dict(), indent=2))
        return 0
    width = max(len(n) for n in a.bits)
    print(f"{'layer'.ljust(width)}  weight bits")
    for n, b in a.bits.items():
        print(f"{n.ljust(width)}  {b}")
    uni = ", ".join(f"W{b}: {v} B" for b, v in (a.uniform_bytes or {}).items())
    print(
        f"\n{a.predicted_bytes} bytes as stored (budget {a.budget_bytes}; uniform {uni}); {args.criterion} objective "
        f"{a.objective:.4g}" + (f"; {a.bitops} BitOPs (budget {a.bitops_budget})" if a.bitops_budget else "")
    )
    return 0
