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
        "results.sqlite alone, without training anything (a partly finished run gives a partial report).",
    )
    p.add_argument("run_dir", type=Path, help="a run folder holding spec.toml")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if (args.run_dir / "spec.toml").is_file():
        from ..engine.report import build_report

        path = build_report(args.run_dir)
    else:
        raise UsageError(f"{str(args.run_dir)!r} is not a run folder (no spec.toml in it)")
    print(f"report written to {path}")
    return 0
