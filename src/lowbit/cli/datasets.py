"""``lowbit datasets``: every registered data set, what it gives, the task scoring it, its arguments (``--json``)."""

from __future__ import annotations

import argparse

from . import COMMANDS
from .catalog import add_listing_options, describe_entries, print_entries


@COMMANDS.register("datasets")
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "datasets",
        help="list the registered data sets: what each gives, its arguments and defaults",
        description="Print every registered data set a spec can name in [data] name = ...: the inputs it gives "
        "((N, C, H, W) images, (N, F) vectors, (N, T, D) sequences), its targets, the task that scores it, and each "
        "keyword argument with its type, range and default. A data set of your own: [data] target = "
        "'my_pkg.data:build', a function returning lowbit.data.sets.Data, plus its arguments.",
    )
    add_listing_options(p, "data set")
    p.set_defaults(func=_run)


def _facts(name: str) -> dict[str, str]:
    from ..data.sets import DATASETS

    meta = DATASETS.meta(name)
    return {k: meta.get(k, "") for k in ("gives", "targets", "task")}


def _run(args: argparse.Namespace) -> int:
    from ..data.sets import DATASETS

    entries = describe_entries(DATASETS, args.names, _facts)
    print_entries(entries, {"gives": "gives", "targets": "targets", "task": "task"}, args.json)
    return 0
