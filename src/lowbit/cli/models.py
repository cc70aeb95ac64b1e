"""``lowbit models``: every registered model, what it takes and returns, and its arguments (``--json``)."""

from __future__ import annotations

import argparse

from . import COMMANDS
from .catalog import add_listing_options, describe_entries, print_entries


@COMMANDS.register("models")
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list the registered models: the input each takes, its arguments and defaults",
        description="Print every registered model a spec can name in [models.NAME] name = ...: the input it takes "
        "(a model that takes (N, in_features) vectors gets image data flattened in a study; a model entry's "
        "flatten = true | false overrides it), what it returns, and each keyword argument with its type and "
        "default. Arguments marked 'set from the data' are filled in from the data set (in_features, num_classes, "
        "in_channels, ...). A model of your own: target = 'my_pkg.models:build' plus its arguments. "
        "Training options ([train]: optimizer Adam, lr 1e-3, cosine schedule by default) are listed by "
        "`lowbit train-config`.",
    )
    add_listing_options(p, "model")
    p.set_defaults(func=_run)


def _facts(name: str) -> dict[str, str]:
    from ..models import MODELS
    from ..models.registry import INPUTS

    meta = MODELS.meta(name)
    return {"input": INPUTS.get(meta.get("input", ""), ""), "output": meta.get("output", "")}


def _run(args: argparse.Namespace) -> int:
    from ..models import MODELS

    entries = describe_entries(MODELS, args.names, _facts)
    print_entries(entries, {"input": "takes", "output": "returns"}, args.json)
    return 0
