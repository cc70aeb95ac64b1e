"""``lowbit report RUN_DIR``: rebuild report.md, report.html and figures of a run from its stored results."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import tomlio
from ..experiments.registry import get_study
from . import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="rebuild a run's report from its stored results",
        description="Rebuild report.md, report.html and figures/*.png of a run folder (from `lowbit run` or "
        "`lowbit reproduce`) from the results it stored, without training anything.",
    )
    p.add_argument("run_dir", type=Path, help="a run folder holding config.toml")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    cfg_path = args.run_dir / "config.toml"
    if not cfg_path.is_file():
        raise UsageError(f"{str(args.run_dir)!r} is not a run folder (no config.toml in it)")
    cfg = tomlio.load(cfg_path)
    if "experiment" in cfg:
        from ..experiments.single import rebuild_report

        path = rebuild_report(args.run_dir)
    elif "study" in cfg:
        study = get_study(cfg["study"])
        if study.report is None:
            raise UsageError(f"study {study.name!r} cannot rebuild its report; re-run it with --resume instead")
        path = study.report(args.run_dir)
    else:
        raise UsageError(f"{str(cfg_path)!r} names neither an experiment nor a study")
    print(f"report written to {path}")
    return 0
