"""``lowbit reproduce NAME``: run a registered paper study into one run folder."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..experiments.registry import get_study, study_names
from . import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reproduce",
        help="run a reproduced paper study (see --list)",
        description="Run a reproduced study: trains every configuration, writes report.md, report.html, "
        "figures/*.png, config.toml and metrics under --out. Interrupted runs continue with --resume.",
    )
    p.add_argument("name", nargs="?", help="study name (see --list)")
    p.add_argument("--list", action="store_true", help="list the available studies and exit")
    p.add_argument("--out", type=Path, default=None, help="run folder (default: runs/NAME)")
    p.add_argument("--scale", default="default", help="tiny (seconds, for tests) | default (CPU minutes) | paper")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--workers", type=int, default=2, help="parallel worker processes (default 2)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.list or not args.name:
        for name in study_names():
            s = get_study(name)
            print(f"{name:16s} {s.description}  [scales: {', '.join(s.scales)}]")
        return 0
    study = get_study(args.name)
    if args.scale not in study.scales:
        raise UsageError(f"--scale {args.scale!r} is not accepted for {args.name}; expected one of {study.scales}")
    if args.workers < 1:
        raise UsageError(f"--workers {args.workers} is not accepted; expected a whole number >= 1")
    out = args.out or Path("runs") / args.name
    if out.exists() and any(out.iterdir()) and not args.resume:
        raise UsageError(
            f"run folder {str(out)!r} already holds a run; pass --resume to continue it or choose another --out"
        )
    t0 = time.perf_counter()
    report = study.run(
        out=out, scale=args.scale, resume=args.resume, workers=args.workers, progress=not args.no_progress
    )
    print(f"{args.name}: report written to {report} ({time.perf_counter() - t0:.0f} s)")
    return 0
