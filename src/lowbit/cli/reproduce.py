"""``lowbit reproduce NAME``: run a reproduced study, the spec ``lowbit/studies/NAME.toml`` (``--list``)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from . import UsageError
from .sweep import add_run_options, run_spec


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


def _legacy_names() -> list[str]:
    """Studies still written as Python modules (until they become specs)."""
    from ..experiments.registry import study_names

    return study_names()


def _run(args: argparse.Namespace) -> int:
    from ..experiments.spec import load_spec
    from ..experiments.studies import study_listing, study_names, study_path

    if args.list or not args.name:
        for name, desc, scales in study_listing():
            print(f"{name:16s} {desc}  [scales: {', '.join(scales)}]")
        for name in sorted(set(_legacy_names()) - set(study_names())):
            from ..experiments.registry import get_study

            s = get_study(name)
            print(f"{name:16s} {s.description}  [scales: {', '.join(s.scales)}]")
        return 0
    if args.name in study_names():
        return run_spec(load_spec(study_path(args.name), args.scale), args)
    if args.name not in _legacy_names():
        study_path(args.name)  # raises: unknown study, with the list
    return _run_legacy(args)


def _run_legacy(args: argparse.Namespace) -> int:
    from ..experiments.registry import get_study

    study = get_study(args.name)
    scale = args.scale or "default"
    if scale not in study.scales:
        raise UsageError(f"--scale {scale!r} is not accepted for {args.name}; expected one of {study.scales}")
    if args.workers < 1:
        raise UsageError(f"--workers {args.workers} is not accepted; expected a whole number >= 1")
    out = args.out or Path("runs") / args.name
    if out.exists() and any(out.iterdir()) and not args.resume:
        raise UsageError(
            f"run folder {str(out)!r} already holds a run; pass --resume to continue it or choose another --out"
        )
    t0 = time.perf_counter()
    report = study.run(out=out, scale=scale, resume=args.resume, workers=args.workers, progress=not args.no_progress)
    print(f"{args.name}: report written to {report} ({time.perf_counter() - t0:.0f} s)")
    return 0
