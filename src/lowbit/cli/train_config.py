"""``lowbit train-config``: the fields of a spec's ``[train]`` table (``TrainConfig``), their defaults and meaning."""

from __future__ import annotations

import argparse
import json

from . import COMMANDS


@COMMANDS.register("train-config")
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-config",
        help="list the [train] options (optimizer, learning rate, schedule, ...) and their defaults",
        description="Print every field of a spec's [train] table (and of a method's train = {...}, which overrides "
        "it): type, default and what it does. By default training uses Adam with lr 1e-3 and a cosine schedule, "
        "10 epochs of batches of 128. A study sets seed from its seed axis.",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list of {name, type, default, help}")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from ..train.config import HELP, TrainConfig

    cfg = TrainConfig()
    default = {f.name: getattr(cfg, f.name) for f in fields(TrainConfig)}  # to_dict leaves some defaults out
    default["milestones"] = list(cfg.milestones)
    rows = [
        {"name": f.name, "type": str(f.type), "default": default[f.name], "help": HELP[f.name]}
        for f in fields(TrainConfig)
    ]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"{r['name']:{width}s}  {json.dumps(r['default']):10s}  {r['help']}")
    return 0
