"""``lowbit report RUN_DIR``: rebuild report.md, report.html and figures of a run from its stored results."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import COMMANDS, UsageError


@COMMANDS.register("report")
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="rebuild a run's report from its stored results",
        description="Rebuild report.md, report.html and figures/*.png of a run folder from its spec.toml and "
        "results.sqlite alone, without training anything (a partly finished run gives a partial report). Imports "
        "none of the code the spec names unless --trust-code is given, and reads no data file the spec names "
        "(its [data] root or archive) unless --trust-data is given.",
    )
    p.add_argument("run_dir", type=Path, help="a run folder holding spec.toml")
    p.add_argument(
        "--trust-code",
        action="store_true",
        help="import the modules the run's spec names (its plugins and target models / data sets) to build what "
        "needs them, e.g. a plugin's report extra. A spec that names code is code: without this flag nothing is "
        "imported and those parts are skipped with a note",
    )
    p.add_argument(
        "--trust-data",
        action="store_true",
        help="read the data files the run's spec names (its [data] root or archive, outside the run folder) for "
        "the figures that need the data (e.g. segmentation masks); without it they are skipped with a note",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if (args.run_dir / "spec.toml").is_file():
        from .. import tomlio
        from ..engine.report import build_report
        from ..engine.safepath import check_run_folder
        from ..engine.usercode import named_code

        check_run_folder(args.run_dir)  # before reading spec.toml: no link in the folder leads out of it
        if args.trust_code:
            modules = named_code(tomlio.load(args.run_dir / "spec.toml"))
            print(f"importing the spec's code: {', '.join(modules)}" if modules else "the spec names no code")
        path = build_report(args.run_dir, trust_code=args.trust_code, trust_data=args.trust_data)
    else:
        raise UsageError(f"{str(args.run_dir)!r} is not a run folder (no spec.toml in it)")
    print(f"report written to {path}")
    return 0
