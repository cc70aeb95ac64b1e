"""``lowbit run CONFIG``: one experiment (train float, optionally quantize/INQ and retrain, report)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import tomlio
from ..experiments.single import ExperimentConfig, run_experiment
from . import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run one experiment from a TOML config",
        description="Run one experiment: [data], [model], [train] (float), optional [quant] / [inq] with "
        "[retrain]. Writes config.toml, checkpoints, metrics.jsonl, model.safetensors and report.md/html "
        "under --out (default runs/<name>). See lowbit.experiments.single for the schema.",
    )
    p.add_argument("config", type=Path, help="experiment TOML file")
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/<name>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    raw = tomlio.load(args.config)
    cfg = ExperimentConfig.from_dict(raw.get("experiment", raw))
    out = args.out or Path("runs") / cfg.name
    if out.exists() and any(out.iterdir()) and not args.resume:
        raise UsageError(f"run folder {str(out)!r} already holds a run; pass --resume or choose another --out")
    report = run_experiment(cfg, out, resume=args.resume, progress=not args.no_progress)
    print(f"{cfg.name}: report written to {report}")
    return 0
