"""``lowbit reproduce NAME``: run a reproduced study, the spec ``lowbit/studies/NAME.toml`` (``--list``)."""

from __future__ import annotations

import argparse

from . import COMMANDS
from .sweep import add_run_options, run_spec


@COMMANDS.register("reproduce")
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reproduce",
        help="run a reproduced paper study (see --list)",
        description="Run a reproduced study from its shipped spec (configs/studies/NAME.toml): trains every job, "
        "writes report.md, report.html, figures/*.png, spec.toml and results.sqlite under --out (default "
        "runs/NAME). Interrupted runs continue with --resume.",
    )
    p.add_argument("name", nargs="?", help="study name (see --list)")
    p.add_argument("--list", action="store_true", help="list the available studies and exit")
    add_run_options(p, "tiny (seconds, for tests) | default (CPU minutes) | paper (default: default)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..engine.spec import load_spec
    from ..studies import study_listing, study_path

    if args.list or not args.name:
        for name, desc, scales in study_listing():
            print(f"{name:16s} {desc}  [scales: {', '.join(scales)}]")
        return 0
    return run_spec(load_spec(study_path(args.name), args.scale), args)  # an unknown name lists the studies
